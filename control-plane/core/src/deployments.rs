//! Storage of deployments: which version each model serves, its readiness, and the
//! append-only history of every change.
//!
//! A model has at most one deployment. It pins a version, or follows an alias and moves
//! with it. Every change bumps the deployment's `generation` and sets it `pending`; the
//! warm-up that follows reports back with the generation it began with, so a slow warm-up
//! of an older version can never mark a newer one ready or failed.

use crate::db::{Reader, Writer};
use libsql::params;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{self, DbError};

fn to_json<T: Serialize>(value: Option<T>) -> Result<Option<String>, DbError> {
    value
        .map(|v| serde_json::to_string(&v).map_err(|e| DbError::Corrupt(e.to_string())))
        .transpose()
}

/// Whether a deployment can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its component and graph are being loaded.
    Pending,
    /// Loaded once successfully; it serves.
    Ready,
    /// Loading failed; `failure` says why.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, DbError> {
        match text {
            "pending" => Ok(Self::Pending),
            "ready" => Ok(Self::Ready),
            "failed" => Ok(Self::Failed),
            other => Err(DbError::Corrupt(format!("deployment status {other:?}"))),
        }
    }
}

/// Which engine runs a deployment's ONNX graphs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// tract (pure Rust, bounded node by node): every wisp has it.
    #[default]
    Tract,
    /// onnxruntime: only in a wisp built with the cargo feature `onnxruntime`.
    Onnxruntime,
    /// tract, or onnxruntime for a graph tract refuses: also only with the feature.
    Auto,
}

impl Backend {
    /// The runtime's name for it.
    pub fn onnx(self) -> wisp_host::OnnxBackend {
        match self {
            Self::Tract => wisp_host::OnnxBackend::Tract,
            Self::Onnxruntime => wisp_host::OnnxBackend::Onnxruntime,
            Self::Auto => wisp_host::OnnxBackend::Auto,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Onnxruntime => "onnxruntime",
            Self::Auto => "auto",
        }
    }

    fn parse(text: &str) -> Result<Self, DbError> {
        match text {
            "tract" => Ok(Self::Tract),
            "onnxruntime" => Ok(Self::Onnxruntime),
            "auto" => Ok(Self::Auto),
            other => Err(DbError::Corrupt(format!("deployment backend {other:?}"))),
        }
    }

    /// Whether this wisp can deploy on it: `onnxruntime` and `auto` need the onnxruntime
    /// backend built in (`auto` without it would be tract under another name, and a
    /// deployment that asked for a fallback must not silently run without one).
    pub fn check_built_in(self) -> Result<(), String> {
        if self == Self::Tract || wisp_host::OnnxBackend::Onnxruntime.is_built_in() {
            return Ok(());
        }
        Err(format!(
            "backend `{}` needs the onnxruntime backend, which is not built into this wisp \
             (cargo feature `onnxruntime`); deploy with backend `tract`",
            self.as_str()
        ))
    }
}

/// Why a deployment failed, with the runtime's stable error code.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// A model's deployment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deployment {
    pub model: String,
    /// The version it serves.
    pub version: i64,
    /// The alias it follows, if any: moving the alias redeploys.
    pub follow_alias: Option<String>,
    pub status: Status,
    pub failure: Option<Failure>,
    /// How long a prediction's result may be served from the cache; 0 disables caching.
    pub cache_ttl_secs: u32,
    /// Weighted variants; absent when every call goes to `version`.
    pub traffic: Option<Vec<Variant>>,
    /// A version that gets a copy of some calls.
    pub shadow: Option<Shadow>,
    /// The engine that runs its ONNX graphs.
    pub backend: Backend,
    pub updated_by: String,
    pub updated_at: String,
    #[serde(skip)]
    pub model_id: String,
    #[serde(skip)]
    pub generation: i64,
}

/// One change in a model's deployment history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// `deployed`, `alias_moved`, `rolled_back`, `promoted` or `undeployed`.
    pub action: String,
    /// The version served after the change (`None` after undeploying).
    pub version: Option<i64>,
    pub follow_alias: Option<String>,
    pub actor: String,
    pub at: String,
}

const COLUMNS: &str = "m.name, d.version, d.follow_alias, d.status, d.failure_code,
    d.failure_message, d.updated_by, d.updated_at, d.model_id, d.generation, d.cache_ttl_secs, d.traffic, d.shadow, d.backend";

fn from_row(row: &libsql::Row) -> Result<Deployment, DbError> {
    let failure = match (row.get::<Option<String>>(4)?, row.get::<Option<String>>(5)?) {
        (Some(code), message) => Some(Failure {
            code,
            message: message.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Deployment {
        model: row.get(0)?,
        version: row.get(1)?,
        follow_alias: row.get(2)?,
        status: Status::parse(&row.get::<String>(3)?)?,
        failure,
        updated_by: row.get(6)?,
        updated_at: db::rfc3339(row.get(7)?),
        model_id: row.get(8)?,
        generation: row.get(9)?,
        cache_ttl_secs: u32::try_from(row.get::<i64>(10)?)
            .map_err(|_| DbError::Corrupt("cache_ttl_secs out of range".into()))?,
        traffic: json_column(row.get(11)?)?,
        shadow: json_column(row.get(12)?)?,
        backend: Backend::parse(&row.get::<String>(13)?)?,
    })
}

fn json_column<T: serde::de::DeserializeOwned>(text: Option<String>) -> Result<Option<T>, DbError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| DbError::Corrupt(e.to_string())))
        .transpose()
}

/// The deployment of a model, if it has one.
pub async fn get(conn: &Reader, model_id: &str) -> Result<Option<Deployment>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM deployments d JOIN models m ON m.id = d.model_id
                 WHERE d.model_id = ?1"
            ),
            params![model_id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every deployment of an organisation, by model name.
pub async fn list(conn: &Reader, org_id: &str) -> Result<Vec<Deployment>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM deployments d JOIN models m ON m.id = d.model_id
                 WHERE d.org_id = ?1 ORDER BY m.name"
            ),
            params![org_id],
        )
        .await?;
    db::collect(rows, from_row).await
}

/// What a deployment should serve.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub org_id: &'a str,
    pub model_id: &'a str,
    pub version: i64,
    pub follow_alias: Option<&'a str>,
    pub cache_ttl_secs: u32,
    pub traffic: Option<&'a [Variant]>,
    pub shadow: Option<&'a Shadow>,
    pub backend: Backend,
}

/// Creates or replaces the model's deployment as `pending` and records `action` in the
/// history. Returns the new generation. Run inside a transaction.
pub async fn set(
    conn: &Writer,
    target: &Target<'_>,
    action: &str,
    actor: &str,
) -> Result<i64, DbError> {
    let now = db::now();
    let rows = conn
        .query_rows(
            "INSERT INTO deployments (id, org_id, model_id, version, follow_alias, status,
                 generation, updated_by, updated_at, cache_ttl_secs, traffic, shadow, backend)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 1, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (model_id) DO UPDATE SET
                version = excluded.version, follow_alias = excluded.follow_alias,
                cache_ttl_secs = excluded.cache_ttl_secs, traffic = excluded.traffic,
                shadow = excluded.shadow, backend = excluded.backend,
                status = 'pending', failure_code = NULL, failure_message = NULL,
                generation = deployments.generation + 1,
                updated_by = excluded.updated_by, updated_at = excluded.updated_at
             RETURNING generation",
            params![
                db::new_id(),
                target.org_id,
                target.model_id,
                target.version,
                target.follow_alias,
                actor,
                now,
                target.cache_ttl_secs,
                to_json(target.traffic)?,
                to_json(target.shadow)?,
                target.backend.as_str()
            ],
        )
        .await?;
    let generation = db::first_row(rows)
        .await?
        .ok_or_else(|| DbError::Corrupt("upsert returned no generation".into()))?
        .get(0)?;
    record(
        conn,
        target.org_id,
        target.model_id,
        action,
        Some(target.version),
        target.follow_alias,
        actor,
        now,
    )
    .await?;
    Ok(generation)
}

/// Records the outcome of a warm-up, if the deployment is still at `generation`.
/// Returns whether it was.
pub async fn settle(
    conn: &Writer,
    model_id: &str,
    generation: i64,
    outcome: Result<(), Failure>,
) -> Result<bool, DbError> {
    let (status, failure) = match outcome {
        Ok(()) => (Status::Ready, None),
        Err(failure) => (Status::Failed, Some(failure)),
    };
    let changed = conn
        .execute(
            "UPDATE deployments SET status = ?3, failure_code = ?4, failure_message = ?5
             WHERE model_id = ?1 AND generation = ?2",
            params![
                model_id,
                generation,
                status.as_str(),
                failure.as_ref().map(|f| f.code.as_str()),
                failure.as_ref().map(|f| f.message.as_str())
            ],
        )
        .await?;
    Ok(changed > 0)
}

/// Removes the model's deployment and records it. Returns whether there was one.
pub async fn remove(
    conn: &Writer,
    org_id: &str,
    model_id: &str,
    actor: &str,
) -> Result<bool, DbError> {
    let removed = conn
        .execute(
            "DELETE FROM deployments WHERE model_id = ?1",
            params![model_id],
        )
        .await?;
    if removed > 0 {
        record(
            conn,
            org_id,
            model_id,
            "undeployed",
            None,
            None,
            actor,
            db::now(),
        )
        .await?;
    }
    Ok(removed > 0)
}

#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &Writer,
    org_id: &str,
    model_id: &str,
    action: &str,
    version: Option<i64>,
    follow_alias: Option<&str>,
    actor: &str,
    at: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO deployment_history (org_id, model_id, action, version, follow_alias, actor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![org_id, model_id, action, version, follow_alias, actor, at],
    )
    .await?;
    Ok(())
}

/// The model's deployment history, newest first.
pub async fn history(conn: &Reader, model_id: &str) -> Result<Vec<HistoryEntry>, DbError> {
    let rows = conn
        .query(
            "SELECT action, version, follow_alias, actor, at FROM deployment_history
             WHERE model_id = ?1 ORDER BY id DESC",
            params![model_id],
        )
        .await?;
    db::collect(rows, |row| {
        Ok(HistoryEntry {
            action: row.get(0)?,
            version: row.get(1)?,
            follow_alias: row.get(2)?,
            actor: row.get(3)?,
            at: db::rfc3339(row.get(4)?),
        })
    })
    .await
}

/// The version served before the current one: the most recent version in the history
/// that differs from `current`.
pub async fn previous_version(
    conn: &Reader,
    model_id: &str,
    current: i64,
) -> Result<Option<i64>, DbError> {
    let rows = conn
        .query(
            "SELECT version FROM deployment_history
             WHERE model_id = ?1 AND version IS NOT NULL AND version != ?2
             ORDER BY id DESC LIMIT 1",
            params![model_id, current],
        )
        .await?;
    match db::first_row(rows).await? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

// --- Traffic splits and shadows ---------------------------------------------------

/// One weighted variant of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub version: i64,
    /// Share of calls, in percent; the variants' weights add up to 100.
    pub weight: u32,
}

/// A version that receives a copy of some calls; its answers are discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    pub version: i64,
    /// Share of calls mirrored, in percent (1–100).
    pub percent: u32,
}

/// Why a traffic split is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("traffic needs at least one variant")]
    Empty,
    #[error("variant weights must be 1-100 and add up to 100 (they add up to {0})")]
    Weights(u32),
    #[error("version {0} appears twice in the traffic split")]
    Duplicate(i64),
    #[error("the shadow percent must be 1-100")]
    ShadowPercent,
}

/// Checks a split; returns its primary version (the heaviest, the lowest version on a tie).
pub fn validate(traffic: &[Variant], shadow: Option<&Shadow>) -> Result<i64, SplitError> {
    if traffic.is_empty() {
        return Err(SplitError::Empty);
    }
    let total: u32 = traffic.iter().map(|v| v.weight).sum();
    if total != 100 || traffic.iter().any(|v| v.weight == 0 || v.weight > 100) {
        return Err(SplitError::Weights(total));
    }
    for (i, variant) in traffic.iter().enumerate() {
        if traffic[..i].iter().any(|v| v.version == variant.version) {
            return Err(SplitError::Duplicate(variant.version));
        }
    }
    if shadow.is_some_and(|s| s.percent == 0 || s.percent > 100) {
        return Err(SplitError::ShadowPercent);
    }
    let primary = traffic
        .iter()
        .max_by(|a, b| a.weight.cmp(&b.weight).then(b.version.cmp(&a.version)))
        .expect("not empty");
    Ok(primary.version)
}
