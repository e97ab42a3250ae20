//! Webhook deliveries: a durable queue of signed messages and the log of their attempts.
//!
//! A delivery is `pending` until an attempt gets a 2xx answer (`delivered`) or the last
//! allowed attempt fails (`failed`). A sender claims a due delivery by moving its
//! `next_attempt_at` past the attempt (a lease, guarded on the old value), so two senders
//! — two tasks, or later two nodes — never send the same attempt, and one that dies
//! mid-attempt leaves the delivery due again when the lease ends.

use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, DbError, Reader, Writer};

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, DbError> {
        match text {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            _ => Err(DbError::Corrupt("delivery status".into())),
        }
    }
}

/// A delivery as the API shows it (its log entry).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// The message's `webhook-id`, the same on every attempt.
    pub id: String,
    pub webhook_id: String,
    /// `alert.firing`, `alert.resolved` or `alert.test`.
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// RFC 3339; while `pending`.
    pub next_retry_at: Option<String>,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// The HTTP status of the last answer.
    pub response_code: Option<i64>,
    /// The first bytes of the last answer's body.
    pub response_prefix: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The signed JSON body.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A claimed delivery, to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub org_id: String,
    pub webhook_id: String,
    pub payload: String,
    pub attempts: i64,
}

const COLUMNS: &str = "id, webhook_id, event_type, status, attempts, next_attempt_at,
    last_attempt_at, response_code, response_prefix, error, created_at, payload";

fn from_row(row: &libsql::Row) -> Result<Delivery, DbError> {
    let status = DeliveryStatus::parse(&row.get::<String>(3)?)?;
    let payload: String = row.get(11)?;
    Ok(Delivery {
        id: row.get(0)?,
        webhook_id: row.get(1)?,
        event_type: row.get(2)?,
        status,
        attempts: row.get(4)?,
        next_retry_at: match status {
            DeliveryStatus::Pending => row.get::<Option<i64>>(5)?.map(db::rfc3339),
            _ => None,
        },
        last_attempt_at: row.get::<Option<i64>>(6)?.map(db::rfc3339),
        response_code: row.get(7)?,
        response_prefix: row.get(8)?,
        error: row.get(9)?,
        created_at: db::rfc3339(row.get(10)?),
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
    })
}

/// Queues a message to a webhook, due at `due`. The id is the message's; queueing the
/// same id twice is a no-op (an evaluation that runs again queues nothing new).
pub async fn enqueue(
    conn: &Writer,
    id: &str,
    org_id: &str,
    webhook_id: &str,
    event_type: &str,
    payload: &str,
    due: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO alert_deliveries
            (id, org_id, webhook_id, event_type, payload, status, attempts, next_attempt_at,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, ?7)",
        params![id, org_id, webhook_id, event_type, payload, due, db::now()],
    )
    .await?;
    Ok(())
}

/// Claims up to `limit` deliveries due at `now`, leasing each until `lease_until`.
pub async fn claim_due(
    conn: &Writer,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<Outgoing>, DbError> {
    let rows = conn
        .query(
            "SELECT id FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, id LIMIT ?2",
            params![now, i64::from(limit)],
        )
        .await?;
    let ids = db::collect(rows, |row| row.get::<String>(0).map_err(DbError::from)).await?;
    let mut claimed = Vec::new();
    for id in ids {
        if let Some(outgoing) = claim(conn, &id, Some(now), lease_until).await? {
            claimed.push(outgoing);
        }
    }
    Ok(claimed)
}

/// Claims one pending delivery (due at `due_by` if given), leasing it until `lease_until`.
pub async fn claim(
    conn: &Writer,
    id: &str,
    due_by: Option<i64>,
    lease_until: i64,
) -> Result<Option<Outgoing>, DbError> {
    let changed = conn
        .execute(
            "UPDATE alert_deliveries SET next_attempt_at = ?3
             WHERE id = ?1 AND status = 'pending' AND (?2 IS NULL OR next_attempt_at <= ?2)",
            params![id, due_by, lease_until],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    let rows = conn
        .query(
            "SELECT id, org_id, webhook_id, payload, attempts FROM alert_deliveries WHERE id = ?1",
            params![id],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(Outgoing {
            id: row.get(0)?,
            org_id: row.get(1)?,
            webhook_id: row.get(2)?,
            payload: row.get(3)?,
            attempts: row.get(4)?,
        })),
        None => Ok(None),
    }
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub status: DeliveryStatus,
    /// The attempts made, this one included.
    pub attempts: i64,
    /// When to try again, while `pending`.
    pub next_attempt_at: Option<i64>,
    pub at: i64,
    pub response_code: Option<i64>,
    pub response_prefix: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Records an attempt of a claimed delivery.
pub async fn record_attempt(conn: &Writer, id: &str, a: &Attempt<'_>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE alert_deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4,
            last_attempt_at = ?5, response_code = ?6, response_prefix = ?7, error = ?8,
            updated_at = ?5
         WHERE id = ?1",
        params![
            id,
            a.status.as_str(),
            a.attempts,
            a.next_attempt_at,
            a.at,
            a.response_code,
            a.response_prefix,
            a.error
        ],
    )
    .await?;
    Ok(())
}

/// One delivery of an organisation.
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<Option<Delivery>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM alert_deliveries WHERE org_id = ?1 AND id = ?2"),
            params![org_id, id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// A webhook's deliveries, newest first.
pub async fn list(
    conn: &Reader,
    org_id: &str,
    webhook_id: &str,
    limit: u32,
) -> Result<Vec<Delivery>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM alert_deliveries WHERE org_id = ?1 AND webhook_id = ?2
                 ORDER BY created_at DESC, rowid DESC LIMIT ?3"
            ),
            params![org_id, webhook_id, i64::from(limit.clamp(1, 1000))],
        )
        .await?;
    db::collect(rows, from_row).await
}
