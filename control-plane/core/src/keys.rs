//! API keys: random secrets shown once, stored as sha256, scoped to one organisation.
//!
//! Requests read key rows through a memo that any write in this process makes stale, so a
//! revocation takes effect on the next request (on other machines sharing a remote database,
//! about `db::MEMO_TTL` later).
//!
//! Every key acts for one human, its principal: the user who created it, or for a key
//! minted by a key, that key's principal. A key never has more power than its principal
//! has now: leaving the organisation or a demotion revokes the keys acting for that person
//! ([`revoke_beyond_role`]), and authentication refuses or narrows a key whose principal
//! lost the membership or the role even if a revocation was missed ([`scopes_within_role`]).

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Role, Scope};
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
    /// The user the key acts for: its creator, or the creating key's user. The key is
    /// refused once that user leaves the organisation.
    pub principal_user_id: Option<String>,
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
        /// The user the key acts for (`None` only for a legacy key whose creator chain
        /// could not be resolved: it is refused).
        principal_user_id: Option<String>,
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
    pub principal_user_id: Option<String>,
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
            principal_user_id: self.principal_user_id,
        }
    }
}

/// Finds an unrevoked key by the hash of its secret. Reads only; see [`touch`] for
/// recording its use.
pub async fn find_active(conn: &Reader, key_hash: &str) -> Result<Option<KeyRow>, DbError> {
    let rows = conn
        .query(
            "SELECT id, org_id, scopes, expires_at, principal_user_id FROM api_keys
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
        principal_user_id: row.get(4)?,
    };
    Ok(Some(key))
}

/// Records that key `id` was used at `now` (Unix seconds), at most every
/// [`LAST_USED_RESOLUTION_SECS`]. No memo holds the column, so [`crate::db::Db::reader`]
/// may run it.
pub async fn touch(conn: &Writer, id: &str, now: i64) -> Result<(), DbError> {
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
    /// The user the key acts for (see [`ApiKey::principal_user_id`]).
    pub principal_user_id: &'a str,
    pub expires_at: Option<i64>,
}

/// Inserts a key; returns its id.
pub async fn insert(conn: &Writer, key: &NewKey<'_>) -> Result<String, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO api_keys (id, org_id, name, prefix, key_hash, scopes, created_by, created_at, expires_at, principal_user_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id.as_str(),
            key.org_id,
            key.name,
            key.prefix,
            key.key_hash,
            Scope::format_list(key.scopes),
            key.created_by,
            db::now(),
            key.expires_at,
            key.principal_user_id
        ],
    )
    .await?;
    Ok(id)
}

/// The columns [`from_row`] reads, of `api_keys k`, then the principal's role in the
/// organisation (of `memberships m`, joined on the principal; NULL when not a member).
const COLUMNS: &str = "k.id, k.name, k.prefix, k.scopes, k.created_by, k.created_at, k.expires_at,
     k.revoked_at, k.last_used_at, k.principal_user_id, m.role";

/// `api_keys k` with the membership of each key's principal.
const FROM: &str = "api_keys k
     LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.principal_user_id";

/// A key with its principal's current role, what deciding who manages it needs.
#[derive(Debug, Clone)]
pub struct ManagedKey {
    pub key: ApiKey,
    /// The principal's role in the organisation now; `None` once they left it.
    pub principal_role: Option<Role>,
}

fn from_row(row: &libsql::Row) -> Result<ManagedKey, DbError> {
    let time =
        |i| -> Result<Option<String>, DbError> { Ok(row.get::<Option<i64>>(i)?.map(db::rfc3339)) };
    let principal_role = row
        .get::<Option<String>>(10)?
        .map(|role| role.parse::<Role>().map_err(DbError::Corrupt))
        .transpose()?;
    let key = ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        scopes: Scope::parse_list(&row.get::<String>(3)?).map_err(DbError::Corrupt)?,
        created_by: row.get(4)?,
        created_at: db::rfc3339(row.get(5)?),
        expires_at: time(6)?,
        revoked_at: time(7)?,
        last_used_at: time(8)?,
        principal_user_id: row.get(9)?,
    };
    Ok(ManagedKey {
        key,
        principal_role,
    })
}

/// All keys of an organisation, newest first, with their principals' roles.
pub async fn list(conn: &Reader, org_id: &str) -> Result<Vec<ManagedKey>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE k.org_id = ?1 ORDER BY k.created_at DESC, k.id"
            ),
            params![org_id],
        )
        .await?;
    db::collect(rows, from_row).await
}

/// One key of an organisation, with its principal's role.
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<Option<ManagedKey>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE k.org_id = ?1 AND k.id = ?2"),
            params![org_id, id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The user key `id` of an organisation acts for.
pub async fn principal_of(
    conn: &Reader,
    org_id: &str,
    id: &str,
) -> Result<Option<String>, DbError> {
    let rows = conn
        .query(
            "SELECT principal_user_id FROM api_keys WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(row.get(0)?),
        None => Ok(None),
    }
}

/// The scopes of a key that its principal, now of `role`, could still grant: a demotion
/// whose revocation was missed narrows the key instead of leaving it its old power.
pub fn scopes_within_role(scopes: Vec<Scope>, role: Role) -> Vec<Scope> {
    scopes
        .into_iter()
        .filter(|scope| crate::auth::rbac::role_may_grant(role, *scope))
        .collect()
}

/// Renames a key; returns whether it exists.
pub async fn rename(conn: &Writer, org_id: &str, id: &str, name: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE api_keys SET name = ?3 WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, name],
        )
        .await?;
    Ok(changed > 0)
}

/// Revokes a key (idempotent); returns whether it exists.
pub async fn revoke(conn: &Writer, org_id: &str, id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, db::now()],
        )
        .await?;
    Ok(changed > 0)
}

/// Revokes the live keys acting for `principal` (`user:<id>`) in an organisation whose
/// scopes `role` could not grant (all of them when `role` is `None`: the person left).
/// Returns the revoked ids.
///
/// A key never outlives the authority of the person it acts for: demoting an admin revokes
/// their `admin` keys, removing a member revokes all of theirs, including the keys their
/// keys minted (and those keys' keys: they all carry the same principal).
pub async fn revoke_beyond_role(
    conn: &Writer,
    org_id: &str,
    principal: &str,
    role: Option<Role>,
) -> Result<Vec<String>, DbError> {
    let user_id = principal.strip_prefix("user:").unwrap_or(principal);
    let rows = conn
        .query(
            "SELECT id, scopes FROM api_keys
             WHERE org_id = ?1 AND principal_user_id = ?2 AND revoked_at IS NULL",
            params![org_id, user_id],
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
