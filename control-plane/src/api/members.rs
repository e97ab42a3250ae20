//! Members of an organisation: list, invite ([`crate::invitations`]), change role, remove.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, AppState};
use crate::access::OrgAccess;
use crate::api::Authorized;
use crate::api::Meta;
use crate::audit::RequestMeta;
use crate::auth::rbac::can;
use crate::auth::{Role, input};
use crate::domain::{self, Acting};
use crate::error::DomainResult;
use crate::error::{ApiError, ApiResult};
use crate::invitations::InvitationView;
use crate::orgs::{self, Member};

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
    Meta(meta): Meta,
    ApiJson(request): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<AddedMember>)> {
    let added = invite(&state, &access, &meta, &request).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Validates `request` and invites (the API's invite and the dashboard's).
pub(crate) async fn invite(
    state: &AppState,
    access: &OrgAccess,
    meta: &RequestMeta,
    request: &AddMember,
) -> ApiResult<AddedMember> {
    let email = input::email(&request.email)?.to_owned();
    let ttl = state.settings.invitation_ttl_secs;
    let acting = Acting::new(access, meta);
    let (invitation, token) = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            let role = access.acting_role();
            domain::members::invite(tx, &acting, role, &email, request.role, ttl).await
        })
        .await?;
    Ok(AddedMember {
        invitation: InvitationView::from(&invitation),
        status: "pending",
        token: token.secret,
    })
}

/// Changes a member's role. Only owners give or take the owner role; the last owner stays.
#[utoipa::path(patch, path = "/v1/orgs/{org}/members/{user_id}", tag = "members", request_body = ChangeRole,
    params(("org" = String, Path, description = "Organisation slug"), ("user_id" = String, Path)),
    responses((status = 200, body = Member), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn change_role(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<ChangeRole>,
) -> ApiResult<Json<Member>> {
    let (_, user_id) = path;
    let acting = Acting::new(&access, &meta);
    let member = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            let role = access.acting_role();
            domain::members::change_role(tx, &acting, role, &user_id, request.role).await
        })
        .await?;
    Ok(Json(member))
}

/// Removes a member from the organisation (the user account stays).
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user_id}", tag = "members",
    params(("org" = String, Path, description = "Organisation slug"), ("user_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, user_id) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::members::remove(tx, &acting, access.acting_role(), &user_id).await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
