//! Organisations (the tenants) and their memberships.

use libsql::{Connection, params};
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
}

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
    })
}

fn parse_role(stored: &str) -> Result<Role, DbError> {
    stored.parse().map_err(DbError::Corrupt)
}

/// Finds an organisation by its slug.
pub async fn find_by_slug(conn: &Connection, slug: &str) -> Result<Option<Org>, DbError> {
    let rows = conn
        .query(
            "SELECT id, slug, name, created_at FROM orgs WHERE slug = ?1",
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
pub async fn find_by_id(conn: &Connection, id: &str) -> Result<Option<Org>, DbError> {
    let rows = conn
        .query(
            "SELECT id, slug, name, created_at FROM orgs WHERE id = ?1",
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
    let conn = db.conn().await;
    let rows = conn
        .query(
            "SELECT o.id, o.slug, o.name, o.created_at, m.role FROM orgs o
             JOIN memberships m ON m.org_id = o.id WHERE m.user_id = ?1 ORDER BY o.slug",
            params![user_id],
        )
        .await?;
    db::collect(rows, |row| {
        Ok((org_from_row(row)?, parse_role(&row.get::<String>(4)?)?))
    })
    .await
}

/// Inserts an organisation; returns it.
pub async fn insert(conn: &Connection, slug: &str, name: &str) -> Result<Org, DbError> {
    let org = Org {
        id: db::new_id(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        created_at: db::now(),
    };
    conn.execute(
        "INSERT INTO orgs (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![org.id.as_str(), slug, name, org.created_at],
    )
    .await?;
    Ok(org)
}

/// A user's role in an organisation, if a member.
pub async fn role_in(
    conn: &Connection,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Role>, DbError> {
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
    conn: &Connection,
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
    conn: &Connection,
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
pub async fn remove_member(
    conn: &Connection,
    org_id: &str,
    user_id: &str,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "DELETE FROM memberships WHERE org_id = ?1 AND user_id = ?2",
            params![org_id, user_id],
        )
        .await?;
    Ok(changed > 0)
}

/// How many owners an organisation has.
pub async fn owner_count(conn: &Connection, org_id: &str) -> Result<i64, DbError> {
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
pub async fn members(conn: &Connection, org_id: &str) -> Result<Vec<Member>, DbError> {
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
pub async fn member(
    conn: &Connection,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Member>, DbError> {
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
