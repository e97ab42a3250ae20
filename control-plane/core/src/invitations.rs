//! Invitations: how a person joins an organisation.
//!
//! An admin invites an email address with a role; wisp answers with a single-use token that
//! expires, shown once, for the admin to forward. Only its holder can accept: a new account
//! chooses its own password then, an existing one must be signed in. The admin never
//! chooses or sees a password, and the answer to an invitation is the same whether the
//! address has an account or not. Only the token's sha256 is stored.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::auth::tokens::{self, GeneratedSecret};
use crate::db::{self, DbError};

/// Prefix of invitation tokens.
pub const TOKEN_PREFIX: &str = "wispinv_";

/// A stored invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: Role,
    /// `user:<id>` or `key:<id>` of the inviter.
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An invitation as its organisation's admins see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: after this the token no longer works.
    pub expires_at: String,
}

impl From<&Invitation> for InvitationView {
    fn from(invitation: &Invitation) -> Self {
        Self {
            id: invitation.id.clone(),
            email: invitation.email.clone(),
            role: invitation.role,
            invited_by: invitation.invited_by.clone(),
            created_at: db::rfc3339(invitation.created_at),
            expires_at: db::rfc3339(invitation.expires_at),
        }
    }
}

const COLUMNS: &str =
    "id, org_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at";

fn from_row(row: &libsql::Row) -> Result<Invitation, DbError> {
    Ok(Invitation {
        id: row.get(0)?,
        org_id: row.get(1)?,
        email: row.get(2)?,
        role: row.get::<String>(3)?.parse().map_err(DbError::Corrupt)?,
        invited_by: row.get(4)?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        accepted_at: row.get(7)?,
        revoked_at: row.get(8)?,
    })
}

/// Creates an invitation valid for `ttl_secs`, replacing any pending one for the same
/// address in the organisation (so re-inviting hands out a fresh token). Returns it with
/// its token, which is not stored.
pub async fn create(
    conn: &Writer,
    org_id: &str,
    email: &str,
    role: Role,
    invited_by: &str,
    ttl_secs: i64,
    now: i64,
) -> Result<(Invitation, GeneratedSecret), DbError> {
    conn.execute(
        "UPDATE invitations SET revoked_at = ?3
         WHERE org_id = ?1 AND email = ?2 AND accepted_at IS NULL AND revoked_at IS NULL",
        params![org_id, email, now],
    )
    .await?;
    let token = tokens::generate_secret(TOKEN_PREFIX);
    let invitation = Invitation {
        id: db::new_id(),
        org_id: org_id.to_owned(),
        email: email.to_owned(),
        role,
        invited_by: invited_by.to_owned(),
        created_at: now,
        expires_at: now + ttl_secs,
        accepted_at: None,
        revoked_at: None,
    };
    conn.execute(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            invitation.id.as_str(),
            org_id,
            email,
            role.as_str(),
            token.hash.as_str(),
            invited_by,
            now,
            invitation.expires_at
        ],
    )
    .await?;
    Ok((invitation, token))
}

/// The organisation's invitations that can still be accepted, newest first.
pub async fn pending(conn: &Reader, org_id: &str, now: i64) -> Result<Vec<Invitation>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM invitations
                 WHERE org_id = ?1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
                 ORDER BY created_at DESC, id"
            ),
            params![org_id, now],
        )
        .await?;
    db::collect(rows, from_row).await
}

/// Revokes a pending invitation of the organisation; returns whether there was one.
pub async fn revoke(conn: &Writer, org_id: &str, id: &str, now: i64) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE invitations SET revoked_at = ?3
             WHERE org_id = ?1 AND id = ?2 AND accepted_at IS NULL AND revoked_at IS NULL",
            params![org_id, id, now],
        )
        .await?;
    Ok(changed > 0)
}

/// The invitation whose token hashes to `token_hash`, in whatever state.
pub async fn find_by_token(conn: &Reader, token_hash: &str) -> Result<Option<Invitation>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM invitations WHERE token_hash = ?1"),
            params![token_hash],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Spends an invitation; returns false if it was spent or revoked meanwhile.
pub async fn mark_accepted(conn: &Writer, id: &str, now: i64) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE invitations SET accepted_at = ?2
             WHERE id = ?1 AND accepted_at IS NULL AND revoked_at IS NULL",
            params![id, now],
        )
        .await?;
    Ok(changed > 0)
}
