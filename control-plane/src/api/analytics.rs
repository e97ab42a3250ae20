//! Per-version analytics of a model: calls, errors, latency and inference quantiles,
//! compute, cache hits and cold starts per minute, hour or day, from the rollups the
//! metering drainer keeps (`metering::analytics`).
//!
//! Like the usage endpoints, a request first waits for the metering outbox to drain, so a
//! caller reads every call answered before its request.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::models::find_model;
use super::{ApiPath, ApiQuery, AppState};
use crate::access::OrgAccess;
use crate::api::Authorized;
use crate::auth::rbac::can;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::metering::analytics::series::{self, MAX_POINTS};
use crate::metering::analytics::{AnalyticsQuery, Resolution, Stats};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(model_analytics))
}

/// The range and step of an analytics request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// Start of the range: RFC 3339 or Unix milliseconds; widened down to the start of its
    /// step. Default: `to` minus an hour (`minute` steps), a day (`hour`) or 30 days (`day`).
    pub from: Option<String>,
    /// End of the range (exclusive): RFC 3339 or Unix milliseconds; widened up to the end
    /// of its step. Default: now (the current step included).
    pub to: Option<String>,
    /// `minute`, `hour` (default) or `day`.
    pub step: Option<String>,
    /// Only this version; all versions by default.
    pub version: Option<i64>,
}

/// One step of one version.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsPoint {
    /// Start of the step, RFC 3339.
    pub start: String,
    pub version: i64,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One version over the whole range.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionAnalytics {
    pub version: i64,
    #[serde(flatten)]
    pub stats: Stats,
}

/// A model's analytics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelAnalytics {
    pub model: String,
    /// The range answered, RFC 3339: the one asked for, widened to whole steps.
    pub from: String,
    pub to: String,
    /// `minute`, `hour` or `day`.
    pub step: String,
    /// The version asked for, if any.
    pub version: Option<i64>,
    /// Steps with calls, in time order, then by version.
    pub points: Vec<AnalyticsPoint>,
    /// Each version over the whole range.
    pub versions: Vec<VersionAnalytics>,
    /// Every version over the whole range.
    pub total: Stats,
}

/// A time given as RFC 3339 (`2026-12-05T10:00:00Z`) or Unix milliseconds, as Unix
/// seconds; `round_up` for the end of a range.
fn timestamp(name: &str, text: &str, round_up: bool) -> ApiResult<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        let seconds = ms.div_euclid(1_000);
        return Ok(seconds + i64::from(round_up && ms.rem_euclid(1_000) != 0));
    }
    // A `+` of an offset left unencoded in a query string arrives as a space.
    OffsetDateTime::parse(&text.replace(' ', "+"), &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            ApiError::invalid(format!(
                "{name} must be RFC 3339 or Unix milliseconds, got {text:?}"
            ))
        })
}

/// The query a request asks for, checked: a known step, `from` before `to`, at most
/// [`MAX_POINTS`] steps.
fn query_of<'a>(
    params: &AnalyticsParams,
    org_id: &'a str,
    model_id: &'a str,
    now: i64,
    minute_retention_secs: i64,
) -> ApiResult<AnalyticsQuery<'a>> {
    let step = match params.step.as_deref() {
        None => Resolution::Hour,
        Some(text) => Resolution::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "step must be `minute`, `hour` or `day`, got {text:?}"
            ))
        })?,
    };
    let to = match &params.to {
        Some(text) => timestamp("to", text, true)?,
        // Through this second: `to` is exclusive, and at a step's first second `now` alone
        // would leave out the step the calls of this very second are in.
        None => now + 1,
    };
    let from = match &params.from {
        Some(text) => timestamp("from", text, false)?,
        None => to.saturating_sub(match step {
            Resolution::Minute => 3_600,
            Resolution::Hour => 86_400,
            Resolution::Day => 30 * 86_400,
        }),
    };
    if from >= to {
        return Err(ApiError::invalid("from must be before to"));
    }
    if step == Resolution::Minute && from < now.saturating_sub(minute_retention_secs) {
        return Err(ApiError::invalid(format!(
            "minute steps are kept for {} days: use hour or day steps for older ranges",
            minute_retention_secs / 86_400
        )));
    }
    let query = AnalyticsQuery {
        org_id,
        model_id,
        from,
        to,
        step,
        version: params.version,
    };
    let steps = query.steps();
    if steps > MAX_POINTS {
        return Err(ApiError::invalid(format!(
            "the range covers {steps} {} steps, more than {MAX_POINTS}: use a larger step or a shorter range",
            step.as_str()
        )));
    }
    Ok(query)
}

/// Per-version analytics of a model: calls, errors (by code), error rate, latency
/// p50/p95/p99, inference p50/p99, compute units, cache hit rate and cold starts, for each
/// `minute`, `hour` or `day` of the range, each version over the range, and the total.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/analytics", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), AnalyticsParams),
    responses((status = 200, body = ModelAnalytics),
        (status = 400, description = "`invalid_request`: a bad time or step, `from` not before `to`, or more than 1,500 steps", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn model_analytics(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<AnalyticsParams>,
) -> ApiResult<Json<ModelAnalytics>> {
    let (_, name) = path;
    Ok(Json(analytics(&state, &access, &name, &params).await?))
}

/// Model `name`'s analytics over the range of `params` (the API's and the dashboard's
/// monitoring page's).
pub(crate) async fn analytics(
    state: &AppState,
    access: &OrgAccess,
    name: &str,
    params: &AnalyticsParams,
) -> ApiResult<ModelAnalytics> {
    let model = {
        let conn = state.db.read().await;
        find_model(&conn, &access.org.id, name).await?
    };
    let retention =
        i64::try_from(state.settings.analytics_minute_retention.as_secs()).unwrap_or(i64::MAX);
    let query = query_of(params, &access.org.id, &model.id, db::now(), retention)?;
    state.metering.flush().await?;
    let conn = state.db.read().await;
    let analytics = series::query(&conn, query).await?;
    drop(conn);
    Ok(ModelAnalytics {
        model: model.name,
        from: db::rfc3339(analytics.from),
        to: db::rfc3339(analytics.to),
        step: analytics.step.as_str().to_owned(),
        version: params.version,
        points: analytics
            .points
            .iter()
            .map(|p| AnalyticsPoint {
                start: db::rfc3339(p.start),
                version: p.version,
                stats: Stats::from(&p.rollup),
            })
            .collect(),
        versions: analytics
            .versions
            .iter()
            .map(|v| VersionAnalytics {
                version: v.version,
                stats: Stats::from(&v.rollup),
            })
            .collect(),
        total: Stats::from(&analytics.total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<&str>, to: Option<&str>, step: Option<&str>) -> AnalyticsParams {
        AnalyticsParams {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            step: step.map(str::to_owned),
            version: None,
        }
    }

    #[test]
    fn times_are_rfc3339_or_milliseconds() {
        assert_eq!(
            timestamp("from", "2026-12-05T10:00:00Z", false).unwrap(),
            1_796_464_800
        );
        assert_eq!(
            timestamp("from", "2026-12-05T11:00:00 01:00", false).unwrap(),
            1_796_464_800
        );
        assert_eq!(
            timestamp("to", "1796464800001", true).unwrap(),
            1_796_464_801
        );
        assert_eq!(
            timestamp("from", "1796464800999", false).unwrap(),
            1_796_464_800
        );
        assert!(timestamp("from", "yesterday", false).is_err());
    }

    const RETENTION: i64 = 14 * 86_400;

    #[test]
    fn minute_steps_start_within_their_retention() {
        let now = 1_796_464_800;
        let old = (now - 15 * 86_400).to_string() + "000";
        let to = (now - 15 * 86_400 + 3_600).to_string() + "000";
        let error = query_of(
            &params(Some(&old), Some(&to), Some("minute")),
            "o",
            "m",
            now,
            RETENTION,
        )
        .unwrap_err();
        assert!(
            error.message().contains("kept for 14 days"),
            "{}",
            error.message()
        );
        assert!(
            query_of(
                &params(Some(&old), Some(&to), Some("hour")),
                "o",
                "m",
                now,
                RETENTION
            )
            .is_ok()
        );
    }

    #[test]
    fn defaults_and_bounds() {
        let now = 1_796_464_800;
        let q = query_of(&params(None, None, None), "o", "m", now, RETENTION).unwrap();
        assert_eq!(
            (q.from, q.to, q.step),
            (now + 1 - 86_400, now + 1, Resolution::Hour)
        );
        let q = query_of(&params(None, None, Some("day")), "o", "m", now, RETENTION).unwrap();
        assert_eq!(q.from, now + 1 - 30 * 86_400);
        let q = query_of(
            &params(None, None, Some("minute")),
            "o",
            "m",
            now,
            RETENTION,
        )
        .unwrap();
        // `now` is a minute's first second: the last hour, and this minute.
        assert_eq!(q.steps(), 61);
        let error = |p| {
            query_of(&p, "o", "m", now, RETENTION)
                .unwrap_err()
                .message()
                .to_owned()
        };
        assert!(error(params(None, None, Some("week"))).contains("step"));
        assert!(
            error(params(Some("1796464800000"), Some("1796464800000"), None)).contains("before")
        );
        // 63 days of hours: 1,512 steps.
        let from = (now - 63 * 86_400).to_string() + "000";
        assert!(error(params(Some(&from), None, None)).contains("more than 1500"));
        let from = (now - 2 * 86_400).to_string() + "000";
        assert!(error(params(Some(&from), None, Some("minute"))).contains("minute steps"));
        assert!(
            query_of(
                &params(Some(&from), None, Some("hour")),
                "o",
                "m",
                now,
                RETENTION
            )
            .is_ok()
        );
    }
}
