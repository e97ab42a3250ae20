//! API keys: create (the secret is shown once), list, read, rename, revoke.
//!
//! A caller sees and manages only the keys it could have created ([`rbac::key_access`]):
//! a key it may not see answers `404`, one it may see but not manage `403`.

use crate::db::Reader;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, AppState};
use crate::access::{OrgAccess, Principal};
use crate::api::Authorized;
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::auth::rbac::{self, KeyAccess, can};
use crate::auth::{Scope, tokens};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::keys::{self, ApiKey, ManagedKey, NewKey};

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

/// The user the caller acts for: a signed-in user, or the person its key acts for.
async fn caller_principal(conn: &Reader, access: &OrgAccess) -> ApiResult<Option<String>> {
    Ok(match &access.principal {
        Principal::User { id, .. } => Some(id.clone()),
        Principal::ApiKey { id, .. } => keys::principal_of(conn, &access.org.id, id).await?,
    })
}

/// What the caller, acting for `me`, may do with `key`.
fn access_to(access: &OrgAccess, me: Option<&str>, key: &ManagedKey) -> KeyAccess {
    let own = me.is_some() && key.key.principal_user_id.as_deref() == me;
    rbac::key_access(
        access.acting_role(),
        own,
        &key.key.scopes,
        key.principal_role,
    )
}

/// The key `key_id` if the caller may manage it: `404` if it may not even see it, `403` if
/// it sees it but could not have created it.
async fn managed_key(conn: &Reader, access: &OrgAccess, key_id: &str) -> ApiResult<ApiKey> {
    let me = caller_principal(conn, access).await?;
    let key = keys::get(conn, &access.org.id, key_id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    match access_to(access, me.as_deref(), &key) {
        KeyAccess::Manage => Ok(key.key),
        KeyAccess::ReadOnly => Err(ApiError::new(
            ErrorCode::Forbidden,
            "you can only manage keys you could have created",
        )),
        KeyAccess::Hidden => Err(ApiError::not_found("API key")),
    }
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
    state.lookups.flush_key_uses().await?;
    let conn = state.db.read().await;
    let me = caller_principal(&conn, &access).await?;
    let visible = keys::list(&conn, &access.org.id)
        .await?
        .into_iter()
        .filter(|key| access_to(&access, me.as_deref(), key) != KeyAccess::Hidden)
        .map(|key| key.key)
        .collect();
    Ok(Json(visible))
}

/// Creates a key. Nobody creates a key with more power than they have.
#[utoipa::path(post, path = "/v1/orgs/{org}/api-keys", tag = "api-keys", request_body = CreateKey,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = CreatedKey), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    access: Authorized<can::ManageKeys>,
    meta: RequestMeta,
    ApiJson(request): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    validate_name(&request.name)?;
    let mut scopes: Vec<Scope> = Vec::new();
    for scope in &request.scopes {
        if !scopes.contains(scope) {
            scopes.push(*scope);
        }
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid("a key needs at least one scope"));
    }
    let role = access.acting_role();
    if let Some(scope) = scopes.iter().find(|s| !rbac::role_may_grant(role, **s)) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "a {role} cannot create a key with the {} scope",
                scope.as_str()
            ),
        ));
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
    let key = state.db.transaction(async |tx| -> Result<_, crate::error::ApiError> {
        // The new key acts for the caller's person, so that it dies with their membership.
        let principal = caller_principal(tx, &access).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Forbidden,
                "this key acts for nobody and cannot create keys",
            )
        })?;
        let id = keys::insert(
            tx,
            &NewKey {
                org_id: &access.org.id,
                name: &request.name,
                prefix: &generated.display_prefix,
                key_hash: &generated.hash,
                scopes: &scopes,
                created_by: &access.actor(),
                principal_user_id: &principal,
                expires_at,
            },
        )
        .await?;
        audit::record(
            tx,
            &meta,
            AuditEvent {
                org_id: Some(&access.org.id),
                actor: &access.actor(),
                action: "apikey.created",
                target: Some(&format!("apikey:{id}")),
                details: json!({ "name": request.name, "scopes": scopes, "prefix": generated.display_prefix }),
            },
        )
        .await?;
        keys::get(tx, &access.org.id, &id)
            .await?
            .map(|key| key.key)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("key vanished")))
    }).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key,
            secret: generated.secret,
        }),
    ))
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
    let me = caller_principal(&conn, &access).await?;
    keys::get(&conn, &access.org.id, &key_id)
        .await?
        .filter(|key| access_to(&access, me.as_deref(), key) != KeyAccess::Hidden)
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
    meta: RequestMeta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<RenameKey>,
) -> ApiResult<Json<ApiKey>> {
    let (_, key_id) = path;
    validate_name(&request.name)?;
    let key = state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            managed_key(tx, &access, &key_id).await?;
            if !keys::rename(tx, &access.org.id, &key_id, &request.name).await? {
                return Err(ApiError::not_found("API key"));
            }
            audit::record(
                tx,
                &meta,
                AuditEvent {
                    org_id: Some(&access.org.id),
                    actor: &access.actor(),
                    action: "apikey.renamed",
                    target: Some(&format!("apikey:{key_id}")),
                    details: json!({ "name": request.name }),
                },
            )
            .await?;
            keys::get(tx, &access.org.id, &key_id)
                .await?
                .map(|key| key.key)
                .ok_or_else(|| ApiError::not_found("API key"))
        })
        .await?;
    Ok(Json(key))
}

/// Revokes a key the caller could have created: the next request made with it is refused.
#[utoipa::path(delete, path = "/v1/orgs/{org}/api-keys/{key_id}", tag = "api-keys",
    params(("org" = String, Path, description = "Organisation slug"), ("key_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    access: Authorized<can::ManageKeys>,
    meta: RequestMeta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, key_id) = path;
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            managed_key(tx, &access, &key_id).await?;
            if !keys::revoke(tx, &access.org.id, &key_id).await? {
                return Err(ApiError::not_found("API key"));
            }
            audit::record(
                tx,
                &meta,
                AuditEvent {
                    org_id: Some(&access.org.id),
                    actor: &access.actor(),
                    action: "apikey.revoked",
                    target: Some(&format!("apikey:{key_id}")),
                    details: json!({}),
                },
            )
            .await?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
