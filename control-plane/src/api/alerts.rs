//! Alert rules, their current states and their history.
//!
//! Viewers (and `read` keys) read; members and above (and `models:write`/`admin` keys)
//! change — the permissions of the model registry whose health the rules watch. Every
//! change is a domain operation ([`crate::domain::alerts::rules`]), audited in its
//! transaction.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::api::{Authorized, Meta};
use crate::auth::rbac::can;
use crate::domain::Acting;
use crate::domain::alerts::rules::{self, AlertRule, RuleRequest};
use crate::error::{ApiResult, DomainResult};
use wisp_core::alerts::history::{self, AlertHistoryEntry, HistoryQuery};
use wisp_core::alerts::rules::{self as rule_rows, CurrentState};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, replace_rule, delete_rule))
        .routes(routes!(current_alerts))
        .routes(routes!(alert_history))
}

/// Every rule of the organisation, by name.
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts/rules", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [AlertRule])))]
async fn list_rules(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
) -> ApiResult<Json<Vec<AlertRule>>> {
    let conn = state.db.read().await;
    let rules = rule_rows::list(&conn, &access.org.id).await?;
    Ok(Json(rules.iter().map(AlertRule::from).collect()))
}

/// Creates a rule. A refused field is named in `details.field` (`invalid_request`).
#[utoipa::path(post, path = "/v1/orgs/{org}/alerts/rules", tag = "alerts", request_body = RuleRequest,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = AlertRule), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn create_rule(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiJson(request): ApiJson<RuleRequest>,
) -> ApiResult<(StatusCode, Json<AlertRule>)> {
    let acting = Acting::new(&access, &meta);
    let rule = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> { rules::create(tx, &acting, &request).await })
        .await?;
    Ok((StatusCode::CREATED, Json(AlertRule::from(&rule))))
}

/// One rule.
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts/rules/{rule_id}", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("rule_id" = String, Path)),
    responses((status = 200, body = AlertRule), (status = 404, body = crate::error::ErrorBody)))]
async fn get_rule(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<AlertRule>> {
    let (_, rule_id) = path;
    let conn = state.db.read().await;
    let rule = rules::get(&conn, &access.org.id, &rule_id).await?;
    Ok(Json(AlertRule::from(&rule)))
}

/// Replaces a rule's definition. If its metric, scope, comparison, threshold or window
/// changed, its state starts over from `ok`.
#[utoipa::path(put, path = "/v1/orgs/{org}/alerts/rules/{rule_id}", tag = "alerts", request_body = RuleRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("rule_id" = String, Path)),
    responses((status = 200, body = AlertRule), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn replace_rule(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<RuleRequest>,
) -> ApiResult<Json<AlertRule>> {
    let (_, rule_id) = path;
    let acting = Acting::new(&access, &meta);
    let rule = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> {
            rules::replace(tx, &acting, &rule_id, &request).await
        })
        .await?;
    Ok(Json(AlertRule::from(&rule)))
}

/// Deletes a rule; its history stays.
#[utoipa::path(delete, path = "/v1/orgs/{org}/alerts/rules/{rule_id}", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("rule_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_rule(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, rule_id) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> { rules::delete(tx, &acting, &rule_id).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rule's current state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleAlert {
    pub rule_id: String,
    pub rule_name: String,
    pub enabled: bool,
    #[serde(flatten)]
    pub current: CurrentState,
}

/// The current state of every rule: `ok`, `pending`, `firing` or `no_data`.
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [RuleAlert])))]
async fn current_alerts(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
) -> ApiResult<Json<Vec<RuleAlert>>> {
    let conn = state.db.read().await;
    let rules = rule_rows::list(&conn, &access.org.id).await?;
    Ok(Json(
        rules
            .iter()
            .map(|rule| RuleAlert {
                rule_id: rule.id.clone(),
                rule_name: rule.spec.name.clone(),
                enabled: rule.spec.enabled,
                current: rule.current(),
            })
            .collect(),
    ))
}

/// Every state change of the organisation's rules, newest first (`event` is `resolved`
/// when a firing rule stopped firing).
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts/history", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), HistoryQuery),
    responses((status = 200, body = [AlertHistoryEntry])))]
async fn alert_history(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<AlertHistoryEntry>>> {
    let conn = state.db.read().await;
    Ok(Json(history::list(&conn, &access.org.id, &query).await?))
}
