//! Members and roles: the members with their role, pending invitations, inviting an
//! address (the invitation link is shown once, on the answer to the form), changing a
//! member's role, removing a member, revoking an invitation. Every change is the API's
//! own function or domain operation (only owners give or take the owner role, the last
//! owner stays, a demoted member's keys beyond their role are revoked), audited like its
//! API twin.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use crate::api::invitations as api_invitations;
use crate::api::members::{self as api_members, AddMember, AddedMember};
use crate::api::{AppState, Meta};
use crate::auth::Role;
use crate::auth::rbac::{self, Action, can};
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::domain::{self, Acting};
use crate::error::{ApiError, DomainResult};
use crate::invitations::{self, InvitationView};
use crate::{db, orgs};

pub(super) const TEMPLATES: &[(&str, &str)] = templates!["members/list.html"];

const ROLES: &[Role] = &[Role::Owner, Role::Admin, Role::Member, Role::Viewer];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/members", get(list).post(invite))
        .route("/orgs/{org}/members/{user}/role", post(change_role))
        .route("/orgs/{org}/members/{user}/remove", post(remove))
        .route(
            "/orgs/{org}/invitations/{invitation}/revoke",
            post(revoke_invitation),
        )
}

async fn list(
    State(state): State<AppState>,
    page: OrgPage<can::ReadMembers>,
    Query(query): Query<super::Done>,
) -> PageResult {
    let notice = match query.done.as_str() {
        "role_changed" => Some("Role changed."),
        "removed" => Some("Member removed; their keys were revoked."),
        "invitation_revoked" => Some("Invitation revoked: its link no longer works."),
        _ => None,
    };
    show(&state, &page, None, notice).await
}

async fn show<P>(
    state: &AppState,
    page: &OrgPage<P>,
    invited: Option<(AddedMember, String)>,
    notice: Option<&str>,
) -> PageResult {
    let can_manage = page.can(Action::ManageMembers);
    let (members, pending) = {
        let conn = state.db.read().await;
        let members = orgs::members(&conn, &page.access.org.id).await?;
        // Pending invitations are for those who manage members (as in the API).
        let pending: Vec<InvitationView> = if can_manage {
            invitations::pending(&conn, &page.access.org.id, db::now())
                .await?
                .iter()
                .map(InvitationView::from)
                .collect()
        } else {
            Vec::new()
        };
        (members, pending)
    };
    let role = page.access.acting_role();
    let me = &page.signed.user.id;
    let assignable: Vec<&str> = ROLES
        .iter()
        .filter(|r| rbac::role_may_assign(role, **r))
        .map(|r| r.as_str())
        .collect();
    let rows: Vec<_> = members
        .iter()
        .map(|m| {
            json!({
                "member": m,
                "me": &m.user_id == me,
                "manage": can_manage && rbac::role_may_assign(role, m.role),
            })
        })
        .collect();
    let invited =
        invited.map(|(added, link)| json!({ "invitation": added.invitation, "link": link }));
    let frame = page.frame.clone().page("members", "Members");
    render::page(
        "members/list.html",
        &frame,
        context! {
            rows,
            pending,
            assignable,
            invited,
            notice,
            can_write => can_manage,
        },
    )
}

#[derive(Debug, Deserialize)]
struct InviteForm {
    email: String,
    role: String,
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>()
        .map_err(|e| ApiError::invalid(format!("role: {e}")))
}

/// Invites an address and answers the page with the invitation link, once.
async fn invite(
    State(state): State<AppState>,
    page: OrgPage<can::ManageMembers>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> PageResult {
    let request = AddMember {
        email: form.email.trim().to_owned(),
        role: parse_role(&form.role)?,
    };
    let added = api_members::invite(&state, &page.access, &meta, &request).await?;
    let link = format!(
        "{}/invitations/accept?token={}",
        super::home::server_url(&headers),
        url::form_urlencoded::byte_serialize(added.token.as_bytes()).collect::<String>()
    );
    show(&state, &page, Some((added, link)), None).await
}

#[derive(Debug, Deserialize)]
struct RoleForm {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    page: OrgPage<can::ManageMembers>,
    Meta(meta): Meta,
    Path((_, user_id)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> PageResult {
    let role = parse_role(&form.role)?;
    let acting = Acting::new(&page.access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            let actor = page.access.acting_role();
            domain::members::change_role(tx, &acting, actor, &user_id, role).await
        })
        .await?;
    done(&page, "role_changed")
}

async fn remove(
    State(state): State<AppState>,
    page: OrgPage<can::ManageMembers>,
    Meta(meta): Meta,
    Path((_, user_id)): Path<(String, String)>,
) -> PageResult {
    let acting = Acting::new(&page.access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::members::remove(tx, &acting, page.access.acting_role(), &user_id).await
        })
        .await?;
    done(&page, "removed")
}

async fn revoke_invitation(
    State(state): State<AppState>,
    page: OrgPage<can::ManageMembers>,
    Meta(meta): Meta,
    Path((_, id)): Path<(String, String)>,
) -> PageResult {
    api_invitations::revoke(&state, &page.access, &meta, &id).await?;
    done(&page, "invitation_revoked")
}

fn done<P>(page: &OrgPage<P>, what: &str) -> PageResult {
    Ok(Redirect::to(&format!(
        "/orgs/{}/members?done={what}",
        page.access.org.slug
    ))
    .into_response())
}
