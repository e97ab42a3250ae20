//! Organisations: list the caller's, create one, read one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, AppState};
use crate::access::Principal;
use crate::api::Meta;
use crate::api::{Authorized, CurrentUser};
use crate::auth::Role;
use crate::auth::rbac::can;
use crate::db;
use crate::domain;
use crate::error::DomainResult;
use crate::error::{ApiError, ApiResult};
use crate::orgs::{self, Org};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org))
}

/// An organisation, with the caller's role in it when the caller is a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    /// The name used in URLs: `/v1/orgs/{slug}/…`.
    pub slug: String,
    pub name: String,
    pub created_at: String,
    pub role: Option<Role>,
}

impl OrgView {
    pub(super) fn new(org: &Org, role: Option<Role>) -> Self {
        Self {
            id: org.id.clone(),
            slug: org.slug.clone(),
            name: org.name.clone(),
            created_at: db::rfc3339(org.created_at),
            role,
        }
    }
}

/// A new organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Lowercase letters, digits and `-`, 1–63 characters.
    pub slug: String,
    /// Display name; defaults to the slug.
    pub name: Option<String>,
}

/// Checks that a slug can be used as a URL segment as is.
pub fn validate_slug(slug: &str) -> Result<(), ApiError> {
    let valid = (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "slug must be 1-63 lowercase letters, digits or '-', not starting with '-'",
        ))
    }
}

/// Organisations the caller can act in (an API key sees its own).
#[utoipa::path(get, path = "/v1/orgs", tag = "orgs",
    responses((status = 200, body = [OrgView])))]
async fn list_orgs(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<OrgView>>> {
    let views = match principal {
        Principal::User { id, .. } => orgs::list_for_user(&state.db, &id)
            .await?
            .iter()
            .map(|(org, role)| OrgView::new(org, Some(*role)))
            .collect(),
        Principal::ApiKey { org_id, .. } => state
            .lookups
            .org_by_id(&org_id)
            .await?
            .iter()
            .map(|org| OrgView::new(org, None))
            .collect(),
    };
    Ok(Json(views))
}

/// Creates an organisation; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgView), (status = 409, body = crate::error::ErrorBody)))]
async fn create_org(
    State(state): State<AppState>,
    user: CurrentUser,
    Meta(meta): Meta,
    ApiJson(request): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    validate_slug(&request.slug)?;
    let name = request.name.unwrap_or_else(|| request.slug.clone());
    let actor = format!("user:{}", user.id);
    let org = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            let details = json!({ "name": name });
            domain::orgs::create(tx, &actor, &meta, &request.slug, &name, &user.id, details).await
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(OrgView::new(&org, Some(Role::Owner))),
    ))
}

/// One organisation.
#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = OrgView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_org(access: Authorized<can::ReadOrg>) -> Json<OrgView> {
    Json(OrgView::new(&access.org, access.role))
}
