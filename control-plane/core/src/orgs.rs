//! Organisations (the tenants) and their memberships, and their suspension by a platform
//! operator.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::db::{self, Db, DbError};

/// A stored organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub id: String,
    /// URL name, unique; what `{org}` in paths refers to.
    pub slug: String,
    pub name: String,
    pub created_at: i64,
    /// Unix seconds; set while a platform operator has suspended the organisation: its
    /// API calls, keys and inference are refused with `org_suspended`.
    pub suspended_at: Option<i64>,
}

/// The columns [`org_from_row`] reads, of `orgs` (aliased `o` where joined).
const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.created_at, o.suspended_at";

/// A user's membership as shown by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// RFC 3339.
    pub joined_at: String,
}

fn org_from_row(row: &libsql::Row) -> Result<Org, DbError> {
    Ok(Org {
        id: row.get(0)?,
        slug: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get(3)?,
        suspended_at: row.get(4)?,
    })
}

fn parse_role(stored: &str) -> Result<Role, DbError> {
    stored.parse().map_err(DbError::Corrupt)
}

/// Finds an organisation by its slug.
pub async fn find_by_slug(conn: &Reader, slug: &str) -> Result<Option<Org>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {ORG_COLUMNS} FROM orgs o WHERE o.slug = ?1"),
            params![slug],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(org_from_row)
        .transpose()
}

/// Finds an organisation by id.
pub async fn find_by_id(conn: &Reader, id: &str) -> Result<Option<Org>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {ORG_COLUMNS} FROM orgs o WHERE o.id = ?1"),
            params![id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(org_from_row)
        .transpose()
}

/// The organisations a user belongs to, with the user's role in each.
pub async fn list_for_user(db: &Db, user_id: &str) -> Result<Vec<(Org, Role)>, DbError> {
    let conn = db.read().await;
    let rows = conn
        .query(
            &format!(
                "SELECT {ORG_COLUMNS}, m.role FROM orgs o
                 JOIN memberships m ON m.org_id = o.id WHERE m.user_id = ?1 ORDER BY o.slug"
            ),
            params![user_id],
        )
        .await?;
    db::collect(rows, |row| {
        Ok((org_from_row(row)?, parse_role(&row.get::<String>(5)?)?))
    })
    .await
}

/// Inserts an organisation; returns it.
pub async fn insert(conn: &Writer, slug: &str, name: &str) -> Result<Org, DbError> {
    let org = Org {
        id: db::new_id(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: db::now(),
        suspended_at: None,
    };
    conn.execute(
        "INSERT INTO orgs (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![org.id.as_str(), slug, name, org.created_at],
    )
    .await?;
    Ok(org)
}

/// A user's role in an organisation, if a member.
pub async fn role_in(conn: &Reader, org_id: &str, user_id: &str) -> Result<Option<Role>, DbError> {
    let rows = conn
        .query(
            "SELECT role FROM memberships WHERE org_id = ?1 AND user_id = ?2",
            params![org_id, user_id],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(parse_role(&row.get::<String>(0)?)?)),
        None => Ok(None),
    }
}

/// Adds a membership.
pub async fn add_member(
    conn: &Writer,
    org_id: &str,
    user_id: &str,
    role: Role,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![org_id, user_id, role.as_str(), db::now()],
    )
    .await?;
    Ok(())
}

/// Changes a member's role; returns whether the member existed.
pub async fn set_role(
    conn: &Writer,
    org_id: &str,
    user_id: &str,
    role: Role,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE memberships SET role = ?3 WHERE org_id = ?1 AND user_id = ?2",
            params![org_id, user_id, role.as_str()],
        )
        .await?;
    Ok(changed > 0)
}

/// Removes a member; returns whether the member existed.
pub async fn remove_member(conn: &Writer, org_id: &str, user_id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "DELETE FROM memberships WHERE org_id = ?1 AND user_id = ?2",
            params![org_id, user_id],
        )
        .await?;
    Ok(changed > 0)
}

/// How many owners an organisation has.
pub async fn owner_count(conn: &Reader, org_id: &str) -> Result<i64, DbError> {
    let rows = conn
        .query(
            "SELECT COUNT(*) FROM memberships WHERE org_id = ?1 AND role = 'owner'",
            params![org_id],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(row.get(0)?),
        None => Ok(0),
    }
}

/// The members of an organisation.
pub async fn members(conn: &Reader, org_id: &str) -> Result<Vec<Member>, DbError> {
    let rows = conn
        .query(
            "SELECT u.id, u.email, m.role, m.created_at FROM memberships m
             JOIN users u ON u.id = m.user_id WHERE m.org_id = ?1 ORDER BY u.email",
            params![org_id],
        )
        .await?;
    db::collect(rows, member_from_row).await
}

/// One member of an organisation.
pub async fn member(conn: &Reader, org_id: &str, user_id: &str) -> Result<Option<Member>, DbError> {
    let rows = conn
        .query(
            "SELECT u.id, u.email, m.role, m.created_at FROM memberships m
             JOIN users u ON u.id = m.user_id WHERE m.org_id = ?1 AND m.user_id = ?2",
            params![org_id, user_id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(member_from_row)
        .transpose()
}

fn member_from_row(row: &libsql::Row) -> Result<Member, DbError> {
    Ok(Member {
        user_id: row.get(0)?,
        email: row.get(1)?,
        role: parse_role(&row.get::<String>(2)?)?,
        joined_at: db::rfc3339(row.get(3)?),
    })
}

/// Every organisation with its plan id, by slug: the platform operator's view.
pub async fn list_all(conn: &Reader) -> Result<Vec<(Org, String)>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {ORG_COLUMNS}, o.plan_id FROM orgs o ORDER BY o.slug"),
            (),
        )
        .await?;
    db::collect(rows, |row| Ok((org_from_row(row)?, row.get::<String>(5)?))).await
}

/// Suspends an organisation (`reason` is shown to operators), or reinstates it with
/// `None`. Returns whether the organisation exists. Its memoised row goes stale with this
/// write, so the next request in this process sees it; other processes sharing the
/// database see it within `db::MEMO_TTL`.
pub async fn set_suspended(
    conn: &Writer,
    org_id: &str,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let changed = match reason {
        Some(reason) => {
            conn.execute(
                "UPDATE orgs SET suspended_at = COALESCE(suspended_at, ?2), suspended_reason = ?3
                 WHERE id = ?1",
                params![org_id, db::now(), reason],
            )
            .await?
        }
        None => {
            conn.execute(
                "UPDATE orgs SET suspended_at = NULL, suspended_reason = NULL WHERE id = ?1",
                params![org_id],
            )
            .await?
        }
    };
    Ok(changed > 0)
}
