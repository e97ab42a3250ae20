//! Predictions over a model's deployment, and the per-model request/response schema.

use crate::serving::metrics::Protocol;
use std::collections::BTreeMap;

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
use wisp_host::{NamedTensor, UsageRecord};

use super::idempotency::{Called, once};
use super::{ApiPath, ApiQuery, AppState};
use crate::access::OrgAccess;
use crate::api::Authorized;
use crate::auth::rbac::can;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::error::{DomainError, DomainResult};
use crate::inspect::ModelSignature;
use crate::serving::pipeline::{
    Admitted, Call, CallOptions, Codec, Invoked, Pipeline, Selector, Served, described_version,
    find_model,
};
use crate::serving::schema;
use crate::serving::tensors::{self, JsonTensor};

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
    State(pipeline): State<Pipeline>,
    access: Authorized<can::Predict>,
    ApiPath(path): ApiPath<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The body is read only once the caller passed its rate limits (`admitted_body`).
    let (admitted, body) = match admitted_body(&pipeline, &access, &headers, body).await {
        Ok(admitted) => admitted,
        Err(error) => return error.into_response(),
    };
    let called = Called {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let (_, name) = path;
    let call = predict_call(&pipeline, &access, name, &headers, admitted, body.clone());
    once(&state, &access, called, async {
        call.await.into_response()
    })
    .await
}

pub(crate) async fn predict_call(
    pipeline: &Pipeline,
    access: &OrgAccess,
    name: String,
    headers: &HeaderMap,
    admitted: Admitted,
    body: Bytes,
) -> ApiResult<Response> {
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
    let call = Call {
        access,
        model: &name,
        path: Selector::default(),
        options: call_options(headers),
    };
    let (body, cache) = pipeline.call(admitted, call, PredictCodec, body).await?;
    Ok((
        [
            (CACHE_HEADER, cache.as_str()),
            (header::CONTENT_TYPE.as_str(), "application/json"),
        ],
        body,
    )
        .into_response())
}

/// wisp's own wire format: a JSON body that may name a version or alias, JSON tensors.
#[derive(Debug, Clone, Copy)]
struct PredictCodec;

impl Codec for PredictCodec {
    const PROTOCOL: Protocol = Protocol::Predict;
    type Request = PredictRequest;
    type Carry = ();
    type Response = Vec<u8>;

    fn parse(&self, body: Bytes) -> DomainResult<PredictRequest> {
        axum::Json::<PredictRequest>::from_bytes(&body)
            .map(|axum::Json(request)| request)
            .map_err(|rejection| ApiError::from(rejection).into())
    }

    fn selector(&self, request: &PredictRequest) -> Selector {
        Selector {
            version: request.version,
            alias: request.alias.clone(),
        }
    }

    fn inputs(
        &self,
        request: PredictRequest,
        signature: &ModelSignature,
    ) -> DomainResult<(Vec<NamedTensor>, ())> {
        let inputs = tensors::parse_inputs(&request.inputs, signature)
            .map_err(|e| DomainError::new(ErrorCode::InvalidInput, e.to_string()))?;
        Ok((inputs, ()))
    }

    fn encode(&self, served: Served, invoked: Invoked, (): ()) -> DomainResult<Vec<u8>> {
        let response = PredictResponse {
            model: served.model,
            version: served.version,
            outputs: tensors::format_outputs(&invoked.outputs),
            usage: Usage::from(&invoked.usage),
        };
        serde_json::to_vec(&response).map_err(DomainError::internal)
    }
}

/// Reads the body of an inference call, once the caller has passed its key's and its
/// organisation's rate limits ([`Pipeline::admit`]): a caller over its rate (or, earlier,
/// without a valid credential: the auth extractors run before the handler) is answered
/// without a byte of its body read, so it cannot make the server buffer
/// [`MAX_PREDICT_BODY`] per request. The body is refused past that size, from its
/// `Content-Length` or while it streams. Every inference protocol reads its body here.
pub(crate) async fn admitted_body(
    pipeline: &Pipeline,
    access: &OrgAccess,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(Admitted, Bytes)> {
    let admitted = pipeline.admit(access).await?;
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
    Ok((admitted, collected.to_bytes()))
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
    let selector = Selector {
        version: query.version,
        alias: query.alias,
    };
    let version = described_version(&state.lookups, &model, &selector).await?;
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

/// The request key that keeps a caller on one variant of a traffic split.
pub(crate) const ROUTE_KEY_HEADER: &str = "x-wisp-route-key";

/// The caller's segment attribute of a call, kept with its prediction for fairness.
pub(crate) const SEGMENT_HEADER: &str = "x-wisp-segment";

/// What the headers of an inference request ask of the pipeline: the route key
/// (`x-wisp-route-key`) and whether the result cache may answer (`Cache-Control:
/// no-cache`/`no-store` say no).
pub(crate) fn call_options(headers: &HeaderMap) -> CallOptions {
    let no_cache = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| matches!(d.trim(), "no-cache" | "no-store"))
        });
    CallOptions {
        route_key: headers
            .get(ROUTE_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        no_cache,
        segment: headers
            .get(SEGMENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}
