//! Webhook endpoint rows. The signing secret is stored (every delivery is signed with it)
//! but never part of [`Webhook`], the API's view.

use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, DbError, Reader, Writer};

/// A webhook endpoint, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: String,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

const COLUMNS: &str = "id, url, description, created_by, created_at, updated_at";

fn from_row(row: &libsql::Row) -> Result<Webhook, DbError> {
    Ok(Webhook {
        id: row.get(0)?,
        url: row.get(1)?,
        description: row.get(2)?,
        created_by: row.get(3)?,
        created_at: db::rfc3339(row.get(4)?),
        updated_at: db::rfc3339(row.get(5)?),
    })
}

/// Stores a new endpoint with its secret (`whsec_…`).
pub async fn insert(
    conn: &Writer,
    org_id: &str,
    url: &str,
    description: &str,
    secret: &str,
    created_by: &str,
) -> Result<String, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO alert_webhooks (id, org_id, url, description, secret, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![id.as_str(), org_id, url, description, secret, created_by, db::now()],
    )
    .await?;
    Ok(id)
}

/// Changes an endpoint's URL and description.
pub async fn update(
    conn: &Writer,
    org_id: &str,
    id: &str,
    url: &str,
    description: &str,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE alert_webhooks SET url = ?3, description = ?4, updated_at = ?5
             WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, url, description, db::now()],
        )
        .await?;
    Ok(changed > 0)
}

/// Replaces an endpoint's secret.
pub async fn set_secret(
    conn: &Writer,
    org_id: &str,
    id: &str,
    secret: &str,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE alert_webhooks SET secret = ?3, updated_at = ?4 WHERE org_id = ?1 AND id = ?2",
            params![org_id, id, secret, db::now()],
        )
        .await?;
    Ok(changed > 0)
}

/// Deletes an endpoint; its deliveries still pending fail when they come due.
pub async fn delete(conn: &Writer, org_id: &str, id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "DELETE FROM alert_webhooks WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
        )
        .await?;
    Ok(changed > 0)
}

/// One endpoint of an organisation.
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<Option<Webhook>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM alert_webhooks WHERE org_id = ?1 AND id = ?2"),
            params![org_id, id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// An endpoint's URL and secret, to send to.
pub async fn target(
    conn: &Reader,
    org_id: &str,
    id: &str,
) -> Result<Option<(String, String)>, DbError> {
    let rows = conn
        .query(
            "SELECT url, secret FROM alert_webhooks WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some((row.get(0)?, row.get(1)?))),
        None => Ok(None),
    }
}

/// The endpoints of an organisation, oldest first.
pub async fn list(conn: &Reader, org_id: &str) -> Result<Vec<Webhook>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM alert_webhooks WHERE org_id = ?1 ORDER BY created_at, id"
            ),
            params![org_id],
        )
        .await?;
    db::collect(rows, from_row).await
}
