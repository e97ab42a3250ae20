//! Drift monitoring's changes: a model's reference profile and its drift settings, each
//! audited in the caller's transaction (`model.drift.reference_set`,
//! `model.drift.reference_deleted`, `model.drift.config_set`).
//!
//! The profile and settings arrive serialised: what they hold is the serving layer's
//! business (`wisp_serving::drift`); here they are rows with an owner and an audit entry.

use libsql::params;
use serde_json::{Value, json};

use crate::Acting;
use crate::db::{self, DbError, Writer};
use crate::error::{Error, Result};
use crate::registry::Model;

/// A reference to store.
#[derive(Debug)]
pub struct NewReference<'a> {
    /// Where it came from: `{"kind": "upload" | "mlflow" | "from_calls", …}`.
    pub source: &'a Value,
    /// `collecting` (filled from the next calls up to `target_rows`) or `ready`.
    pub status: &'a str,
    pub target_rows: Option<i64>,
    pub rows: i64,
    /// The names of 2-D inputs' columns, as JSON.
    pub columns: &'a str,
    /// The profile, as JSON.
    pub profile: &'a str,
    /// `raw` (values kept) or `sketches`, for the audit entry.
    pub stored_as: &'a str,
}

/// Sets (or replaces) the model's reference profile.
pub async fn set_reference(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    new: NewReference<'_>,
) -> Result<()> {
    let now = db::now();
    let source = new.source.to_string();
    tx.execute(
        "INSERT INTO drift_references (model_id, org_id, source, status, target_rows, rows, columns, profile, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT (model_id) DO UPDATE SET source = excluded.source, status = excluded.status,
            target_rows = excluded.target_rows, rows = excluded.rows, columns = excluded.columns,
            profile = excluded.profile, created_by = excluded.created_by,
            created_at = excluded.created_at, updated_at = excluded.updated_at",
        params![
            model.id.as_str(),
            acting.org_id,
            source,
            new.status,
            new.target_rows,
            new.rows,
            new.columns,
            new.profile,
            acting.actor.as_str(),
            now
        ],
    )
    .await
    .map_err(DbError::from)?;
    let details = json!({
        "source": new.source,
        "status": new.status,
        "rows": new.rows,
        "target_rows": new.target_rows,
        "stored_as": new.stored_as,
    });
    acting
        .audit(
            tx,
            "model.drift.reference_set",
            &format!("model:{}", model.name),
            details,
        )
        .await?;
    Ok(())
}

/// Deletes the model's reference; `not_found` if it has none.
pub async fn delete_reference(tx: &Writer, acting: &Acting<'_>, model: &Model) -> Result<()> {
    let deleted = tx
        .execute(
            "DELETE FROM drift_references WHERE model_id = ?1 AND org_id = ?2",
            params![model.id.as_str(), acting.org_id],
        )
        .await
        .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(Error::not_found("drift reference"));
    }
    acting
        .audit(
            tx,
            "model.drift.reference_deleted",
            &format!("model:{}", model.name),
            json!({}),
        )
        .await?;
    Ok(())
}

/// Sets the model's drift settings (checked by the caller), as JSON.
pub async fn set_settings(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    settings: &Value,
) -> Result<()> {
    tx.execute(
        "INSERT INTO drift_settings (model_id, org_id, settings, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (model_id) DO UPDATE SET settings = excluded.settings,
            updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        params![
            model.id.as_str(),
            acting.org_id,
            settings.to_string(),
            acting.actor.as_str(),
            db::now()
        ],
    )
    .await
    .map_err(DbError::from)?;
    acting
        .audit(
            tx,
            "model.drift.config_set",
            &format!("model:{}", model.name),
            json!({ "settings": settings }),
        )
        .await?;
    Ok(())
}
