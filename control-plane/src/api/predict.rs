//! Predictions over a model's deployment, and the per-model request/response schema.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wisp_host::{NamedTensor, Prediction, UsageRecord};

use super::models::find_model;
use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::auth::rbac::can;
use crate::auth::{Authorized, Principal};
use crate::deployments::{self, Status};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::inspect::ModelSignature;
use crate::metering::compute::compute_units;
use crate::metering::{CallSubject, Caller, Variant};
use crate::plans;
use crate::registry::{self, Model, ModelVersion};
use crate::serving::schema;
use crate::serving::tensors::{self, JsonTensor};

/// Largest predict request body. Bigger inputs belong in batch jobs.
pub(super) const MAX_PREDICT_BODY: usize = 32 << 20;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(predict))
        .layer(DefaultBodyLimit::max(MAX_PREDICT_BODY))
        .routes(routes!(model_schema))
}

/// A prediction request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Named inputs: nested arrays (`[[5.1, 3.5, 1.4, 0.2]]`), or
    /// `{"shape", "data", "dtype"?}`, or `{"base64", "shape"?, "dtype"?}` (raw little-endian
    /// bytes). `GET …/schema` describes them for each model.
    #[schema(value_type = Object)]
    pub inputs: BTreeMap<String, Value>,
    /// Use this version instead of the deployed one.
    pub version: Option<i64>,
    /// Use the version this alias points at instead of the deployed one.
    pub alias: Option<String>,
}

/// What one call used, for metering.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    /// Wasm fuel consumed.
    pub fuel: u64,
    /// Time in the runtime, model loading included, in microseconds.
    pub wall_time_us: u64,
    /// Time inside the inference backend, in microseconds.
    pub inference_time_us: u64,
    pub peak_memory_bytes: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    /// Whether the compiled component was already loaded.
    pub component_warm: bool,
    /// Whether the graph was already loaded.
    pub graph_warm: bool,
}

impl From<&UsageRecord> for Usage {
    fn from(usage: &UsageRecord) -> Self {
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            fuel: usage.fuel_consumed,
            wall_time_us: micros(usage.wall_time),
            inference_time_us: micros(usage.inference_time),
            peak_memory_bytes: usage.peak_memory_bytes,
            input_bytes: usage.input_bytes,
            output_bytes: usage.output_bytes,
            component_warm: usage.component_warm,
            graph_warm: usage.graph_warm,
        }
    }
}

/// A prediction.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    pub model: String,
    pub version: i64,
    /// Named outputs, each `{dtype, shape, data}` with `data` flat and row-major.
    pub outputs: BTreeMap<String, JsonTensor>,
    pub usage: Usage,
}

/// Which version a schema is for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SchemaQuery {
    /// A version; by default the deployed one, else the latest.
    pub version: Option<i64>,
    /// Or the version an alias points at.
    pub alias: Option<String>,
}

/// The request and response of a model's predict endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelSchema {
    pub model: String,
    pub version: i64,
    pub signature: ModelSignature,
    /// JSON Schema (2020-12) of the predict request body.
    #[schema(value_type = Object)]
    pub request: Value,
    /// JSON Schema (2020-12) of the predict response body.
    #[schema(value_type = Object)]
    pub response: Value,
    /// A request body that fits the signature.
    #[schema(value_type = Object)]
    pub example_request: Value,
}

/// Runs the model: by default the deployed version, or the given version or alias of a
/// deployed model.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/predict", tag = "predict", request_body = PredictRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "`invalid_json`, `invalid_input`, `invalid_request`", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: model, version or alias", body = crate::error::ErrorBody),
        (status = 409, description = "`not_deployed`, `deployment_failed`", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`, `output_too_large`", body = crate::error::ErrorBody),
        (status = 422, description = "`fuel_exhausted`, `memory_limit_exceeded`, `guest_trap`, `inference_failed`, `invalid_model`, `invalid_component`", body = crate::error::ErrorBody),
        (status = 429, description = "`quota_exceeded`: the plan's calls this month (with `details` and `Retry-After`)", body = crate::error::ErrorBody),
        (status = 503, description = "`overloaded` (with `Retry-After`)", body = crate::error::ErrorBody),
        (status = 504, description = "`deadline_exceeded`", body = crate::error::ErrorBody),
    ))]
async fn predict(
    State(state): State<AppState>,
    access: Authorized<can::Predict>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<PredictRequest>,
) -> ApiResult<Json<PredictResponse>> {
    let (_, name) = path;
    let target = resolve(
        &state,
        &access.org.id,
        &name,
        request.version,
        request.alias.as_deref(),
    )
    .await?;
    let inputs = tensors::parse_inputs(&request.inputs, &target.version.signature)
        .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))?;
    let prediction = run(&state, &access.principal, &target, inputs).await?;
    let (model, version) = (target.model, target.version);
    Ok(Json(PredictResponse {
        model: model.name,
        version: version.version,
        outputs: tensors::format_outputs(&prediction.outputs),
        usage: Usage::from(&prediction.usage),
    }))
}

/// JSON Schemas of the model's predict request and response, and an example request, from
/// its signature.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/schema", tag = "predict",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), SchemaQuery),
    responses((status = 200, body = ModelSchema), (status = 404, body = crate::error::ErrorBody)))]
async fn model_schema(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SchemaQuery>,
) -> ApiResult<Json<ModelSchema>> {
    let (_, name) = path;
    let conn = state.db.conn().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    let version = described_version(&conn, &model, query.version, query.alias.as_deref()).await?;
    Ok(Json(ModelSchema {
        request: schema::request(&version.signature),
        response: schema::response(&version.signature),
        example_request: schema::example(&version.signature),
        model: model.name,
        version: version.version,
        signature: version.signature,
    }))
}

/// A deployed model version resolved for a call, with the plan it runs under.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub org_id: String,
    pub model: Model,
    pub version: ModelVersion,
    pub plan: plans::Plan,
    /// Which variant of the deployment serves the call (traffic splitting picks it).
    pub variant: Variant,
}

impl Target {
    /// What metering records the call against.
    fn subject(&self) -> CallSubject<'_> {
        CallSubject {
            org_id: &self.org_id,
            model_id: &self.model.id,
            model_name: &self.model.name,
            version: self.version.version,
            variant: self.variant,
        }
    }
}

/// Resolves which version of the deployed model `name` a call runs: `version` or `alias`
/// if given, else the deployed version. Every inference protocol goes through here.
pub(crate) async fn resolve(
    state: &AppState,
    org_id: &str,
    name: &str,
    version: Option<i64>,
    alias: Option<&str>,
) -> ApiResult<Target> {
    let conn = state.db.conn().await;
    let model = find_model(&conn, org_id, name).await?;
    let deployment = deployments::get(&conn, &model.id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotDeployed,
            format!("model {name:?} is not deployed"),
        )
    })?;
    let version = match select(&conn, &model, version, alias).await? {
        Some(version) => version,
        None => {
            if deployment.status == Status::Failed {
                let reason = deployment
                    .failure
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .unwrap_or_default();
                return Err(ApiError::new(
                    ErrorCode::DeploymentFailed,
                    format!(
                        "the deployment of version {} failed ({reason})",
                        deployment.version
                    ),
                ));
            }
            version_of(&conn, &model, deployment.version).await?
        }
    };
    let plan = plans::of_org(&conn, org_id).await?;
    Ok(Target {
        org_id: org_id.to_owned(),
        model,
        version,
        plan,
        variant: Variant::Primary,
    })
}

/// Runs one call of a resolved target for `caller`, metered: the plan's calls quota admits
/// it (or it fails with `quota_exceeded`), and its usage event, success or failure, is
/// durable before this returns. Every inference protocol goes through here.
pub(crate) async fn run(
    state: &AppState,
    caller: &Principal,
    target: &Target,
    inputs: Vec<NamedTensor>,
) -> ApiResult<Prediction> {
    let call = state
        .metering
        .admit(Caller::from(caller), target.subject(), &target.plan)
        .await?;
    // A result cache answers here: `call.finish(Ok(()), None, true)` and its stored result.
    let result = execute(state, target, inputs).await;
    let (outcome, usage) = match &result {
        Ok(prediction) => (Ok(()), Some(&prediction.usage)),
        Err((error, usage)) => (Err(error.code()), usage.as_ref()),
    };
    call.finish(outcome, usage, false).await?;
    result.map_err(|(error, _)| error)
}

/// Runs the model in the runtime under the plan's limits. The plan's compute budget covers
/// the Wasm code (as fuel, stopped exactly) and the inference backend together (checked
/// when the backend returns, since a backend run cannot be interrupted; the deadline
/// bounds it). A failure keeps the usage when the model ran.
async fn execute(
    state: &AppState,
    target: &Target,
    inputs: Vec<NamedTensor>,
) -> Result<Prediction, (ApiError, Option<UsageRecord>)> {
    let model_ref = state
        .serving
        .model_ref(&target.org_id, &target.model.name, &target.version);
    let prediction = state
        .serving
        .runtime()
        .predict(&model_ref, &target.plan.tenant_limits(), inputs)
        .await
        .map_err(|error| (ApiError::from(error), None))?;
    let usage = &prediction.usage;
    let inference_us = u64::try_from(usage.inference_time.as_micros()).unwrap_or(u64::MAX);
    let used = compute_units(usage.fuel_consumed, inference_us);
    let budget = target.plan.compute_units_per_call;
    if used > budget {
        let error = ApiError::new(
            ErrorCode::FuelExhausted,
            format!(
                "compute budget exhausted: the call used {used} compute units, the plan allows {budget}"
            ),
        );
        return Err((error, Some(prediction.usage)));
    }
    Ok(prediction)
}

/// Whether the model `name` (at `version`, if given) serves calls now: its deployment is
/// ready. `Err` if the model or version does not exist; `Ok(Err(why))` if it is not ready.
/// Every inference protocol's readiness check goes through here.
pub(crate) async fn readiness(
    state: &AppState,
    org_id: &str,
    name: &str,
    version: Option<i64>,
) -> ApiResult<Result<(), String>> {
    let conn = state.db.conn().await;
    let model = find_model(&conn, org_id, name).await?;
    if let Some(number) = version {
        version_of(&conn, &model, number).await?;
    }
    Ok(match deployments::get(&conn, &model.id).await? {
        None => Err(format!("model {name:?} is not deployed")),
        Some(deployment) => match deployment.status {
            Status::Ready => Ok(()),
            Status::Pending => Err(format!("model {name:?} is still being deployed")),
            Status::Failed => Err(format!("the deployment of model {name:?} failed")),
        },
    })
}

/// The version a description of the model is about: the one named by `version` or
/// `alias`, else the deployed one, else the latest.
pub(crate) async fn described_version(
    conn: &libsql::Connection,
    model: &Model,
    version: Option<i64>,
    alias: Option<&str>,
) -> ApiResult<ModelVersion> {
    if let Some(version) = select(conn, model, version, alias).await? {
        return Ok(version);
    }
    let number = match deployments::get(conn, &model.id).await? {
        Some(deployment) => deployment.version,
        None => model
            .latest_version
            .ok_or_else(|| ApiError::not_found("version"))?,
    };
    version_of(conn, model, number).await
}

/// The version a request names explicitly, if it names one.
async fn select(
    conn: &libsql::Connection,
    model: &Model,
    version: Option<i64>,
    alias: Option<&str>,
) -> ApiResult<Option<ModelVersion>> {
    let number = match (version, alias) {
        (None, None) => return Ok(None),
        (Some(version), None) => version,
        (None, Some(alias)) => registry::alias_target(conn, &model.id, alias)
            .await?
            .ok_or_else(|| ApiError::not_found("alias"))?,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give `version` or `alias`, not both"));
        }
    };
    version_of(conn, model, number).await.map(Some)
}

async fn version_of(
    conn: &libsql::Connection,
    model: &Model,
    number: i64,
) -> ApiResult<ModelVersion> {
    registry::get_version(conn, &model.id, number)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))
}
