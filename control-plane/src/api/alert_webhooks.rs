//! Webhook endpoints of alerts: create (the `whsec_…` secret is shown once), change,
//! rotate the secret, delete, the delivery log, and sending a test message.
//!
//! Permissions as for alert rules: viewers read (never a secret), members and above
//! change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::api::{Authorized, Meta};
use crate::auth::rbac::can;
use crate::domain::Acting;
use crate::domain::alerts::webhooks::{self, WebhookRequest};
use crate::error::{ApiError, ApiResult, DomainResult};
use wisp_core::alerts::deliveries::{self, Delivery};
use wisp_core::alerts::webhooks::{self as webhook_rows, Webhook};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(send_test))
}

/// A webhook with its signing secret: shown at creation and rotation only.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: verify the `webhook-signature` of each message with it (Standard
    /// Webhooks). Not shown again.
    pub secret: String,
}

/// Every endpoint of the organisation.
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts/webhooks", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = [Webhook])))]
async fn list_webhooks(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
) -> ApiResult<Json<Vec<Webhook>>> {
    let conn = state.db.read().await;
    Ok(Json(webhook_rows::list(&conn, &access.org.id).await?))
}

/// Creates an endpoint. Its URL must be http(s); a loopback, private or link-local
/// address is refused unless the operator allowed them (`alerts.allow_private_targets`).
#[utoipa::path(post, path = "/v1/orgs/{org}/alerts/webhooks", tag = "alerts", request_body = WebhookRequest,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 201, body = WebhookWithSecret), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    let acting = Acting::new(&access, &meta);
    let policy = state.alerts.target_policy();
    let (webhook, secret) = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> {
            webhooks::create(tx, &acting, &policy, &request).await
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret { webhook, secret }),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts/webhooks/{webhook_id}", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("webhook_id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = crate::error::ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Webhook>> {
    let (_, webhook_id) = path;
    let conn = state.db.read().await;
    Ok(Json(
        webhooks::get(&conn, &access.org.id, &webhook_id).await?,
    ))
}

/// Changes an endpoint's URL and description; the secret stays.
#[utoipa::path(put, path = "/v1/orgs/{org}/alerts/webhooks/{webhook_id}", tag = "alerts", request_body = WebhookRequest,
    params(("org" = String, Path, description = "Organisation slug"), ("webhook_id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> ApiResult<Json<Webhook>> {
    let (_, webhook_id) = path;
    let acting = Acting::new(&access, &meta);
    let policy = state.alerts.target_policy();
    let webhook = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> {
            webhooks::update(tx, &acting, &policy, &webhook_id, &request).await
        })
        .await?;
    Ok(Json(webhook))
}

/// Deletes an endpoint and removes it from the rules that notified it.
#[utoipa::path(delete, path = "/v1/orgs/{org}/alerts/webhooks/{webhook_id}", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("webhook_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, webhook_id) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> {
            webhooks::delete(tx, &acting, &webhook_id).await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the endpoint's secret and shows the new one once. Every message sent from
/// now on, retries included, is signed with it.
#[utoipa::path(post, path = "/v1/orgs/{org}/alerts/webhooks/{webhook_id}/rotate-secret", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("webhook_id" = String, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<WebhookWithSecret>> {
    let (_, webhook_id) = path;
    let acting = Acting::new(&access, &meta);
    let (webhook, secret) = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> {
            webhooks::rotate_secret(tx, &acting, &webhook_id).await
        })
        .await?;
    Ok(Json(WebhookWithSecret { webhook, secret }))
}

/// Paging of the delivery log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// At most this many deliveries, newest first (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// The endpoint's deliveries, newest first: status (`pending`, `delivered`, `failed`),
/// attempts, the last response code and the first bytes of its body, the last error, and
/// when the next retry is due.
#[utoipa::path(get, path = "/v1/orgs/{org}/alerts/webhooks/{webhook_id}/deliveries", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("webhook_id" = String, Path), DeliveryQuery),
    responses((status = 200, body = [Delivery]), (status = 404, body = crate::error::ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<Vec<Delivery>>> {
    let (_, webhook_id) = path;
    let conn = state.db.read().await;
    webhooks::get(&conn, &access.org.id, &webhook_id).await?;
    let limit = query.limit.unwrap_or(50);
    Ok(Json(
        deliveries::list(&conn, &access.org.id, &webhook_id, limit).await?,
    ))
}

/// Sends a signed `alert.test` message to the endpoint now and answers its delivery
/// after the first attempt (a failed one is retried like any other).
#[utoipa::path(post, path = "/v1/orgs/{org}/alerts/webhooks/{webhook_id}/test", tag = "alerts",
    params(("org" = String, Path, description = "Organisation slug"), ("webhook_id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn send_test(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    let (_, webhook_id) = path;
    let acting = Acting::new(&access, &meta);
    let id = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> DomainResult<_> {
            webhooks::queue_test(tx, &acting, &webhook_id).await
        })
        .await?;
    state.alerts.deliver_now(&id).await?;
    let conn = state.db.read().await;
    deliveries::get(&conn, &access.org.id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("delivery"))
}
