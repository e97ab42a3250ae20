//! The alert history: one row per state change of a rule.

use libsql::params;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AlertState;
use crate::db::{self, DbError, Reader, Writer};

/// A state change to store.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub org_id: &'a str,
    pub rule_id: &'a str,
    pub rule_name: &'a str,
    pub from: AlertState,
    pub to: AlertState,
    pub value: Option<f64>,
    pub threshold: f64,
    pub reason: Option<&'a str>,
    /// Whether webhooks were notified of it.
    pub notified: bool,
    pub at: i64,
}

/// A state change as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertHistoryEntry {
    pub rule_id: String,
    pub rule_name: String,
    pub from: AlertState,
    pub to: AlertState,
    /// `resolved` when a firing rule stopped firing, else the new state.
    pub event: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub reason: Option<String>,
    pub notified: bool,
    /// RFC 3339.
    pub at: String,
}

/// Filters of the history, newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this rule's changes.
    pub rule: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// What a transition is called: `resolved` out of `firing`, else the new state.
pub fn event_name(from: AlertState, to: AlertState) -> &'static str {
    if from == AlertState::Firing && to != AlertState::Firing {
        "resolved"
    } else {
        to.as_str()
    }
}

/// Stores a transition (once per rule and time: a second one is ignored).
pub async fn insert(conn: &Writer, t: &Transition<'_>) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR IGNORE INTO alert_history
            (id, org_id, rule_id, rule_name, from_state, to_state, value, threshold, reason, notified, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            db::new_id(),
            t.org_id,
            t.rule_id,
            t.rule_name,
            t.from.as_str(),
            t.to.as_str(),
            t.value,
            t.threshold,
            t.reason,
            i64::from(t.notified),
            t.at
        ],
    )
    .await?;
    Ok(())
}

/// The organisation's history, newest first.
pub async fn list(
    conn: &Reader,
    org_id: &str,
    query: &HistoryQuery,
) -> Result<Vec<AlertHistoryEntry>, DbError> {
    let limit = i64::from(query.limit.unwrap_or(100).clamp(1, 1000));
    let rows = conn
        .query(
            "SELECT rule_id, rule_name, from_state, to_state, value, threshold, reason, notified, at
             FROM alert_history WHERE org_id = ?1 AND (?2 IS NULL OR rule_id = ?2)
             ORDER BY at DESC, rowid DESC LIMIT ?3",
            params![org_id, query.rule.as_deref(), limit],
        )
        .await?;
    db::collect(rows, |row| {
        let state = |i| {
            let text: String = row.get(i)?;
            AlertState::parse(&text).ok_or_else(|| DbError::Corrupt("alert state".into()))
        };
        let (from, to) = (state(2)?, state(3)?);
        Ok(AlertHistoryEntry {
            rule_id: row.get(0)?,
            rule_name: row.get(1)?,
            from,
            to,
            event: event_name(from, to).to_owned(),
            value: row.get(4)?,
            threshold: row.get(5)?,
            reason: row.get(6)?,
            notified: row.get::<i64>(7)? != 0,
            at: db::rfc3339(row.get(8)?),
        })
    })
    .await
}
