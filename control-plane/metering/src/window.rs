//! Usage events of a recent window, read for alerting: how many calls, how many failed,
//! and their wall times, optionally for one model and version.
//!
//! These read the raw events (`usage_events`, indexed by organisation and time), so a
//! window is exact to the millisecond; its cost grows with the calls in it.

use libsql::params;

use crate::db::{self, DbError, Reader};
use crate::event::OK;

/// Which events of an organisation a window holds.
#[derive(Debug, Clone, Copy)]
pub struct WindowFilter<'a> {
    pub org_id: &'a str,
    /// Only this model (by name).
    pub model: Option<&'a str>,
    /// Only this version (of `model`).
    pub version: Option<i64>,
    /// `[from_ms, to_ms)`, milliseconds since the Unix epoch.
    pub from_ms: i64,
    pub to_ms: i64,
}

const WHERE: &str = "org_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
    AND (?4 IS NULL OR model_name = ?4) AND (?5 IS NULL OR version = ?5)";

/// Calls in a window and how many of them failed (outcome other than `ok`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub calls: u64,
    pub failed: u64,
}

/// Counts the window's calls and failures.
pub async fn counts(conn: &Reader, filter: &WindowFilter<'_>) -> Result<CallCounts, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(outcome <> ?6), 0) FROM usage_events WHERE {WHERE}"
            ),
            params![
                filter.org_id,
                filter.from_ms,
                filter.to_ms,
                filter.model,
                filter.version,
                OK
            ],
        )
        .await?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(CallCounts::default());
    };
    let count = |i| row.get::<i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(CallCounts {
        calls: count(0)?,
        failed: count(1)?,
    })
}

/// Calls `each` with the wall time (microseconds) of every call in the window.
pub async fn for_each_wall_us(
    conn: &Reader,
    filter: &WindowFilter<'_>,
    each: impl FnMut(u64),
) -> Result<(), DbError> {
    for_each(conn, "wall_us", filter, each).await
}

/// Calls `each` with the load time, in microseconds, of every cold start in the window.
pub async fn for_each_cold_load_us(
    conn: &Reader,
    filter: &WindowFilter<'_>,
    each: impl FnMut(u64),
) -> Result<(), DbError> {
    for_each(conn, "cold_load_us", filter, each).await
}

/// `each` over the non-null values of `column` in the window.
async fn for_each(
    conn: &Reader,
    column: &'static str,
    filter: &WindowFilter<'_>,
    mut each: impl FnMut(u64),
) -> Result<(), DbError> {
    let mut rows = conn
        .query(
            &format!("SELECT {column} FROM usage_events WHERE {WHERE} AND {column} IS NOT NULL"),
            params![
                filter.org_id,
                filter.from_ms,
                filter.to_ms,
                filter.model,
                filter.version
            ],
        )
        .await?;
    while let Some(row) = rows.next().await? {
        each(u64::try_from(row.get::<i64>(0)?).unwrap_or(0));
    }
    Ok(())
}
