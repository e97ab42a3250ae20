//! Monitoring: the organisation's models with their alert states, and a model's
//! monitoring page — calls, errors and p50/p99 latency over time per version (the API's
//! analytics function), drift per feature (the drift report and timeline functions),
//! feedback metrics (performance, fairness) and the alert rules watching the model with
//! their state and history. Charts are drawn by `static/charts.js` with the vendored
//! uPlot from `<script type="application/json">` data blocks (data, never executed), so
//! the CSP stays as strict as on every page.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chart::{chart, seconds};
use crate::api::analytics::{self, AnalyticsParams};
use crate::api::models::find_model;
use crate::api::{AppState, drift, feedback};
use crate::auth::rbac::can;
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::domain::alerts::rules::AlertRule;
use crate::error::{ApiError, ErrorCode};
use crate::{db, deployments, registry};
use wisp_core::alerts::AlertState;
use wisp_core::alerts::history::{self, HistoryQuery};
use wisp_core::alerts::rules as rule_rows;

pub(super) const TEMPLATES: &[(&str, &str)] = templates![
    "monitoring/list.html",
    "monitoring/model.html",
    "monitoring/_alerts.html",
];

/// Models per page of the overview.
const MODELS_SHOWN: i64 = 100;
/// Alert history entries shown on a model's page.
const HISTORY_SHOWN: usize = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/monitoring", get(overview))
        .route("/orgs/{org}/models/{model}/monitoring", get(model_page))
}

#[derive(Debug, Default, Deserialize)]
struct OverviewQuery {
    /// The last model name of the previous page.
    #[serde(default)]
    after: String,
}

async fn overview(
    State(state): State<AppState>,
    page: OrgPage<can::ReadModels>,
    Query(query): Query<OverviewQuery>,
) -> PageResult {
    let org = &page.access.org;
    let (mut models, deployed, rules) = {
        let conn = state.db.read().await;
        let models =
            registry::list_models_page(&conn, &org.id, "", &query.after, MODELS_SHOWN + 1).await?;
        let deployed: BTreeMap<String, deployments::Deployment> = deployments::list(&conn, &org.id)
            .await?
            .into_iter()
            .map(|d| (d.model.clone(), d))
            .collect();
        let rules = rule_rows::list(&conn, &org.id).await?;
        (models, deployed, rules)
    };
    let more = models.len() as i64 > MODELS_SHOWN;
    models.truncate(MODELS_SHOWN as usize);
    let next = more
        .then(|| models.last().map(|m| m.name.clone()))
        .flatten();
    let rows: Vec<_> = models
        .iter()
        .map(|m| {
            let watching: Vec<_> = rules
                .iter()
                .filter(|r| r.spec.model.as_deref().is_none_or(|n| n == m.name))
                .collect();
            let firing = watching
                .iter()
                .filter(|r| r.current().state == AlertState::Firing)
                .count();
            json!({
                "name": m.name,
                "deployed_version": deployed.get(&m.name).map(|d| d.version),
                "status": deployed.get(&m.name).map(|d| d.status),
                "rules": watching.len(),
                "firing": firing,
            })
        })
        .collect();
    let alerts: Vec<_> = rules
        .iter()
        .map(|r| json!({ "rule": AlertRule::from(r), "current": r.current() }))
        .collect();
    let frame = page.frame.clone().page("monitoring", "Monitoring");
    render::page(
        "monitoring/list.html",
        &frame,
        context! { rows, alerts, after => query.after, next },
    )
}

/// The time range of a model's page.
#[derive(Debug, Default, Deserialize)]
struct RangeForm {
    /// `hour` (minute steps), `day` (hour steps, the default) or `month` (30 days of days).
    #[serde(default)]
    range: String,
}

/// `Ok(None)` for a `not_found` (the model was found already: this is "nothing yet").
fn optional<T>(result: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.code() == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

async fn model_page(
    State(state): State<AppState>,
    page: OrgPage<can::ReadModels>,
    Path((_, name)): Path<(String, String)>,
    Query(form): Query<RangeForm>,
) -> PageResult {
    let access = &page.access;
    let model = {
        let conn = state.db.read().await;
        find_model(&conn, &access.org.id, &name).await?
    };
    let (range, step, seconds_back) = match form.range.as_str() {
        "hour" => ("hour", "minute", 3_600),
        "month" => ("month", "day", 30 * 86_400),
        _ => ("day", "hour", 86_400),
    };
    let now = db::now();
    let from = now - seconds_back;

    // Calls, errors, latency per version.
    let params = AnalyticsParams {
        from: None,
        to: None,
        step: Some(step.to_owned()),
        version: None,
    };
    let stats = analytics::analytics(&state, access, &name, &params).await?;
    // Every step of the range, so that a step without calls is drawn as zero calls.
    let step_secs = match step {
        "minute" => 60,
        "day" => 86_400,
        _ => 3_600,
    };
    let span = (seconds(&stats.from), seconds(&stats.to));
    let x: Vec<i64> = (span.0..span.1).step_by(step_secs).collect();
    let versions: BTreeSet<String> = stats
        .points
        .iter()
        .map(|p| format!("v{}", p.version))
        .collect();
    let mut calls = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut latency = BTreeMap::new();
    let mut latency_labels = BTreeSet::new();
    for p in &stats.points {
        let at = seconds(&p.start);
        let v = format!("v{}", p.version);
        calls.insert((v.clone(), at), p.stats.calls as f64);
        errors.insert((v.clone(), at), p.stats.errors as f64);
        for (q, value) in [
            ("p50", p.stats.latency_ms.p50),
            ("p99", p.stats.latency_ms.p99),
        ] {
            if let Some(value) = value {
                let label = format!("{v} {q}");
                latency.insert((label.clone(), at), value);
                latency_labels.insert(label);
            }
        }
    }
    let mut charts = vec![
        (
            "calls",
            chart(
                format!("Calls per {step}"),
                "calls",
                span,
                &x,
                &calls,
                &versions,
                Some(0.0),
            ),
        ),
        (
            "errors",
            chart(
                format!("Errors per {step}"),
                "errors",
                span,
                &x,
                &errors,
                &versions,
                Some(0.0),
            ),
        ),
        (
            "latency",
            chart(
                "Latency p50 and p99 (ms)",
                "ms",
                span,
                &x,
                &latency,
                &latency_labels,
                None,
            ),
        ),
    ];

    // Drift: the report over the range and each feature's score over time.
    let drift_range = drift::RangeQuery {
        from: Some(from.to_string()),
        to: None,
        step: None,
    };
    let drift_report = optional(drift::report_of(&state, access, &name, &drift_range).await)?;
    if drift_report.is_some()
        && let Some(timeline) =
            optional(drift::timeline_of(&state, access, &name, &drift_range).await)?
    {
        let x: Vec<i64> = timeline.points.iter().map(|p| p.start).collect();
        let mut scores = BTreeMap::new();
        let mut features = BTreeSet::new();
        for p in &timeline.points {
            for f in &p.comparison.features {
                if let Some(score) = f.score {
                    scores.insert((f.feature.clone(), p.start), score);
                    features.insert(f.feature.clone());
                }
            }
        }
        if !x.is_empty() {
            charts.push((
                "drift",
                chart(
                    "Drift score per feature (p-value or distance)",
                    "score",
                    (from, now),
                    &x,
                    &scores,
                    &features,
                    None,
                ),
            ));
        }
    }

    // Feedback: performance per version over the range, fairness between segments.
    let feedback_range = feedback::RangeQuery {
        from: Some(from),
        to: None,
        step: None,
        version: None,
        positive_label: None,
    };
    let performance = feedback::performance_of(&state, access, &name, &feedback_range).await?;
    let fairness = match feedback::fairness_of(&state, access, &name, &feedback_range).await {
        Ok(fairness) => json!({ "report": fairness }),
        Err(error) if error.code() == ErrorCode::InvalidRequest => {
            json!({ "error": error.message() })
        }
        Err(error) => return Err(error.into()),
    };

    // Alert rules watching this model (or every model), their state and history.
    let (rules, entries) = {
        let conn = state.db.read().await;
        let rules: Vec<_> = rule_rows::list(&conn, &access.org.id)
            .await?
            .into_iter()
            .filter(|r| r.spec.model.as_deref().is_none_or(|n| n == model.name))
            .collect();
        let query = HistoryQuery {
            rule: None,
            limit: Some(1000),
        };
        let entries = history::list(&conn, &access.org.id, &query).await?;
        (rules, entries)
    };
    let ids: BTreeSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let alert_history: Vec<_> = entries
        .into_iter()
        .filter(|e| ids.contains(e.rule_id.as_str()))
        .take(HISTORY_SHOWN)
        .collect();
    let alerts: Vec<_> = rules
        .iter()
        .map(|r| json!({ "rule": AlertRule::from(r), "current": r.current() }))
        .collect();

    let charts: Vec<Value> = charts
        .into_iter()
        .map(|(id, c)| json!({ "id": id, "empty": c.x.is_empty(), "data": c }))
        .collect();
    let title = format!("Monitoring {}", model.name);
    let frame = page.frame.clone().page("monitoring", title);
    render::page(
        "monitoring/model.html",
        &frame,
        context! {
            model,
            range,
            step,
            stats,
            charts,
            drift => drift_report,
            performance,
            fairness,
            alerts,
            alert_history,
        },
    )
}
