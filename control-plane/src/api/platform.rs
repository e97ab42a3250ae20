//! The platform operator's API, above the organisations: every organisation with its plan
//! and state, changing a plan and its quota overrides, suspending and reinstating an
//! organisation, platform-wide usage, and the operators' audit view.
//!
//! Only [`PlatformOperator`]s get in; organisation members, owners included, get `403`.
//! Every use is audited: changes in the log of the organisation they concern (actor
//! `operator:<user id>`), reads of the whole platform without an organisation, and all of
//! them, as `platform.*` actions, in the platform view.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::api::Meta;
use crate::api::PlatformOperator;
use crate::audit::{self, AuditPage, AuditQuery, RequestMeta};
use crate::db;
use crate::domain;
use crate::domain::platform::{Operating, PlanChange, PlatformOrg, platform_org};
use crate::error::DomainResult;
use crate::error::{ApiError, ApiResult};
use crate::metering::period::Period;
use crate::metering::store::{self, Totals};
use crate::orgs;
use crate::plans::Overrides;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs))
        .routes(routes!(set_plan))
        .routes(routes!(suspend))
        .routes(routes!(reinstate))
        .routes(routes!(usage))
        .routes(routes!(platform_audit))
}

/// A new plan and/or new quota overrides for an organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPlan {
    /// The plan's id; absent keeps the current plan.
    pub plan: Option<String>,
    /// Replaces every override (an empty object removes them); absent keeps them.
    pub overrides: Option<Overrides>,
}

/// Why an organisation is suspended, for the audit log.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    /// Up to 500 characters.
    pub reason: Option<String>,
}

/// Which billing period: a calendar month in UTC.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlatformPeriod {
    /// `YYYY-MM`; by default the current one.
    pub period: Option<String>,
}

/// One organisation's usage of the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgUsage {
    pub slug: String,
    pub plan: String,
    pub suspended: bool,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Usage of every organisation in a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformUsage {
    /// `YYYY-MM`.
    pub period: String,
    pub orgs: Vec<OrgUsage>,
}

/// Records an operator's read of platform-wide data (no organisation).
async fn audit_platform_read(
    state: &AppState,
    meta: &RequestMeta,
    operator: &PlatformOperator,
    action: &str,
    details: serde_json::Value,
) -> ApiResult<()> {
    let actor = operator.actor();
    let operating = Operating {
        actor: &actor,
        meta,
    };
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::platform::record_read(tx, operating, action, details).await
        })
        .await?;
    Ok(())
}

/// Every organisation, with its plan, overrides and suspension.
#[utoipa::path(get, path = "/v1/platform/orgs", tag = "platform",
    responses((status = 200, body = [PlatformOrg]), (status = 403, body = crate::error::ErrorBody)))]
async fn list_orgs(
    State(state): State<AppState>,
    operator: PlatformOperator,
    Meta(meta): Meta,
) -> ApiResult<Json<Vec<PlatformOrg>>> {
    audit_platform_read(&state, &meta, &operator, "platform.orgs_listed", json!({})).await?;
    let conn = state.db.read().await;
    let mut listed = Vec::new();
    for (org, plan) in orgs::list_all(&conn).await? {
        listed.push(platform_org(&conn, org, plan).await?);
    }
    Ok(Json(listed))
}

/// Moves an organisation to another plan and/or replaces its quota overrides. Takes effect
/// on its next call.
#[utoipa::path(put, path = "/v1/platform/orgs/{org}/plan", tag = "platform", request_body = SetPlan,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = PlatformOrg), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn set_plan(
    State(state): State<AppState>,
    operator: PlatformOperator,
    Meta(meta): Meta,
    ApiPath(slug): ApiPath<String>,
    ApiJson(request): ApiJson<SetPlan>,
) -> ApiResult<Json<PlatformOrg>> {
    let actor = operator.actor();
    let operating = Operating {
        actor: &actor,
        meta: &meta,
    };
    let change = PlanChange {
        plan: request.plan.as_deref(),
        overrides: request.overrides.as_ref(),
    };
    let changed = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::platform::set_plan(tx, operating, &slug, change).await
        })
        .await?;
    Ok(Json(changed))
}

/// Suspends an organisation: every call in it (its members', its API keys', inference) is
/// refused with `403 org_suspended` until it is reinstated. Nothing is deleted.
#[utoipa::path(post, path = "/v1/platform/orgs/{org}/suspend", tag = "platform", request_body = Suspend,
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = PlatformOrg), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn suspend(
    State(state): State<AppState>,
    operator: PlatformOperator,
    Meta(meta): Meta,
    ApiPath(slug): ApiPath<String>,
    ApiJson(request): ApiJson<Suspend>,
) -> ApiResult<Json<PlatformOrg>> {
    let reason = request.reason.unwrap_or_default();
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "reason must be at most 500 printable characters",
        ));
    }
    set_suspended(&state, &operator, &meta, &slug, Some(&reason)).await
}

/// Reinstates a suspended organisation: its members, keys and deployments work again.
#[utoipa::path(post, path = "/v1/platform/orgs/{org}/reinstate", tag = "platform",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = PlatformOrg), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn reinstate(
    State(state): State<AppState>,
    operator: PlatformOperator,
    Meta(meta): Meta,
    ApiPath(slug): ApiPath<String>,
) -> ApiResult<Json<PlatformOrg>> {
    set_suspended(&state, &operator, &meta, &slug, None).await
}

async fn set_suspended(
    state: &AppState,
    operator: &PlatformOperator,
    meta: &RequestMeta,
    slug: &str,
    reason: Option<&str>,
) -> ApiResult<Json<PlatformOrg>> {
    let actor = operator.actor();
    let operating = Operating {
        actor: &actor,
        meta,
    };
    let org = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::platform::set_suspended(tx, operating, slug, reason).await
        })
        .await?;
    Ok(Json(org))
}

/// Every organisation's usage of a billing period (calls, billed calls, compute units…).
#[utoipa::path(get, path = "/v1/platform/usage", tag = "platform", params(PlatformPeriod),
    responses((status = 200, body = PlatformUsage), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn usage(
    State(state): State<AppState>,
    operator: PlatformOperator,
    Meta(meta): Meta,
    ApiQuery(query): ApiQuery<PlatformPeriod>,
) -> ApiResult<Json<PlatformUsage>> {
    let period = match query.period.as_deref() {
        None => Period::containing(db::now()),
        Some(label) => Period::parse(label)
            .ok_or_else(|| ApiError::invalid(format!("period must be YYYY-MM, got {label:?}")))?,
    };
    audit_platform_read(
        &state,
        &meta,
        &operator,
        "platform.usage_read",
        json!({ "period": period.label() }),
    )
    .await?;
    // Every call answered before this request is counted.
    state.metering.flush().await?;
    let conn = state.db.read().await;
    let mut usage = Vec::new();
    for (org, plan) in orgs::list_all(&conn).await? {
        let totals = store::totals(&conn, &org.id, period.start, period.end).await?;
        usage.push(OrgUsage {
            slug: org.slug,
            plan,
            suspended: org.suspended_at.is_some(),
            totals,
        });
    }
    Ok(Json(PlatformUsage {
        period: period.label(),
        orgs: usage,
    }))
}

/// Every platform operator's action, newest first, across organisations.
#[utoipa::path(get, path = "/v1/platform/audit", tag = "platform", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = crate::error::ErrorBody)))]
async fn platform_audit(
    State(state): State<AppState>,
    _operator: PlatformOperator,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let conn = state.db.read().await;
    Ok(Json(audit::query_platform(&conn, &query).await?))
}
