//! Members of an organisation: list, invite ([`crate::invitations`]), change role, remove.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, AppState};
use crate::api::Authorized;
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::auth::rbac::{self, can};
use crate::auth::{Role, input};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::invitations::{self, InvitationView};
use crate::orgs::{self, Member};
use crate::{keys, users};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(get_member, change_role, remove_member))
}

/// Invites an email address to the organisation with a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// At most 254 bytes.
    pub email: String,
    pub role: Role,
}

/// The pending invitation and its token. The answer is the same whether the address has an
/// account or not; the person joins only when they accept.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMember {
    #[serde(flatten)]
    pub invitation: InvitationView,
    /// Always `pending`.
    pub status: &'static str,
    /// Shown once, works once, until `expires_at`. Forward it to the person: they accept
    /// with `wisp invitations accept <token>` (or `POST /v1/invitations/accept`), choosing
    /// their password if they have no account yet.
    pub token: String,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: Role,
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
    let conn = state.db.read().await;
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
    let conn = state.db.read().await;
    orgs::member(&conn, &access.org.id, &user_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("member"))
}

/// Invites an email address with a role: a pending membership that only the holder of the
/// returned token can accept. The inviter never sets or sees a password, and learns nothing
/// about whether the address has an account.
#[utoipa::path(post, path = "/v1/orgs/{org}/members", tag = "members", request_body = AddMember,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = AddedMember),
        (status = 409, description = "`already_exists`: already a member of this organisation", body = crate::error::ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    meta: RequestMeta,
    ApiJson(request): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<AddedMember>)> {
    let email = input::email(&request.email)?.to_owned();
    forbid_assign(access.acting_role(), request.role)?;
    let now = crate::db::now();
    let ttl = state.settings.invitation_ttl_secs;
    let (invitation, token) = state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            // Only membership of this very organisation is visible: its admins see it anyway.
            if let Some(user) = users::find_by_email(tx, &email).await?
                && orgs::role_in(tx, &access.org.id, &user.id).await?.is_some()
            {
                return Err(ApiError::new(ErrorCode::AlreadyExists, "already a member"));
            }
            let (invitation, token) = invitations::create(
                tx,
                &access.org.id,
                &email,
                request.role,
                &access.actor(),
                ttl,
                now,
            )
            .await?;
            audit::record(
                tx,
                &meta,
                AuditEvent {
                    org_id: Some(&access.org.id),
                    actor: &access.actor(),
                    action: "member.invited",
                    target: Some(&format!("invitation:{}", invitation.id)),
                    details: json!({ "email": email, "role": request.role }),
                },
            )
            .await?;
            Ok((invitation, token))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AddedMember {
            invitation: InvitationView::from(&invitation),
            status: "pending",
            token: token.secret,
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
    let member = state.db.transaction(async |tx| -> Result<_, crate::error::ApiError> {
        let current = orgs::role_in(tx, &access.org.id, &user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))?;
        forbid_assign(access.acting_role(), current)?;
        forbid_assign(access.acting_role(), request.role)?;
        if current == Role::Owner
            && request.role != Role::Owner
            && orgs::owner_count(tx, &access.org.id).await? <= 1
        {
            return Err(ApiError::new(
                ErrorCode::LastOwner,
                "the organisation needs an owner",
            ));
        }
        orgs::set_role(tx, &access.org.id, &user_id, request.role).await?;
        let revoked_keys = keys::revoke_beyond_role(
            tx,
            &access.org.id,
            &format!("user:{user_id}"),
            Some(request.role),
        )
        .await?;
        audit::record(
            tx,
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
        orgs::member(tx, &access.org.id, &user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("member"))
    }).await?;
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
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            let current = orgs::role_in(tx, &access.org.id, &user_id)
                .await?
                .ok_or_else(|| ApiError::not_found("member"))?;
            forbid_assign(access.acting_role(), current)?;
            if current == Role::Owner && orgs::owner_count(tx, &access.org.id).await? <= 1 {
                return Err(ApiError::new(
                    ErrorCode::LastOwner,
                    "the organisation needs an owner",
                ));
            }
            orgs::remove_member(tx, &access.org.id, &user_id).await?;
            let revoked_keys =
                keys::revoke_beyond_role(tx, &access.org.id, &format!("user:{user_id}"), None)
                    .await?;
            audit::record(
                tx,
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
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
