//! The model registry's metadata endpoints: models, versions, aliases and their history.
//!
//! Uploading a version is in [`super::upload`].

use crate::api::Meta;
use crate::db::Reader;
use crate::domain::{self, Acting};
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::api::Authorized;
use crate::auth::rbac::can;
use crate::error::DomainResult;
use crate::error::{ApiError, ApiResult};
use crate::registry::{self, Alias, AliasMove, Model, ModelVersion, VersionPatch};
use crate::serving::warmup;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models, create_model))
        .routes(routes!(get_model, delete_model))
        .routes(routes!(get_version, patch_version))
        .routes(routes!(download_version))
        .routes(routes!(list_aliases))
        .routes(routes!(get_alias, set_alias, delete_alias))
        .routes(routes!(alias_history))
}

/// A new model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    /// Any printable text up to 256 characters; stored and returned exactly as given.
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Metadata changes to a version; absent fields are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchVersion {
    pub description: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub metrics: Option<BTreeMap<String, f64>>,
    pub run_id: Option<String>,
}

/// Where an alias should point.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    pub version: i64,
}

/// The result of moving an alias.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasMoved {
    pub alias: String,
    pub version: i64,
    pub previous_version: Option<i64>,
    /// Whether the model's deployment follows this alias and is now loading the version.
    pub redeployed: bool,
}

/// Filter for the alias history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this alias.
    pub alias: Option<String>,
}

/// Model names are free text: SQL or path-like names are stored literally (they never
/// reach SQL unbound, nor the filesystem). Only names a URL cannot carry are refused.
pub(crate) fn validate_model_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "model name must be 1-256 printable characters",
        ));
    }
    if name == "." || name == ".." {
        return Err(ApiError::invalid("model name cannot be '.' or '..'"));
    }
    Ok(())
}

pub(crate) fn validate_alias(alias: &str) -> ApiResult<()> {
    let valid = (1..=64).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !alias.bytes().all(|b| b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "alias must be 1-64 letters, digits, '-', '_' or '.', and not a number",
        ))
    }
}

/// Looks a model up in the caller's organisation; other organisations' models are not found.
pub(crate) async fn find_model(conn: &Reader, org_id: &str, name: &str) -> ApiResult<Model> {
    registry::get_model(conn, org_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("model"))
}

/// Models of the organisation.
#[utoipa::path(get, path = "/v1/orgs/{org}/models", tag = "models",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [Model])))]
async fn list_models(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
) -> ApiResult<Json<Vec<Model>>> {
    let conn = state.db.read().await;
    Ok(Json(registry::list_models(&conn, &access.org.id).await?))
}

/// Creates a model (without versions yet).
#[utoipa::path(post, path = "/v1/orgs/{org}/models", tag = "models", request_body = CreateModel,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = Model), (status = 409, body = crate::error::ErrorBody),
        (status = 429, description = "`quota_exceeded`: the plan's number of models", body = crate::error::ErrorBody)))]
async fn create_model(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiJson(request): ApiJson<CreateModel>,
) -> ApiResult<(StatusCode, Json<Model>)> {
    validate_model_name(&request.name)?;
    let acting = Acting::new(&access, &meta);
    let model = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::models::create(tx, &acting, &request.name, &request.description, json!({}))
                .await
        })
        .await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// One model.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = Model), (status = 404, body = crate::error::ErrorBody)))]
async fn get_model(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Model>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    Ok(Json(find_model(&conn, &access.org.id, &name).await?))
}

/// Deletes a model, its versions and aliases; files no other version uses are deleted too.
#[utoipa::path(delete, path = "/v1/orgs/{org}/models/{model}", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_model(
    State(state): State<AppState>,
    access: Authorized<can::DeleteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, name) = path;
    // Blobs are deleted while the database lock is still held, so an upload of the same
    // bytes cannot slip a new reference in between the check and the deletion (the upload
    // re-checks its blob under the same lock).
    let acting = Acting::new(&access, &meta);
    let conn = state.db.write().await;
    let orphans = conn
        .transaction(async |tx| -> DomainResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            domain::models::delete(tx, &acting, &model).await
        })
        .await?;
    for digest in orphans {
        if let Err(e) = state.blobs.delete(&digest).await {
            // The rows are gone; a leftover blob only costs space.
            tracing::warn!(error = %e, blob = digest, "failed to delete unreferenced blob");
        }
    }
    drop(conn);
    Ok(StatusCode::NO_CONTENT)
}

async fn resolve_version(conn: &Reader, model: &Model, version: i64) -> ApiResult<ModelVersion> {
    registry::get_version(conn, &model.id, version)
        .await?
        .ok_or_else(|| ApiError::not_found("version"))
}

/// One version with its signature and metadata.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/versions/{version}", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), ("version" = i64, Path)),
    responses((status = 200, body = ModelVersion), (status = 404, body = crate::error::ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> ApiResult<Json<ModelVersion>> {
    let (_, name, version) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(resolve_version(&conn, &model, version).await?))
}

/// The file of a version, as uploaded. `ETag` is its sha256.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/versions/{version}/file", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), ("version" = i64, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = crate::error::ErrorBody)))]
async fn download_version(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> ApiResult<Response> {
    let (_, name, version) = path;
    let digest = {
        let conn = state.db.read().await;
        let model = find_model(&conn, &access.org.id, &name).await?;
        resolve_version(&conn, &model, version).await?.sha256
    };
    let bytes = state
        .blobs
        .get(&digest)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("blob {digest} of a version is missing"))
        })?;
    let etag = HeaderValue::from_str(&format!("\"{digest}\"")).map_err(ApiError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}

/// Updates a version's description, tags, metrics or run id.
#[utoipa::path(patch, path = "/v1/orgs/{org}/models/{model}/versions/{version}", tag = "models", request_body = PatchVersion,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), ("version" = i64, Path)),
    responses((status = 200, body = ModelVersion), (status = 404, body = crate::error::ErrorBody)))]
async fn patch_version(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String, i64)>,
    ApiJson(request): ApiJson<PatchVersion>,
) -> ApiResult<Json<ModelVersion>> {
    let (_, name, version) = path;
    let patch = VersionPatch {
        description: request.description,
        tags: request.tags,
        metrics: request.metrics,
        run_id: request.run_id,
    };
    let acting = Acting::new(&access, &meta);
    let updated = state
        .db
        .transaction(async |tx| -> ApiResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            domain::models::update_version(tx, &acting, &model, version, &patch).await?;
            resolve_version(tx, &model, version).await
        })
        .await?;
    Ok(Json(updated))
}

/// Aliases of a model.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/aliases", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = [Alias]), (status = 404, body = crate::error::ErrorBody)))]
async fn list_aliases(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<Alias>>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(registry::list_aliases(&conn, &model.id).await?))
}

/// The version an alias points at.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/aliases/{alias}", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), ("alias" = String, Path)),
    responses((status = 200, body = ModelVersion), (status = 404, body = crate::error::ErrorBody)))]
async fn get_alias(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ModelVersion>> {
    let (_, name, alias) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    let version = registry::alias_target(&conn, &model.id, &alias)
        .await?
        .ok_or_else(|| ApiError::not_found("alias"))?;
    Ok(Json(resolve_version(&conn, &model, version).await?))
}

/// Points an alias at a version, atomically, recording the move in its history.
#[utoipa::path(put, path = "/v1/orgs/{org}/models/{model}/aliases/{alias}", tag = "models", request_body = SetAlias,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), ("alias" = String, Path)),
    responses((status = 200, body = AliasMoved), (status = 404, body = crate::error::ErrorBody)))]
async fn set_alias(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String, String)>,
    ApiJson(request): ApiJson<SetAlias>,
) -> ApiResult<Json<AliasMoved>> {
    let (_, name, alias) = path;
    validate_alias(&alias)?;
    let acting = Acting::new(&access, &meta);
    let (moved, redeploy) = state
        .db
        .transaction(async |tx| -> ApiResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            let moved =
                domain::models::move_alias(tx, &acting, &model, &alias, request.version).await?;
            let answer = AliasMoved {
                alias: alias.clone(),
                version: request.version,
                previous_version: moved.previous,
                redeployed: moved.redeploy.is_some(),
            };
            Ok((answer, moved.redeploy))
        })
        .await?;
    if let Some(job) = redeploy {
        warmup::spawn(state.db.clone(), state.serving.clone(), job);
    }
    Ok(Json(moved))
}

/// Deletes an alias (recorded in its history).
#[utoipa::path(delete, path = "/v1/orgs/{org}/models/{model}/aliases/{alias}", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), ("alias" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_alias(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (_, name, alias) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            domain::models::delete_alias(tx, &acting, &model, &alias).await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every move of the model's aliases, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/alias-history", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), HistoryQuery),
    responses((status = 200, body = [AliasMove]), (status = 404, body = crate::error::ErrorBody)))]
async fn alias_history(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<AliasMove>>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(
        registry::alias_history(&conn, &model.id, query.alias.as_deref()).await?,
    ))
}
