//! The KServe V1 protocol: `POST /v1/models/{name}:predict` and `GET /v1/models/{name}`.
//!
//! Like V2, the organisation comes from the credential and errors are `{"error": "…"}`
//! ([`V2Error`]). A single-input model only: instances are the rows of its input.
//!
//! The router matches whole path segments, so `{name}:predict` cannot be a route of its
//! own: one `{target}` segment takes both forms, and the handlers split the verb off.
//! The OpenAPI document still shows the paths as clients write them.

use crate::serving::metrics::Protocol;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use wisp_host::NamedTensor;

use super::idempotency::{Called, once};
use super::predict::{MAX_PREDICT_BODY, call_options};
use super::v2::{V2, V2Error, V2ErrorBody, body_bytes};
use super::{ApiPath, AppState};
use crate::access::OrgAccess;
use crate::api::CredentialOrg;
use crate::auth::rbac::can;
use crate::error::{ApiError, ErrorCode};
use crate::error::{DomainError, DomainResult};
use crate::inspect::ModelSignature;
use crate::serving::pipeline::{Admitted, Call, Codec, Invoked, Pipeline, Selector, Served};
use crate::serving::tensors::tensor_type;
use crate::serving::v1_codec::{self, V1Error};

#[derive(OpenApi)]
#[openapi(paths(model_status, predict))]
struct KServeV1Doc;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(KServeV1Doc::openapi())
        .route("/v1/models/{target}", get(model_status).post(predict))
        .layer(DefaultBodyLimit::max(MAX_PREDICT_BODY))
}

/// A V1 predict request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct V1PredictRequest {
    /// Rows of the model's input, each nested as one row of it.
    #[schema(value_type = Vec<Object>)]
    pub instances: Vec<Value>,
}

/// A V1 prediction.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1PredictResponse {
    /// One per instance: the row of the only output, or `{output name: row}`.
    #[schema(value_type = Vec<Object>)]
    pub predictions: Vec<Value>,
}

/// A V1 model status.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1ModelStatus {
    pub name: String,
    pub ready: bool,
}

/// Whether the model serves calls: `200 {"name", "ready": true}`, else `503`.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "inference-v1",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, body = V1ModelStatus), (status = 404, body = V2ErrorBody), (status = 503, description = "not ready", body = V2ErrorBody)))]
async fn model_status(
    State(pipeline): State<Pipeline>,
    V2(access): V2<CredentialOrg<can::DescribeModel>>,
    V2(ApiPath(name)): V2<ApiPath<String>>,
) -> Result<Json<V1ModelStatus>, V2Error> {
    match pipeline.readiness(&access.org.id, &name, None).await? {
        Ok(()) => Ok(Json(V1ModelStatus { name, ready: true })),
        // KServe answers a model that is not ready with 503.
        Err(why) => Err(V2Error(ApiError::new(ErrorCode::Overloaded, why))),
    }
}

/// Runs the deployed version of a single-input model on `instances`, the rows of its input.
#[utoipa::path(post, path = "/v1/models/{model}:predict", tag = "inference-v1",
    params(("model" = String, Path, description = "Model name")),
    request_body = V1PredictRequest,
    responses(
        (status = 200, body = V1PredictResponse),
        (status = 400, body = V2ErrorBody),
        (status = 401, body = V2ErrorBody),
        (status = 404, body = V2ErrorBody),
        (status = 409, description = "not deployed, or the deployment failed", body = V2ErrorBody),
        (status = 422, description = "the model failed or hit a limit", body = V2ErrorBody),
    ))]
async fn predict(
    State(state): State<AppState>,
    State(pipeline): State<Pipeline>,
    V2(access): V2<CredentialOrg<can::Predict>>,
    V2(ApiPath(target)): V2<ApiPath<String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(name) = target.strip_suffix(":predict") else {
        return V2Error(ApiError::new(
            ErrorCode::NotFound,
            "no such endpoint: POST /v1/models/{name}:predict",
        ))
        .into_response();
    };
    let (admitted, body) = match body_bytes(&pipeline, &access, &headers, body).await {
        Ok(admitted) => admitted,
        Err(error) => return V2Error(error).into_response(),
    };
    let called = Called {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let call = predict_call(&pipeline, &access, name, &headers, admitted, body.clone());
    once(&state, &access, called, async {
        call.await.into_response()
    })
    .await
}

async fn predict_call(
    pipeline: &Pipeline,
    access: &OrgAccess,
    name: &str,
    headers: &HeaderMap,
    admitted: Admitted,
    body: Bytes,
) -> Result<Json<V1PredictResponse>, V2Error> {
    let call = Call {
        access,
        model: name,
        path: Selector::default(),
        options: call_options(headers),
    };
    let (predictions, _) = pipeline.call(admitted, call, V1Codec, body).await?;
    Ok(Json(V1PredictResponse { predictions }))
}

/// KServe V1: `{"instances": [...]}` for a model with one input, `{"predictions": [...]}`.
#[derive(Debug, Clone, Copy)]
struct V1Codec;

impl Codec for V1Codec {
    const PROTOCOL: Protocol = Protocol::V1;
    type Request = V1PredictRequest;
    type Carry = ();
    type Response = Vec<Value>;

    fn parse(&self, body: Bytes) -> DomainResult<V1PredictRequest> {
        serde_json::from_slice(&body).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() {
                ErrorCode::InvalidJson
            } else {
                ErrorCode::InvalidRequest
            };
            DomainError::new(code, e.to_string())
        })
    }

    fn inputs(
        &self,
        request: V1PredictRequest,
        signature: &ModelSignature,
    ) -> DomainResult<(Vec<NamedTensor>, ())> {
        let invalid = |message: String| DomainError::new(ErrorCode::InvalidInput, message);
        let spec = match signature.inputs.as_slice() {
            [spec] => spec,
            specs => {
                return Err(invalid(format!(
                    "KServe V1 needs a model with one input; this one has {}: use V2",
                    specs.len()
                )));
            }
        };
        let ty = tensor_type(spec.dtype).ok_or_else(|| {
            invalid(format!(
                "input `{}` has dtype {:?}, which wisp cannot pass to a model",
                spec.name, spec.dtype
            ))
        })?;
        let tensor = v1_codec::instances_tensor(ty, &request.instances)
            .map_err(|e| DomainError::new(ErrorCode::InvalidInput, e.to_string()))?;
        Ok((vec![NamedTensor::new(&spec.name, tensor)], ()))
    }

    fn encode(&self, _: Served, invoked: Invoked, (): ()) -> DomainResult<Vec<Value>> {
        v1_codec::predictions(&invoked.outputs).map_err(|e| match e {
            V1Error::TooLarge(why) => DomainError::new(ErrorCode::OutputTooLarge, why),
            V1Error::Invalid(why) => DomainError::new(ErrorCode::InferenceFailed, why),
        })
    }
}
