//! Usage and billing: usage of a period against each quota, by model, by caller and over
//! time; exports (CSV, JSON, Stripe meter events); the invoice preview and finalised
//! invoices.
//!
//! Every endpoint first waits for the metering outbox to drain, so a caller reads every
//! call answered before its request.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiQuery, AppState};
use crate::api::Authorized;
use crate::auth::rbac::can;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::metering::billing::{self, Invoice};
use crate::metering::export::{self, MeterEvent, UsageRow};
use crate::metering::period::{Period, hour_start};
use crate::metering::quota::{QuotaKind, soft_warning};
use crate::metering::storage;
use crate::metering::store::{self, Granularity, GroupBy, Totals};
use crate::plans::{self, Plan};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(usage_export))
        .routes(routes!(stripe_meter_events))
        .routes(routes!(invoice_preview))
        .routes(routes!(invoices))
}

/// Which billing period: a calendar month in UTC, `YYYY-MM`; by default the current one.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// `YYYY-MM`.
    pub period: Option<String>,
    /// Time series buckets: `hour` or `day` (default).
    pub granularity: Option<String>,
}

/// An export's format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `YYYY-MM`; by default the current period.
    pub period: Option<String>,
    /// `csv` or `json` (default).
    pub format: Option<String>,
}

fn period_of(label: Option<&str>) -> ApiResult<Period> {
    match label {
        None => Ok(Period::containing(db::now())),
        Some(label) => Period::parse(label)
            .ok_or_else(|| ApiError::invalid(format!("period must be YYYY-MM, got {label:?}"))),
    }
}

/// One quota: its limit and what is used.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaUsage {
    /// `calls_per_month`, `models` or `storage_bytes`.
    pub quota: String,
    /// `None`: unlimited.
    pub limit: Option<u64>,
    pub used: u64,
    /// The soft limit is reached: a warning, calls still succeed.
    pub warning: Option<String>,
    /// When it resets (the calls quota), RFC 3339.
    pub resets_at: Option<String>,
}

/// Totals of one model or caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupUsage {
    /// The model name, or the caller (`key:<id>`, `user:<id>`).
    pub name: String,
    /// For a caller: the key's name and prefix (`ci (wisp_1a2b3c4d…)`) or the user's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Totals of one time bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketUsage {
    /// Start of the bucket, RFC 3339.
    pub start: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Usage of a billing period.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// `YYYY-MM`.
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub plan: Plan,
    pub quotas: Vec<QuotaUsage>,
    pub totals: Totals,
    /// Bytes stored now: model files, graphs, MLflow artifacts, batch inputs and results.
    pub storage_bytes: u64,
    pub by_model: Vec<GroupUsage>,
    /// By API key or user.
    pub by_caller: Vec<GroupUsage>,
    /// `hour` or `day` buckets with usage.
    pub series: Vec<BucketUsage>,
}

/// Usage of a billing period against each quota, by model, by caller and over time.
#[utoipa::path(get, path = "/v1/orgs/{org}/usage", tag = "usage",
    params(("org" = String, Path, description = "Organisation slug"), PeriodQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn usage(
    State(state): State<AppState>,
    access: Authorized<can::ReadUsage>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> ApiResult<Json<UsageReport>> {
    Ok(Json(report(&state, &access.org.id, &query).await?))
}

/// Organisation `org`'s usage report (the API's and the dashboard's usage page).
pub(crate) async fn report(
    state: &AppState,
    org: &str,
    query: &PeriodQuery,
) -> ApiResult<UsageReport> {
    let period = period_of(query.period.as_deref())?;
    let granularity = match query.granularity.as_deref() {
        None | Some("day") => Granularity::Day,
        Some("hour") => Granularity::Hour,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "granularity must be `hour` or `day`, got {other:?}"
            )));
        }
    };
    state.metering.flush().await?;
    let conn = state.db.read().await;
    let plan = plans::of_org(&conn, org).await?;
    let totals = store::totals(&conn, org, period.start, period.end).await?;
    let storage_bytes = storage::org_bytes(&conn, org).await?;
    let models = crate::registry::list_models(&conn, org).await?.len() as u64;
    let grouped = |by| store::grouped(&conn, org, granularity, period.start, period.end, by);
    let by_model = grouped(GroupBy::Model).await?;
    let by_caller = grouped(GroupBy::Caller).await?;
    let series = grouped(GroupBy::Bucket).await?;
    let callers =
        caller_labels(&conn, org, by_caller.iter().map(|(name, _)| name.as_str())).await?;
    drop(conn);
    let percent = plan.quotas.soft_limit_percent;
    let quota = |kind: QuotaKind, limit, used, resets_at: Option<i64>| QuotaUsage {
        quota: kind.as_str().to_owned(),
        limit,
        used,
        warning: soft_warning(kind, used, limit, percent),
        resets_at: resets_at.map(db::rfc3339),
    };
    let quotas = vec![
        quota(
            QuotaKind::CallsPerMonth,
            plan.quotas.calls_per_month,
            totals.billed_calls,
            Some(period.end),
        ),
        quota(QuotaKind::Models, plan.quotas.max_models, models, None),
        quota(
            QuotaKind::StorageBytes,
            plan.quotas.max_storage_bytes,
            storage_bytes,
            None,
        ),
    ];
    let named = |groups: Vec<(String, Totals)>| {
        groups
            .into_iter()
            .map(|(name, totals)| GroupUsage {
                label: callers.get(&name).cloned(),
                name,
                totals,
            })
            .collect()
    };
    Ok(UsageReport {
        period: period.label(),
        period_start: db::rfc3339(period.start),
        period_end: db::rfc3339(period.end),
        plan,
        quotas,
        totals,
        storage_bytes,
        by_model: named(by_model),
        by_caller: named(by_caller),
        series: series
            .into_iter()
            .map(|(start, totals)| BucketUsage {
                start: db::rfc3339(start.parse().unwrap_or_default()),
                totals,
            })
            .collect(),
    })
}

/// What to call each caller (`key:<id>`, `user:<id>`) of organisation `org`: its key's
/// name and prefix, or its user's email. Keys are the organisation's own (revoked ones
/// included); users are the ones whose calls the organisation metered.
async fn caller_labels<'a>(
    conn: &crate::db::Reader,
    org: &str,
    callers: impl Iterator<Item = &'a str>,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    let mut keys = None;
    for caller in callers {
        let label = match caller.split_once(':') {
            Some(("key", id)) => {
                if keys.is_none() {
                    keys = Some(crate::keys::list(conn, org).await?);
                }
                keys.iter()
                    .flatten()
                    .find(|k| k.key.id == id)
                    .map(|k| format!("{} ({}…)", k.key.name, k.key.prefix))
            }
            Some(("user", id)) => crate::users::find_by_id(conn, id)
                .await?
                .map(|user| user.email),
            _ => None,
        };
        if let Some(label) = label {
            labels.insert(caller.to_owned(), label);
        }
    }
    Ok(labels)
}

async fn hourly_rows(state: &AppState, org: &str, period: Period) -> ApiResult<Vec<UsageRow>> {
    state.metering.flush().await?;
    let conn = state.db.read().await;
    let rows = conn
        .query(
            "SELECT bucket_start, model_name, caller, calls, billed_calls, failed_calls,
                cache_hits, compute_units, fuel, wall_us, inference_us, bytes_in, bytes_out
             FROM usage_rollups
             WHERE org_id = ?1 AND granularity = 'hour' AND bucket_start >= ?2 AND bucket_start < ?3
             ORDER BY bucket_start, model_name, caller",
            libsql::params![org, period.start, period.end],
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(db::collect(rows, |row| {
        let n =
            |i| -> Result<u64, db::DbError> { Ok(u64::try_from(row.get::<i64>(i)?).unwrap_or(0)) };
        Ok(UsageRow {
            hour: db::rfc3339(row.get(0)?),
            model: row.get(1)?,
            caller: row.get(2)?,
            totals: Totals {
                calls: n(3)?,
                billed_calls: n(4)?,
                failed_calls: n(5)?,
                cache_hits: n(6)?,
                compute_units: n(7)?,
                fuel: n(8)?,
                wall_us: n(9)?,
                inference_us: n(10)?,
                bytes_in: n(11)?,
                bytes_out: n(12)?,
            },
        })
    })
    .await?)
}

/// Hourly usage of a period by model and caller, as JSON or CSV.
#[utoipa::path(get, path = "/v1/orgs/{org}/usage/export", tag = "usage",
    params(("org" = String, Path, description = "Organisation slug"), ExportQuery),
    responses((status = 200, body = Vec<UsageRow>, description = "JSON rows, or `text/csv` with a header line"),
        (status = 400, body = crate::error::ErrorBody)))]
async fn usage_export(
    State(state): State<AppState>,
    access: Authorized<can::ReadUsage>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let period = period_of(query.period.as_deref())?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format must be `csv` or `json`, got {other:?}"
            )));
        }
    };
    let rows = hourly_rows(&state, &access.org.id, period).await?;
    if !csv {
        return Ok(Json(rows).into_response());
    }
    let filename = format!(
        "attachment; filename=\"wisp-usage-{}-{}.csv\"",
        access.org.slug,
        period.label()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        export::csv(&rows),
    )
        .into_response())
}

/// Billed calls and compute units per hour of a period as Stripe billing meter events
/// (`wisp_calls`, `wisp_compute_units`). Identifiers are `org:meter:hour`, so sending an
/// hour again replaces it.
#[utoipa::path(get, path = "/v1/orgs/{org}/usage/stripe-meter-events", tag = "usage",
    params(("org" = String, Path, description = "Organisation slug"), ("period" = Option<String>, Query, description = "YYYY-MM")),
    responses((status = 200, body = Vec<MeterEvent>)))]
async fn stripe_meter_events(
    State(state): State<AppState>,
    access: Authorized<can::ReadUsage>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> ApiResult<Json<Vec<MeterEvent>>> {
    let period = period_of(query.period.as_deref())?;
    state.metering.flush().await?;
    let conn = state.db.read().await;
    let hours = store::grouped(
        &conn,
        &access.org.id,
        Granularity::Hour,
        period.start,
        period.end,
        GroupBy::Bucket,
    )
    .await?;
    let hours: Vec<(i64, Totals)> = hours
        .into_iter()
        .map(|(start, totals)| (hour_start(start.parse().unwrap_or_default()), totals))
        .collect();
    Ok(Json(export::meter_events(&access.org.id, &hours)))
}

/// The invoice of the current period so far, at the plan's prices.
#[utoipa::path(get, path = "/v1/orgs/{org}/billing/invoice-preview", tag = "usage",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = Invoice)))]
async fn invoice_preview(
    State(state): State<AppState>,
    access: Authorized<can::ReadUsage>,
) -> ApiResult<Json<Invoice>> {
    Ok(Json(preview(&state, &access.org.id).await?))
}

/// The invoice of organisation `org`'s current period so far (the API's and the
/// dashboard's).
pub(crate) async fn preview(state: &AppState, org: &str) -> ApiResult<Invoice> {
    state.metering.flush().await?;
    let now = db::now();
    let conn = state.db.read().await;
    let plan = plans::of_org(&conn, org).await?;
    Ok(billing::compute(&conn, org, &plan, Period::containing(now), now).await?)
}

/// Finalised invoices of closed periods, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/billing/invoices", tag = "usage",
    params(("org" = String, Path, description = "Organisation slug")),
    responses((status = 200, body = Vec<Invoice>)))]
async fn invoices(
    State(state): State<AppState>,
    access: Authorized<can::ReadUsage>,
) -> ApiResult<Json<Vec<Invoice>>> {
    Ok(Json(final_invoices(&state, &access.org.id).await?))
}

/// Organisation `org`'s finalised invoices, newest first, closed periods finalised first
/// (the API's and the dashboard's).
pub(crate) async fn final_invoices(state: &AppState, org: &str) -> ApiResult<Vec<Invoice>> {
    state.metering.flush().await?;
    let conn = state.db.write_unmemoised().await;
    billing::finalize(&conn, org, db::now()).await?;
    Ok(billing::list_final(&conn, org).await?)
}
