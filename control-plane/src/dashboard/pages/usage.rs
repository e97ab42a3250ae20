//! Usage and billing: a period's usage against the plan's quotas (the API's usage report),
//! with charts of calls and compute units per day and the billed calls so far against the
//! monthly quota, usage by model and by caller, the invoice preview of the current period,
//! the finalised invoices and an invoice's lines. Organisation admins only, like the API.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chart::{chart, seconds};
use crate::api::AppState;
use crate::api::usage::{self as api_usage, PeriodQuery};
use crate::auth::rbac::can;
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::error::ApiError;
use crate::metering::billing::Invoice;

pub(super) const TEMPLATES: &[(&str, &str)] = templates![
    "usage/usage.html",
    "usage/invoice.html",
    "usage/_lines.html",
];

const DAY: i64 = 86_400;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/usage", get(usage))
        .route("/orgs/{org}/usage/invoices/{invoice}", get(invoice))
}

#[derive(Debug, Default, Deserialize)]
struct UsageQuery {
    /// `YYYY-MM`; the current period by default.
    #[serde(default)]
    period: String,
}

/// `micros` of a currency as `12.34`.
fn money(micros: u64) -> String {
    format!(
        "{}.{:02}",
        micros / 1_000_000,
        (micros % 1_000_000) / 10_000
    )
}

/// An invoice with its amounts written out.
fn invoice_view(invoice: &Invoice) -> Value {
    let lines: Vec<_> = invoice
        .lines
        .iter()
        .map(|l| {
            json!({
                "kind": l.kind,
                "description": l.description,
                "quantity": l.quantity,
                "unit": l.unit,
                "unit_price": format!("{} per {} {}", money(l.unit_price_micros), l.per, l.unit),
                "amount": money(l.amount_micros),
            })
        })
        .collect();
    json!({
        "id": invoice.id,
        "period": invoice.period,
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "status": invoice.status,
        "plan": invoice.plan,
        "currency": invoice.currency.to_uppercase(),
        "lines": lines,
        "total": money(invoice.total_micros),
    })
}

async fn usage(
    State(state): State<AppState>,
    page: OrgPage<can::ReadUsage>,
    Query(query): Query<UsageQuery>,
) -> PageResult {
    let org = &page.access.org.id;
    let period = query.period.trim();
    let report = api_usage::report(
        &state,
        org,
        &PeriodQuery {
            period: (!period.is_empty()).then(|| period.to_owned()),
            granularity: None,
        },
    )
    .await?;
    // Every day of the period, so that a day without calls is drawn as zero.
    let span = (seconds(&report.period_start), seconds(&report.period_end));
    let x: Vec<i64> = (span.0..span.1).step_by(DAY as usize).collect();
    let mut per_day = BTreeMap::new();
    for bucket in &report.series {
        let day = seconds(&bucket.start).div_euclid(DAY) * DAY;
        let t = &bucket.totals;
        for (label, value) in [
            ("calls", t.calls),
            ("failed calls", t.failed_calls),
            ("compute units", t.compute_units),
            ("billed", t.billed_calls),
        ] {
            *per_day.entry((label.to_owned(), day)).or_insert(0.0) += value as f64;
        }
    }
    let labels = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let calls = chart(
        "Calls per day",
        "calls",
        span,
        &x,
        &per_day,
        &labels(&["calls", "failed calls"]),
        Some(0.0),
    );
    let compute = chart(
        "Compute units per day",
        "units",
        span,
        &x,
        &per_day,
        &labels(&["compute units"]),
        Some(0.0),
    );
    // Billed calls so far in the period against the monthly quota.
    let now = crate::db::now();
    let mut cumulative = BTreeMap::new();
    let mut total = 0.0;
    let quota = report.plan.quotas.calls_per_month;
    for day in &x {
        if *day <= now {
            total += per_day
                .get(&("billed".to_owned(), *day))
                .copied()
                .unwrap_or(0.0);
            cumulative.insert(("billed calls so far".to_owned(), *day), total);
        }
        if let Some(limit) = quota {
            cumulative.insert(("monthly quota".to_owned(), *day), limit as f64);
        }
    }
    let mut against = labels(&["billed calls so far"]);
    if quota.is_some() {
        against.insert("monthly quota".to_owned());
    }
    let quota_chart = chart(
        "Billed calls this period vs the quota",
        "calls",
        span,
        &x,
        &cumulative,
        &against,
        None,
    );
    let charts = vec![
        json!({ "id": "quota", "data": quota_chart }),
        json!({ "id": "calls", "data": calls }),
        json!({ "id": "compute", "data": compute }),
    ];
    let quotas: Vec<_> = report
        .quotas
        .iter()
        .map(|q| {
            let percent = q.limit.filter(|l| *l > 0).map(|l| q.used * 100 / l);
            json!({ "quota": q, "percent": percent })
        })
        .collect();
    let current = report.period == crate::metering::period::Period::containing(now).label();
    let preview = if current {
        Some(invoice_view(&api_usage::preview(&state, org).await?))
    } else {
        None
    };
    let invoices: Vec<_> = api_usage::final_invoices(&state, org)
        .await?
        .iter()
        .map(invoice_view)
        .collect();
    let frame = page.frame.clone().page("usage", "Usage and billing");
    render::page(
        "usage/usage.html",
        &frame,
        context! { report, quotas, charts, preview, invoices, current },
    )
}

async fn invoice(
    State(state): State<AppState>,
    page: OrgPage<can::ReadUsage>,
    Path((_, id)): Path<(String, String)>,
) -> PageResult {
    let invoice = api_usage::final_invoices(&state, &page.access.org.id)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| ApiError::not_found("invoice"))?;
    let title = format!("Invoice {}", invoice.period);
    let frame = page.frame.clone().page("usage", title);
    render::page(
        "usage/invoice.html",
        &frame,
        context! { invoice => invoice_view(&invoice) },
    )
}
