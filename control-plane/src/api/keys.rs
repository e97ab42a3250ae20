//! API keys: create (the secret is shown once), list, read, rename, revoke.
//!
//! The rules (who sees and manages which key) and the changes are domain operations
//! ([`crate::domain::keys`]); this is their HTTP edge.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, AppState};
use crate::access::OrgAccess;
use crate::api::Authorized;
use crate::api::Meta;
use crate::audit::RequestMeta;
use crate::auth::rbac::{KeyAccess, can};
use crate::auth::{Scope, tokens};
use crate::domain::keys::NewKeyRequest;
use crate::domain::{self, Acting};
use crate::error::DomainResult;
use crate::error::{ApiError, ApiResult};
use crate::keys::{self, ApiKey};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, rename_key, revoke_key))
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for, e.g. `checkout-service`.
    pub name: String,
    /// At least one of `predict`, `models:write`, `read`, `admin`.
    pub scopes: Vec<Scope>,
    /// RFC 3339; the key never expires if absent.
    pub expires_at: Option<String>,
}

/// The created key and its secret. The secret is not stored and cannot be shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// `wisp_…`; send as `Authorization: Bearer …`.
    pub secret: String,
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameKey {
    pub name: String,
}

fn validate_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name must be 1-128 printable characters"));
    }
    Ok(())
}

/// API keys of the organisation that the caller may see (never their secrets): owners
/// and admins see every key, members the keys acting for themselves.
#[utoipa::path(get, path = "/v1/orgs/{org}/api-keys", tag = "api-keys",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [ApiKey])))]
async fn list_keys(
    State(state): State<AppState>,
    access: Authorized<can::ReadKeys>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let visible = visible_keys(&state, &access).await?;
    Ok(Json(visible.into_iter().map(|(key, _)| key).collect()))
}

/// The organisation's keys the caller may see, with what it may do with each (the list
/// of the API and of the dashboard's keys page).
pub(crate) async fn visible_keys(
    state: &AppState,
    access: &OrgAccess,
) -> ApiResult<Vec<(ApiKey, KeyAccess)>> {
    state.lookups.flush_key_uses().await?;
    let conn = state.db.read().await;
    let me = domain::keys::caller_principal(&conn, access).await?;
    Ok(keys::list(&conn, &access.org.id)
        .await?
        .into_iter()
        .map(|key| {
            let can = domain::keys::access_to(access, me.as_deref(), &key);
            (key.key, can)
        })
        .filter(|(_, can)| *can != KeyAccess::Hidden)
        .collect())
}

/// Creates a key. Nobody creates a key with more power than they have.
#[utoipa::path(post, path = "/v1/orgs/{org}/api-keys", tag = "api-keys", request_body = CreateKey,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = CreatedKey), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    access: Authorized<can::ManageKeys>,
    Meta(meta): Meta,
    ApiJson(request): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let created = create(&state, &access, &meta, &request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Validates `request` and creates the key (the API's create and the dashboard's).
pub(crate) async fn create(
    state: &AppState,
    access: &OrgAccess,
    meta: &RequestMeta,
    request: &CreateKey,
) -> ApiResult<CreatedKey> {
    validate_name(&request.name)?;
    let mut scopes: Vec<Scope> = Vec::new();
    for scope in &request.scopes {
        if !scopes.contains(scope) {
            scopes.push(*scope);
        }
    }
    let expires_at = request
        .expires_at
        .as_deref()
        .map(|at| {
            OffsetDateTime::parse(at, &Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| ApiError::invalid("expires_at must be an RFC 3339 time"))
        })
        .transpose()?;
    if expires_at.is_some_and(|at| at <= crate::db::now()) {
        return Err(ApiError::invalid("expires_at must be in the future"));
    }
    let generated = tokens::generate_secret(tokens::API_KEY_PREFIX);
    let acting = Acting::new(access, meta);
    let new = NewKeyRequest {
        name: &request.name,
        scopes: &scopes,
        expires_at,
    };
    let key = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::keys::create(tx, &acting, access, new, &generated).await
        })
        .await?;
    Ok(CreatedKey {
        key,
        secret: generated.secret,
    })
}

/// One key the caller may see (`404` otherwise, as for a key that does not exist).
#[utoipa::path(get, path = "/v1/orgs/{org}/api-keys/{key_id}", tag = "api-keys",
    params(("org" = String, Path, description = "Organisation slug"), ("key_id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = crate::error::ErrorBody)))]
async fn get_key(
    State(state): State<AppState>,
    access: Authorized<can::ReadKeys>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<ApiKey>> {
    let (_, key_id) = path;
    state.lookups.flush_key_uses().await?;
    let conn = state.db.read().await;
    let me = domain::keys::caller_principal(&conn, &access).await?;
    keys::get(&conn, &access.org.id, &key_id)
        .await?
        .filter(|key| domain::keys::access_to(&access, me.as_deref(), key) != KeyAccess::Hidden)
        .map(|key| Json(key.key))
        .ok_or_else(|| ApiError::not_found("API key"))
}

/// Renames a key the caller could have created (see the key permission table).
#[utoipa::path(patch, path = "/v1/orgs/{org}/api-keys/{key_id}", tag = "api-keys", request_body = RenameKey,
    params(("org" = String, Path, description = "Organisation slug"), ("key_id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn rename_key(
    State(state): State<AppState>,
    access: Authorized<can::ManageKeys>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<RenameKey>,
) -> ApiResult<Json<ApiKey>> {
    let (_, key_id) = path;
    Ok(Json(
        rename(&state, &access, &meta, &key_id, &request.name).await?,
    ))
}

/// Renames a key the caller may manage (the API's `PATCH` and the dashboard's form).
pub(crate) async fn rename(
    state: &AppState,
    access: &OrgAccess,
    meta: &RequestMeta,
    key_id: &str,
    name: &str,
) -> ApiResult<ApiKey> {
    let name = name.trim();
    validate_name(name)?;
    let acting = Acting::new(access, meta);
    Ok(state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::keys::rename(tx, &acting, access, key_id, name).await
        })
        .await?)
}

/// Revokes a key the caller could have created: the next request made with it is refused.
#[utoipa::path(delete, path = "/v1/orgs/{org}/api-keys/{key_id}", tag = "api-keys",
    params(("org" = String, Path, description = "Organisation slug"), ("key_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    access: Authorized<can::ManageKeys>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, key_id) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::keys::revoke(tx, &acting, &access, &key_id).await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
