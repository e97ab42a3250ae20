//! Members of an organisation: list, add (creating the user if needed), change role, remove.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, AppState, transaction};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::auth::rbac::{self, can};
use crate::auth::{Authorized, Role, password, tokens};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::orgs::{self, Member};
use crate::{keys, users};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(get_member, change_role, remove_member))
}

/// Adds a user to the organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub email: String,
    pub role: Role,
    /// Initial password when the user does not exist yet; generated if absent.
    pub password: Option<String>,
}

/// The new membership; `initial_password` only when a user was created with a generated one.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMember {
    #[serde(flatten)]
    pub member: Member,
    /// Shown once. Hand it to the user; they sign in with it.
    pub initial_password: Option<String>,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
}

fn validate_email(email: &str) -> ApiResult<()> {
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid("email must look like name@domain"))
    }
}

fn forbid_assign(actor: Role, role: Role) -> ApiResult<()> {
    if rbac::role_may_assign(actor, role) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("a {actor} cannot give or take the {role} role"),
        ))
    }
}

/// Members of the organisation.
#[utoipa::path(get, path = "/v1/orgs/{org}/members", tag = "members",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [Member])))]
async fn list_members(
    State(state): State<AppState>,
    access: Authorized<can::ReadMembers>,
) -> ApiResult<Json<Vec<Member>>> {
    let conn = state.db.reader().await;
    Ok(Json(orgs::members(&conn, &access.org.id).await?))
}

/// One member.
#[utoipa::path(get, path = "/v1/orgs/{org}/members/{user_id}", tag = "members",
    params(("org" = String, Path, description = "Organisation slug"), ("user_id" = String, Path)),
    responses((status = 200, body = Member), (status = 404, body = crate::error::ErrorBody)))]
async fn get_member(
    State(state): State<AppState>,
    access: Authorized<can::ReadMembers>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Member>> {
    let (_, user_id) = path;
    let conn = state.db.reader().await;
    orgs::member(&conn, &access.org.id, &user_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("member"))
}

/// Adds a user (created if the email is new) with a role.
#[utoipa::path(post, path = "/v1/orgs/{org}/members", tag = "members", request_body = AddMember,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = AddedMember), (status = 409, body = crate::error::ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    meta: RequestMeta,
    ApiJson(request): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<AddedMember>)> {
    let email = request.email.trim().to_owned();
    validate_email(&email)?;
    forbid_assign(access.acting_role(), request.role)?;
    if request.password.as_ref().is_some_and(|p| p.len() < 8) {
        return Err(ApiError::invalid(
            "password must have at least 8 characters",
        ));
    }
    // Hash before taking the database lock: argon2 is slow on purpose. The hash is wasted
    // when the user exists already; adding members is rare.
    let (initial_password, password) = match request.password {
        Some(password) => (None, password),
        None => {
            let generated = tokens::random_hex_32()[..20].to_owned();
            (Some(generated.clone()), generated)
        }
    };
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let (member, created) = transaction!(state, |tx| {
        let (user_id, created) = match users::find_by_email(&tx, &email).await? {
            Some(user) => (user.id, false),
            None => (users::insert(&tx, &email, &hash).await?, true),
        };
        if orgs::role_in(&tx, &access.org.id, &user_id)
            .await?
            .is_some()
        {
            return Err(ApiError::new(ErrorCode::AlreadyExists, "already a member"));
        }
        orgs::add_member(&tx, &access.org.id, &user_id, request.role).await?;
        audit::record(
            &tx,
            &meta,
            AuditEvent {
                org_id: Some(&access.org.id),
                actor: &access.actor(),
                action: "member.added",
                target: Some(&format!("user:{user_id}")),
                details: json!({ "email": email, "role": request.role, "user_created": created }),
            },
        )
        .await?;
        let member = orgs::member(&tx, &access.org.id, &user_id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("membership vanished")))?;
        Ok((member, created))
    })?;
    Ok((
        StatusCode::CREATED,
        Json(AddedMember {
            member,
            initial_password: initial_password.filter(|_| created),
        }),
    ))
}

/// Changes a member's role. Only owners give or take the owner role; the last owner stays.
#[utoipa::path(patch, path = "/v1/orgs/{org}/members/{user_id}", tag = "members", request_body = ChangeRole,
    params(("org" = String, Path, description = "Organisation slug"), ("user_id" = String, Path)),
    responses((status = 200, body = Member), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn change_role(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    meta: RequestMeta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<ChangeRole>,
) -> ApiResult<Json<Member>> {
    let (_, user_id) = path;
    let member = transaction!(state, |tx| {
        let current = orgs::role_in(&tx, &access.org.id, &user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        forbid_assign(access.acting_role(), current)?;
        forbid_assign(access.acting_role(), request.role)?;
        if current == Role::Owner
            && request.role != Role::Owner
            && orgs::owner_count(&tx, &access.org.id).await? <= 1
        {
            return Err(ApiError::new(
                ErrorCode::LastOwner,
                "the organisation needs an owner",
            ));
        }
        orgs::set_role(&tx, &access.org.id, &user_id, request.role).await?;
        let revoked_keys = keys::revoke_beyond_role(
            &tx,
            &access.org.id,
            &format!("user:{user_id}"),
            Some(request.role),
        )
        .await?;
        audit::record(
            &tx,
            &meta,
            AuditEvent {
                org_id: Some(&access.org.id),
                actor: &access.actor(),
                action: "member.role_changed",
                target: Some(&format!("user:{user_id}")),
                details: json!({ "from": current, "to": request.role, "revoked_keys": revoked_keys }),
            },
        )
        .await?;
        orgs::member(&tx, &access.org.id, &user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))
    })?;
    Ok(Json(member))
}

/// Removes a member from the organisation (the user account stays).
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user_id}", tag = "members",
    params(("org" = String, Path, description = "Organisation slug"), ("user_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    meta: RequestMeta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, user_id) = path;
    transaction!(state, |tx| {
        let current = orgs::role_in(&tx, &access.org.id, &user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        forbid_assign(access.acting_role(), current)?;
        if current == Role::Owner && orgs::owner_count(&tx, &access.org.id).await? <= 1 {
            return Err(ApiError::new(
                ErrorCode::LastOwner,
                "the organisation needs an owner",
            ));
        }
        orgs::remove_member(&tx, &access.org.id, &user_id).await?;
        let revoked_keys =
            keys::revoke_beyond_role(&tx, &access.org.id, &format!("user:{user_id}"), None).await?;
        audit::record(
            &tx,
            &meta,
            AuditEvent {
                org_id: Some(&access.org.id),
                actor: &access.actor(),
                action: "member.removed",
                target: Some(&format!("user:{user_id}")),
                details: json!({ "role": current, "revoked_keys": revoked_keys }),
            },
        )
        .await?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
