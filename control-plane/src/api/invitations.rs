//! Invitations ([`crate::invitations`]): an organisation's admins list and revoke pending
//! ones; the holder of a token accepts it.
//!
//! Accepting for an address without an account creates it with the password the invitee
//! chooses, and signs them in. For an address with an account the invitee must be signed
//! in as that account: the token alone never grants an existing account anything.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{TokenResponse, issue_tokens};
use super::orgs::OrgView;
use super::{ApiJson, ApiPath, AppState};
use crate::api::Meta;
use crate::api::{Authorized, CurrentSession};
use crate::auth::rbac::can;
use crate::auth::{Role, input, password, tokens};
use crate::db;
use crate::domain::Acting;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::invitations::{self, Invitation, InvitationView};
use crate::{orgs, sessions, sign_ins, users};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
}

/// An invitation token, and a password when the address has no account yet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    /// The new account's password (8 to 1024 bytes). Not used for an existing account:
    /// sign in as it and accept with its access token instead.
    pub password: Option<String>,
}

/// The organisation joined.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvitation {
    pub org: OrgView,
    pub role: Role,
    pub user_id: String,
    /// A session for a newly created account; absent when an existing account accepted.
    pub session: Option<TokenResponse>,
}

/// Invitations of the organisation that can still be accepted.
#[utoipa::path(get, path = "/v1/orgs/{org}/invitations", tag = "members",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [InvitationView])))]
async fn list_invitations(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
) -> ApiResult<Json<Vec<InvitationView>>> {
    let conn = state.db.read().await;
    let pending = invitations::pending(&conn, &access.org.id, db::now()).await?;
    Ok(Json(pending.iter().map(InvitationView::from).collect()))
}

/// Revokes a pending invitation: its token stops working.
#[utoipa::path(delete, path = "/v1/orgs/{org}/invitations/{id}", tag = "members",
    params(("org" = String, Path, description = "Organisation slug"), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_invitation(
    State(state): State<AppState>,
    access: Authorized<can::ManageMembers>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, id) = path;
    revoke(&state, &access, &meta, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes pending invitation `id` of the caller's organisation, audited (the API's and
/// the dashboard's).
pub(crate) async fn revoke(
    state: &AppState,
    access: &crate::access::OrgAccess,
    meta: &crate::audit::RequestMeta,
    id: &str,
) -> ApiResult<()> {
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            if !invitations::revoke(tx, &access.org.id, id, db::now()).await? {
                return Err(ApiError::not_found("invitation"));
            }
            Acting::new(access, meta)
                .audit(
                    tx,
                    "member.invitation_revoked",
                    &format!("invitation:{id}"),
                    json!({}),
                )
                .await?;
            Ok(())
        })
        .await
}

/// Accepts an invitation: joins its organisation with its role. Single use.
///
/// For an address without an account, send `password`: the account is created with it and
/// the answer carries a session. For an address with an account, call this signed in as
/// that account (`Authorization: Bearer`).
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "members", security((), ("bearer" = [])),
    request_body = AcceptInvitation,
    responses((status = 200, body = AcceptedInvitation),
        (status = 400, description = "`invalid_request`: a new account needs a password", body = crate::error::ErrorBody),
        (status = 401, description = "`invalid_token` (unknown, used or revoked), `token_expired`, or `unauthenticated`: sign in as the invited address first", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: signed in as another address", body = crate::error::ErrorBody)))]
async fn accept_invitation(
    State(state): State<AppState>,
    Meta(meta): Meta,
    session: Option<CurrentSession>,
    ApiJson(request): ApiJson<AcceptInvitation>,
) -> ApiResult<Json<AcceptedInvitation>> {
    let accepted = accept(
        &state,
        &meta,
        session.as_ref().map(|s| &s.user),
        &request.token,
        request.password,
        async |tx, user_id, session_id| {
            issue_tokens(&state, tx, user_id, session_id, false, db::now()).await
        },
    )
    .await?;
    Ok(Json(AcceptedInvitation {
        org: accepted.org,
        role: accepted.role,
        user_id: accepted.user_id,
        session: accepted.session,
    }))
}

/// An accepted invitation: the organisation joined, with which role, by whom, and what
/// `then` issued for a new account's first session.
pub(crate) struct Accepted<T> {
    pub org: OrgView,
    pub role: Role,
    pub user_id: String,
    pub session: Option<T>,
}

/// Accepts the invitation of `token`, the one way for `POST /v1/invitations/accept` and
/// the dashboard: as the signed-in `user` (who must be the invited address), or, for an
/// address without an account, by creating it with `password`; then `then` runs in the same
/// transaction with the new account's id and its first session's id.
pub(crate) async fn accept<T>(
    state: &AppState,
    meta: &crate::audit::RequestMeta,
    user: Option<&super::CurrentUser>,
    token: &str,
    password: Option<String>,
    then: impl AsyncFnOnce(&crate::db::Writer, &str, &str) -> ApiResult<T>,
) -> ApiResult<Accepted<T>> {
    input::token(token)?;
    if let Some(password) = &password {
        input::new_password(password)?;
    }
    let hash = tokens::hash_secret(token);
    let now = db::now();
    let (invitation, existing) = {
        let conn = state.db.read().await;
        let invitation = usable(invitations::find_by_token(&conn, &hash).await?, now)?;
        let existing = users::find_by_email(&conn, &invitation.email).await?;
        (invitation, existing)
    };
    let for_another = || {
        ApiError::new(
            ErrorCode::Forbidden,
            "this invitation is for another address; sign out first",
        )
    };
    // Who joins: an existing account (signed in as it), or a new one (hashed outside the
    // database lock).
    let joiner = match (&existing, user) {
        (Some(existing), Some(user)) if user.id == existing.id => {
            Joiner::Existing(existing.id.clone())
        }
        (Some(_), None) => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "sign in as the invited address, then accept again",
            ));
        }
        (_, Some(_)) => return Err(for_another()),
        (None, None) => {
            // The inviting admin holds the link, so an invitation never creates the account
            // of a platform operator's address: that would make the admin an operator.
            if state
                .settings
                .platform_operators
                .contains(&invitation.email.to_lowercase())
            {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this address belongs to a platform operator; its account is not created through an invitation",
                ));
            }
            let password = password
                .clone()
                .ok_or_else(|| ApiError::invalid("choose a `password` for your new account"))?;
            let password_hash = state
                .password_hashing
                .run(move || password::hash(&password))
                .await
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::Overloaded,
                        "too many sign-ins at once; retry shortly",
                    )
                })?
                .map_err(|e| {
                    ApiError::internal(anyhow::anyhow!("failed to hash a password: {e}"))
                })?;
            Joiner::New(password_hash)
        }
    };
    let accepted = state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            // Checked again under the lock: the token may have been spent meanwhile.
            let invitation = usable(invitations::find_by_token(tx, &hash).await?, now)?;
            if !invitations::mark_accepted(tx, &invitation.id, now).await? {
                return Err(spent());
            }
            let (user_id, session) = match &joiner {
                Joiner::Existing(id) => (id.clone(), None),
                Joiner::New(password_hash) => {
                    let user_id = match users::insert(tx, &invitation.email, password_hash).await {
                        Ok(id) => id,
                        // The address got an account meanwhile: its owner must accept signed in.
                        Err(e) if db::is_unique_violation(&e) => {
                            return Err(ApiError::new(
                                ErrorCode::Unauthenticated,
                                "sign in as the invited address, then accept again",
                            ));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    sign_ins::record(tx, &user_id, true, meta.source_ip.as_deref(), now).await?;
                    let session_id =
                        sessions::start(tx, &user_id, meta.source_ip.as_deref(), now).await?;
                    let issued = then(tx, &user_id, &session_id).await?;
                    (user_id, Some(issued))
                }
            };
            let role = match orgs::role_in(tx, &invitation.org_id, &user_id).await? {
                Some(role) => role,
                None => {
                    orgs::add_member(tx, &invitation.org_id, &user_id, invitation.role).await?;
                    invitation.role
                }
            };
            // The new member acts: there is no organisation access before they join.
            let joined = Acting {
                org_id: &invitation.org_id,
                actor: format!("user:{user_id}"),
                meta,
            };
            joined
                .audit(
                    tx,
                    "member.joined",
                    &format!("user:{user_id}"),
                    json!({
                        "role": role,
                        "invitation": invitation.id,
                        "invited_by": invitation.invited_by,
                    }),
                )
                .await?;
            let org = orgs::find_by_id(tx, &invitation.org_id)
                .await?
                .ok_or_else(|| ApiError::not_found("organisation"))?;
            Ok(Accepted {
                org: OrgView::new(&org, Some(role)),
                role,
                user_id,
                session,
            })
        })
        .await?;
    Ok(accepted)
}

enum Joiner {
    /// The signed-in account with this id.
    Existing(String),
    /// A new account with this password hash.
    New(String),
}

fn spent() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidToken,
        "this invitation is unknown, already used or revoked",
    )
}

/// The invitation if it can still be accepted.
fn usable(invitation: Option<Invitation>, now: i64) -> ApiResult<Invitation> {
    let invitation = invitation.ok_or_else(spent)?;
    if invitation.accepted_at.is_some() || invitation.revoked_at.is_some() {
        return Err(spent());
    }
    if invitation.expires_at <= now {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            "this invitation has expired; ask for a new one",
        ));
    }
    Ok(invitation)
}
