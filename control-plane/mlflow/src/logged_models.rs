//! MLflow 3 logged models: what `mlflow.<flavor>.log_model` creates before uploading the
//! model's files to its `artifact_uri`, and what `models:/<model_id>` names.

use std::collections::HashMap;

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;

use super::tracking::{self, Metric};
use super::{KeyValue, MlflowError, MlflowResult, limits, now_ms, validate_key, validate_length};
use crate::db::{self, DbError};

/// `LoggedModelInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub artifact_uri: String,
    pub status: String,
    pub model_type: String,
    pub source_run_id: String,
    pub status_message: String,
    pub tags: Vec<KeyValue>,
}

/// `LoggedModelData`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoggedModelData {
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
}

/// A logged model on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    pub data: LoggedModelData,
}

/// `LoggedModelStatus` names.
pub const STATUSES: &[&str] = &[
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
];

/// Parses a status given by name or number.
pub fn parse_status(status: &str) -> MlflowResult<&'static str> {
    match status {
        "1" => Ok(STATUSES[0]),
        "2" => Ok(STATUSES[1]),
        "3" => Ok(STATUSES[2]),
        other => STATUSES
            .iter()
            .find(|s| **s == other)
            .copied()
            .ok_or_else(|| MlflowError::invalid(format!("invalid logged model status {other:?}"))),
    }
}

fn missing(model_id: &str) -> MlflowError {
    MlflowError::not_found(format!("Logged model with ID '{model_id}' not found."))
}

/// What a new logged model starts with.
#[derive(Debug)]
pub struct NewLoggedModel<'a> {
    pub experiment_id: &'a str,
    pub name: Option<&'a str>,
    pub model_type: &'a str,
    pub source_run_id: &'a str,
    pub params: &'a [KeyValue],
    pub tags: &'a [KeyValue],
}

/// Creates a logged model (`LOGGED_MODEL_PENDING`) in an active experiment.
pub async fn create(
    conn: &Writer,
    org_id: &str,
    new: &NewLoggedModel<'_>,
) -> MlflowResult<LoggedModel> {
    let experiment = tracking::get_experiment(conn, org_id, new.experiment_id).await?;
    if experiment.lifecycle_stage != tracking::ACTIVE {
        return Err(MlflowError::invalid(format!(
            "The experiment {} must be in the 'active' state.",
            experiment.experiment_id
        )));
    }
    if !new.source_run_id.is_empty() {
        tracking::get_run(conn, org_id, new.source_run_id).await?;
    }
    let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
    let name = new.name.filter(|n| !n.is_empty()).unwrap_or("model");
    let artifact_uri = format!(
        "{}/models/{model_id}/artifacts",
        experiment.artifact_location.trim_end_matches('/')
    );
    let now = now_ms();
    conn.execute(
        "INSERT INTO mlflow_logged_models (model_id, org_id, experiment_id, name, artifact_uri, status,
            model_type, source_run_id, creation_timestamp_ms, last_updated_timestamp_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'LOGGED_MODEL_PENDING', ?6, ?7, ?8, ?8)",
        params![
            model_id.as_str(),
            org_id,
            tracking::parse_experiment_id(new.experiment_id)?,
            name,
            artifact_uri,
            new.model_type,
            new.source_run_id,
            now
        ],
    )
    .await
    .map_err(DbError::from)?;
    set_tags(conn, org_id, &model_id, new.tags).await?;
    log_params(conn, org_id, &model_id, new.params).await?;
    get(conn, org_id, &model_id).await
}

const COLUMNS: &str =
    "model_id, experiment_id, name, creation_timestamp_ms, last_updated_timestamp_ms,
    artifact_uri, status, model_type, source_run_id";

/// Logged models of the organisation (one if `only`), not deleted, newest first.
pub async fn list(
    conn: &Reader,
    org_id: &str,
    only: Option<&str>,
) -> MlflowResult<Vec<LoggedModel>> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM mlflow_logged_models
                 WHERE org_id = ?1 AND lifecycle_stage = 'active' AND (?2 IS NULL OR model_id = ?2)
                 ORDER BY creation_timestamp_ms DESC, model_id"
            ),
            params![org_id, only],
        )
        .await
        .map_err(DbError::from)?;
    let mut models = db::collect(rows, |row| {
        Ok(LoggedModel {
            info: LoggedModelInfo {
                model_id: row.get(0)?,
                experiment_id: row.get::<i64>(1)?.to_string(),
                name: row.get(2)?,
                creation_timestamp_ms: row.get(3)?,
                last_updated_timestamp_ms: row.get(4)?,
                artifact_uri: row.get(5)?,
                status: row.get(6)?,
                model_type: row.get(7)?,
                source_run_id: row.get(8)?,
                status_message: String::new(),
                tags: Vec::new(),
            },
            data: LoggedModelData::default(),
        })
    })
    .await?;
    if models.is_empty() {
        return Ok(models);
    }
    let index: HashMap<String, usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.info.model_id.clone(), i))
        .collect();
    for table in ["mlflow_logged_model_tags", "mlflow_logged_model_params"] {
        let rows = conn
            .query(
                &format!(
                    "SELECT t.model_id, t.key, t.value FROM {table} t
                     JOIN mlflow_logged_models m ON m.model_id = t.model_id
                     WHERE m.org_id = ?1 AND (?2 IS NULL OR t.model_id = ?2) ORDER BY t.key"
                ),
                params![org_id, only],
            )
            .await
            .map_err(DbError::from)?;
        for (id, key, value) in db::collect(rows, |row| {
            Ok((
                row.get::<String>(0)?,
                row.get::<String>(1)?,
                row.get::<String>(2)?,
            ))
        })
        .await?
        {
            if let Some(&i) = index.get(&id) {
                let target = if table == "mlflow_logged_model_tags" {
                    &mut models[i].info.tags
                } else {
                    &mut models[i].data.params
                };
                target.push(KeyValue { key, value });
            }
        }
    }
    // Metrics logged against a model (run metrics with its `model_id`), latest per key.
    let rows = conn
        .query(
            "SELECT x.model_id, x.key, x.value, x.is_nan, x.timestamp, x.step, x.run_uuid,
                    x.dataset_name, x.dataset_digest
             FROM mlflow_metrics x JOIN mlflow_logged_models m ON m.model_id = x.model_id
             WHERE m.org_id = ?1 AND (?2 IS NULL OR x.model_id = ?2)
             ORDER BY x.key, x.step, x.timestamp",
            params![org_id, only],
        )
        .await
        .map_err(DbError::from)?;
    for (id, metric) in db::collect(rows, |row| {
        let is_nan: i64 = row.get(3)?;
        Ok((
            row.get::<String>(0)?,
            Metric {
                key: row.get(1)?,
                value: if is_nan != 0 { f64::NAN } else { row.get(2)? },
                timestamp: row.get(4)?,
                step: row.get(5)?,
                run_id: row.get(6)?,
                dataset_name: row.get(7)?,
                dataset_digest: row.get(8)?,
                model_id: None,
            },
        ))
    })
    .await?
    {
        if let Some(&i) = index.get(&id) {
            let metrics = &mut models[i].data.metrics;
            match metrics.iter_mut().find(|m| m.key == metric.key) {
                Some(existing) => *existing = metric,
                None => metrics.push(metric),
            }
        }
    }
    Ok(models)
}

/// One logged model.
pub async fn get(conn: &Reader, org_id: &str, model_id: &str) -> MlflowResult<LoggedModel> {
    list(conn, org_id, Some(model_id))
        .await?
        .pop()
        .ok_or_else(|| missing(model_id))
}

/// Sets the status (`finalize`).
pub async fn finalize(
    conn: &Writer,
    org_id: &str,
    model_id: &str,
    status: &str,
) -> MlflowResult<LoggedModel> {
    get(conn, org_id, model_id).await?;
    conn.execute(
        "UPDATE mlflow_logged_models SET status = ?3, last_updated_timestamp_ms = ?4
         WHERE org_id = ?1 AND model_id = ?2",
        params![org_id, model_id, status, now_ms()],
    )
    .await
    .map_err(DbError::from)?;
    get(conn, org_id, model_id).await
}

/// Marks a logged model deleted.
pub async fn delete(conn: &Writer, org_id: &str, model_id: &str) -> MlflowResult<()> {
    get(conn, org_id, model_id).await?;
    conn.execute(
        "UPDATE mlflow_logged_models SET lifecycle_stage = 'deleted' WHERE org_id = ?1 AND model_id = ?2",
        params![org_id, model_id],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

async fn check(conn: &Reader, org_id: &str, model_id: &str) -> MlflowResult<()> {
    let rows = conn
        .query(
            "SELECT 1 FROM mlflow_logged_models WHERE org_id = ?1 AND model_id = ?2 AND lifecycle_stage = 'active'",
            params![org_id, model_id],
        )
        .await
        .map_err(DbError::from)?;
    match db::first_row(rows).await? {
        Some(_) => Ok(()),
        None => Err(missing(model_id)),
    }
}

/// Sets tags of a logged model.
pub async fn set_tags(
    conn: &Writer,
    org_id: &str,
    model_id: &str,
    tags: &[KeyValue],
) -> MlflowResult<()> {
    check(conn, org_id, model_id).await?;
    for tag in tags {
        validate_key("tag", &tag.key)?;
        validate_length(
            &format!("Tag value for '{}'", tag.key),
            &tag.value,
            limits::TAG_VALUE,
        )?;
        conn.execute(
            "INSERT INTO mlflow_logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            params![model_id, tag.key.as_str(), tag.value.as_str()],
        )
        .await
        .map_err(DbError::from)?;
    }
    Ok(())
}

/// Deletes a tag of a logged model.
pub async fn delete_tag(
    conn: &Writer,
    org_id: &str,
    model_id: &str,
    key: &str,
) -> MlflowResult<()> {
    check(conn, org_id, model_id).await?;
    let deleted = conn
        .execute(
            "DELETE FROM mlflow_logged_model_tags WHERE model_id = ?1 AND key = ?2",
            params![model_id, key],
        )
        .await
        .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(MlflowError::not_found(format!(
            "No tag with key '{key}' on logged model '{model_id}'"
        )));
    }
    Ok(())
}

/// Logs params of a logged model (write-once, like run params).
pub async fn log_params(
    conn: &Writer,
    org_id: &str,
    model_id: &str,
    params: &[KeyValue],
) -> MlflowResult<()> {
    check(conn, org_id, model_id).await?;
    for param in params {
        validate_key("parameter", &param.key)?;
        validate_length(
            &format!("Param value for '{}'", param.key),
            &param.value,
            limits::PARAM_VALUE,
        )?;
        let rows = conn
            .query(
                "SELECT value FROM mlflow_logged_model_params WHERE model_id = ?1 AND key = ?2",
                params![model_id, param.key.as_str()],
            )
            .await
            .map_err(DbError::from)?;
        if let Some(row) = db::first_row(rows).await? {
            let old: String = row.get(0).map_err(DbError::from)?;
            if old != param.value {
                return Err(MlflowError::invalid(format!(
                    "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for logged model '{model_id}'.",
                    param.key
                )));
            }
            continue;
        }
        conn.execute(
            "INSERT INTO mlflow_logged_model_params (model_id, key, value) VALUES (?1, ?2, ?3)",
            params![model_id, param.key.as_str(), param.value.as_str()],
        )
        .await
        .map_err(DbError::from)?;
    }
    Ok(())
}
