//! Invoices from the database: a preview of the current period, and finalised invoices of
//! closed periods, computed once and stored, never recomputed.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::invoice::{self, BilledUsage, LineItem};
use super::period::Period;
use super::{storage, store};
use crate::db::{self, DbError};
use crate::plans::{self, Plan};

/// A period is finalised this long after it closed, so that calls still being drained
/// from the outbox at midnight are in it.
pub const FINALIZE_GRACE_SECS: i64 = 300;

/// An invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invoice {
    /// `inv-<org id>-<YYYY-MM>`: one per organisation and period.
    pub id: String,
    /// `YYYY-MM`.
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    /// `preview` (the current period, still changing) or `final`.
    pub status: String,
    pub plan: String,
    pub currency: String,
    pub lines: Vec<LineItem>,
    pub total_micros: u64,
}

/// The invoice of `period` from its usage up to `now`, under `plan`'s prices.
pub async fn compute(
    conn: &Reader,
    org_id: &str,
    plan: &Plan,
    period: Period,
    now: i64,
) -> Result<Invoice, DbError> {
    let totals = store::totals(conn, org_id, period.start, period.end).await?;
    let usage = BilledUsage {
        calls: totals.billed_calls,
        compute_units: totals.compute_units,
        storage_byte_seconds: storage::byte_seconds(conn, org_id, period, now).await?,
        period_seconds: u64::try_from(period.end - period.start).unwrap_or(0),
    };
    let lines = invoice::lines(&plan.name, &plan.prices, &usage);
    Ok(Invoice {
        id: format!("inv-{org_id}-{}", period.label()),
        period: period.label(),
        period_start: db::rfc3339(period.start),
        period_end: db::rfc3339(period.end),
        status: if now >= period.end {
            "final"
        } else {
            "preview"
        }
        .into(),
        plan: plan.id.clone(),
        currency: "usd".into(),
        lines: lines.lines,
        total_micros: lines.total_micros,
    })
}

/// Finalises every closed period of the organisation that has no invoice yet, from the
/// month it was created. Idempotent: an invoice is written once.
pub async fn finalize(conn: &Writer, org_id: &str, now: i64) -> Result<(), DbError> {
    let rows = conn
        .query("SELECT created_at FROM orgs WHERE id = ?1", params![org_id])
        .await?;
    let Some(created_at) = db::first_row(rows)
        .await?
        .map(|r| r.get::<i64>(0))
        .transpose()?
    else {
        return Ok(());
    };
    let rows = conn
        .query(
            "SELECT period_start FROM invoices WHERE org_id = ?1",
            params![org_id],
        )
        .await?;
    let done: std::collections::HashSet<i64> = db::collect(rows, |r| Ok(r.get(0)?))
        .await?
        .into_iter()
        .collect();
    let mut period = Period::containing(created_at);
    let mut plan = None;
    while period.end + FINALIZE_GRACE_SECS <= now {
        if !done.contains(&period.start) {
            if plan.is_none() {
                plan = Some(plans::of_org(conn, org_id).await?);
            }
            let plan = plan.as_ref().expect("loaded above");
            let invoice = compute(conn, org_id, plan, period, now).await?;
            conn.execute(
                "INSERT OR IGNORE INTO invoices
                    (id, org_id, period_start, period_end, plan_id, total_micros, body, finalized_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    invoice.id.as_str(),
                    org_id,
                    period.start,
                    period.end,
                    plan.id.as_str(),
                    i64::try_from(invoice.total_micros).unwrap_or(i64::MAX),
                    serde_json::to_string(&invoice).expect("invoices serialise"),
                    now
                ],
            )
            .await?;
        }
        period = period.next();
    }
    Ok(())
}

/// [`finalize`] for every organisation.
pub async fn finalize_all(conn: &Writer, now: i64) -> Result<(), DbError> {
    let rows = conn.query("SELECT id FROM orgs", ()).await?;
    let orgs: Vec<String> = db::collect(rows, |r| Ok(r.get(0)?)).await?;
    for org in orgs {
        finalize(conn, &org, now).await?;
    }
    Ok(())
}

/// The finalised invoices of an organisation, newest first.
pub async fn list_final(conn: &Reader, org_id: &str) -> Result<Vec<Invoice>, DbError> {
    let rows = conn
        .query(
            "SELECT body FROM invoices WHERE org_id = ?1 ORDER BY period_start DESC",
            params![org_id],
        )
        .await?;
    db::collect(rows, |r| {
        let body: String = r.get(0)?;
        serde_json::from_str(&body).map_err(|e| DbError::Corrupt(format!("invoice: {e}")))
    })
    .await
}
