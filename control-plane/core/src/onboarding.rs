//! How far an organisation has come through the first-run steps (an API key, a model, a
//! deployment, a prediction, an MLflow run), read from what exists — nothing is stored
//! about the checklist itself. One query of existence checks, cheap with any number of
//! models.

use libsql::params;
use serde::Serialize;

use crate::db::{self, DbError, Reader};

/// What exists in an organisation, for the first-run checklist.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// The display prefix of the newest API key that is not revoked (never the secret).
    pub key_prefix: Option<String>,
    /// The name of a model with at least one version (the newest such model).
    pub model: Option<String>,
    /// The name of a deployed model (the newest deployment).
    pub deployed: Option<String>,
    /// Whether any inference call succeeded (a usage event with outcome `ok`).
    pub predicted: bool,
    /// Whether an MLflow client logged a run or created an experiment.
    pub mlflow: bool,
}

impl Progress {
    /// Whether every step is done.
    pub fn done(&self) -> bool {
        self.key_prefix.is_some()
            && self.model.is_some()
            && self.deployed.is_some()
            && self.predicted
            && self.mlflow
    }
}

/// The progress of organisation `org_id`.
pub async fn progress(conn: &Reader, org_id: &str) -> Result<Progress, DbError> {
    let rows = conn
        .query(
            "SELECT
               (SELECT prefix FROM api_keys WHERE org_id = ?1 AND revoked_at IS NULL
                  ORDER BY created_at DESC LIMIT 1),
               (SELECT m.name FROM models m WHERE m.org_id = ?1
                  AND EXISTS (SELECT 1 FROM model_versions v WHERE v.model_id = m.id)
                  ORDER BY m.created_at DESC LIMIT 1),
               (SELECT m.name FROM deployments d JOIN models m ON m.id = d.model_id
                  WHERE d.org_id = ?1 ORDER BY d.updated_at DESC LIMIT 1),
               EXISTS (SELECT 1 FROM usage_events WHERE org_id = ?1 AND outcome = 'ok'),
               EXISTS (SELECT 1 FROM mlflow_runs WHERE org_id = ?1)
                 OR EXISTS (SELECT 1 FROM mlflow_experiments WHERE org_id = ?1
                              AND name <> 'Default')",
            params![org_id],
        )
        .await?;
    let Some(row) = db::first_row(rows).await? else {
        return Ok(Progress::default());
    };
    Ok(Progress {
        key_prefix: row.get(0)?,
        model: row.get(1)?,
        deployed: row.get(2)?,
        predicted: row.get::<i64>(3)? != 0,
        mlflow: row.get::<i64>(4)? != 0,
    })
}
