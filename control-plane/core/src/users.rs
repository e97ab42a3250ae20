//! Users: people who sign in with an email and a password.

use crate::db::{Reader, Writer};
use libsql::params;

use crate::db::{self, DbError};

/// A stored user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    /// Set on the bootstrap admin's generated password: until it is changed, the account's
    /// tokens can only change it (see [`crate::auth::extract`]).
    pub must_change_password: bool,
}

const COLUMNS: &str = "id, email, password_hash, created_at, must_change_password";

fn from_row(row: &libsql::Row) -> Result<User, DbError> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        created_at: row.get(3)?,
        must_change_password: row.get::<i64>(4)? != 0,
    })
}

/// Finds a user by id.
pub async fn find_by_id(conn: &Reader, id: &str) -> Result<Option<User>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            params![id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Finds a user by email (case-insensitive).
pub async fn find_by_email(conn: &Reader, email: &str) -> Result<Option<User>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE email = ?1"),
            params![email],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Inserts a user with an already hashed password; returns its id.
pub async fn insert(conn: &Writer, email: &str, password_hash: &str) -> Result<String, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id.as_str(), email, password_hash, db::now()],
    )
    .await?;
    Ok(id)
}

/// Marks the password as one to be replaced before anything else.
pub async fn require_password_change(conn: &Writer, id: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE users SET must_change_password = 1 WHERE id = ?1",
        params![id],
    )
    .await?;
    Ok(())
}

/// Replaces a user's password hash and clears the forced change.
pub async fn set_password(conn: &Writer, id: &str, password_hash: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = 0 WHERE id = ?1",
        params![id, password_hash],
    )
    .await?;
    Ok(())
}

/// Whether any user exists (first start creates the admin when none does).
pub async fn any_exist(conn: &Reader) -> Result<bool, DbError> {
    let rows = conn.query("SELECT 1 FROM users LIMIT 1", ()).await?;
    Ok(db::first_row(rows).await?.is_some())
}
