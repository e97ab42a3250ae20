//! The dashboard's session cookies: a random secret in the browser, its sha256 here, tied
//! to the real session ([`crate::sessions`]) of the sign-in that issued it.
//!
//! A cookie is only valid while its session is: signing out, signing out everywhere and
//! changing the password end the session, and with it every cookie naming it.

use libsql::params;

use crate::auth::tokens::{self, GeneratedSecret};
use crate::db::{self, DbError, Reader, Writer};

/// Prefix of dashboard cookie secrets (never a bearer credential of the API).
pub const COOKIE_SECRET_PREFIX: &str = "wispds_";

/// Whose browser a valid cookie is.
#[derive(Debug, Clone, PartialEq)]
pub struct CookieSession {
    pub session_id: String,
    pub user_id: String,
}

/// Issues a cookie secret for `session_id`, valid for `ttl_secs`. Cookies that expired
/// are deleted first: the table holds the live cookies and those expired since the last
/// sign-in, never an ever-growing history (sign-ins are audited elsewhere).
pub async fn issue(
    conn: &Writer,
    session_id: &str,
    ttl_secs: i64,
    now: i64,
) -> Result<GeneratedSecret, DbError> {
    conn.execute(
        "DELETE FROM dashboard_sessions WHERE expires_at <= ?1",
        params![now],
    )
    .await?;
    let secret = tokens::generate_secret(COOKIE_SECRET_PREFIX);
    conn.execute(
        "INSERT INTO dashboard_sessions (token_hash, session_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![secret.hash.as_str(), session_id, now, now + ttl_secs],
    )
    .await?;
    Ok(secret)
}

/// The session of the cookie whose secret hashes to `token_hash`, if it has not expired
/// and its session has not ended.
pub async fn find(
    conn: &Reader,
    token_hash: &str,
    now: i64,
) -> Result<Option<CookieSession>, DbError> {
    let rows = conn
        .query(
            "SELECT s.id, s.user_id FROM dashboard_sessions d
             JOIN sessions s ON s.id = d.session_id
             WHERE d.token_hash = ?1 AND d.expires_at > ?2 AND s.revoked_at IS NULL",
            params![token_hash, now],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(CookieSession {
            session_id: row.get(0)?,
            user_id: row.get(1)?,
        })),
        None => Ok(None),
    }
}
