//! Sessions: one per sign-in, owning a family of refresh tokens and naming every access
//! token issued in it.
//!
//! A refresh token is single use: refreshing rotates it to a new one of the same session.
//! Presenting a token that was already rotated means two parties hold the family (a thief
//! and its owner), so the whole session is revoked, including the token the other party
//! got and every access token naming the session. Logging out, signing out everywhere and
//! changing the password revoke sessions the same way.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::tokens::{self, GeneratedSecret};
use crate::db::{self, DbError};

/// Why a session ended (stored in `revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    LogoutAll,
    PasswordChanged,
    RefreshTokenReused,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::PasswordChanged => "password_changed",
            Self::RefreshTokenReused => "refresh_token_reused",
        }
    }
}

/// A session that has not been revoked: what authenticating an access token needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveSession {
    pub id: String,
    pub user_id: String,
}

/// A session as its user sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// Where the sign-in came from.
    pub source_ip: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: the last refresh.
    pub last_used_at: String,
    /// Whether this is the session of the calling access token.
    pub current: bool,
}

/// What a refresh token turned out to be.
#[derive(Debug, PartialEq)]
pub enum Rotation {
    /// Valid: it is now spent; issue the next one in `session`.
    Rotated { session_id: String, user_id: String },
    /// Unknown, or its session already ended.
    Invalid,
    /// Past its lifetime.
    Expired,
    /// Already rotated: the session has just been revoked.
    Reused,
}

/// Starts a session for a sign-in; returns its id.
pub async fn start(
    conn: &Writer,
    user_id: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<String, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO sessions (id, user_id, source_ip, created_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![id.as_str(), user_id, source_ip, now],
    )
    .await?;
    Ok(id)
}

/// Issues the next refresh token of a session, valid for `ttl_secs`.
pub async fn issue_refresh_token(
    conn: &Writer,
    session_id: &str,
    user_id: &str,
    ttl_secs: i64,
    now: i64,
) -> Result<GeneratedSecret, DbError> {
    let refresh = tokens::generate_secret(tokens::REFRESH_TOKEN_PREFIX);
    conn.execute(
        "INSERT INTO refresh_tokens (id, user_id, token_hash, expires_at, created_at, session_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            db::new_id(),
            user_id,
            refresh.hash.as_str(),
            now + ttl_secs,
            now,
            session_id
        ],
    )
    .await?;
    Ok(refresh)
}

/// Spends the refresh token whose secret hashes to `token_hash`, detecting reuse.
pub async fn rotate(conn: &Writer, token_hash: &str, now: i64) -> Result<Rotation, DbError> {
    let rows = conn
        .query(
            "SELECT t.id, t.user_id, t.expires_at, t.revoked_at, s.id, s.revoked_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ?1",
            params![token_hash],
        )
        .await?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(Rotation::Invalid);
    };
    let token_id: String = row.get(0)?;
    let user_id: String = row.get(1)?;
    let expires_at: i64 = row.get(2)?;
    let token_revoked: Option<i64> = row.get(3)?;
    let session_id: String = row.get(4)?;
    let session_revoked: Option<i64> = row.get(5)?;
    if session_revoked.is_some() {
        return Ok(Rotation::Invalid);
    }
    if token_revoked.is_some() {
        revoke(conn, &session_id, EndReason::RefreshTokenReused, now).await?;
        return Ok(Rotation::Reused);
    }
    if expires_at <= now {
        return Ok(Rotation::Expired);
    }
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE id = ?1",
        params![token_id, now],
    )
    .await?;
    conn.execute(
        "UPDATE sessions SET last_used_at = ?2 WHERE id = ?1",
        params![session_id.as_str(), now],
    )
    .await?;
    Ok(Rotation::Rotated {
        session_id,
        user_id,
    })
}

/// Ends one session and its refresh tokens; returns whether it was active.
pub async fn revoke(
    conn: &Writer,
    session_id: &str,
    reason: EndReason,
    now: i64,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1 AND revoked_at IS NULL",
            params![session_id, now, reason.as_str()],
        )
        .await?;
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE session_id = ?1 AND revoked_at IS NULL",
        params![session_id, now],
    )
    .await?;
    // Other nodes may hold the session memoised: the fleet's log tells them.
    crate::fleet::record_change(conn, None, "session.revoked").await?;
    Ok(changed > 0)
}

/// Ends every session of a user; returns how many were active.
pub async fn revoke_all(
    conn: &Writer,
    user_id: &str,
    reason: EndReason,
    now: i64,
) -> Result<u64, DbError> {
    let changed = conn
        .execute(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE user_id = ?1 AND revoked_at IS NULL",
            params![user_id, now, reason.as_str()],
        )
        .await?;
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, now],
    )
    .await?;
    // Other nodes may hold the session memoised: the fleet's log tells them.
    crate::fleet::record_change(conn, None, "session.revoked").await?;
    Ok(changed)
}

/// The session `id` if it has not ended.
pub async fn find_active(conn: &Reader, id: &str) -> Result<Option<ActiveSession>, DbError> {
    let rows = conn
        .query(
            "SELECT id, user_id FROM sessions WHERE id = ?1 AND revoked_at IS NULL",
            params![id],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(ActiveSession {
            id: row.get(0)?,
            user_id: row.get(1)?,
        })),
        None => Ok(None),
    }
}

/// The user's sessions that have not ended (and whose refresh tokens may still be valid),
/// newest first.
pub async fn list_active(
    conn: &Reader,
    user_id: &str,
    current: &str,
) -> Result<Vec<SessionView>, DbError> {
    let rows = conn
        .query(
            "SELECT id, source_ip, created_at, last_used_at FROM sessions
             WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY created_at DESC, id LIMIT 100",
            params![user_id],
        )
        .await?;
    db::collect(rows, |row| {
        let id: String = row.get(0)?;
        Ok(SessionView {
            current: id == current,
            id,
            source_ip: row.get(1)?,
            created_at: db::rfc3339(row.get(2)?),
            last_used_at: db::rfc3339(row.get(3)?),
        })
    })
    .await
}
