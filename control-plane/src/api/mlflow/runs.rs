//! `/api/2.0/mlflow/runs/*` and `/metrics/get-history`: runs, params, metrics, tags,
//! inputs and outputs, log-batch and search.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, Fields, MlflowResult, empty, required, required_str, wire};
use crate::api::AppState;
use crate::auth::rbac::can;
use crate::mlflow::tracking::{self, Batch, Metric, NewRun, RunSearch, ViewType};
use crate::mlflow::{self, KeyValue, now_ms};

pub(super) fn routes() -> Router<AppState> {
    let base = "/api/2.0/mlflow/runs";
    Router::new()
        .route(&format!("{base}/create"), post(create))
        .route(&format!("{base}/get"), get(get_run))
        .route(&format!("{base}/update"), post(update))
        .route(&format!("{base}/delete"), post(delete))
        .route(&format!("{base}/restore"), post(restore))
        .route(&format!("{base}/search"), post(search))
        .route(&format!("{base}/log-metric"), post(log_metric))
        .route(&format!("{base}/log-parameter"), post(log_param))
        .route(&format!("{base}/set-tag"), post(set_tag))
        .route(&format!("{base}/delete-tag"), post(delete_tag))
        .route(&format!("{base}/log-batch"), post(log_batch))
        .route(&format!("{base}/log-inputs"), post(log_inputs))
        .route(&format!("{base}/outputs"), post(log_outputs))
        .route("/api/2.0/mlflow/metrics/get-history", get(metric_history))
}

/// The run a request names: `run_id`, or the older `run_uuid`.
#[derive(Debug, Deserialize)]
struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

impl RunRef {
    fn id(self) -> MlflowResult<String> {
        required_str(
            self.run_id.filter(|s| !s.is_empty()).or(self.run_uuid),
            "run_id",
        )
    }
}

#[derive(Debug, Deserialize)]
struct CreateRequest {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<CreateRequest>,
) -> MlflowResult<Json<Value>> {
    let experiment_id = request
        .experiment_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "0".to_owned());
    let actor = access.actor();
    let run = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::create_run(
                tx,
                &access.org.id,
                &NewRun {
                    experiment_id: &experiment_id,
                    user_id: request.user_id.as_deref().unwrap_or(&actor),
                    run_name: request.run_name.as_deref(),
                    start_time: request.start_time,
                    tags: &request.tags,
                },
            )
            .await
        })
        .await?;
    Ok(Json(json!({ "run": run })))
}

async fn get_run(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(run): Fields<RunRef>,
) -> MlflowResult<Json<Value>> {
    let id = run.id()?;
    let conn = state.db.read().await;
    let run = tracking::get_run(&conn, &access.org.id, &id).await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Debug, Deserialize)]
struct UpdateRequest {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    status: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

/// `RunStatus` numbers, for clients that send them.
fn status_name(status: &str) -> &str {
    match status {
        "1" => "RUNNING",
        "2" => "SCHEDULED",
        "3" => "FINISHED",
        "4" => "FAILED",
        "5" => "KILLED",
        other => other,
    }
}

async fn update(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<UpdateRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let info = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::update_run(
                tx,
                &access.org.id,
                &id,
                request.status.as_deref().map(status_name),
                request.end_time,
                request.run_name.as_deref(),
            )
            .await
        })
        .await?;
    Ok(Json(json!({ "run_info": info })))
}

async fn delete(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(run): Fields<RunRef>,
) -> MlflowResult<Json<Value>> {
    let id = run.id()?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::set_run_stage(tx, &access.org.id, &id, tracking::DELETED).await
        })
        .await?;
    Ok(empty())
}

async fn restore(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(run): Fields<RunRef>,
) -> MlflowResult<Json<Value>> {
    let id = run.id()?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::set_run_stage(tx, &access.org.id, &id, tracking::ACTIVE).await
        })
        .await?;
    Ok(empty())
}

/// A metric as clients send it.
#[derive(Debug, Deserialize)]
struct MetricIn {
    key: Option<String>,
    #[serde(default, deserialize_with = "opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

fn opt_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapper(#[serde(deserialize_with = "wire::f64_value")] f64);
    Ok(Option::<Wrapper>::deserialize(d)?.map(|w| w.0))
}

impl MetricIn {
    fn into_metric(self) -> MlflowResult<Metric> {
        Ok(Metric {
            key: required_str(self.key, "key")?,
            value: required(self.value, "value")?,
            timestamp: self.timestamp.unwrap_or_else(now_ms),
            step: self.step.unwrap_or(0),
            model_id: self.model_id.filter(|s| !s.is_empty()),
            dataset_name: self.dataset_name.filter(|s| !s.is_empty()),
            dataset_digest: self.dataset_digest.filter(|s| !s.is_empty()),
            run_id: None,
        })
    }
}

async fn write_batch(
    state: &AppState,
    access: &Access<can::WriteExperiments>,
    run_id: &str,
    batch: Batch,
) -> MlflowResult<Json<Value>> {
    batch.validate()?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::log_batch(tx, &access.org.id, run_id, &batch).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct LogMetricRequest {
    #[serde(flatten)]
    run: RunRef,
    #[serde(flatten)]
    metric: MetricIn,
}

async fn log_metric(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<LogMetricRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let batch = Batch {
        metrics: vec![request.metric.into_metric()?],
        ..Batch::default()
    };
    write_batch(&state, &access, &id, batch).await
}

#[derive(Debug, Deserialize)]
struct KeyValueRequest {
    #[serde(flatten)]
    run: RunRef,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

async fn log_param(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<KeyValueRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let batch = Batch {
        params: vec![KeyValue {
            key: required_str(request.key, "key")?,
            value: request.value,
        }],
        ..Batch::default()
    };
    write_batch(&state, &access, &id, batch).await
}

async fn set_tag(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<KeyValueRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let batch = Batch {
        tags: vec![KeyValue {
            key: required_str(request.key, "key")?,
            value: request.value,
        }],
        ..Batch::default()
    };
    write_batch(&state, &access, &id, batch).await
}

async fn delete_tag(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<KeyValueRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::delete_tag(tx, &access.org.id, &id, &key).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct LogBatchRequest {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn log_batch(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<LogBatchRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let batch = Batch {
        metrics: request
            .metrics
            .into_iter()
            .map(MetricIn::into_metric)
            .collect::<MlflowResult<_>>()?,
        params: request.params,
        tags: request.tags,
    };
    write_batch(&state, &access, &id, batch).await
}

#[derive(Debug, Deserialize)]
struct LogInputsRequest {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    datasets: Vec<Value>,
    #[serde(default)]
    models: Vec<Value>,
}

async fn log_inputs(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<LogInputsRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::log_inputs(tx, &access.org.id, &id, &request.datasets, &request.models).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct LogOutputsRequest {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    models: Vec<Value>,
}

async fn log_outputs(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<LogOutputsRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    // Steps are int64: keep them numbers whichever way the client sent them.
    let models: Vec<Value> = request
        .models
        .into_iter()
        .map(|mut m| {
            if let Some(step) = m
                .get("step")
                .and_then(|s| s.as_str())
                .and_then(|s| s.parse::<i64>().ok())
            {
                m["step"] = json!(step);
            }
            m
        })
        .collect();
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::log_outputs(tx, &access.org.id, &id, &models).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct SearchRequest {
    #[serde(default, deserialize_with = "wire::strings")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "wire::strings")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<SearchRequest>,
) -> MlflowResult<Json<Value>> {
    let max = mlflow::max_results(request.max_results, 1000, 50_000)?;
    let offset = mlflow::page_offset(request.page_token.as_deref())?;
    let view = ViewType::parse(request.run_view_type.as_deref())?;
    let (runs, more) = {
        let conn = state.db.read().await;
        tracking::search_runs(
            &conn,
            &access.org.id,
            &RunSearch {
                experiment_ids: &request.experiment_ids,
                filter: request.filter.as_deref().unwrap_or(""),
                view,
                order_by: &request.order_by,
                offset,
                max,
            },
        )
        .await?
    };
    let mut body = json!({ "runs": runs });
    if more {
        body["next_page_token"] = json!(mlflow::page_token(offset + max));
    }
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
struct HistoryRequest {
    #[serde(flatten)]
    run: RunRef,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// Without `max_results` the client expects the whole history in one answer.
const WHOLE_HISTORY: usize = 10_000_000;

async fn metric_history(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<HistoryRequest>,
) -> MlflowResult<Json<Value>> {
    let id = request.run.id()?;
    let key = required_str(request.metric_key, "metric_key")?;
    let max = mlflow::max_results(request.max_results, WHOLE_HISTORY, WHOLE_HISTORY)?;
    let offset = mlflow::page_offset(request.page_token.as_deref())?;
    let mut metrics = {
        let conn = state.db.read().await;
        tracking::metric_history(&conn, &access.org.id, &id, &key, offset, max).await?
    };
    let more = metrics.len() > max;
    metrics.truncate(max);
    let mut body = json!({ "metrics": metrics });
    if more {
        body["next_page_token"] = json!(mlflow::page_token(offset + max));
    }
    Ok(Json(body))
}
