//! API keys: random secrets shown once, stored as sha256, scoped to one organisation.
//!
//! Requests read key rows through a memo that any write in this process makes stale, so a
//! revocation takes effect on the next request (on other machines sharing a remote database,
//! about `db::MEMO_TTL` later).

use libsql::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Scope;
use crate::db::{self, DbError};

/// An API key as shown by the API (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first characters of the key, e.g. `wisp_1a2b3c4d`.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// `user:<id>` or `key:<id>`.
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// The outcome of presenting a key.
#[derive(Debug)]
pub enum KeyCheck {
    Valid {
        id: String,
        org_id: String,
        scopes: Vec<Scope>,
    },
    Expired,
    /// Unknown or revoked: the same answer, so a revoked key reveals nothing.
    Unknown,
}

/// `last_used_at` is written at most this often per key, so busy keys do not turn every
/// request into a database write.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// An active (unrevoked) key as stored: what authenticating with it needs.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub org_id: String,
    pub scopes: Vec<Scope>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

impl KeyRow {
    /// What presenting this key at `now` (Unix seconds) amounts to.
    pub fn check(self, now: i64) -> KeyCheck {
        if self.expires_at.is_some_and(|at| at <= now) {
            return KeyCheck::Expired;
        }
        KeyCheck::Valid {
            id: self.id,
            org_id: self.org_id,
            scopes: self.scopes,
        }
    }
}

/// Finds an unrevoked key by the hash of its secret. Reads only; see [`touch`] for
/// recording its use.
pub async fn find_active(conn: &Connection, key_hash: &str) -> Result<Option<KeyRow>, DbError> {
    let rows = conn
        .query(
            "SELECT id, org_id, scopes, expires_at FROM api_keys
             WHERE key_hash = ?1 AND revoked_at IS NULL",
            params![key_hash],
        )
        .await?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(None);
    };
    let key = KeyRow {
        id: row.get(0)?,
        org_id: row.get(1)?,
        scopes: Scope::parse_list(&row.get::<String>(2)?).map_err(DbError::Corrupt)?,
        expires_at: row.get(3)?,
    };
    Ok(Some(key))
}

/// Records that key `id` was used at `now` (Unix seconds), at most every
/// [`LAST_USED_RESOLUTION_SECS`]. No memo holds the column, so [`crate::db::Db::reader`]
/// may run it.
pub async fn touch(conn: &Connection, id: &str, now: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
        params![id, now, now - LAST_USED_RESOLUTION_SECS],
    )
    .await?;
    Ok(())
}

/// What is needed to insert a key.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub org_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [Scope],
    pub created_by: &'a str,
    pub expires_at: Option<i64>,
}

/// Inserts a key; returns its id.
pub async fn insert(conn: &Connection, key: &NewKey<'_>) -> Result<String, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO api_keys (id, org_id, name, prefix, key_hash, scopes, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            id.as_str(),
            key.org_id,
            key.name,
            key.prefix,
            key.key_hash,
            Scope::format_list(key.scopes),
            key.created_by,
            db::now(),
            key.expires_at
        ],
    )
    .await?;
    Ok(id)
}

const COLUMNS: &str =
    "id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, last_used_at";

fn from_row(row: &libsql::Row) -> Result<ApiKey, DbError> {
    let time =
        |i| -> Result<Option<String>, DbError> { Ok(row.get::<Option<i64>>(i)?.map(db::rfc3339)) };
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        scopes: Scope::parse_list(&row.get::<String>(3)?).map_err(DbError::Corrupt)?,
        created_by: row.get(4)?,
        created_at: db::rfc3339(row.get(5)?),
        expires_at: time(6)?,
        revoked_at: time(7)?,
        last_used_at: time(8)?,
    })
}

/// All keys of an organisation, newest first.
pub async fn list(conn: &Connection, org_id: &str) -> Result<Vec<ApiKey>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM api_keys WHERE org_id = ?1 ORDER BY created_at DESC, id"
            ),
            params![org_id],
        )
        .await?;
    db::collect(rows, from_row).await
}

/// One key of an organisation.
pub async fn get(conn: &Connection, org_id: &str, id: &str) -> Result<Option<ApiKey>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE org_id = ?1 AND id = ?2"),
            params![org_id, id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Renames a key; returns whether it exists.
pub async fn rename(
    conn: &Connection,
    org_id: &str,
    id: &str,
    name: &str,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE api_keys SET name = ?3 WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, name],
        )
        .await?;
    Ok(changed > 0)
}

/// Revokes a key (idempotent); returns whether it exists.
pub async fn revoke(conn: &Connection, org_id: &str, id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, db::now()],
        )
        .await?;
    Ok(changed > 0)
}

/// Revokes the live keys `created_by` made in an organisation whose scopes `role` could not
/// grant (all of them when `role` is `None`: the creator left). Returns the revoked ids.
///
/// A key never outlives the authority of the person who minted it: demoting an admin
/// revokes their `admin` keys, removing a member revokes all of theirs.
pub async fn revoke_beyond_role(
    conn: &Connection,
    org_id: &str,
    created_by: &str,
    role: Option<crate::auth::Role>,
) -> Result<Vec<String>, DbError> {
    let rows = conn
        .query(
            "SELECT id, scopes FROM api_keys
             WHERE org_id = ?1 AND created_by = ?2 AND revoked_at IS NULL",
            params![org_id, created_by],
        )
        .await?;
    let live = db::collect(rows, |row| {
        let scopes = Scope::parse_list(&row.get::<String>(1)?).map_err(DbError::Corrupt)?;
        Ok((row.get::<String>(0)?, scopes))
    })
    .await?;
    let mut revoked = Vec::new();
    for (id, scopes) in live {
        let allowed = role.is_some_and(|role| {
            scopes
                .iter()
                .all(|scope| crate::auth::rbac::role_may_grant(role, *scope))
        });
        if !allowed {
            revoke(conn, org_id, &id).await?;
            revoked.push(id);
        }
    }
    Ok(revoked)
}
