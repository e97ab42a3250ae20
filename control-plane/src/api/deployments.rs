//! Deployments: deploy a version (or follow an alias), undeploy, roll back, history.
//!
//! A change is recorded (row, history, audit) in one transaction with the deployment
//! `pending`; the component and graph are then loaded in the background and the deployment
//! becomes `ready` or `failed` with a reason. `"wait": true` answers only once it has.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::models::find_model;
use super::{ApiJson, ApiPath, AppState};
use crate::api::Authorized;
use crate::api::Meta;
use crate::auth::rbac::can;
use crate::deployments::{self, Backend, Deployment, HistoryEntry};
use crate::domain::deployments::{Deploy, WarmUp};
use crate::domain::{self, Acting};
use crate::error::DomainResult;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::serving::traffic::{Shadow, Variant, VariantStats};
use crate::serving::warmup;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deployments))
        .routes(routes!(get_deployment, deploy, undeploy))
        .routes(routes!(rollback))
        .routes(routes!(promote))
        .routes(routes!(traffic_stats))
        .routes(routes!(deployment_history))
}

/// What to deploy: a version, or an alias to follow (exactly one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Serve this version.
    pub version: Option<i64>,
    /// Serve the version this alias points at, and move with it.
    pub alias: Option<String>,
    /// Answer once the deployment is `ready` or `failed` instead of at once.
    #[serde(default)]
    pub wait: bool,
    /// Serve repeated identical requests from a result cache for this many seconds
    /// (0, the default, disables it).
    #[serde(default)]
    pub cache_ttl_secs: u32,
    /// Split calls across versions by weight (A/B test, canary) instead of `version` or
    /// `alias`; a call with an `x-wisp-route-key` header always lands on the same variant.
    pub traffic: Option<Vec<Variant>>,
    /// Mirror a share of calls to this version; its answers are discarded.
    pub shadow: Option<Shadow>,
    /// The engine that runs the model's ONNX graph: `tract` (the default; every wisp has
    /// it), `onnxruntime`, or `auto` (tract, and onnxruntime for a graph tract refuses).
    /// `onnxruntime` and `auto` need a wisp built with the onnxruntime backend (cargo
    /// feature `onnxruntime`); without it they are refused with `invalid_request`.
    #[serde(default)]
    pub backend: Backend,
}

/// The version to make the only one served.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub version: i64,
    #[serde(default)]
    pub wait: bool,
}

/// Where to roll back to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to go back to; by default the one served before the current one.
    pub version: Option<i64>,
    #[serde(default)]
    pub wait: bool,
}

type Deployed = (StatusCode, Json<Deployment>);

/// Deployments of the organisation.
#[utoipa::path(get, path = "/v1/orgs/{org}/deployments", tag = "deployments",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [Deployment])))]
async fn list_deployments(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
) -> ApiResult<Json<Vec<Deployment>>> {
    let conn = state.db.read().await;
    Ok(Json(deployments::list(&conn, &access.org.id).await?))
}

/// The model's deployment.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/deployment", tag = "deployments",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = Deployment), (status = 404, description = "`not_found`: no such model, or it is not deployed", body = crate::error::ErrorBody)))]
async fn get_deployment(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Deployment>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    deployments::get(&conn, &model.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("deployment"))
}

/// Deploys a version, or the version an alias points at (following the alias from then
/// on). Replaces the current deployment.
#[utoipa::path(put, path = "/v1/orgs/{org}/models/{model}/deployment", tag = "deployments", request_body = DeployRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses(
        (status = 202, description = "Recorded; loading in the background", body = Deployment),
        (status = 200, description = "With `wait`: ready or failed", body = Deployment),
        (status = 400, description = "`invalid_request`: e.g. `backend` `onnxruntime` or `auto` on a wisp built without the onnxruntime backend", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn deploy(
    State(state): State<AppState>,
    access: Authorized<can::Deploy>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<DeployRequest>,
) -> ApiResult<Deployed> {
    let (_, name) = path;
    request
        .backend
        .check_built_in()
        .map_err(ApiError::invalid)?;
    let acting = Acting::new(&access, &meta);
    let (job, model_id) = state
        .db
        .transaction(async |tx| -> ApiResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            let deploy = Deploy {
                version: request.version,
                alias: request.alias.as_deref(),
                traffic: request.traffic.as_deref(),
                shadow: request.shadow.as_ref(),
                cache_ttl_secs: request.cache_ttl_secs,
                backend: request.backend,
            };
            let job = domain::deployments::deploy(tx, &acting, &model, deploy).await?;
            Ok((job, model.id))
        })
        .await?;
    respond(&state, job, &model_id, request.wait).await
}

/// Stops serving the model. Its versions stay in the registry.
#[utoipa::path(delete, path = "/v1/orgs/{org}/models/{model}/deployment", tag = "deployments",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn undeploy(
    State(state): State<AppState>,
    access: Authorized<can::Deploy>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, name) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            domain::deployments::undeploy(tx, &acting, &model).await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Goes back to the version served before the current one (or to `version`). The
/// deployment then pins that version: it stops following an alias.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/deployment/rollback", tag = "deployments", request_body = RollbackRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses(
        (status = 202, body = Deployment),
        (status = 200, description = "With `wait`: ready or failed", body = Deployment),
        (status = 404, description = "`not_found`: no such model, deployment or earlier version", body = crate::error::ErrorBody)))]
async fn rollback(
    State(state): State<AppState>,
    access: Authorized<can::Deploy>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Deployed> {
    let (_, name) = path;
    // The body is optional: an empty one rolls back to the previous version.
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?
    };
    let acting = Acting::new(&access, &meta);
    let (job, model_id) = state
        .db
        .transaction(async |tx| -> ApiResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            let job = domain::deployments::rollback(tx, &acting, &model, request.version).await?;
            Ok((job, model.id))
        })
        .await?;
    respond(&state, job, &model_id, request.wait).await
}

/// Makes one version (typically a canary that did well) the only one served, ending any
/// traffic split and shadow, in one call.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/deployment/promote", tag = "deployments", request_body = PromoteRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses(
        (status = 202, body = Deployment),
        (status = 200, description = "With `wait`: ready or failed", body = Deployment),
        (status = 404, body = crate::error::ErrorBody)))]
async fn promote(
    State(state): State<AppState>,
    access: Authorized<can::Deploy>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<PromoteRequest>,
) -> ApiResult<Deployed> {
    let (_, name) = path;
    let acting = Acting::new(&access, &meta);
    let (job, model_id) = state
        .db
        .transaction(async |tx| -> ApiResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            let job = domain::deployments::promote(tx, &acting, &model, request.version).await?;
            Ok((job, model.id))
        })
        .await?;
    respond(&state, job, &model_id, request.wait).await
}

/// Calls, errors and latencies of each version the model served (`live`) or shadowed
/// (`shadow`) since the server started.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/deployment/traffic", tag = "deployments",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = [VariantStats]), (status = 404, body = crate::error::ErrorBody)))]
async fn traffic_stats(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<VariantStats>>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(state.traffic.of_model(&model.id)))
}

/// Every deploy, alias move, rollback and undeploy of the model, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/deployment/history", tag = "deployments",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = [HistoryEntry]), (status = 404, body = crate::error::ErrorBody)))]
async fn deployment_history(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(deployments::history(&conn, &model.id).await?))
}

/// Starts the warm-up; with `wait`, answers its outcome.
async fn respond(state: &AppState, job: WarmUp, model_id: &str, wait: bool) -> ApiResult<Deployed> {
    warm_up(state, job, wait).await?;
    let conn = state.db.read().await;
    let deployment = deployments::get(&conn, model_id).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, "the deployment was removed meanwhile")
    })?;
    let status = if wait {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(deployment)))
}

/// Loads a recorded deployment change in the background (the API and the dashboard);
/// with `wait`, returns once it is `ready` or `failed`.
pub(crate) async fn warm_up(state: &AppState, job: WarmUp, wait: bool) -> ApiResult<()> {
    let handle = warmup::spawn(state.db.clone(), state.serving.clone(), job);
    if wait {
        handle.await.map_err(ApiError::internal)?;
    }
    Ok(())
}
