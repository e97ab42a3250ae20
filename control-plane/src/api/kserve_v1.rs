//! The KServe V1 protocol: `POST /v1/models/{name}:predict` and `GET /v1/models/{name}`.
//!
//! Like V2, the organisation comes from the credential and errors are `{"error": "…"}`
//! ([`V2Error`]). A single-input model only: instances are the rows of its input.
//!
//! The router matches whole path segments, so `{name}:predict` cannot be a route of its
//! own: one `{target}` segment takes both forms, and the handlers split the verb off.
//! The OpenAPI document still shows the paths as clients write them.

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
use super::predict::{
    MAX_PREDICT_BODY, enter_org, invoke, is_large, off_executor, readiness, resolve_routed,
    route_key,
};
use super::v2::{V2, V2Error, V2ErrorBody, body_bytes};
use super::{ApiPath, AppState};
use crate::auth::rbac::can;
use crate::auth::{CredentialOrg, OrgAccess};
use crate::error::{ApiError, ErrorCode};
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
    State(state): State<AppState>,
    V2(access): V2<CredentialOrg<can::DescribeModel>>,
    V2(ApiPath(name)): V2<ApiPath<String>>,
) -> Result<Json<V1ModelStatus>, V2Error> {
    match readiness(&state, &access.org.id, &name, None).await? {
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
    let body = match body_bytes(&state, &access, &headers, body).await {
        Ok(body) => body,
        Err(error) => return V2Error(error).into_response(),
    };
    let called = Called {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let call = predict_call(&state, &access, name, &headers, body.clone());
    once(&state, &access, called, async {
        call.await.into_response()
    })
    .await
}

async fn predict_call(
    state: &AppState,
    access: &OrgAccess,
    name: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Json<V1PredictResponse>, V2Error> {
    let slot = enter_org(state, &access.org.id).await?;
    let large = is_large(body.len());
    let request: V1PredictRequest = off_executor(large, move || {
        serde_json::from_slice(&body).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() {
                ErrorCode::InvalidJson
            } else {
                ErrorCode::InvalidRequest
            };
            ApiError::new(code, e.to_string())
        })
    })
    .await?;
    let target =
        resolve_routed(state, &access.org.id, name, None, None, route_key(headers)).await?;
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidInput, message);
    let spec = match target.version.signature.inputs.as_slice() {
        [spec] => spec,
        specs => {
            return Err(V2Error(invalid(format!(
                "KServe V1 needs a model with one input; this one has {}: use V2",
                specs.len()
            ))));
        }
    };
    let ty = tensor_type(spec.dtype).ok_or_else(|| {
        invalid(format!(
            "input `{}` has dtype {:?}, which wisp cannot pass to a model",
            spec.name, spec.dtype
        ))
    })?;
    let name = spec.name.clone();
    let tensor = off_executor(large, move || {
        v1_codec::instances_tensor(ty, &request.instances)
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.to_string()))
    })
    .await?;
    let inputs = vec![NamedTensor::new(&name, tensor)];
    let invoked = invoke(state, access, &target, inputs, headers, slot).await?;
    let large = is_large(invoked.usage.output_bytes as usize);
    let predictions = off_executor(large, move || {
        v1_codec::predictions(&invoked.outputs).map_err(|e| match e {
            V1Error::TooLarge(why) => ApiError::new(ErrorCode::OutputTooLarge, why),
            V1Error::Invalid(why) => ApiError::new(ErrorCode::InferenceFailed, why),
        })
    })
    .await?;
    Ok(Json(V1PredictResponse { predictions }))
}
