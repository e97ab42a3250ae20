//! The append-only audit log: who changed what, when, and from where.
//!
//! Handlers record an [`AuditEvent`] in the same transaction as the change it describes, so
//! the log and the data cannot disagree. The same transaction writes an entry of the
//! fleet's invalidation log ([`crate::fleet`]), so every other node forgets what it
//! memoised of the change.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::{self, DbError};

/// Where a request came from: the client's address (the peer, or what a trusted proxy
/// says) and the `x-request-id`. The HTTP edge reads it from each request.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

/// A state change to record.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    /// `None` for events outside any organisation (e.g. a failed login).
    pub org_id: Option<&'a str>,
    /// `user:<id>`, `key:<id>`, `email:<address>` (failed logins) or `system`.
    pub actor: &'a str,
    /// Dotted name, e.g. `model.version.uploaded`.
    pub action: &'a str,
    /// What was acted on, e.g. `model:iris/versions/3`.
    pub target: Option<&'a str>,
    pub details: serde_json::Value,
}

/// Appends an event.
pub async fn record(
    conn: &Writer,
    meta: &RequestMeta,
    event: AuditEvent<'_>,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO audit_log (org_id, actor, action, target, details, source_ip, request_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            event.org_id,
            event.actor,
            event.action,
            event.target,
            event.details.to_string(),
            meta.source_ip.as_deref(),
            meta.request_id.as_deref(),
            db::now()
        ],
    )
    .await?;
    // Whatever changed may be memoised on other nodes: they forget it at their next poll.
    crate::fleet::record_change(conn, event.org_id, event.action).await?;
    Ok(())
}

/// An audit entry as returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// Filters and paging for reading the log, newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this action (e.g. `apikey.created`).
    pub action: Option<String>,
    /// Only this actor (e.g. `user:<id>`).
    pub actor: Option<String>,
    /// Only entries whose target starts with this.
    pub target_prefix: Option<String>,
    /// Only entries at or after this Unix time (seconds).
    pub since: Option<i64>,
    /// Only entries before this Unix time (seconds).
    pub until: Option<i64>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<i64>,
    /// Return entries older than this id (the `next_cursor` of the previous page).
    pub before: Option<i64>,
}

/// One page of entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// Reads one page of an organisation's log.
pub async fn query(conn: &Reader, org_id: &str, q: &AuditQuery) -> Result<AuditPage, DbError> {
    query_scoped(conn, "org_id = ?1", org_id, q).await
}

/// The action prefix of every platform operator's entry.
pub const PLATFORM_ACTION_PREFIX: &str = "platform.";

/// Reads one page of the platform operators' entries, across organisations (each is also
/// in the log of the organisation it concerns).
pub async fn query_platform(conn: &Reader, q: &AuditQuery) -> Result<AuditPage, DbError> {
    // A range on `action`, so the `audit_log_action` index serves it: `platform.` up to
    // `platform/`, the next character.
    query_scoped(
        conn,
        "action >= ?1 AND action < 'platform/'",
        PLATFORM_ACTION_PREFIX,
        q,
    )
    .await
}

/// One page of the entries matching `scope`, a condition on the parameter `?1` (`scope_value`).
async fn query_scoped(
    conn: &Reader,
    scope: &str,
    scope_value: &str,
    q: &AuditQuery,
) -> Result<AuditPage, DbError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    // Every filter is a bound parameter; a NULL parameter disables its condition.
    let rows = conn
        .query(
            &format!(
                "SELECT id, actor, action, target, details, source_ip, request_id, created_at
             FROM audit_log
             WHERE {scope}
               AND (?2 IS NULL OR action = ?2)
               AND (?3 IS NULL OR actor = ?3)
               AND (?4 IS NULL OR substr(target, 1, length(?4)) = ?4)
               AND (?5 IS NULL OR created_at >= ?5)
               AND (?6 IS NULL OR created_at < ?6)
               AND (?7 IS NULL OR id < ?7)
             ORDER BY id DESC LIMIT ?8"
            ),
            params![
                scope_value,
                q.action.as_deref(),
                q.actor.as_deref(),
                q.target_prefix.as_deref(),
                q.since,
                q.until,
                q.before,
                limit + 1
            ],
        )
        .await?;
    let mut entries = db::collect(rows, |row| {
        Ok(AuditEntry {
            id: row.get(0)?,
            actor: row.get(1)?,
            action: row.get(2)?,
            target: row.get(3)?,
            details: serde_json::from_str(&row.get::<String>(4)?)
                .map_err(|e| DbError::Corrupt(e.to_string()))?,
            source_ip: row.get(5)?,
            request_id: row.get(6)?,
            at: db::rfc3339(row.get(7)?),
        })
    })
    .await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_cursor,
    })
}
