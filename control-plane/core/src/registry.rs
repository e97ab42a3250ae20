//! The model registry's storage: models, their versions, and aliases with history.
//!
//! Files live in the object store under their sha256; rows here point at them. A version
//! row is only ever inserted after its blob is durable, so a crash can leave an orphan blob
//! (harmless, deduplicated on re-upload) but never a version without its file.

use std::collections::BTreeMap;

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, DbError};
use crate::inspect::ModelSignature;

/// A model as returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Model {
    #[serde(skip)]
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_by: String,
    pub created_at: String,
    /// The highest version number, if any version was uploaded.
    pub latest_version: Option<i64>,
}

/// A version of a model as returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelVersion {
    pub version: i64,
    pub sha256: String,
    /// For a custom component: the sha256 of the ONNX graph uploaded with it.
    pub graph_sha256: Option<String>,
    pub size_bytes: i64,
    /// `onnx` or `wasm-component`.
    pub framework: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    /// The experiment run that produced this version (lineage).
    pub run_id: Option<String>,
    pub signature: ModelSignature,
    pub created_by: String,
    pub created_at: String,
    /// Aliases currently pointing at this version.
    pub aliases: Vec<String>,
}

/// An alias and the version it points at.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alias {
    pub alias: String,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
}

/// One move of an alias.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AliasMove {
    pub alias: String,
    /// `None` when the alias was created.
    pub from_version: Option<i64>,
    /// `None` when the alias was deleted.
    pub to_version: Option<i64>,
    pub moved_by: String,
    pub moved_at: String,
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

const MODEL_COLUMNS: &str = "m.id, m.name, m.description, m.created_by, m.created_at,
    (SELECT MAX(version) FROM model_versions v WHERE v.model_id = m.id)";

fn model_from_row(row: &libsql::Row) -> Result<Model, DbError> {
    Ok(Model {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        created_by: row.get(3)?,
        created_at: db::rfc3339(row.get(4)?),
        latest_version: row.get(5)?,
    })
}

/// Creates a model. A duplicate name is a UNIQUE violation (see [`db::is_unique_violation`]).
pub async fn create_model(
    conn: &Writer,
    org_id: &str,
    name: &str,
    description: &str,
    created_by: &str,
) -> Result<Model, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO models (id, org_id, name, description, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.as_str(),
            org_id,
            name,
            description,
            created_by,
            db::now()
        ],
    )
    .await?;
    get_model(conn, org_id, name)
        .await?
        .ok_or_else(|| corrupt("model vanished after insert"))
}

/// All models of an organisation, by name.
pub async fn list_models(conn: &Reader, org_id: &str) -> Result<Vec<Model>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {MODEL_COLUMNS} FROM models m WHERE m.org_id = ?1 ORDER BY m.name"),
            params![org_id],
        )
        .await?;
    db::collect(rows, model_from_row).await
}

/// A page of an organisation's models by name: at most `limit`, after `after` (the last
/// name of the previous page), whose name starts with `prefix` (empty: all).
pub async fn list_models_page(
    conn: &Reader,
    org_id: &str,
    prefix: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Model>, DbError> {
    // `substr` rather than LIKE: a prefix is matched literally, `%` and `_` included.
    let rows = conn
        .query(
            &format!(
                "SELECT {MODEL_COLUMNS} FROM models m WHERE m.org_id = ?1 AND m.name > ?2
                 AND substr(m.name, 1, length(?3)) = ?3 ORDER BY m.name LIMIT ?4"
            ),
            params![org_id, after, prefix, limit],
        )
        .await?;
    db::collect(rows, model_from_row).await
}

/// A model of an organisation by name.
pub async fn get_model(conn: &Reader, org_id: &str, name: &str) -> Result<Option<Model>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {MODEL_COLUMNS} FROM models m WHERE m.org_id = ?1 AND m.name = ?2"),
            params![org_id, name],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(model_from_row)
        .transpose()
}

/// Deletes a model with its versions and aliases; returns the digests its versions used,
/// for the caller to garbage-collect with [`unreferenced`].
pub async fn delete_model(conn: &Writer, model_id: &str) -> Result<Vec<String>, DbError> {
    let rows = conn
        .query(
            "SELECT sha256 FROM model_versions WHERE model_id = ?1
             UNION SELECT graph_sha256 FROM model_versions
                WHERE model_id = ?1 AND graph_sha256 IS NOT NULL",
            params![model_id],
        )
        .await?;
    let digests = db::collect(rows, |row| Ok(row.get::<String>(0)?)).await?;
    // Explicit rather than ON DELETE CASCADE: foreign keys are a per-connection pragma that
    // a remote libSQL server may not have on.
    for table in [
        "deployments",
        "model_aliases",
        "model_alias_history",
        "model_versions",
        "drift_settings",
        "drift_references",
        "drift_windows",
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE model_id = ?1"),
            params![model_id],
        )
        .await?;
    }
    conn.execute("DELETE FROM models WHERE id = ?1", params![model_id])
        .await?;
    Ok(digests)
}

pub use crate::blob::references::unreferenced;

/// What is known about a version when it is accepted.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub model_id: &'a str,
    pub sha256: &'a str,
    /// For a custom component: the ONNX graph uploaded with it.
    pub graph_sha256: Option<&'a str>,
    pub size_bytes: i64,
    pub framework: &'a str,
    pub description: &'a str,
    pub tags: &'a BTreeMap<String, String>,
    pub metrics: &'a BTreeMap<String, f64>,
    pub run_id: Option<&'a str>,
    pub signature: &'a ModelSignature,
    pub created_by: &'a str,
}

/// Inserts the next version of a model; returns its number. Run inside a transaction so
/// that two concurrent uploads cannot take the same number.
pub async fn insert_version(conn: &Writer, v: &NewVersion<'_>) -> Result<i64, DbError> {
    let rows = conn
        .query(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = ?1",
            params![v.model_id],
        )
        .await?;
    let version: i64 = match db::first_row(rows).await? {
        Some(row) => row.get(0)?,
        None => 1,
    };
    conn.execute(
        "INSERT INTO model_versions (id, model_id, version, sha256, size_bytes, framework,
             description, tags, metrics, run_id, signature, created_by, created_at, graph_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            db::new_id(),
            v.model_id,
            version,
            v.sha256,
            v.size_bytes,
            v.framework,
            v.description,
            serde_json::to_string(v.tags).map_err(corrupt)?,
            serde_json::to_string(v.metrics).map_err(corrupt)?,
            v.run_id,
            serde_json::to_string(v.signature).map_err(corrupt)?,
            v.created_by,
            db::now(),
            v.graph_sha256
        ],
    )
    .await?;
    Ok(version)
}

const VERSION_COLUMNS: &str = "v.version, v.sha256, v.size_bytes, v.framework, v.description,
    v.tags, v.metrics, v.run_id, v.signature, v.created_by, v.created_at,
    (SELECT group_concat(alias, ' ') FROM
        (SELECT alias FROM model_aliases a WHERE a.model_id = v.model_id AND a.version = v.version ORDER BY alias)),
    v.graph_sha256";

fn version_from_row(row: &libsql::Row) -> Result<ModelVersion, DbError> {
    let json = |i| -> Result<String, DbError> { Ok(row.get::<String>(i)?) };
    Ok(ModelVersion {
        version: row.get(0)?,
        sha256: row.get(1)?,
        size_bytes: row.get(2)?,
        framework: row.get(3)?,
        description: row.get(4)?,
        tags: serde_json::from_str(&json(5)?).map_err(corrupt)?,
        metrics: serde_json::from_str(&json(6)?).map_err(corrupt)?,
        run_id: row.get(7)?,
        signature: serde_json::from_str(&json(8)?).map_err(corrupt)?,
        created_by: row.get(9)?,
        created_at: db::rfc3339(row.get(10)?),
        aliases: row
            .get::<Option<String>>(11)?
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default(),
        graph_sha256: row.get(12)?,
    })
}

/// All versions of a model, newest first.
pub async fn list_versions(conn: &Reader, model_id: &str) -> Result<Vec<ModelVersion>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.model_id = ?1 ORDER BY v.version DESC"
            ),
            params![model_id],
        )
        .await?;
    db::collect(rows, version_from_row).await
}

/// One version of a model.
pub async fn get_version(
    conn: &Reader,
    model_id: &str,
    version: i64,
) -> Result<Option<ModelVersion>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.model_id = ?1 AND v.version = ?2"),
            params![model_id, version],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(version_from_row)
        .transpose()
}

/// Changes to a version's metadata; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct VersionPatch {
    pub description: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub metrics: Option<BTreeMap<String, f64>>,
    pub run_id: Option<String>,
}

/// Applies a patch; returns whether the version exists.
pub async fn update_version(
    conn: &Writer,
    model_id: &str,
    version: i64,
    patch: &VersionPatch,
) -> Result<bool, DbError> {
    let tags = patch
        .tags
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    let metrics = patch
        .metrics
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    let changed = conn
        .execute(
            "UPDATE model_versions SET
                description = COALESCE(?3, description),
                tags = COALESCE(?4, tags),
                metrics = COALESCE(?5, metrics),
                run_id = COALESCE(?6, run_id)
             WHERE model_id = ?1 AND version = ?2",
            params![
                model_id,
                version,
                patch.description.as_deref(),
                tags,
                metrics,
                patch.run_id.as_deref()
            ],
        )
        .await?;
    Ok(changed > 0)
}

/// Points `alias` at `version` (creating it if needed) and records the move. Returns the
/// previous version. Run inside a transaction: the alias and its history move together.
pub async fn set_alias(
    conn: &Writer,
    model_id: &str,
    alias: &str,
    version: i64,
    actor: &str,
) -> Result<Option<i64>, DbError> {
    let previous = alias_target(conn, model_id, alias).await?;
    let now = db::now();
    conn.execute(
        "INSERT INTO model_aliases (model_id, alias, version, updated_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (model_id, alias) DO UPDATE SET
            version = excluded.version, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        params![model_id, alias, version, actor, now],
    )
    .await?;
    record_move(conn, model_id, alias, previous, Some(version), actor, now).await?;
    Ok(previous)
}

/// Deletes an alias and records it; returns the version it pointed at, if it existed.
pub async fn delete_alias(
    conn: &Writer,
    model_id: &str,
    alias: &str,
    actor: &str,
) -> Result<Option<i64>, DbError> {
    let previous = alias_target(conn, model_id, alias).await?;
    if previous.is_some() {
        conn.execute(
            "DELETE FROM model_aliases WHERE model_id = ?1 AND alias = ?2",
            params![model_id, alias],
        )
        .await?;
        record_move(conn, model_id, alias, previous, None, actor, db::now()).await?;
    }
    Ok(previous)
}

async fn record_move(
    conn: &Writer,
    model_id: &str,
    alias: &str,
    from: Option<i64>,
    to: Option<i64>,
    actor: &str,
    at: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO model_alias_history (model_id, alias, from_version, to_version, moved_by, moved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![model_id, alias, from, to, actor, at],
    )
    .await?;
    Ok(())
}

/// The version an alias points at.
pub async fn alias_target(
    conn: &Reader,
    model_id: &str,
    alias: &str,
) -> Result<Option<i64>, DbError> {
    let rows = conn
        .query(
            "SELECT version FROM model_aliases WHERE model_id = ?1 AND alias = ?2",
            params![model_id, alias],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

/// The aliases of a model.
pub async fn list_aliases(conn: &Reader, model_id: &str) -> Result<Vec<Alias>, DbError> {
    let rows = conn
        .query(
            "SELECT alias, version, updated_by, updated_at FROM model_aliases
             WHERE model_id = ?1 ORDER BY alias",
            params![model_id],
        )
        .await?;
    db::collect(rows, |row| {
        Ok(Alias {
            alias: row.get(0)?,
            version: row.get(1)?,
            updated_by: row.get(2)?,
            updated_at: db::rfc3339(row.get(3)?),
        })
    })
    .await
}

/// The history of a model's aliases (of one alias if given), newest first.
pub async fn alias_history(
    conn: &Reader,
    model_id: &str,
    alias: Option<&str>,
) -> Result<Vec<AliasMove>, DbError> {
    let rows = conn
        .query(
            "SELECT alias, from_version, to_version, moved_by, moved_at FROM model_alias_history
             WHERE model_id = ?1 AND (?2 IS NULL OR alias = ?2) ORDER BY id DESC",
            params![model_id, alias],
        )
        .await?;
    db::collect(rows, |row| {
        Ok(AliasMove {
            alias: row.get(0)?,
            from_version: row.get(1)?,
            to_version: row.get(2)?,
            moved_by: row.get(3)?,
            moved_at: db::rfc3339(row.get(4)?),
        })
    })
    .await
}
