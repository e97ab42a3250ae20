//! Experiments and runs: params (write-once), metrics (history and latest), tags, inputs
//! and outputs, and run search compiled to SQL.

use std::collections::{BTreeMap, HashMap};

use crate::db::{Reader, Writer};
use libsql::{Value as SqlValue, params};
use serde::{Deserialize, Serialize, Serializer};

use super::filter::{self, Clause, Entity, Op, OrderBy, Value};
use super::{KeyValue, MlflowError, MlflowResult, limits, now_ms, validate_key, validate_length};
use crate::db::{self, DbError};

/// MLflow's lifecycle stages.
pub const ACTIVE: &str = "active";
pub const DELETED: &str = "deleted";

/// Which lifecycle stages a search covers (`ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    /// Parses `ACTIVE_ONLY`, `DELETED_ONLY`, `ALL` (or their numbers).
    pub fn parse(value: Option<&str>) -> MlflowResult<Self> {
        match value {
            None | Some("") | Some("ACTIVE_ONLY") | Some("1") => Ok(Self::ActiveOnly),
            Some("DELETED_ONLY") | Some("2") => Ok(Self::DeletedOnly),
            Some("ALL") | Some("3") => Ok(Self::All),
            Some(other) => Err(MlflowError::invalid(format!("invalid view type {other:?}"))),
        }
    }

    fn admits(self, stage: &str) -> bool {
        match self {
            Self::ActiveOnly => stage == ACTIVE,
            Self::DeletedOnly => stage == DELETED,
            Self::All => true,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::ActiveOnly => "('active')",
            Self::DeletedOnly => "('deleted')",
            Self::All => "('active', 'deleted')",
        }
    }
}

/// Serialises a double as protobuf JSON does: non-finite values as strings.
pub fn proto_double<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value.is_infinite() {
        serializer.serialize_str(if *value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        serializer.serialize_f64(*value)
    }
}

/// An experiment on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub last_update_time: i64,
    pub creation_time: i64,
    pub tags: Vec<KeyValue>,
}

/// A metric value on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    #[serde(serialize_with = "proto_double")]
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// `RunInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

/// `RunData`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunData {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

/// `RunInputs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInputs {
    pub dataset_inputs: Vec<serde_json::Value>,
    pub model_inputs: Vec<serde_json::Value>,
}

/// `RunOutputs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunOutputs {
    pub model_outputs: Vec<serde_json::Value>,
}

/// A run on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: RunOutputs,
}

/// The tag that carries a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// MLflow's run statuses.
pub const RUN_STATUSES: &[&str] = &["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

/// Parses an experiment id; anything that is not one of ours does not exist.
pub fn parse_experiment_id(id: &str) -> MlflowResult<i64> {
    id.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| MlflowError::not_found(format!("No Experiment with id={id} exists")))
}

// ---------------------------------------------------------------------------------------
// Experiments

/// Creates the organisation's `Default` experiment (id 0) if it is missing.
pub async fn ensure_default_experiment(conn: &Writer, org_id: &str) -> MlflowResult<()> {
    let now = now_ms();
    conn.execute(
        "INSERT OR IGNORE INTO mlflow_experiments
            (org_id, experiment_id, name, artifact_location, creation_time, last_update_time)
         VALUES (?1, 0, 'Default', 'mlflow-artifacts:/0', ?2, ?2)",
        params![org_id, now],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Creates an experiment; returns its id.
pub async fn create_experiment(
    conn: &Writer,
    org_id: &str,
    name: &str,
    artifact_location: Option<&str>,
    tags: &[KeyValue],
) -> MlflowResult<String> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid("Invalid experiment name: ''"));
    }
    validate_length("Experiment name", name, limits::EXPERIMENT_NAME)?;
    ensure_default_experiment(conn, org_id).await?;
    if find_experiment_by_name(conn, org_id, name).await?.is_some() {
        return Err(MlflowError::exists(format!(
            "Experiment(name={name}) already exists."
        )));
    }
    let rows = conn
        .query(
            "SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM mlflow_experiments WHERE org_id = ?1",
            params![org_id],
        )
        .await
        .map_err(DbError::from)?;
    let id: i64 = db::first_row(rows)
        .await?
        .ok_or_else(|| corrupt("no next id"))?
        .get(0)
        .map_err(DbError::from)?;
    // Artifacts always go through wisp's object store: a client-chosen location would
    // point outside it, so only `mlflow-artifacts:` locations are kept.
    let location = artifact_location
        .filter(|l| l.starts_with("mlflow-artifacts:"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("mlflow-artifacts:/{id}"));
    let now = now_ms();
    conn.execute(
        "INSERT INTO mlflow_experiments
            (org_id, experiment_id, name, artifact_location, creation_time, last_update_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![org_id, id, name, location, now],
    )
    .await
    .map_err(DbError::from)?;
    for tag in tags {
        set_experiment_tag(conn, org_id, id, &tag.key, &tag.value).await?;
    }
    Ok(id.to_string())
}

const EXPERIMENT_COLUMNS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, last_update_time, creation_time";

async fn experiment_tags(conn: &Reader, org_id: &str) -> MlflowResult<HashMap<i64, Vec<KeyValue>>> {
    let rows = conn
        .query(
            "SELECT experiment_id, key, value FROM mlflow_experiment_tags WHERE org_id = ?1 ORDER BY key",
            params![org_id],
        )
        .await
        .map_err(DbError::from)?;
    let mut out: HashMap<i64, Vec<KeyValue>> = HashMap::new();
    for (id, key, value) in db::collect(rows, |row| {
        Ok((
            row.get::<i64>(0)?,
            row.get::<String>(1)?,
            row.get::<String>(2)?,
        ))
    })
    .await?
    {
        out.entry(id).or_default().push(KeyValue { key, value });
    }
    Ok(out)
}

async fn query_experiments(
    conn: &Reader,
    org_id: &str,
    condition: &str,
    value: SqlValue,
) -> MlflowResult<Vec<Experiment>> {
    let rows = conn
        .query(
            &format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM mlflow_experiments WHERE org_id = ?1 AND {condition}"
            ),
            vec![SqlValue::from(org_id.to_owned()), value],
        )
        .await
        .map_err(DbError::from)?;
    let mut experiments = db::collect(rows, |row| {
        Ok(Experiment {
            experiment_id: row.get::<i64>(0)?.to_string(),
            name: row.get(1)?,
            artifact_location: row.get(2)?,
            lifecycle_stage: row.get(3)?,
            last_update_time: row.get(4)?,
            creation_time: row.get(5)?,
            tags: Vec::new(),
        })
    })
    .await?;
    if !experiments.is_empty() {
        let mut tags = experiment_tags(conn, org_id).await?;
        for experiment in &mut experiments {
            let id: i64 = experiment.experiment_id.parse().unwrap_or(-1);
            experiment.tags = tags.remove(&id).unwrap_or_default();
        }
    }
    Ok(experiments)
}

/// An experiment by id (any lifecycle stage).
pub async fn get_experiment(conn: &Writer, org_id: &str, id: &str) -> MlflowResult<Experiment> {
    let number = parse_experiment_id(id)?;
    if number == 0 {
        ensure_default_experiment(conn, org_id).await?;
    }
    query_experiments(conn, org_id, "experiment_id = ?2", SqlValue::from(number))
        .await?
        .pop()
        .ok_or_else(|| MlflowError::not_found(format!("No Experiment with id={id} exists")))
}

/// An experiment by name, if it exists (any lifecycle stage).
pub async fn find_experiment_by_name(
    conn: &Reader,
    org_id: &str,
    name: &str,
) -> MlflowResult<Option<Experiment>> {
    Ok(
        query_experiments(conn, org_id, "name = ?2", SqlValue::from(name.to_owned()))
            .await?
            .pop(),
    )
}

/// Experiments matching a search, sorted (one page is cut by the caller).
pub async fn search_experiments(
    conn: &Writer,
    org_id: &str,
    view: ViewType,
    filter: &str,
    order_by: &[String],
) -> MlflowResult<Vec<Experiment>> {
    ensure_default_experiment(conn, org_id).await?;
    let clauses = filter::parse_filter(filter)?;
    for clause in &clauses {
        match (clause.entity, clause.key.as_str()) {
            (Entity::Tag, _) => {}
            (
                Entity::Attribute,
                "name" | "creation_time" | "last_update_time" | "experiment_id",
            ) => {}
            _ => {
                return Err(MlflowError::invalid(format!(
                    "Invalid attribute key '{}' in experiment search; use name, creation_time, last_update_time or tags.<key>",
                    clause.key
                )));
            }
        }
    }
    let orders = filter::parse_order_bys(order_by)?;
    for order in &orders {
        if order.entity != Entity::Attribute
            || !matches!(
                order.key.as_str(),
                "name" | "experiment_id" | "creation_time" | "last_update_time"
            )
        {
            return Err(MlflowError::invalid(format!(
                "Invalid order_by key '{}' for experiments",
                order.key
            )));
        }
    }
    let all = query_experiments(conn, org_id, "1 = ?2", SqlValue::from(1)).await?;
    let mut matching = Vec::new();
    for experiment in all {
        if !view.admits(&experiment.lifecycle_stage) {
            continue;
        }
        let tags: BTreeMap<&str, &str> = experiment
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        let id: i64 = experiment.experiment_id.parse().unwrap_or(-1);
        let field = |clause: &Clause| -> Option<Field> {
            match (clause.entity, clause.key.as_str()) {
                (Entity::Tag, key) => tags.get(key).map(|v| Field::Text(v.to_string())),
                (_, "name") => Some(Field::Text(experiment.name.clone())),
                (_, "creation_time") => Some(Field::Number(experiment.creation_time as f64)),
                (_, "last_update_time") => Some(Field::Number(experiment.last_update_time as f64)),
                (_, "experiment_id") => Some(Field::Text(experiment.experiment_id.clone())),
                _ => None,
            }
        };
        if evaluate_all(&clauses, field)? {
            matching.push((id, experiment));
        }
    }
    matching.sort_by(|(ida, a), (idb, b)| {
        for order in &orders {
            let ordering = match order.key.as_str() {
                "name" => a.name.cmp(&b.name),
                "experiment_id" => ida.cmp(idb),
                "creation_time" => a.creation_time.cmp(&b.creation_time),
                _ => a.last_update_time.cmp(&b.last_update_time),
            };
            let ordering = if order.ascending {
                ordering
            } else {
                ordering.reverse()
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        if orders.is_empty() {
            // MLflow's default: newest first, then by id.
            b.creation_time
                .cmp(&a.creation_time)
                .then_with(|| ida.cmp(idb))
        } else {
            ida.cmp(idb)
        }
    });
    Ok(matching.into_iter().map(|(_, e)| e).collect())
}

/// Renames an experiment.
pub async fn rename_experiment(
    conn: &Writer,
    org_id: &str,
    id: &str,
    new_name: &str,
) -> MlflowResult<()> {
    let experiment = get_experiment(conn, org_id, id).await?;
    if experiment.lifecycle_stage != ACTIVE {
        return Err(MlflowError::invalid(
            "Cannot rename a non-active experiment.",
        ));
    }
    if new_name.trim().is_empty() {
        return Err(MlflowError::invalid("Invalid experiment name: ''"));
    }
    validate_length("Experiment name", new_name, limits::EXPERIMENT_NAME)?;
    if let Some(other) = find_experiment_by_name(conn, org_id, new_name).await?
        && other.experiment_id != experiment.experiment_id
    {
        return Err(MlflowError::exists(format!(
            "Experiment(name={new_name}) already exists."
        )));
    }
    conn.execute(
        "UPDATE mlflow_experiments SET name = ?3, last_update_time = ?4
         WHERE org_id = ?1 AND experiment_id = ?2",
        params![org_id, parse_experiment_id(id)?, new_name, now_ms()],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Moves an experiment and its runs to `stage` (`deleted` or `active`).
pub async fn set_experiment_stage(
    conn: &Writer,
    org_id: &str,
    id: &str,
    stage: &str,
) -> MlflowResult<()> {
    let experiment = get_experiment(conn, org_id, id).await?;
    let number = parse_experiment_id(id)?;
    if stage == DELETED && number == 0 {
        return Err(MlflowError::invalid(
            "Cannot delete the default experiment '0'.",
        ));
    }
    if stage == ACTIVE && experiment.lifecycle_stage == ACTIVE {
        return Err(MlflowError::invalid(format!(
            "Cannot restore an active experiment {id}"
        )));
    }
    let now = now_ms();
    conn.execute(
        "UPDATE mlflow_experiments SET lifecycle_stage = ?3, last_update_time = ?4
         WHERE org_id = ?1 AND experiment_id = ?2",
        params![org_id, number, stage, now],
    )
    .await
    .map_err(DbError::from)?;
    let deleted_time = (stage == DELETED).then_some(now);
    conn.execute(
        "UPDATE mlflow_runs SET lifecycle_stage = ?3, deleted_time = ?4
         WHERE org_id = ?1 AND experiment_id = ?2",
        params![org_id, number, stage, deleted_time],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Sets a tag of an experiment (checked to exist and be active by the caller).
pub async fn set_experiment_tag(
    conn: &Writer,
    org_id: &str,
    experiment_id: i64,
    key: &str,
    value: &str,
) -> MlflowResult<()> {
    validate_key("tag", key)?;
    validate_length(
        &format!("Tag value for '{key}'"),
        value,
        limits::EXPERIMENT_TAG_VALUE,
    )?;
    conn.execute(
        "INSERT INTO mlflow_experiment_tags (org_id, experiment_id, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (org_id, experiment_id, key) DO UPDATE SET value = excluded.value",
        params![org_id, experiment_id, key, value],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Deletes a tag of an experiment.
pub async fn delete_experiment_tag(
    conn: &Writer,
    org_id: &str,
    experiment_id: i64,
    key: &str,
) -> MlflowResult<()> {
    let deleted = conn
        .execute(
            "DELETE FROM mlflow_experiment_tags WHERE org_id = ?1 AND experiment_id = ?2 AND key = ?3",
            params![org_id, experiment_id, key],
        )
        .await
        .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(MlflowError::not_found(format!(
            "No tag with name: {key} in experiment {experiment_id}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Runs

/// What a new run starts with.
#[derive(Debug, Default)]
pub struct NewRun<'a> {
    pub experiment_id: &'a str,
    pub user_id: &'a str,
    pub run_name: Option<&'a str>,
    pub start_time: Option<i64>,
    pub tags: &'a [KeyValue],
}

/// A readable name for a run that was given none, as MLflow makes (`adjective-noun-123`).
fn generated_run_name() -> String {
    const ADJECTIVES: &[&str] = &[
        "amber", "brisk", "calm", "dapper", "eager", "fleet", "gentle", "hazy", "keen", "lucid",
        "mellow", "nimble", "placid", "quiet", "rustic", "sunny", "tidy", "vivid", "wise",
    ];
    const NOUNS: &[&str] = &[
        "badger", "crane", "dove", "finch", "gull", "heron", "ibis", "lark", "moth", "newt",
        "otter", "panda", "quail", "robin", "snail", "trout", "wren", "yak",
    ];
    use rand::Rng;
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}-{}",
        ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())],
        NOUNS[rng.gen_range(0..NOUNS.len())],
        rng.gen_range(0..1000)
    )
}

/// Creates a run in an active experiment.
pub async fn create_run(conn: &Writer, org_id: &str, new: &NewRun<'_>) -> MlflowResult<Run> {
    let experiment = get_experiment(conn, org_id, new.experiment_id).await?;
    if experiment.lifecycle_stage != ACTIVE {
        return Err(MlflowError::invalid(format!(
            "The experiment {} must be in the 'active' state. Current state is {}.",
            experiment.experiment_id, experiment.lifecycle_stage
        )));
    }
    // Checked before anything is written: the run row would otherwise carry the name.
    if let Some(name) = new.run_name {
        validate_length("Run name", name, limits::TAG_VALUE)?;
    }
    for tag in new.tags {
        validate_key("tag", &tag.key)?;
        validate_length(
            &format!("Tag value for '{}'", tag.key),
            &tag.value,
            limits::TAG_VALUE,
        )?;
    }
    let tag_name = new
        .tags
        .iter()
        .find(|t| t.key == RUN_NAME_TAG)
        .map(|t| t.value.clone());
    if let (Some(name), Some(tag)) = (new.run_name, tag_name.as_deref())
        && !name.is_empty()
        && name != tag
    {
        return Err(MlflowError::invalid(format!(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{name}', mlflow.runName='{tag}')."
        )));
    }
    let name = new
        .run_name
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or(tag_name)
        .unwrap_or_else(generated_run_name);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let artifact_uri = format!(
        "{}/{run_id}/artifacts",
        experiment.artifact_location.trim_end_matches('/')
    );
    conn.execute(
        "INSERT INTO mlflow_runs (run_uuid, org_id, experiment_id, name, user_id, status, start_time, artifact_uri)
         VALUES (?1, ?2, ?3, ?4, ?5, 'RUNNING', ?6, ?7)",
        params![
            run_id.as_str(),
            org_id,
            parse_experiment_id(new.experiment_id)?,
            name.as_str(),
            new.user_id,
            new.start_time.unwrap_or_else(now_ms),
            artifact_uri
        ],
    )
    .await
    .map_err(DbError::from)?;
    for tag in new.tags.iter().filter(|t| t.key != RUN_NAME_TAG) {
        validate_key("tag", &tag.key)?;
        upsert_tag(conn, &run_id, &tag.key, &tag.value).await?;
    }
    upsert_tag(conn, &run_id, RUN_NAME_TAG, &name).await?;
    get_run(conn, org_id, &run_id).await
}

async fn upsert_tag(conn: &Writer, run_id: &str, key: &str, value: &str) -> MlflowResult<()> {
    conn.execute(
        "INSERT INTO mlflow_tags (run_uuid, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
        params![run_id, key, value],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

const RUN_COLUMNS: &str = "r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time,
    r.end_time, r.artifact_uri, r.lifecycle_stage, r.dataset_inputs, r.model_inputs, r.model_outputs";

fn run_from_row(row: &libsql::Row) -> Result<Run, DbError> {
    let run_id: String = row.get(0)?;
    let json = |i| -> Result<Vec<serde_json::Value>, DbError> {
        serde_json::from_str(&row.get::<String>(i)?).map_err(corrupt)
    };
    Ok(Run {
        info: RunInfo {
            run_uuid: run_id.clone(),
            run_id,
            run_name: row.get(1)?,
            experiment_id: row.get::<i64>(2)?.to_string(),
            user_id: row.get(3)?,
            status: row.get(4)?,
            start_time: row.get(5)?,
            end_time: row.get(6)?,
            artifact_uri: row.get(7)?,
            lifecycle_stage: row.get(8)?,
        },
        data: RunData::default(),
        inputs: RunInputs {
            dataset_inputs: json(9)?,
            model_inputs: json(10)?,
        },
        outputs: RunOutputs {
            model_outputs: json(11)?,
        },
    })
}

/// Fills in the params, tags and latest metrics of `runs` (three queries in all).
async fn load_run_data(conn: &Reader, runs: &mut [Run]) -> MlflowResult<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, run) in runs.iter().enumerate() {
        index.insert(run.info.run_id.clone(), i);
    }
    let ids: Vec<SqlValue> = runs
        .iter()
        .map(|r| SqlValue::from(r.info.run_id.clone()))
        .collect();
    // Anonymous placeholders: sqld looks numbered ones up by name, one walk of the
    // parameter list each (see the usage events' insert).
    let placeholders = vec!["?"; ids.len()].join(", ");
    for table in ["mlflow_params", "mlflow_tags"] {
        let rows = conn
            .query(
                &format!(
                    "SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({placeholders}) ORDER BY key"
                ),
                ids.clone(),
            )
            .await
            .map_err(DbError::from)?;
        for (run_id, key, value) in db::collect(rows, |row| {
            Ok((
                row.get::<String>(0)?,
                row.get::<String>(1)?,
                row.get::<String>(2)?,
            ))
        })
        .await?
        {
            if let Some(&i) = index.get(&run_id) {
                let target = if table == "mlflow_params" {
                    &mut runs[i].data.params
                } else {
                    &mut runs[i].data.tags
                };
                target.push(KeyValue { key, value });
            }
        }
    }
    let rows = conn
        .query(
            &format!(
                "SELECT run_uuid, key, value, is_nan, timestamp, step FROM mlflow_latest_metrics
                 WHERE run_uuid IN ({placeholders}) ORDER BY key"
            ),
            ids,
        )
        .await
        .map_err(DbError::from)?;
    for (run_id, metric) in db::collect(rows, |row| {
        Ok((
            row.get::<String>(0)?,
            Metric {
                key: row.get(1)?,
                value: metric_value(row.get(2)?, row.get(3)?),
                timestamp: row.get(4)?,
                step: row.get(5)?,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
                run_id: None,
            },
        ))
    })
    .await?
    {
        if let Some(&i) = index.get(&run_id) {
            runs[i].data.metrics.push(metric);
        }
    }
    Ok(())
}

fn metric_value(value: f64, is_nan: i64) -> f64 {
    if is_nan != 0 { f64::NAN } else { value }
}

/// A run with its data (any lifecycle stage).
pub async fn get_run(conn: &Reader, org_id: &str, run_id: &str) -> MlflowResult<Run> {
    let rows = conn
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM mlflow_runs r WHERE r.org_id = ?1 AND r.run_uuid = ?2"
            ),
            params![org_id, run_id],
        )
        .await
        .map_err(DbError::from)?;
    let mut run = match db::first_row(rows).await? {
        Some(row) => run_from_row(&row)?,
        None => {
            return Err(MlflowError::not_found(format!(
                "Run with id={run_id} not found"
            )));
        }
    };
    load_run_data(conn, std::slice::from_mut(&mut run)).await?;
    Ok(run)
}

/// Checks that a run exists in the organisation and is active (writable).
pub async fn check_active_run(conn: &Reader, org_id: &str, run_id: &str) -> MlflowResult<()> {
    let rows = conn
        .query(
            "SELECT lifecycle_stage FROM mlflow_runs WHERE org_id = ?1 AND run_uuid = ?2",
            params![org_id, run_id],
        )
        .await
        .map_err(DbError::from)?;
    match db::first_row(rows).await? {
        None => Err(MlflowError::not_found(format!(
            "Run with id={run_id} not found"
        ))),
        Some(row) => {
            let stage: String = row.get(0).map_err(DbError::from)?;
            if stage == ACTIVE {
                Ok(())
            } else {
                Err(MlflowError::invalid(format!(
                    "The run {run_id} must be in the 'active' state. Current state is {stage}."
                )))
            }
        }
    }
}

/// Changes a run's status, end time or name.
pub async fn update_run(
    conn: &Writer,
    org_id: &str,
    run_id: &str,
    status: Option<&str>,
    end_time: Option<i64>,
    run_name: Option<&str>,
) -> MlflowResult<RunInfo> {
    check_active_run(conn, org_id, run_id).await?;
    if let Some(status) = status
        && !RUN_STATUSES.contains(&status)
    {
        return Err(MlflowError::invalid(format!(
            "invalid run status {status:?}"
        )));
    }
    let run_name = run_name.filter(|n| !n.is_empty());
    if let Some(name) = run_name {
        validate_length("Run name", name, limits::TAG_VALUE)?;
    }
    conn.execute(
        "UPDATE mlflow_runs SET status = COALESCE(?3, status), end_time = COALESCE(?4, end_time),
            name = COALESCE(?5, name)
         WHERE org_id = ?1 AND run_uuid = ?2",
        params![org_id, run_id, status, end_time, run_name],
    )
    .await
    .map_err(DbError::from)?;
    if let Some(name) = run_name {
        upsert_tag(conn, run_id, RUN_NAME_TAG, name).await?;
    }
    Ok(get_run(conn, org_id, run_id).await?.info)
}

/// Deletes (`deleted`) or restores (`active`) a run.
pub async fn set_run_stage(
    conn: &Writer,
    org_id: &str,
    run_id: &str,
    stage: &str,
) -> MlflowResult<()> {
    get_run(conn, org_id, run_id).await?;
    let deleted_time = (stage == DELETED).then(now_ms);
    conn.execute(
        "UPDATE mlflow_runs SET lifecycle_stage = ?3, deleted_time = ?4 WHERE org_id = ?1 AND run_uuid = ?2",
        params![org_id, run_id, stage, deleted_time],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// MLflow's limits on one `log-batch` call.
pub const MAX_BATCH_METRICS: usize = 1000;
pub const MAX_BATCH_PARAMS: usize = 100;
pub const MAX_BATCH_TAGS: usize = 100;
pub const MAX_BATCH_TOTAL: usize = 1000;
const MAX_PARAM_VALUE: usize = limits::PARAM_VALUE;
const MAX_TAG_VALUE: usize = limits::TAG_VALUE;

/// Params, metrics and tags logged to a run at once (`log-batch`, and the single ones).
#[derive(Debug, Default)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

impl Batch {
    /// Checks MLflow's limits and the keys and values, before anything is written.
    pub fn validate(&self) -> MlflowResult<()> {
        let too_many = |what: &str, n: usize, max: usize| {
            MlflowError::invalid(format!(
                "A batch logging request can contain at most {max} {what}. Got {n} {what}. Please split up {what} across multiple requests and try again."
            ))
        };
        if self.metrics.len() > MAX_BATCH_METRICS {
            return Err(too_many("metrics", self.metrics.len(), MAX_BATCH_METRICS));
        }
        if self.params.len() > MAX_BATCH_PARAMS {
            return Err(too_many("params", self.params.len(), MAX_BATCH_PARAMS));
        }
        if self.tags.len() > MAX_BATCH_TAGS {
            return Err(too_many("tags", self.tags.len(), MAX_BATCH_TAGS));
        }
        let total = self.metrics.len() + self.params.len() + self.tags.len();
        if total > MAX_BATCH_TOTAL {
            return Err(too_many("entities", total, MAX_BATCH_TOTAL));
        }
        for metric in &self.metrics {
            validate_key("metric", &metric.key)?;
        }
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for param in &self.params {
            validate_key("parameter", &param.key)?;
            if param.value.chars().count() > MAX_PARAM_VALUE {
                return Err(MlflowError::invalid(format!(
                    "Param value for '{}' exceeds the maximum length of {MAX_PARAM_VALUE} characters",
                    param.key
                )));
            }
            if let Some(previous) = seen.insert(&param.key, &param.value)
                && previous != param.value
            {
                return Err(MlflowError::invalid(format!(
                    "Duplicate parameter keys with different values in one batch: '{}'",
                    param.key
                )));
            }
        }
        for tag in &self.tags {
            validate_key("tag", &tag.key)?;
            if tag.value.chars().count() > MAX_TAG_VALUE {
                return Err(MlflowError::invalid(format!(
                    "Tag value for '{}' exceeds the maximum length of {MAX_TAG_VALUE} characters",
                    tag.key
                )));
            }
        }
        Ok(())
    }
}

/// Writes a validated batch to an active run. Params are write-once: logging the same
/// value again is accepted, a different one is `INVALID_PARAMETER_VALUE` and nothing of
/// the batch is written (the caller's transaction rolls back).
pub async fn log_batch(
    conn: &Writer,
    org_id: &str,
    run_id: &str,
    batch: &Batch,
) -> MlflowResult<()> {
    check_active_run(conn, org_id, run_id).await?;
    if !batch.params.is_empty() {
        let existing = run_params(conn, run_id).await?;
        for param in &batch.params {
            match existing.get(&param.key) {
                Some(old) if *old != param.value => {
                    return Err(MlflowError::invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                        param.key, old, param.value
                    )));
                }
                Some(_) => {}
                None => {
                    conn.execute(
                        "INSERT OR IGNORE INTO mlflow_params (run_uuid, key, value) VALUES (?1, ?2, ?3)",
                        params![run_id, param.key.as_str(), param.value.as_str()],
                    )
                    .await
                    .map_err(DbError::from)?;
                }
            }
        }
    }
    if !batch.metrics.is_empty() {
        insert_metrics(conn, run_id, &batch.metrics).await?;
    }
    for tag in &batch.tags {
        upsert_tag(conn, run_id, &tag.key, &tag.value).await?;
        if tag.key == RUN_NAME_TAG {
            conn.execute(
                "UPDATE mlflow_runs SET name = ?2 WHERE run_uuid = ?1",
                params![run_id, tag.value.as_str()],
            )
            .await
            .map_err(DbError::from)?;
        }
    }
    Ok(())
}

async fn run_params(conn: &Reader, run_id: &str) -> MlflowResult<HashMap<String, String>> {
    let rows = conn
        .query(
            "SELECT key, value FROM mlflow_params WHERE run_uuid = ?1",
            params![run_id],
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::collect(rows, |row| Ok((row.get(0)?, row.get(1)?)))
        .await?
        .into_iter()
        .collect())
}

/// Appends metric values (multi-row statements, so a 1,000-metric batch is a handful of
/// statements) and moves each key's latest value forward.
async fn insert_metrics(conn: &Writer, run_id: &str, metrics: &[Metric]) -> MlflowResult<()> {
    const CHUNK: usize = 100;
    for chunk in metrics.chunks(CHUNK) {
        let mut history = String::from(
            "INSERT OR IGNORE INTO mlflow_metrics
                (run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest) VALUES ",
        );
        let mut latest = String::from(
            "INSERT INTO mlflow_latest_metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES ",
        );
        let mut history_values: Vec<SqlValue> = Vec::with_capacity(chunk.len() * 9);
        let mut latest_values: Vec<SqlValue> = Vec::with_capacity(chunk.len() * 6);
        // One latest row per key and statement: the upsert cannot touch a row twice.
        let mut latest_by_key: Vec<&Metric> = Vec::new();
        for metric in chunk {
            match latest_by_key.iter_mut().find(|m| m.key == metric.key) {
                Some(slot) => {
                    if metric_order(metric) > metric_order(slot) {
                        *slot = metric;
                    }
                }
                None => latest_by_key.push(metric),
            }
        }
        for (i, metric) in chunk.iter().enumerate() {
            if i > 0 {
                history.push_str(", ");
            }
            // Anonymous placeholders: sqld looks numbered ones up by name, one walk of
            // the statement's parameters each.
            history.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?)");
            let (value, is_nan) = stored_value(metric.value);
            history_values.extend([
                SqlValue::from(run_id.to_owned()),
                SqlValue::from(metric.key.clone()),
                SqlValue::Real(value),
                SqlValue::Integer(is_nan),
                SqlValue::Integer(metric.timestamp),
                SqlValue::Integer(metric.step),
                opt_text(&metric.model_id),
                opt_text(&metric.dataset_name),
                opt_text(&metric.dataset_digest),
            ]);
        }
        for (i, metric) in latest_by_key.iter().enumerate() {
            if i > 0 {
                latest.push_str(", ");
            }
            latest.push_str("(?, ?, ?, ?, ?, ?)");
            let (value, is_nan) = stored_value(metric.value);
            latest_values.extend([
                SqlValue::from(run_id.to_owned()),
                SqlValue::from(metric.key.clone()),
                SqlValue::Real(value),
                SqlValue::Integer(is_nan),
                SqlValue::Integer(metric.timestamp),
                SqlValue::Integer(metric.step),
            ]);
        }
        latest.push_str(
            " ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,
                timestamp = excluded.timestamp, step = excluded.step
              WHERE (excluded.step, excluded.timestamp, excluded.value) > (step, timestamp, value)",
        );
        conn.execute(&history, history_values)
            .await
            .map_err(DbError::from)?;
        conn.execute(&latest, latest_values)
            .await
            .map_err(DbError::from)?;
    }
    Ok(())
}

fn metric_order(metric: &Metric) -> (i64, i64, f64) {
    (metric.step, metric.timestamp, stored_value(metric.value).0)
}

/// SQLite has no NaN (it becomes NULL): store 0 with a flag instead.
fn stored_value(value: f64) -> (f64, i64) {
    if value.is_nan() { (0.0, 1) } else { (value, 0) }
}

fn opt_text(value: &Option<String>) -> SqlValue {
    match value {
        Some(v) => SqlValue::from(v.clone()),
        None => SqlValue::Null,
    }
}

/// Sets a run tag.
pub async fn set_tag(
    conn: &Writer,
    org_id: &str,
    run_id: &str,
    key: &str,
    value: &str,
) -> MlflowResult<()> {
    let batch = Batch {
        tags: vec![KeyValue {
            key: key.to_owned(),
            value: value.to_owned(),
        }],
        ..Batch::default()
    };
    batch.validate()?;
    log_batch(conn, org_id, run_id, &batch).await
}

/// Deletes a run tag.
pub async fn delete_tag(conn: &Writer, org_id: &str, run_id: &str, key: &str) -> MlflowResult<()> {
    check_active_run(conn, org_id, run_id).await?;
    let deleted = conn
        .execute(
            "DELETE FROM mlflow_tags WHERE run_uuid = ?1 AND key = ?2",
            params![run_id, key],
        )
        .await
        .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(MlflowError::not_found(format!(
            "No tag with name: {key} in run with id {run_id}"
        )));
    }
    Ok(())
}

/// Appends dataset and model inputs to a run.
pub async fn log_inputs(
    conn: &Writer,
    org_id: &str,
    run_id: &str,
    datasets: &[serde_json::Value],
    models: &[serde_json::Value],
) -> MlflowResult<()> {
    check_active_run(conn, org_id, run_id).await?;
    append_json(conn, run_id, "dataset_inputs", datasets).await?;
    append_json(conn, run_id, "model_inputs", models).await
}

/// Appends model outputs to a run.
pub async fn log_outputs(
    conn: &Writer,
    org_id: &str,
    run_id: &str,
    models: &[serde_json::Value],
) -> MlflowResult<()> {
    check_active_run(conn, org_id, run_id).await?;
    append_json(conn, run_id, "model_outputs", models).await
}

async fn append_json(
    conn: &Writer,
    run_id: &str,
    column: &str,
    items: &[serde_json::Value],
) -> MlflowResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let rows = conn
        .query(
            &format!("SELECT {column} FROM mlflow_runs WHERE run_uuid = ?1"),
            params![run_id],
        )
        .await
        .map_err(DbError::from)?;
    let row = db::first_row(rows)
        .await?
        .ok_or_else(|| MlflowError::not_found(format!("Run with id={run_id} not found")))?;
    let mut current: Vec<serde_json::Value> =
        serde_json::from_str(&row.get::<String>(0).map_err(DbError::from)?).map_err(corrupt)?;
    for item in items {
        if !current.contains(item) {
            current.push(item.clone());
        }
    }
    conn.execute(
        &format!("UPDATE mlflow_runs SET {column} = ?2 WHERE run_uuid = ?1"),
        params![run_id, serde_json::to_string(&current).map_err(corrupt)?],
    )
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// A metric's history, ordered by step then timestamp, from `offset`, at most `max` plus
/// one (to know whether another page follows).
pub async fn metric_history(
    conn: &Reader,
    org_id: &str,
    run_id: &str,
    key: &str,
    offset: usize,
    max: usize,
) -> MlflowResult<Vec<Metric>> {
    get_run(conn, org_id, run_id).await?;
    let rows = conn
        .query(
            "SELECT key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest
             FROM mlflow_metrics WHERE run_uuid = ?1 AND key = ?2
             ORDER BY step, timestamp, value LIMIT ?3 OFFSET ?4",
            params![run_id, key, (max + 1) as i64, offset as i64],
        )
        .await
        .map_err(DbError::from)?;
    Ok(db::collect(rows, |row| {
        Ok(Metric {
            key: row.get(0)?,
            value: metric_value(row.get(1)?, row.get(2)?),
            timestamp: row.get(3)?,
            step: row.get(4)?,
            model_id: row.get(5)?,
            dataset_name: row.get(6)?,
            dataset_digest: row.get(7)?,
            run_id: Some(run_id.to_owned()),
        })
    })
    .await?)
}

// ---------------------------------------------------------------------------------------
// Run search

/// A run attribute as a column, and whether it is numeric.
fn run_attribute(key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "run_id" | "run_uuid" => ("r.run_uuid", false),
        "run_name" | "name" => ("r.name", false),
        "status" => ("r.status", false),
        "user_id" => ("r.user_id", false),
        "artifact_uri" => ("r.artifact_uri", false),
        "lifecycle_stage" => ("r.lifecycle_stage", false),
        "start_time" | "created" | "Created" => ("r.start_time", true),
        "end_time" => ("r.end_time", true),
        _ => return None,
    })
}

/// A condition on `column` for one clause, binding its values into `binds`.
fn compare(
    column: &str,
    clause: &Clause,
    numeric: bool,
    binds: &mut Vec<SqlValue>,
) -> MlflowResult<String> {
    let mut bind = |value: SqlValue| {
        binds.push(value);
        format!("?{}", binds.len())
    };
    let invalid = || {
        MlflowError::invalid(format!(
            "Invalid comparison {:?} for {} '{}'",
            clause.op,
            match clause.entity {
                Entity::Metric => "metric",
                Entity::Param => "parameter",
                Entity::Tag => "tag",
                Entity::Attribute => "attribute",
                Entity::Dataset => "dataset",
            },
            clause.key
        ))
    };
    Ok(match (&clause.value, clause.op, numeric) {
        (Value::Number(n), op, true) if !matches!(op, Op::Like | Op::ILike) => {
            format!("{column} {} {}", op.sql(), bind(SqlValue::Real(*n)))
        }
        (Value::String(s), op, true) if !matches!(op, Op::Like | Op::ILike) => {
            // `attributes.start_time > '123'`: a quoted number is still a number.
            let n: f64 = s.parse().map_err(|_| invalid())?;
            format!("{column} {} {}", op.sql(), bind(SqlValue::Real(n)))
        }
        (Value::String(s), Op::Eq | Op::Ne, false) => {
            format!(
                "{column} {} {}",
                clause.op.sql(),
                bind(SqlValue::from(s.clone()))
            )
        }
        (Value::String(s), Op::Like, false) => {
            format!(
                "{column} GLOB {}",
                bind(SqlValue::from(filter::like_to_glob(s)))
            )
        }
        (Value::String(s), Op::ILike, false) => {
            format!("{column} LIKE {}", bind(SqlValue::from(s.clone())))
        }
        (Value::List(items), Op::In | Op::NotIn, false) => {
            let list = items
                .iter()
                .map(|item| bind(SqlValue::from(item.clone())))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{column} {} ({list})", clause.op.sql())
        }
        _ => return Err(invalid()),
    })
}

fn clause_sql(clause: &Clause, binds: &mut Vec<SqlValue>) -> MlflowResult<String> {
    let exists = |table: &str, column: &str, numeric: bool, binds: &mut Vec<SqlValue>| {
        binds.push(SqlValue::from(clause.key.clone()));
        let key = binds.len();
        let condition = compare(column, clause, numeric, binds)?;
        Ok::<_, MlflowError>(format!(
            "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = ?{key} AND {condition})"
        ))
    };
    match clause.entity {
        Entity::Metric => {
            if !matches!(clause.value, Value::Number(_)) {
                return Err(MlflowError::invalid(format!(
                    "Expected numeric value type for metric '{}'",
                    clause.key
                )));
            }
            exists("mlflow_latest_metrics", "x.value", true, binds)
        }
        Entity::Param => exists("mlflow_params", "x.value", false, binds),
        Entity::Tag => exists("mlflow_tags", "x.value", false, binds),
        Entity::Attribute => {
            let (column, numeric) = run_attribute(&clause.key).ok_or_else(|| {
                MlflowError::invalid(format!(
                    "Invalid attribute key '{}' specified. Valid keys are run_id, run_name, status, user_id, artifact_uri, start_time, end_time",
                    clause.key
                ))
            })?;
            compare(column, clause, numeric, binds)
        }
        Entity::Dataset => {
            let field = match clause.key.as_str() {
                "name" => "$.dataset.name",
                "digest" => "$.dataset.digest",
                _ => {
                    return Err(MlflowError::invalid(format!(
                        "Invalid dataset key '{}': use datasets.name or datasets.digest",
                        clause.key
                    )));
                }
            };
            let condition = compare(
                &format!("json_extract(d.value, '{field}')"),
                clause,
                false,
                binds,
            )?;
            Ok(format!(
                "EXISTS (SELECT 1 FROM json_each(r.dataset_inputs) d WHERE {condition})"
            ))
        }
    }
}

fn order_sql(order: &OrderBy, binds: &mut Vec<SqlValue>) -> MlflowResult<String> {
    let expression = match order.entity {
        Entity::Metric | Entity::Param | Entity::Tag => {
            let table = match order.entity {
                Entity::Metric => "mlflow_latest_metrics",
                Entity::Param => "mlflow_params",
                _ => "mlflow_tags",
            };
            binds.push(SqlValue::from(order.key.clone()));
            format!(
                "(SELECT x.value FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = ?{})",
                binds.len()
            )
        }
        Entity::Attribute => run_attribute(&order.key)
            .ok_or_else(|| {
                MlflowError::invalid(format!("Invalid order_by attribute '{}'", order.key))
            })?
            .0
            .to_owned(),
        Entity::Dataset => {
            return Err(MlflowError::invalid("runs cannot be ordered by datasets"));
        }
    };
    let direction = if order.ascending { "ASC" } else { "DESC" };
    // Runs without the value come last either way, as in MLflow.
    Ok(format!("({expression}) IS NULL, {expression} {direction}"))
}

/// A run search: `search-runs`' fields, with the page resolved to an offset.
#[derive(Debug, Default)]
pub struct RunSearch<'a> {
    pub experiment_ids: &'a [String],
    pub filter: &'a str,
    pub view: ViewType,
    pub order_by: &'a [String],
    pub offset: usize,
    pub max: usize,
}

/// One page of runs matching a search, and whether more follow.
pub async fn search_runs(
    conn: &Reader,
    org_id: &str,
    search: &RunSearch<'_>,
) -> MlflowResult<(Vec<Run>, bool)> {
    let RunSearch {
        experiment_ids,
        filter: filter_string,
        view,
        order_by,
        offset,
        max,
    } = *search;
    let mut binds: Vec<SqlValue> = vec![SqlValue::from(org_id.to_owned())];
    let mut ids = Vec::new();
    for id in experiment_ids {
        // Unknown ids simply match nothing, as in MLflow.
        if let Ok(n) = id.trim().parse::<i64>() {
            binds.push(SqlValue::Integer(n));
            ids.push(format!("?{}", binds.len()));
        }
    }
    if ids.is_empty() {
        return Ok((Vec::new(), false));
    }
    let mut sql = format!(
        "SELECT {RUN_COLUMNS} FROM mlflow_runs r WHERE r.org_id = ?1 AND r.experiment_id IN ({}) AND r.lifecycle_stage IN {}",
        ids.join(", "),
        view.sql()
    );
    for clause in filter::parse_filter(filter_string)? {
        let condition = clause_sql(&clause, &mut binds)?;
        sql.push_str(" AND ");
        sql.push_str(&condition);
    }
    let mut orders = Vec::new();
    for order in filter::parse_order_bys(order_by)? {
        orders.push(order_sql(&order, &mut binds)?);
    }
    orders.push("r.start_time DESC".into());
    orders.push("r.run_uuid".into());
    binds.push(SqlValue::Integer((max + 1) as i64));
    let limit = binds.len();
    binds.push(SqlValue::Integer(offset as i64));
    sql.push_str(&format!(
        " ORDER BY {} LIMIT ?{limit} OFFSET ?{}",
        orders.join(", "),
        binds.len()
    ));
    let rows = conn.query(&sql, binds).await.map_err(DbError::from)?;
    let mut runs = db::collect(rows, run_from_row).await?;
    let more = runs.len() > max;
    runs.truncate(max);
    load_run_data(conn, &mut runs).await?;
    Ok((runs, more))
}

// ---------------------------------------------------------------------------------------
// In-memory filtering (experiments, registry, logged models)

/// A value a clause compares against.
#[derive(Debug, Clone)]
pub enum Field {
    Text(String),
    Number(f64),
}

/// Whether every clause holds; `field` gives the value a clause names. An absent value
/// matches no comparison, except that a missing tag differs from any value (`tags.x !=
/// 'v'`, `NOT IN`), as in MLflow's registry: the client itself excludes prompts with
/// `tag.mlflow.prompt.is_prompt != 'true'`.
pub fn evaluate_all(
    clauses: &[Clause],
    field: impl Fn(&Clause) -> Option<Field>,
) -> MlflowResult<bool> {
    for clause in clauses {
        let Some(value) = field(clause) else {
            if clause.entity == Entity::Tag && matches!(clause.op, Op::Ne | Op::NotIn) {
                continue;
            }
            return Ok(false);
        };
        if !evaluate(clause, &value)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn evaluate(clause: &Clause, field: &Field) -> MlflowResult<bool> {
    let invalid = || {
        MlflowError::invalid(format!(
            "Invalid comparison {:?} for '{}' with {:?}",
            clause.op, clause.key, clause.value
        ))
    };
    Ok(match (field, &clause.value) {
        (Field::Number(a), Value::Number(b)) => numeric(clause.op, *a, *b).ok_or_else(invalid)?,
        (Field::Number(a), Value::String(s)) => {
            let b: f64 = s.parse().map_err(|_| invalid())?;
            numeric(clause.op, *a, b).ok_or_else(invalid)?
        }
        (Field::Text(a), Value::String(b)) => match clause.op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Like => filter::like(a, b, false),
            Op::ILike => filter::like(a, b, true),
            _ => return Err(invalid()),
        },
        (Field::Text(a), Value::Number(b)) => match clause.op {
            // `version = 1`, `run_id = 123`: compare as text.
            Op::Eq => *a == b.to_string(),
            Op::Ne => *a != b.to_string(),
            _ => return Err(invalid()),
        },
        (Field::Text(a), Value::List(items)) => match clause.op {
            Op::In => items.contains(a),
            Op::NotIn => !items.contains(a),
            _ => return Err(invalid()),
        },
        (Field::Number(_), Value::List(_)) => return Err(invalid()),
    })
}

fn numeric(op: Op, a: f64, b: f64) -> Option<bool> {
    Some(match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        _ => return None,
    })
}
