//! Ground truth: feedback on a model's predictions, and the performance and fairness it
//! shows.
//!
//! Every call's prediction id is its `wisp-usage-id` response header. A client sends the
//! actual outcome for it later (`POST …/feedback`, one or up to 1,000 at once); the
//! prediction log (`serving::prediction_log`) kept what the model answered. Metrics read
//! the predictions made in a time range that have feedback.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::models::find_model;
use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::access::OrgAccess;
use crate::api::{Authorized, Meta};
use crate::auth::rbac::can;
use crate::domain::Acting;
use crate::domain::ground_truth::feedback::{self, Item, ItemResult, MAX_ITEMS};
use crate::domain::ground_truth::report::{self, Fairness, MAX_WINDOWS, Performance, Windows};
use crate::domain::ground_truth::rows;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::serving::pipeline::check_segment;
use crate::serving::prediction_log::now_ms;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_feedback))
        .routes(routes!(performance))
        .routes(routes!(fairness))
}

/// One feedback: the prediction's id and what actually happened. Or, instead, `items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The call's `wisp-usage-id`.
    pub prediction_id: Option<String>,
    /// A classifier's actual label (a string, or an integer for integer labels); a
    /// regressor's actual value (a number).
    pub actual: Option<Value>,
    /// The segment attribute for fairness, replacing the one sent with the call.
    pub segment: Option<String>,
    /// Up to 1,000 feedbacks at once, each answered on its own.
    pub items: Option<Vec<FeedbackItem>>,
}

/// One of a bulk request's feedbacks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackItem {
    pub prediction_id: String,
    pub actual: Value,
    pub segment: Option<String>,
}

/// What became of one feedback.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackResult {
    pub prediction_id: String,
    pub result: ItemResult,
}

/// The answer to a bulk request: one result per item, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackResults {
    pub accepted: usize,
    pub results: Vec<FeedbackResult>,
}

/// Records the actual outcome of predictions of the model. One feedback per prediction: a
/// second replaces the first. A single feedback answers `404 not_found` for an unknown
/// prediction id (or another model's or organisation's) and `422 invalid_actual` for an
/// `actual` of the wrong kind; a bulk one (`items`) answers `200` with each item's result.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/feedback", tag = "monitoring",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    request_body = FeedbackRequest,
    responses((status = 200, body = FeedbackResults), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
async fn post_feedback(
    State(state): State<AppState>,
    access: Authorized<can::WriteFeedback>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> ApiResult<Json<Value>> {
    let (_, name) = path;
    let (items, single) = match request {
        FeedbackRequest {
            prediction_id: Some(prediction_id),
            actual: Some(actual),
            segment,
            items: None,
        } => (
            vec![Item {
                prediction_id,
                actual,
                segment,
            }],
            true,
        ),
        FeedbackRequest {
            prediction_id: None,
            actual: None,
            segment: None,
            items: Some(items),
        } => (
            items
                .into_iter()
                .map(|i| Item {
                    prediction_id: i.prediction_id,
                    actual: i.actual,
                    segment: i.segment,
                })
                .collect(),
            false,
        ),
        _ => {
            return Err(ApiError::invalid(
                "send `prediction_id` and `actual` (and `segment`), or `items`",
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(format!(
            "`items` holds 1 to {MAX_ITEMS} feedbacks"
        )));
    }
    for item in &items {
        check_segment(item.segment.as_deref())?;
    }
    // A feedback sent right after its call finds the prediction the log still holds.
    state.predictions.flush().await;
    let acting = Acting::new(&access, &meta);
    // Predictions are in no memo: recording feedback leaves the hot path's rows fresh.
    let results = state
        .db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> ApiResult<_> {
            let model = find_model(tx, &access.org.id, &name).await?;
            if single {
                // The single form answers with the item's error, so find out which.
                let item = &items[0];
                match rows::find(tx, &access.org.id, &model.id, &item.prediction_id).await? {
                    None => return Err(ApiError::not_found("prediction")),
                    Some(stored) => {
                        feedback::actual_of(stored.kind, &item.actual)?;
                    }
                }
            }
            Ok(feedback::record(tx, &acting, &model, &items, now_ms()).await?)
        })
        .await?;
    let results: Vec<FeedbackResult> = items
        .into_iter()
        .zip(results)
        .map(|(item, result)| FeedbackResult {
            prediction_id: item.prediction_id,
            result,
        })
        .collect();
    let accepted = results
        .iter()
        .filter(|r| r.result == ItemResult::Accepted)
        .count();
    let body = if single {
        serde_json::to_value(&results[0])
    } else {
        serde_json::to_value(FeedbackResults { accepted, results })
    };
    Ok(Json(body.map_err(ApiError::internal)?))
}

/// A time range, and for performance its windows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// Start, seconds since the Unix epoch (default: `to` − 1 day).
    pub from: Option<i64>,
    /// End, exclusive (default: now).
    pub to: Option<i64>,
    /// Window length in seconds (default: the whole range); at most 1,000 windows.
    pub step: Option<i64>,
    /// Only this version.
    pub version: Option<i64>,
    /// The positive label of a binary classifier (default: of two labels, `1` or `true`,
    /// else the greater).
    pub positive_label: Option<String>,
}

impl RangeQuery {
    fn windows(&self) -> ApiResult<Windows> {
        let to = self.to.unwrap_or_else(|| now_ms().div_euclid(1000) + 1);
        let from = self.from.unwrap_or(to.saturating_sub(24 * 3600));
        let step = self.step.unwrap_or(to.saturating_sub(from));
        let ms = |s: i64| {
            s.checked_mul(1000)
                .ok_or_else(|| ApiError::invalid("time out of range"))
        };
        let Some(length) = to.checked_sub(from).filter(|l| *l > 0) else {
            return Err(ApiError::invalid("`from` must be before `to`"));
        };
        if step <= 0 || length / step + i64::from(length % step != 0) > MAX_WINDOWS {
            return Err(ApiError::invalid(format!(
                "`step` must be positive and cut the range into at most {MAX_WINDOWS} windows"
            )));
        }
        Ok(Windows {
            from_ms: ms(from)?,
            to_ms: ms(to)?,
            step_ms: ms(step)?,
        })
    }
}

/// Accuracy, precision/recall/F1 per class, macro and weighted (and for the positive label),
/// the confusion counts of a classifier; MAE, RMSE and mean error of a regressor: per window
/// and version, and per version over the range. Counts the predictions made in the range
/// that have feedback.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/performance", tag = "monitoring",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), RangeQuery),
    responses((status = 200, body = Performance), (status = 404, body = crate::error::ErrorBody)))]
async fn performance(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Performance>> {
    let (_, name) = path;
    Ok(Json(performance_of(&state, &access, &name, &query).await?))
}

/// Model `name`'s performance from feedback (the API's and the dashboard's).
pub(crate) async fn performance_of(
    state: &AppState,
    access: &OrgAccess,
    name: &str,
    query: &RangeQuery,
) -> ApiResult<Performance> {
    let windows = query.windows()?;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, name).await?;
    let outcomes = rows::outcomes(
        &conn,
        &access.org.id,
        &model.id,
        windows.from_ms,
        windows.to_ms,
        query.version,
    )
    .await?;
    drop(conn);
    Ok(report::performance(
        &outcomes,
        windows,
        query.positive_label.as_deref(),
    ))
}

/// Per segment (the segment attribute sent with the call or its feedback): rows, selection
/// rate, true and false positive rates; between segments: demographic parity difference,
/// disparate-impact ratio (min/max selection rate), equal-opportunity and equalized-odds
/// differences. Classified predictions in the range with feedback and a segment count.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/fairness", tag = "monitoring",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), RangeQuery),
    responses((status = 200, body = Fairness), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn fairness(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Fairness>> {
    let (_, name) = path;
    Ok(Json(fairness_of(&state, &access, &name, &query).await?))
}

/// Model `name`'s fairness from feedback (the API's and the dashboard's).
pub(crate) async fn fairness_of(
    state: &AppState,
    access: &OrgAccess,
    name: &str,
    query: &RangeQuery,
) -> ApiResult<Fairness> {
    if query.step.is_some() {
        return Err(ApiError::invalid(
            "fairness covers the whole range: no `step`",
        ));
    }
    let windows = query.windows()?;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, name).await?;
    let outcomes = rows::outcomes(
        &conn,
        &access.org.id,
        &model.id,
        windows.from_ms,
        windows.to_ms,
        query.version,
    )
    .await?;
    drop(conn);
    report::fairness(&outcomes, query.positive_label.as_deref()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "the model has more than two labels: name the `positive_label`",
        )
    })
}
