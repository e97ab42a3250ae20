//! The Open Inference Protocol V2 (KServe V2 / Triton HTTP) at its standard paths, with
//! Triton's binary tensor data extension, so that `tritonclient` and other V2 clients work
//! unchanged.
//!
//! The organisation comes from the credential ([`CredentialOrg`]), since V2 paths have no
//! room for it. Calls go through the serving [`Pipeline`] with the V2 [`Codec`]. Errors are answered as V2 wants them, `{"error": "…"}` with
//! the status of the wisp error code; [`V2Error`] is the only place that maps them.

use crate::serving::metrics::Protocol;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::idempotency::{Called, once};
use super::predict::{MAX_PREDICT_BODY, admitted_body, call_options};
use super::{ApiPath, AppState};
use crate::access::OrgAccess;
use crate::api::CredentialOrg;
use crate::auth::rbac::can;
use crate::error::{ApiError, ErrorCode};
use crate::error::{DomainError, DomainResult};
use crate::inspect::ModelSignature;
use crate::registry;
use crate::serving::pipeline::{
    Admitted, Call, Codec, Invoked, Pipeline, Selector, Served, described_version, find_model,
};
use crate::serving::v2_codec::{
    self, EncodedResponse, ModelMetadata, OutputSelection, ParsedRequest, ServerMetadata,
};
use wisp_host::NamedTensor;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(infer))
        .routes(routes!(infer_version))
        .layer(DefaultBodyLimit::max(MAX_PREDICT_BODY))
        .routes(routes!(server_metadata))
        .routes(routes!(server_live))
        .routes(routes!(server_ready))
        .routes(routes!(model_metadata))
        .routes(routes!(version_metadata))
        .routes(routes!(model_ready))
        .routes(routes!(version_ready))
}

/// An error in the body format of the inference protocols: `{"error": "…"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct V2ErrorBody {
    pub error: String,
}

/// An [`ApiError`] answered in the inference protocols' format, with the same status.
#[derive(Debug)]
pub(super) struct V2Error(pub ApiError);

impl From<ApiError> for V2Error {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<DomainError> for V2Error {
    fn from(error: DomainError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let retry = self
            .0
            .retry_after()
            .map(|seconds| [(header::RETRY_AFTER, seconds.to_string())]);
        let body = V2ErrorBody {
            error: self.0.message().to_owned(),
        };
        (super::error_response::status(code), retry, Json(body)).into_response()
    }
}

/// Runs the extractor `E`, answering its rejection as a [`V2Error`].
pub(super) struct V2<E>(pub E);

impl<E> FromRequestParts<AppState> for V2<E>
where
    E: FromRequestParts<AppState>,
    E::Rejection: Into<ApiError>,
{
    type Rejection = V2Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, V2Error> {
        E::from_request_parts(parts, state)
            .await
            .map(V2)
            .map_err(|e| V2Error(e.into()))
    }
}

type V2Result<T> = Result<T, V2Error>;

/// The body of a call, read whatever its `Content-Type` (`tritonclient` often sends none),
/// after the caller's rate limits ([`admitted_body`]).
pub(super) async fn body_bytes(
    pipeline: &Pipeline,
    access: &OrgAccess,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Admitted, Bytes), ApiError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && encoding.as_bytes() != b"identity"
    {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "compressed request bodies are not supported",
        ));
    }
    admitted_body(pipeline, access, headers, body).await
}

/// A version number in a path.
fn version_number(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|&v| v > 0).ok_or_else(|| {
        ApiError::invalid(format!("version must be a positive integer, got {text:?}"))
    })
}

/// Server metadata: name, version and the protocol extensions wisp implements.
#[utoipa::path(get, path = "/v2", tag = "inference-v2", security(()),
    responses((status = 200, body = ServerMetadata)))]
async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata::wisp())
}

/// Liveness: the server answers.
#[utoipa::path(get, path = "/v2/health/live", tag = "inference-v2", security(()),
    responses((status = 200, description = "live")))]
async fn server_live() -> StatusCode {
    StatusCode::OK
}

/// Readiness: the server can reach its database.
#[utoipa::path(get, path = "/v2/health/ready", tag = "inference-v2", security(()),
    responses((status = 200, description = "ready"), (status = 503, body = V2ErrorBody)))]
async fn server_ready(State(state): State<AppState>) -> V2Result<StatusCode> {
    let conn = state.db.read().await;
    match conn.query("SELECT 1", ()).await {
        Ok(_) => Ok(StatusCode::OK),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            Err(V2Error(ApiError::new(
                ErrorCode::Overloaded,
                "the database is unreachable",
            )))
        }
    }
}

async fn metadata(
    state: &AppState,
    org_id: &str,
    name: &str,
    version: Option<i64>,
) -> V2Result<Json<ModelMetadata>> {
    let model = find_model(&state.lookups, org_id, name).await?;
    let selector = Selector {
        version,
        alias: None,
    };
    let described = described_version(&state.lookups, &model, &selector).await?;
    let conn = state.db.read().await;
    let mut versions: Vec<String> = registry::list_versions(&conn, &model.id)
        .await
        .map_err(ApiError::from)?
        .iter()
        .map(|v| v.version.to_string())
        .collect();
    versions.reverse();
    Ok(Json(ModelMetadata::new(
        &model.name,
        versions,
        &described.framework,
        &described.signature,
    )))
}

/// Model metadata of the deployed version (else the latest): inputs and outputs with V2
/// datatypes, `-1` for dynamic dimensions.
#[utoipa::path(get, path = "/v2/models/{model}", tag = "inference-v2",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, body = ModelMetadata), (status = 401, body = V2ErrorBody), (status = 404, body = V2ErrorBody)))]
async fn model_metadata(
    State(state): State<AppState>,
    V2(access): V2<CredentialOrg<can::DescribeModel>>,
    V2(ApiPath(name)): V2<ApiPath<String>>,
) -> V2Result<Json<ModelMetadata>> {
    metadata(&state, &access.org.id, &name, None).await
}

/// Model metadata of one version.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}", tag = "inference-v2",
    params(("model" = String, Path, description = "Model name"), ("version" = String, Path, description = "Version number")),
    responses((status = 200, body = ModelMetadata), (status = 401, body = V2ErrorBody), (status = 404, body = V2ErrorBody)))]
async fn version_metadata(
    State(state): State<AppState>,
    V2(access): V2<CredentialOrg<can::DescribeModel>>,
    V2(ApiPath((name, version))): V2<ApiPath<(String, String)>>,
) -> V2Result<Json<ModelMetadata>> {
    let version = version_number(&version)?;
    metadata(&state, &access.org.id, &name, Some(version)).await
}

async fn ready(
    pipeline: &Pipeline,
    org_id: &str,
    name: &str,
    version: Option<i64>,
) -> V2Result<StatusCode> {
    match pipeline.readiness(org_id, name, version).await? {
        Ok(()) => Ok(StatusCode::OK),
        Err(why) => Err(V2Error(ApiError::invalid(why))),
    }
}

/// Model readiness: `200` when its deployment is ready, `400` when not.
#[utoipa::path(get, path = "/v2/models/{model}/ready", tag = "inference-v2",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, description = "ready"), (status = 400, description = "not ready", body = V2ErrorBody), (status = 404, body = V2ErrorBody)))]
async fn model_ready(
    State(pipeline): State<Pipeline>,
    V2(access): V2<CredentialOrg<can::DescribeModel>>,
    V2(ApiPath(name)): V2<ApiPath<String>>,
) -> V2Result<StatusCode> {
    ready(&pipeline, &access.org.id, &name, None).await
}

/// Readiness of one version: the model's deployment is ready and the version exists.
#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready", tag = "inference-v2",
    params(("model" = String, Path, description = "Model name"), ("version" = String, Path, description = "Version number")),
    responses((status = 200, description = "ready"), (status = 400, description = "not ready", body = V2ErrorBody), (status = 404, body = V2ErrorBody)))]
async fn version_ready(
    State(pipeline): State<Pipeline>,
    V2(access): V2<CredentialOrg<can::DescribeModel>>,
    V2(ApiPath((name, version))): V2<ApiPath<(String, String)>>,
) -> V2Result<StatusCode> {
    let version = version_number(&version)?;
    ready(&pipeline, &access.org.id, &name, Some(version)).await
}

async fn infer_call(
    pipeline: &Pipeline,
    access: &OrgAccess,
    name: &str,
    version: Option<i64>,
    headers: &HeaderMap,
    admitted: Admitted,
    body: Bytes,
) -> V2Result<Response> {
    let header_length = match headers.get(v2_codec::HEADER_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Inference-Header-Content-Length must be a byte count")
                })?,
        ),
    };
    let path = Selector {
        version,
        alias: None,
    };
    let call = Call {
        access,
        model: name,
        path,
        options: call_options(headers),
    };
    let (encoded, cache) = pipeline
        .call(admitted, call, V2Codec { header_length }, body)
        .await?;
    let mut response = encoded.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        super::predict::CACHE_HEADER,
        HeaderValue::from_static(cache.as_str()),
    );
    match encoded.header_length {
        Some(length) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(v2_codec::HEADER_LENGTH, HeaderValue::from(length));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(response)
}

/// Inference on the deployed version. The body is a V2 inference request in JSON,
/// optionally followed by binary tensor data (`Inference-Header-Content-Length` gives the
/// JSON's length; inputs say theirs in `parameters.binary_data_size`). Outputs come back as
/// JSON, or as binary data when asked with `parameters.binary_data` or the request's
/// `parameters.binary_data_output`. No `Content-Type` is needed.
#[utoipa::path(post, path = "/v2/models/{model}/infer", tag = "inference-v2",
    params(("model" = String, Path, description = "Model name")),
    request_body(content = serde_json::Value, description = "A V2 inference request, optionally followed by binary tensor data"),
    responses(
        (status = 200, description = "A V2 inference response, optionally followed by binary tensor data", body = serde_json::Value),
        (status = 400, description = "bad request or inputs", body = V2ErrorBody),
        (status = 401, body = V2ErrorBody),
        (status = 404, description = "unknown model or version", body = V2ErrorBody),
        (status = 409, description = "not deployed, or the deployment failed", body = V2ErrorBody),
        (status = 413, body = V2ErrorBody),
        (status = 422, description = "the model failed or hit a limit", body = V2ErrorBody),
        (status = 503, body = V2ErrorBody),
        (status = 504, body = V2ErrorBody),
    ))]
async fn infer(
    State(state): State<AppState>,
    State(pipeline): State<Pipeline>,
    V2(access): V2<CredentialOrg<can::Predict>>,
    V2(ApiPath(name)): V2<ApiPath<String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    idempotent_infer(
        &state,
        &pipeline,
        &access,
        (&name, None),
        &uri,
        &headers,
        body,
    )
    .await
}

/// Inference on one version of a deployed model; otherwise as `/v2/models/{model}/infer`.
#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer", tag = "inference-v2",
    params(("model" = String, Path, description = "Model name"), ("version" = String, Path, description = "Version number")),
    request_body(content = serde_json::Value, description = "A V2 inference request, optionally followed by binary tensor data"),
    responses(
        (status = 200, description = "A V2 inference response, optionally followed by binary tensor data", body = serde_json::Value),
        (status = 400, body = V2ErrorBody),
        (status = 404, body = V2ErrorBody),
    ))]
async fn infer_version(
    State(state): State<AppState>,
    State(pipeline): State<Pipeline>,
    V2(access): V2<CredentialOrg<can::Predict>>,
    V2(ApiPath((name, version))): V2<ApiPath<(String, String)>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let version = match version_number(&version) {
        Ok(version) => version,
        Err(error) => return V2Error(error).into_response(),
    };
    idempotent_infer(
        &state,
        &pipeline,
        &access,
        (&name, Some(version)),
        &uri,
        &headers,
        body,
    )
    .await
}

/// [`infer_call`] under the caller's `Idempotency-Key`, if it sent one.
async fn idempotent_infer(
    state: &AppState,
    pipeline: &Pipeline,
    access: &OrgAccess,
    (name, version): (&str, Option<i64>),
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let (admitted, body) = match body_bytes(pipeline, access, headers, body).await {
        Ok(admitted) => admitted,
        Err(error) => return V2Error(error).into_response(),
    };
    let called = Called {
        method: &Method::POST,
        uri,
        headers,
        body: &body,
    };
    let call = infer_call(
        pipeline,
        access,
        name,
        version,
        headers,
        admitted,
        body.clone(),
    );
    once(state, access, called, async { call.await.into_response() }).await
}

/// The V2 wire format: a JSON header, optionally followed by binary tensor data.
#[derive(Debug, Clone, Copy)]
struct V2Codec {
    /// `Inference-Header-Content-Length`, when binary data follows the JSON.
    header_length: Option<usize>,
}

impl Codec for V2Codec {
    const PROTOCOL: Protocol = Protocol::V2;
    type Request = ParsedRequest;
    type Carry = (Option<String>, OutputSelection);
    type Response = EncodedResponse;

    fn parse(&self, body: Bytes) -> DomainResult<ParsedRequest> {
        Ok(v2_codec::parse_request(body, self.header_length)?)
    }

    fn segment(&self, request: &ParsedRequest) -> DomainResult<Option<String>> {
        Ok(request.segment()?)
    }

    fn inputs(
        &self,
        request: ParsedRequest,
        signature: &ModelSignature,
    ) -> DomainResult<(Vec<NamedTensor>, Self::Carry)> {
        let request = request.check(signature)?;
        Ok((request.inputs, (request.id, request.outputs)))
    }

    fn encode(
        &self,
        served: Served,
        invoked: Invoked,
        (id, selection): Self::Carry,
    ) -> DomainResult<EncodedResponse> {
        Ok(v2_codec::encode_response(
            &served.model,
            &served.version.to_string(),
            id.as_deref(),
            &invoked.outputs,
            &selection,
        )?)
    }
}
