//! A user's own sign-in history: when and from where their password was tried.
//!
//! It belongs to the user, not to the organisations they are in: an organisation's audit
//! log never shows a member's sign-ins (another tenant could otherwise add an address and
//! watch that person's logins everywhere). Failures for unknown addresses are not stored.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, DbError};

/// One sign-in attempt with a correct email.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignIn {
    /// Whether the password was right.
    pub succeeded: bool,
    pub source_ip: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// Attempts kept per user; older ones are dropped as new ones come.
const KEPT: i64 = 100;

/// Records an attempt and forgets the oldest beyond [`KEPT`].
pub async fn record(
    conn: &Writer,
    user_id: &str,
    succeeded: bool,
    source_ip: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO sign_ins (user_id, succeeded, source_ip, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![user_id, i64::from(succeeded), source_ip, now],
    )
    .await?;
    conn.execute(
        "DELETE FROM sign_ins WHERE user_id = ?1 AND id <= (
             SELECT id FROM sign_ins WHERE user_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![user_id, KEPT],
    )
    .await?;
    Ok(())
}

/// The user's recent attempts, newest first.
pub async fn list(conn: &Reader, user_id: &str) -> Result<Vec<SignIn>, DbError> {
    let rows = conn
        .query(
            "SELECT succeeded, source_ip, created_at FROM sign_ins
             WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
            params![user_id, KEPT],
        )
        .await?;
    db::collect(rows, |row| {
        Ok(SignIn {
            succeeded: row.get::<i64>(0)? != 0,
            source_ip: row.get(1)?,
            at: db::rfc3339(row.get(2)?),
        })
    })
    .await
}
