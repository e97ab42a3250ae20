//! Predictions over a model's deployment, and the per-model request/response schema.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wisp_host::{NamedTensor, Prediction, UsageRecord};

use super::idempotency::{Called, once};
use super::{ApiPath, ApiQuery, AppState};
use crate::auth::rbac::can;
use crate::auth::{Authorized, OrgAccess, Principal};
use crate::deployments::Status;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::inspect::ModelSignature;
use crate::lookups::Lookups;
use crate::metering::compute::compute_units;
use crate::metering::{CallSubject, Caller, Variant};
use crate::plans;
use crate::registry::{Model, ModelVersion};
use crate::serving::admission::Caller as RateCaller;
use crate::serving::fair_share::Slot;
use crate::serving::result_cache::{CacheKey, CacheStatus};
use crate::serving::schema;
use crate::serving::tensors::{self, JsonTensor};
use crate::serving::traffic::{self, Role};

/// The response header saying whether the result cache answered: `hit`, `miss` or `bypass`.
pub(crate) const CACHE_HEADER: &str = "x-wisp-cache";

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
    /// Which inputs the example leaves out because they are too large to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_note: Option<String>,
}

/// Runs the model: by default the deployed version, or the given version or alias of a
/// deployed model. With an `Idempotency-Key` (1–255 visible ASCII characters), a retry of
/// the same request within the TTL gets the first response back (`Idempotent-Replayed:
/// true`), neither run nor billed again.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/predict", tag = "predict", request_body = PredictRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses(
        (status = 200, body = PredictResponse, headers(("x-wisp-cache" = String, description = "`hit`, `miss` or `bypass` (`Cache-Control: no-cache`, or the deployment does not cache)"))),
        (status = 400, description = "`invalid_json`, `invalid_input`, `invalid_request` (also a malformed `Idempotency-Key`)", body = crate::error::ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`)", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: model, version or alias", body = crate::error::ErrorBody),
        (status = 409, description = "`not_deployed`, `deployment_failed`, `idempotency_conflict`", body = crate::error::ErrorBody),
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
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The body is read only once the caller passed its rate limits (`admitted_body`).
    let body = match admitted_body(&state, &access, &headers, body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let called = Called {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let call = predict_call(&state, &access, path, &headers, body.clone());
    once(&state, &access, called, async {
        call.await.into_response()
    })
    .await
}

async fn predict_call(
    state: &AppState,
    access: &OrgAccess,
    path: (String, String),
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (_, name) = path;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Expected request with `Content-Type: application/json`",
        ));
    }
    let slot = enter_org(state, &access.org.id).await?;
    let large = is_large(body.len());
    let request: PredictRequest = off_executor(large, move || {
        axum::Json::<PredictRequest>::from_bytes(&body)
            .map(|axum::Json(request)| request)
            .map_err(ApiError::from)
    })
    .await?;
    let target = resolve_routed(
        state,
        &access.org.id,
        &name,
        request.version,
        request.alias.as_deref(),
        route_key(headers),
    )
    .await?;
    let signature = target.version.signature.clone();
    let inputs = off_executor(large, move || {
        tensors::parse_inputs(&request.inputs, &signature)
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))
    })
    .await?;
    let invoked = invoke(state, access, &target, inputs, headers, slot).await?;
    let cache = invoked.cache;
    let large = is_large(invoked.usage.output_bytes as usize);
    let body = off_executor(large, move || {
        let response = PredictResponse {
            model: target.model.name,
            version: target.version.version,
            outputs: tensors::format_outputs(&invoked.outputs),
            usage: Usage::from(&invoked.usage),
        };
        serde_json::to_vec(&response).map_err(ApiError::internal)
    })
    .await?;
    Ok((
        [
            (CACHE_HEADER, cache.as_str()),
            (header::CONTENT_TYPE.as_str(), "application/json"),
        ],
        body,
    )
        .into_response())
}

/// Reads the body of an inference call, once the caller has passed its key's and its
/// organisation's rate limits: a caller over its rate (or, earlier, without a valid
/// credential: the auth extractors run before the handler) is answered without a byte of
/// its body read, so it cannot make the server buffer [`MAX_PREDICT_BODY`] per request.
/// The body is refused past that size, from its `Content-Length` or while it streams.
/// Every inference protocol reads its body here.
pub(crate) async fn admitted_body(
    state: &AppState,
    access: &OrgAccess,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Bytes> {
    let plan = state.lookups.plan(&access.org.id).await?;
    let caller = RateCaller {
        org_id: &access.org.id,
        key_id: access.principal.api_key_id(),
    };
    state.admission.check_rate(caller, &plan)?;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body exceeds the limit of {MAX_PREDICT_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_PREDICT_BODY as u64) {
        return Err(too_large());
    }
    let collected = Limited::new(body, MAX_PREDICT_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_large()
            } else {
                ApiError::invalid(format!("reading the request body failed: {e}"))
            }
        })?;
    Ok(collected.to_bytes())
}

/// Takes the organisation's concurrency slot for a call whose body is still to be decoded.
/// Every inference protocol takes it before decoding: a tenant sending huge requests waits
/// its turn instead of taking the executor's threads from the others.
pub(crate) async fn enter_org(state: &AppState, org_id: &str) -> ApiResult<Slot> {
    let plan = state.lookups.plan(org_id).await?;
    state
        .admission
        .enter(org_id, &plan, plan.tenant_limits().deadline)
        .await
}

/// Bodies above this many bytes are decoded and encoded on the blocking pool.
const LARGE_BODY: usize = 64 << 10;

/// Whether decoding or encoding a body of `bytes` belongs on the blocking pool.
pub(crate) fn is_large(bytes: usize) -> bool {
    bytes > LARGE_BODY
}

/// Runs CPU-heavy request work (decoding and encoding `large` tensors) on the blocking pool,
/// so it never stalls the executor threads every other request needs; small work runs in
/// place, where the hop would cost more than it saves.
pub(crate) async fn off_executor<T, E>(
    large: bool,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ApiError> + Send + 'static,
{
    if !large {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(ApiError::internal(e)))?
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
    let model = find_model(&state.lookups, &access.org.id, &name).await?;
    let version = described_version(
        &state.lookups,
        &model,
        query.version,
        query.alias.as_deref(),
    )
    .await?;
    let example = schema::example(&version.signature);
    Ok(Json(ModelSchema {
        request: schema::request(&version.signature),
        response: schema::response(&version.signature),
        example_request: example.request,
        example_note: example.note,
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
    /// The deployment's result-cache TTL in seconds (0: no caching).
    pub cache_ttl_secs: u32,
    /// The shadow version this call is mirrored to, if any.
    pub shadow: Option<ModelVersion>,
    /// Which variant of the deployment serves the call: metering records it, and does not
    /// bill shadow calls.
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

/// The request key that keeps a caller on one variant of a traffic split.
pub(crate) const ROUTE_KEY_HEADER: &str = "x-wisp-route-key";

/// The `x-wisp-route-key` of a request.
pub(crate) fn route_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(ROUTE_KEY_HEADER).and_then(|v| v.to_str().ok())
}

/// Resolves which version of the deployed model `name` a call runs: `version` or `alias`
/// if given; else the deployed version, or with a traffic split a variant picked by weight
/// (always the same one for the same `route_key`), possibly mirrored to the shadow version.
/// Every inference protocol goes through here, then [`invoke`].
pub(crate) async fn resolve_routed(
    state: &AppState,
    org_id: &str,
    name: &str,
    version: Option<i64>,
    alias: Option<&str>,
    route_key: Option<&str>,
) -> ApiResult<Target> {
    let explicit = version.is_some() || alias.is_some();
    let lookups = &state.lookups;
    let model = find_model(lookups, org_id, name).await?;
    let deployment = lookups.deployment(&model.id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotDeployed,
            format!("model {name:?} is not deployed"),
        )
    })?;
    let mut variant = Variant::Primary;
    let version = match select(lookups, &model, version, alias).await? {
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
            let routed = match &deployment.traffic {
                Some(split) => traffic::pick(split, route_key),
                None => deployment.version,
            };
            if routed != deployment.version {
                variant = Variant::Canary;
            }
            version_of(lookups, &model, routed).await?
        }
    };
    let shadow = match deployment.shadow {
        Some(shadow) if !explicit && traffic::mirrored(&shadow, route_key) => {
            Some(version_of(lookups, &model, shadow.version).await?)
        }
        _ => None,
    };
    let plan = lookups.plan(org_id).await?;
    Ok(Target {
        org_id: org_id.to_owned(),
        model,
        version,
        plan,
        cache_ttl_secs: deployment.cache_ttl_secs,
        shadow,
        variant,
    })
}

/// The outcome of [`invoke`]: outputs, what producing them cost (nothing on a cache hit),
/// and whether the cache answered.
#[derive(Debug, Clone)]
pub(crate) struct Invoked {
    pub outputs: Arc<Vec<NamedTensor>>,
    pub usage: UsageRecord,
    pub cache: CacheStatus,
}

/// Runs one admitted inference call (its rate limits were taken by [`admitted_body`]
/// before its body was read): the deployment's result cache (unless
/// `Cache-Control: no-cache`), then the call itself in the organisation's concurrency
/// `slot` (taken with [`enter_org`] before the body was decoded), around [`run`]. Every
/// inference protocol calls this.
pub(crate) async fn invoke(
    state: &AppState,
    access: &OrgAccess,
    target: &Target,
    inputs: Vec<NamedTensor>,
    headers: &HeaderMap,
    _slot: Slot,
) -> ApiResult<Invoked> {
    let no_cache = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| matches!(d.trim(), "no-cache" | "no-store"))
        });
    let ttl = Duration::from_secs(u64::from(target.cache_ttl_secs));
    let key = (!no_cache && !ttl.is_zero()).then(|| {
        CacheKey::new(
            &target.org_id,
            &target.model.id,
            target.version.version,
            &inputs,
        )
    });
    if let Some(key) = &key
        && let Some(outputs) = state.result_cache.get(key).await
    {
        // A hit is a billed call that used no compute.
        let call = state
            .metering
            .admit(
                Caller::from(&access.principal),
                target.subject(),
                &target.plan,
            )
            .await?;
        call.finish(Ok(()), None, true).await?;
        let output_bytes = outputs.iter().map(|o| o.tensor.data.len() as u64).sum();
        let usage = UsageRecord {
            input_bytes: inputs.iter().map(|i| i.tensor.data.len() as u64).sum(),
            output_bytes,
            component_warm: true,
            graph_warm: true,
            ..UsageRecord::default()
        };
        return Ok(Invoked {
            outputs,
            usage,
            cache: CacheStatus::Hit,
        });
    }
    if let Some(shadow) = &target.shadow {
        mirror(state, &access.principal, target, shadow, inputs.clone());
    }
    let started = Instant::now();
    let result = run(state, &access.principal, target, inputs).await;
    state.traffic.record(
        &target.model.id,
        target.version.version,
        Role::Live,
        result.is_ok(),
        started.elapsed(),
    );
    let prediction = result?;
    let cache = match key {
        Some(key) => {
            state
                .result_cache
                .put(key, prediction.outputs.clone(), ttl)
                .await;
            CacheStatus::Miss
        }
        None => CacheStatus::Bypass,
    };
    Ok(Invoked {
        outputs: Arc::new(prediction.outputs),
        usage: prediction.usage,
        cache,
    })
}

/// Runs a copy of the call on the shadow version in the background; its outcome only
/// counts in the shadow's statistics, never in the caller's response.
fn mirror(
    state: &AppState,
    caller: &Principal,
    target: &Target,
    shadow: &ModelVersion,
    inputs: Vec<NamedTensor>,
) {
    let mut copy = target.clone();
    copy.version = shadow.clone();
    copy.shadow = None;
    copy.variant = Variant::Shadow;
    let (state, caller) = (state.clone(), caller.clone());
    tokio::spawn(async move {
        let started = Instant::now();
        let result = run(&state, &caller, &copy, inputs).await;
        if let Err(error) = &result {
            tracing::debug!(model = %copy.model.name, version = copy.version.version, ?error, "shadow call failed");
        }
        state.traffic.record(
            &copy.model.id,
            copy.version.version,
            Role::Shadow,
            result.is_ok(),
            started.elapsed(),
        );
    });
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
    let lookups = &state.lookups;
    let model = find_model(lookups, org_id, name).await?;
    if let Some(number) = version {
        version_of(lookups, &model, number).await?;
    }
    Ok(match lookups.deployment(&model.id).await? {
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
    lookups: &Lookups,
    model: &Model,
    version: Option<i64>,
    alias: Option<&str>,
) -> ApiResult<ModelVersion> {
    if let Some(version) = select(lookups, model, version, alias).await? {
        return Ok(version);
    }
    let number = match lookups.deployment(&model.id).await? {
        Some(deployment) => deployment.version,
        None => model
            .latest_version
            .ok_or_else(|| ApiError::not_found("version"))?,
    };
    version_of(lookups, model, number).await
}

/// The version a request names explicitly, if it names one.
async fn select(
    lookups: &Lookups,
    model: &Model,
    version: Option<i64>,
    alias: Option<&str>,
) -> ApiResult<Option<ModelVersion>> {
    let number = match (version, alias) {
        (None, None) => return Ok(None),
        (Some(version), None) => version,
        (None, Some(alias)) => lookups
            .alias_target(&model.id, alias)
            .await?
            .ok_or_else(|| ApiError::not_found("alias"))?,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give `version` or `alias`, not both"));
        }
    };
    version_of(lookups, model, number).await.map(Some)
}

async fn version_of(lookups: &Lookups, model: &Model, number: i64) -> ApiResult<ModelVersion> {
    lookups
        .version(&model.id, number)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))
}

/// A model of the organisation by name, from the memoised rows.
pub(crate) async fn find_model(lookups: &Lookups, org_id: &str, name: &str) -> ApiResult<Model> {
    lookups
        .model(org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("model"))
}
