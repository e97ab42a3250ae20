//! The MLflow model registry: registered models, their versions (always `READY`), tags,
//! aliases and stages. The bridge to wisp's own registry lives in the API layer; here a
//! version only remembers the wisp version made from it.

use std::collections::HashMap;

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;

use super::{KeyValue, MlflowError, MlflowResult, limits, now_ms, validate_key, validate_length};
use crate::db::{self, DbError};

/// `RegisteredModelAlias`.
#[derive(Debug, Clone, Serialize)]
pub struct AliasEntry {
    pub alias: String,
    pub version: String,
}

/// A registered model on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub user_id: String,
    pub description: String,
    pub latest_versions: Vec<ModelVersion>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<AliasEntry>,
}

/// A model version on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub user_id: String,
    pub current_stage: String,
    pub description: String,
    pub source: String,
    pub run_id: String,
    pub status: &'static str,
    pub status_message: String,
    pub tags: Vec<KeyValue>,
    pub run_link: String,
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model_id: String,
    /// Where the files are (`source` resolved); answered by `get-download-uri`.
    #[serde(skip)]
    pub storage_location: String,
    /// The wisp version made from this one, if it holds an ONNX model.
    #[serde(skip)]
    pub wisp_version: Option<i64>,
}

/// MLflow's stages, canonically spelled.
pub const STAGES: &[&str] = &["None", "Staging", "Production", "Archived"];

/// A stage name in canonical spelling (MLflow accepts any case).
pub fn canonical_stage(stage: &str) -> MlflowResult<&'static str> {
    STAGES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stage))
        .copied()
        .ok_or_else(|| {
            MlflowError::invalid(format!(
                "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
            ))
        })
}

fn model_missing(name: &str) -> MlflowError {
    MlflowError::not_found(format!("Registered Model with name={name} not found"))
}

fn version_missing(name: &str, version: &str) -> MlflowError {
    MlflowError::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

/// Parses a version number; anything else does not exist.
pub fn parse_version(name: &str, version: &str) -> MlflowResult<i64> {
    version
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            MlflowError::invalid(format!(
                "Parameter 'version' must be an integer, got '{version}' for model {name}"
            ))
        })
}

/// Validates a registered model name.
pub fn validate_name(name: &str) -> MlflowResult<()> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid(
            "Registered model name cannot be empty.",
        ));
    }
    if name.chars().count() > 256 || name.chars().any(char::is_control) || name.contains('/') {
        return Err(MlflowError::invalid(format!(
            "Invalid registered model name {name:?}: at most 256 printable characters, no '/'."
        )));
    }
    Ok(())
}

/// Creates a registered model.
pub async fn create_model(
    conn: &Writer,
    org_id: &str,
    name: &str,
    description: &str,
    tags: &[KeyValue],
    user_id: &str,
) -> MlflowResult<RegisteredModel> {
    validate_name(name)?;
    if exists(conn, org_id, name).await? {
        return Err(MlflowError::exists(format!(
            "Registered Model (name={name}) already exists."
        )));
    }
    let now = now_ms();
    conn.execute(
        "INSERT INTO mlflow_registered_models (org_id, name, description, user_id, creation_timestamp, last_updated_timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![org_id, name, description, user_id, now],
    )
    .await
    .map_err(DbError::from)?;
    for tag in tags {
        set_model_tag(conn, org_id, name, &tag.key, &tag.value).await?;
    }
    get_model(conn, org_id, name).await
}

async fn exists(conn: &Reader, org_id: &str, name: &str) -> MlflowResult<bool> {
    let rows = conn
        .query(
            "SELECT 1 FROM mlflow_registered_models WHERE org_id = ?1 AND name = ?2",
            params![org_id, name],
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::first_row(rows).await?.is_some())
}

/// Fails with `RESOURCE_DOES_NOT_EXIST` unless the registered model exists.
pub async fn check_model(conn: &Reader, org_id: &str, name: &str) -> MlflowResult<()> {
    if exists(conn, org_id, name).await? {
        Ok(())
    } else {
        Err(model_missing(name))
    }
}

async fn tags_of(
    conn: &Reader,
    sql: &str,
    params: Vec<libsql::Value>,
) -> MlflowResult<Vec<(String, KeyValue)>> {
    let rows = conn.query(sql, params).await.map_err(DbError::from)?;
    Ok(db::collect(rows, |row| {
        Ok((
            row.get::<String>(0)?,
            KeyValue {
                key: row.get(1)?,
                value: row.get(2)?,
            },
        ))
    })
    .await?)
}

/// Every registered model of the organisation (with latest versions, tags, aliases), by
/// name; `only` restricts to one name.
pub async fn list_models(
    conn: &Reader,
    org_id: &str,
    only: Option<&str>,
) -> MlflowResult<Vec<RegisteredModel>> {
    let rows = conn
        .query(
            "SELECT name, creation_timestamp, last_updated_timestamp, user_id, description
             FROM mlflow_registered_models WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY name",
            params![org_id, only],
        )
        .await
        .map_err(DbError::from)?;
    let mut models = db::collect(rows, |row| {
        Ok(RegisteredModel {
            name: row.get(0)?,
            creation_timestamp: row.get(1)?,
            last_updated_timestamp: row.get(2)?,
            user_id: row.get(3)?,
            description: row.get(4)?,
            latest_versions: Vec::new(),
            tags: Vec::new(),
            aliases: Vec::new(),
        })
    })
    .await?;
    if models.is_empty() {
        return Ok(models);
    }
    let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
    for (name, tag) in tags_of(
        conn,
        "SELECT name, key, value FROM mlflow_registered_model_tags WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY key",
        vec![org_id.into(), only.map(str::to_owned).into()],
    )
    .await?
    {
        tags.entry(name).or_default().push(tag);
    }
    let mut aliases: HashMap<String, Vec<AliasEntry>> = HashMap::new();
    let rows = conn
        .query(
            "SELECT name, alias, version FROM mlflow_registered_model_aliases
             WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY alias",
            params![org_id, only],
        )
        .await
        .map_err(DbError::from)?;
    for (name, alias, version) in db::collect(rows, |row| {
        Ok((
            row.get::<String>(0)?,
            row.get::<String>(1)?,
            row.get::<i64>(2)?,
        ))
    })
    .await?
    {
        aliases.entry(name).or_default().push(AliasEntry {
            alias,
            version: version.to_string(),
        });
    }
    let mut versions: HashMap<String, Vec<ModelVersion>> = HashMap::new();
    for version in list_versions(conn, org_id, only).await? {
        versions
            .entry(version.name.clone())
            .or_default()
            .push(version);
    }
    for model in &mut models {
        model.tags = tags.remove(&model.name).unwrap_or_default();
        model.aliases = aliases.remove(&model.name).unwrap_or_default();
        model.latest_versions =
            latest_per_stage(versions.remove(&model.name).unwrap_or_default(), &[]);
    }
    Ok(models)
}

/// The newest version in each stage (of `stages`, or all), ordered by stage.
pub fn latest_per_stage(versions: Vec<ModelVersion>, stages: &[&str]) -> Vec<ModelVersion> {
    let mut latest: Vec<ModelVersion> = Vec::new();
    for stage in STAGES {
        if !stages.is_empty() && !stages.contains(stage) {
            continue;
        }
        if let Some(newest) = versions
            .iter()
            .filter(|v| v.current_stage == *stage)
            .max_by_key(|v| v.version.parse::<i64>().unwrap_or(0))
        {
            latest.push(newest.clone());
        }
    }
    latest
}

/// A registered model.
pub async fn get_model(conn: &Reader, org_id: &str, name: &str) -> MlflowResult<RegisteredModel> {
    list_models(conn, org_id, Some(name))
        .await?
        .pop()
        .ok_or_else(|| model_missing(name))
}

/// Renames a registered model with its versions, tags and aliases.
pub async fn rename_model(
    conn: &Writer,
    org_id: &str,
    name: &str,
    new_name: &str,
) -> MlflowResult<()> {
    validate_name(new_name)?;
    check_model(conn, org_id, name).await?;
    if exists(conn, org_id, new_name).await? {
        return Err(MlflowError::exists(format!(
            "Registered Model (name={new_name}) already exists."
        )));
    }
    for table in [
        "mlflow_registered_models",
        "mlflow_registered_model_tags",
        "mlflow_model_versions",
        "mlflow_model_version_tags",
        "mlflow_registered_model_aliases",
    ] {
        conn.execute(
            &format!("UPDATE {table} SET name = ?3 WHERE org_id = ?1 AND name = ?2"),
            params![org_id, name, new_name],
        )
        .await
        .map_err(DbError::from)?;
    }
    touch_model(conn, org_id, new_name).await
}

async fn touch_model(conn: &Writer, org_id: &str, name: &str) -> MlflowResult<()> {
    conn.execute(
        "UPDATE mlflow_registered_models SET last_updated_timestamp = ?3 WHERE org_id = ?1 AND name = ?2",
        params![org_id, name, now_ms()],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Changes a registered model's description.
pub async fn update_model(
    conn: &Writer,
    org_id: &str,
    name: &str,
    description: &str,
) -> MlflowResult<()> {
    check_model(conn, org_id, name).await?;
    conn.execute(
        "UPDATE mlflow_registered_models SET description = ?3, last_updated_timestamp = ?4
         WHERE org_id = ?1 AND name = ?2",
        params![org_id, name, description, now_ms()],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Deletes a registered model with its versions, tags and aliases.
pub async fn delete_model(conn: &Writer, org_id: &str, name: &str) -> MlflowResult<()> {
    check_model(conn, org_id, name).await?;
    for table in [
        "mlflow_registered_model_tags",
        "mlflow_model_version_tags",
        "mlflow_registered_model_aliases",
        "mlflow_model_versions",
        "mlflow_registered_models",
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE org_id = ?1 AND name = ?2"),
            params![org_id, name],
        )
        .await
        .map_err(DbError::from)?;
    }
    Ok(())
}

/// Sets a tag of a registered model.
pub async fn set_model_tag(
    conn: &Writer,
    org_id: &str,
    name: &str,
    key: &str,
    value: &str,
) -> MlflowResult<()> {
    validate_key("tag", key)?;
    validate_length(
        &format!("Tag value for '{key}'"),
        value,
        limits::REGISTRY_TAG_VALUE,
    )?;
    check_model(conn, org_id, name).await?;
    conn.execute(
        "INSERT INTO mlflow_registered_model_tags (org_id, name, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (org_id, name, key) DO UPDATE SET value = excluded.value",
        params![org_id, name, key, value],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Deletes a tag of a registered model.
pub async fn delete_model_tag(
    conn: &Writer,
    org_id: &str,
    name: &str,
    key: &str,
) -> MlflowResult<()> {
    check_model(conn, org_id, name).await?;
    conn.execute(
        "DELETE FROM mlflow_registered_model_tags WHERE org_id = ?1 AND name = ?2 AND key = ?3",
        params![org_id, name, key],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// What a new version is made of.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub storage_location: &'a str,
    pub run_id: &'a str,
    pub run_link: &'a str,
    pub description: &'a str,
    pub model_id: &'a str,
    pub tags: &'a [KeyValue],
    pub user_id: &'a str,
}

/// Creates the next version of a registered model; returns its number.
pub async fn create_version(
    conn: &Writer,
    org_id: &str,
    new: &NewVersion<'_>,
) -> MlflowResult<i64> {
    check_model(conn, org_id, new.name).await?;
    for tag in new.tags {
        validate_key("tag", &tag.key)?;
        validate_length(
            &format!("Tag value for '{}'", tag.key),
            &tag.value,
            limits::REGISTRY_TAG_VALUE,
        )?;
    }
    let rows = conn
        .query(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM mlflow_model_versions WHERE org_id = ?1 AND name = ?2",
            params![org_id, new.name],
        )
        .await
        .map_err(DbError::from)?;
    let version: i64 = db::first_row(rows)
        .await?
        .ok_or_else(|| DbError::Corrupt("no next version".into()))?
        .get(0)
        .map_err(DbError::from)?;
    let now = now_ms();
    conn.execute(
        "INSERT INTO mlflow_model_versions (org_id, name, version, description, user_id, source,
            storage_location, run_id, run_link, model_id, creation_timestamp, last_updated_timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![
            org_id,
            new.name,
            version,
            new.description,
            new.user_id,
            new.source,
            new.storage_location,
            new.run_id,
            new.run_link,
            new.model_id,
            now
        ],
    )
    .await
    .map_err(DbError::from)?;
    for tag in new.tags {
        set_version_tag(conn, org_id, new.name, version, &tag.key, &tag.value).await?;
    }
    touch_model(conn, org_id, new.name).await?;
    Ok(version)
}

/// Records the wisp version made from an MLflow version.
pub async fn set_wisp_version(
    conn: &Writer,
    org_id: &str,
    name: &str,
    version: i64,
    wisp_version: i64,
) -> MlflowResult<()> {
    conn.execute(
        "UPDATE mlflow_model_versions SET wisp_version = ?4 WHERE org_id = ?1 AND name = ?2 AND version = ?3",
        params![org_id, name, version, wisp_version],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Every version of the organisation's registered models (of one model if `only`).
pub async fn list_versions(
    conn: &Reader,
    org_id: &str,
    only: Option<&str>,
) -> MlflowResult<Vec<ModelVersion>> {
    let rows = conn
        .query(
            "SELECT name, version, creation_timestamp, last_updated_timestamp, user_id, current_stage,
                description, source, run_id, run_link, model_id, storage_location, wisp_version
             FROM mlflow_model_versions WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2)
             ORDER BY name, version",
            params![org_id, only],
        )
        .await
        .map_err(DbError::from)?;
    let mut versions = db::collect(rows, |row| {
        Ok(ModelVersion {
            name: row.get(0)?,
            version: row.get::<i64>(1)?.to_string(),
            creation_timestamp: row.get(2)?,
            last_updated_timestamp: row.get(3)?,
            user_id: row.get(4)?,
            current_stage: row.get(5)?,
            description: row.get(6)?,
            source: row.get(7)?,
            run_id: row.get(8)?,
            status: "READY",
            status_message: String::new(),
            tags: Vec::new(),
            run_link: row.get(9)?,
            aliases: Vec::new(),
            model_id: row.get(10)?,
            storage_location: row.get(11)?,
            wisp_version: row.get(12)?,
        })
    })
    .await?;
    if versions.is_empty() {
        return Ok(versions);
    }
    let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
    for (id, tag) in tags_of(
        conn,
        "SELECT name || '\u{1}' || version, key, value FROM mlflow_model_version_tags
         WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY key",
        vec![org_id.into(), only.map(str::to_owned).into()],
    )
    .await?
    {
        tags.entry(id).or_default().push(tag);
    }
    let rows = conn
        .query(
            "SELECT name || '\u{1}' || version, alias FROM mlflow_registered_model_aliases
             WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY alias",
            params![org_id, only],
        )
        .await
        .map_err(DbError::from)?;
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    for (id, alias) in db::collect(rows, |row| {
        Ok((row.get::<String>(0)?, row.get::<String>(1)?))
    })
    .await?
    {
        aliases.entry(id).or_default().push(alias);
    }
    for version in &mut versions {
        let id = format!("{}\u{1}{}", version.name, version.version);
        version.tags = tags.remove(&id).unwrap_or_default();
        version.aliases = aliases.remove(&id).unwrap_or_default();
    }
    Ok(versions)
}

/// One version.
pub async fn get_version(
    conn: &Reader,
    org_id: &str,
    name: &str,
    version: &str,
) -> MlflowResult<ModelVersion> {
    let number = parse_version(name, version)?;
    list_versions(conn, org_id, Some(name))
        .await?
        .into_iter()
        .find(|v| v.version == number.to_string())
        .ok_or_else(|| version_missing(name, version))
}

/// Changes a version's description.
pub async fn update_version(
    conn: &Writer,
    org_id: &str,
    name: &str,
    version: &str,
    description: &str,
) -> MlflowResult<()> {
    get_version(conn, org_id, name, version).await?;
    conn.execute(
        "UPDATE mlflow_model_versions SET description = ?4, last_updated_timestamp = ?5
         WHERE org_id = ?1 AND name = ?2 AND version = ?3",
        params![
            org_id,
            name,
            parse_version(name, version)?,
            description,
            now_ms()
        ],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Moves a version to a stage; with `archive_existing`, other versions in that stage
/// (Staging or Production) move to Archived.
pub async fn transition_stage(
    conn: &Writer,
    org_id: &str,
    name: &str,
    version: &str,
    stage: &str,
    archive_existing: bool,
) -> MlflowResult<()> {
    let stage = canonical_stage(stage)?;
    let number = parse_version(name, version)?;
    get_version(conn, org_id, name, version).await?;
    let now = now_ms();
    if archive_existing && matches!(stage, "Staging" | "Production") {
        conn.execute(
            "UPDATE mlflow_model_versions SET current_stage = 'Archived', last_updated_timestamp = ?4
             WHERE org_id = ?1 AND name = ?2 AND current_stage = ?3 AND version != ?5",
            params![org_id, name, stage, now, number],
        )
        .await
        .map_err(DbError::from)?;
    }
    conn.execute(
        "UPDATE mlflow_model_versions SET current_stage = ?4, last_updated_timestamp = ?5
         WHERE org_id = ?1 AND name = ?2 AND version = ?3",
        params![org_id, name, number, stage, now],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Deletes a version with its tags and the aliases pointing at it.
pub async fn delete_version(
    conn: &Writer,
    org_id: &str,
    name: &str,
    version: &str,
) -> MlflowResult<ModelVersion> {
    let found = get_version(conn, org_id, name, version).await?;
    let number = parse_version(name, version)?;
    for table in [
        "mlflow_model_version_tags",
        "mlflow_registered_model_aliases",
        "mlflow_model_versions",
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE org_id = ?1 AND name = ?2 AND version = ?3"),
            params![org_id, name, number],
        )
        .await
        .map_err(DbError::from)?;
    }
    Ok(found)
}

/// Sets a tag of a version.
pub async fn set_version_tag(
    conn: &Writer,
    org_id: &str,
    name: &str,
    version: i64,
    key: &str,
    value: &str,
) -> MlflowResult<()> {
    validate_key("tag", key)?;
    validate_length(
        &format!("Tag value for '{key}'"),
        value,
        limits::REGISTRY_TAG_VALUE,
    )?;
    conn.execute(
        "INSERT INTO mlflow_model_version_tags (org_id, name, version, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (org_id, name, version, key) DO UPDATE SET value = excluded.value",
        params![org_id, name, version, key, value],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Deletes a tag of a version.
pub async fn delete_version_tag(
    conn: &Writer,
    org_id: &str,
    name: &str,
    version: &str,
    key: &str,
) -> MlflowResult<()> {
    get_version(conn, org_id, name, version).await?;
    conn.execute(
        "DELETE FROM mlflow_model_version_tags WHERE org_id = ?1 AND name = ?2 AND version = ?3 AND key = ?4",
        params![org_id, name, parse_version(name, version)?, key],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Validates an alias the way MLflow does (and so that wisp can carry it too).
pub fn validate_alias(alias: &str) -> MlflowResult<()> {
    let valid = (1..=255).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !alias.eq_ignore_ascii_case("latest")
        && !(alias.starts_with(['v', 'V'])
            && alias[1..].bytes().all(|b| b.is_ascii_digit())
            && alias.len() > 1)
        && !alias.bytes().all(|b| b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "Invalid alias name {alias:?}: use letters, digits, '-', '_' and '.'; not 'latest', a number or v<number>."
        )))
    }
}

/// Points an alias at a version; returns the version it pointed at before.
pub async fn set_alias(
    conn: &Writer,
    org_id: &str,
    name: &str,
    alias: &str,
    version: &str,
) -> MlflowResult<Option<i64>> {
    validate_alias(alias)?;
    check_model(conn, org_id, name).await?;
    let number = parse_version(name, version)?;
    get_version(conn, org_id, name, version).await?;
    let previous = alias_target(conn, org_id, name, alias).await?;
    conn.execute(
        "INSERT INTO mlflow_registered_model_aliases (org_id, name, alias, version) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (org_id, name, alias) DO UPDATE SET version = excluded.version",
        params![org_id, name, alias, number],
    )
    .await
    .map_err(DbError::from)?;
    Ok(previous)
}

/// The version an alias points at.
pub async fn alias_target(
    conn: &Reader,
    org_id: &str,
    name: &str,
    alias: &str,
) -> MlflowResult<Option<i64>> {
    let rows = conn
        .query(
            "SELECT version FROM mlflow_registered_model_aliases WHERE org_id = ?1 AND name = ?2 AND alias = ?3",
            params![org_id, name, alias],
        )
        .await
        .map_err(DbError::from)?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(row.get(0).map_err(DbError::from)?)),
        None => Ok(None),
    }
}

/// Deletes an alias; returns the version it pointed at.
pub async fn delete_alias(
    conn: &Writer,
    org_id: &str,
    name: &str,
    alias: &str,
) -> MlflowResult<Option<i64>> {
    check_model(conn, org_id, name).await?;
    let previous = alias_target(conn, org_id, name, alias).await?;
    conn.execute(
        "DELETE FROM mlflow_registered_model_aliases WHERE org_id = ?1 AND name = ?2 AND alias = ?3",
        params![org_id, name, alias],
    )
    .await
    .map_err(DbError::from)?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_stages() {
        assert!(validate_alias("champion").is_ok());
        assert!(validate_alias("prod-2.1").is_ok());
        for bad in ["", "latest", "v3", "12", "a b", "x/y"] {
            assert!(validate_alias(bad).is_err(), "{bad:?}");
        }
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert!(canonical_stage("prod").is_err());
    }
}
