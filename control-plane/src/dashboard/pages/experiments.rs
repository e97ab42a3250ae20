//! Experiments (the MLflow tracking data wisp stores): the experiments, an experiment's
//! runs with their params and latest metrics, a run's page (params, tags, every metric's
//! history as a chart, its artifacts with downloads), and two or more runs compared side
//! by side with their metrics overlaid. Reads only, through the same storage functions as
//! the MLflow REST and artifact APIs, always scoped by the organisation.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::routing::get;
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::auth::rbac::can;
use crate::dashboard::error::{PageError, PageResult};
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::error::{ApiError, ErrorCode};
use crate::mlflow::tracking::{self, Run, RunSearch, ViewType};
use crate::mlflow::{self, artifacts};

pub(super) const TEMPLATES: &[(&str, &str)] = templates![
    "experiments/list.html",
    "experiments/runs.html",
    "experiments/run.html",
    "experiments/compare.html",
    "experiments/_chart.html",
];

/// Runs listed on one page of an experiment's runs.
const RUNS_SHOWN: usize = 100;
/// Points of one metric's history drawn.
const HISTORY_POINTS: usize = 10_000;
/// Runs compared at once.
const MAX_COMPARED: usize = 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/experiments", get(list))
        .route("/orgs/{org}/experiments/{experiment}", get(runs))
        .route("/orgs/{org}/runs/{run}", get(run_page))
        .route("/orgs/{org}/runs/{run}/artifact", get(download))
        .route("/orgs/{org}/compare", get(compare))
}

/// An MLflow storage error as the API's: `not_found`, `invalid_request`, else internal.
fn page_error(error: mlflow::MlflowError) -> PageError {
    let api = match error.code {
        mlflow::ErrorCode::ResourceDoesNotExist => {
            ApiError::new(ErrorCode::NotFound, error.message)
        }
        mlflow::ErrorCode::InvalidParameterValue | mlflow::ErrorCode::BadRequest => {
            ApiError::invalid(error.message)
        }
        _ => ApiError::internal(anyhow::anyhow!("{error}")),
    };
    PageError::Api(api)
}

async fn list(State(state): State<AppState>, page: OrgPage<can::ReadExperiments>) -> PageResult {
    // The experiment search creates the `Default` experiment on first use, as MLflow does.
    let experiments = {
        let conn = state.db.write_unmemoised().await;
        tracking::search_experiments(&conn, &page.access.org.id, ViewType::ActiveOnly, "", &[])
            .await
            .map_err(page_error)?
    };
    let frame = page.frame.clone().page("experiments", "Experiments");
    render::page("experiments/list.html", &frame, context! { experiments })
}

/// The latest value of each metric of a run, by key.
fn latest(run: &Run) -> BTreeMap<String, f64> {
    let mut latest: BTreeMap<String, (i64, i64, f64)> = BTreeMap::new();
    for m in &run.data.metrics {
        let entry = latest
            .entry(m.key.clone())
            .or_insert((m.step, m.timestamp, m.value));
        if (m.step, m.timestamp) >= (entry.0, entry.1) {
            *entry = (m.step, m.timestamp, m.value);
        }
    }
    latest.into_iter().map(|(k, (_, _, v))| (k, v)).collect()
}

fn params(run: &Run) -> BTreeMap<String, String> {
    run.data
        .params
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect()
}

/// A run as the tables show it.
fn row(run: &Run) -> Value {
    json!({
        "id": run.info.run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "user": run.info.user_id,
        "params": params(run),
        "metrics": latest(run),
    })
}

/// An experiment's runs page: an MLflow filter (`metrics.accuracy > 0.9 and
/// params.C = '1.0'`), an order (`metrics.accuracy DESC`), and the page number.
#[derive(Debug, Default, Deserialize)]
struct RunsQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    page: usize,
}

async fn runs(
    State(state): State<AppState>,
    page: OrgPage<can::ReadExperiments>,
    Path((_, experiment_id)): Path<(String, String)>,
    Query(query): Query<RunsQuery>,
) -> PageResult {
    let org = &page.access.org.id;
    let experiment = {
        let conn = state.db.write_unmemoised().await;
        tracking::get_experiment(&conn, org, &experiment_id)
            .await
            .map_err(page_error)?
    };
    let ids = [experiment.experiment_id.clone()];
    let (filter, order) = (query.filter.trim(), query.order.trim());
    let order_by: Vec<String> = (!order.is_empty())
        .then(|| order.to_owned())
        .into_iter()
        .collect();
    // The same search as MLflow's `runs/search`, so a filter means what it means there.
    let (found, more) = {
        let conn = state.db.read().await;
        tracking::search_runs(
            &conn,
            org,
            &RunSearch {
                experiment_ids: &ids,
                filter,
                view: ViewType::ActiveOnly,
                order_by: &order_by,
                offset: query.page.saturating_mul(RUNS_SHOWN),
                max: RUNS_SHOWN,
            },
        )
        .await
        .map_err(page_error)?
    };
    // Links to the neighbouring pages keep the filter and the order.
    let slug = &page.access.org.slug;
    let link = |number: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !filter.is_empty() {
            query.append_pair("filter", filter);
        }
        if !order.is_empty() {
            query.append_pair("order", order);
        }
        query.append_pair("page", &number.to_string());
        format!(
            "/orgs/{slug}/experiments/{}?{}",
            experiment.experiment_id,
            query.finish()
        )
    };
    let previous = (query.page > 0).then(|| link(query.page - 1));
    let next = more.then(|| link(query.page + 1));
    let param_keys: BTreeSet<String> = found
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.clone()))
        .collect();
    let metric_keys: BTreeSet<String> = found
        .iter()
        .flat_map(|r| r.data.metrics.iter().map(|m| m.key.clone()))
        .collect();
    let rows: Vec<_> = found.iter().map(row).collect();
    let title = format!("Experiment {}", experiment.name);
    let frame = page.frame.clone().page("experiments", title);
    render::page(
        "experiments/runs.html",
        &frame,
        context! {
            experiment, rows, param_keys, metric_keys, filter, order, previous, next,
            page_number => query.page + 1,
            max_compared => MAX_COMPARED,
        },
    )
}

/// Every metric key's history of `run`: `key → [(step, value)]`.
async fn histories(
    state: &AppState,
    org: &str,
    run: &Run,
) -> Result<BTreeMap<String, Vec<(i64, f64)>>, PageError> {
    let keys: BTreeSet<&str> = run.data.metrics.iter().map(|m| m.key.as_str()).collect();
    let conn = state.db.read().await;
    let mut out = BTreeMap::new();
    for key in keys {
        let history =
            tracking::metric_history(&conn, org, &run.info.run_id, key, 0, HISTORY_POINTS)
                .await
                .map_err(page_error)?;
        out.insert(
            key.to_owned(),
            history.into_iter().map(|m| (m.step, m.value)).collect(),
        );
    }
    Ok(out)
}

/// A chart of one metric over steps: one series per `(label, points)`.
fn step_chart(key: &str, lines: &[(String, &[(i64, f64)])]) -> Value {
    let steps: BTreeSet<i64> = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(s, _)| *s))
        .collect();
    let x: Vec<i64> = steps.into_iter().collect();
    let series: Vec<_> = lines
        .iter()
        .map(|(label, points)| {
            // The last value logged at a step (a metric may be logged twice at one step).
            let at: BTreeMap<i64, f64> = points.iter().copied().collect();
            json!({
                "label": label,
                "values": x.iter().map(|s| at.get(s).copied()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "title": key, "unit": key, "time": false, "x": x, "series": series })
}

#[derive(Debug, Default, Deserialize)]
struct ArtifactQuery {
    /// A directory under the run's artifact root.
    #[serde(default)]
    path: String,
}

/// The artifact directory `sub` of `run` (its root joined with `sub`, normalised).
fn artifact_dir(run: &Run, sub: &str) -> Result<(String, String), PageError> {
    let root = artifacts::path_of_uri(&run.info.artifact_uri).unwrap_or_default();
    let sub = artifacts::normalize(sub).map_err(page_error)?;
    let dir = [root.as_str(), sub.as_str()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    Ok((dir, sub))
}

async fn run_page(
    State(state): State<AppState>,
    page: OrgPage<can::ReadExperiments>,
    Path((_, run_id)): Path<(String, String)>,
    Query(query): Query<ArtifactQuery>,
) -> PageResult {
    let org = &page.access.org.id;
    let (run, files, sub) = {
        let conn = state.db.read().await;
        let run = tracking::get_run(&conn, org, &run_id)
            .await
            .map_err(page_error)?;
        let (dir, sub) = artifact_dir(&run, &query.path)?;
        let files: Vec<_> = artifacts::list(&conn, org, &dir)
            .await
            .map_err(page_error)?
            .into_iter()
            .map(|f| {
                let path = if sub.is_empty() {
                    f.path.clone()
                } else {
                    format!("{sub}/{}", f.path)
                };
                json!({ "path": path, "name": f.path, "is_dir": f.is_dir, "size": f.file_size })
            })
            .collect();
        (run, files, sub)
    };
    let history = histories(&state, org, &run).await?;
    let charts: Vec<_> = history
        .iter()
        .enumerate()
        .map(|(i, (key, points))| {
            json!({ "id": format!("metric-{i}"), "data": step_chart(key, &[(run.info.run_name.clone(), points)]) })
        })
        .collect();
    let parent = sub
        .rsplit_once('/')
        .map(|(p, _)| p.to_owned())
        .unwrap_or_default();
    let title = format!("Run {}", run.info.run_name);
    let frame = page.frame.clone().page("experiments", title);
    render::page(
        "experiments/run.html",
        &frame,
        context! {
            summary => row(&run),
            run,
            charts,
            files,
            sub,
            parent,
        },
    )
}

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    /// The file, relative to the run's artifact root.
    path: String,
}

/// One artifact of a run, from the artifact storage the MLflow artifact API serves.
async fn download(
    State(state): State<AppState>,
    page: OrgPage<can::ReadExperiments>,
    Path((_, run_id)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
) -> PageResult {
    let org = &page.access.org.id;
    let file = {
        let conn = state.db.read().await;
        let run = tracking::get_run(&conn, org, &run_id)
            .await
            .map_err(page_error)?;
        let (path, _) = artifact_dir(&run, &query.path)?;
        artifacts::get(&conn, org, &path)
            .await
            .map_err(page_error)?
    }
    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such artifact in this run"))?;
    let mut response = crate::api::download::blob_response(state.blobs.as_ref(), &file.sha256)
        .await
        .map_err(ApiError::internal)?;
    let name: String = file
        .path
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Runs `?run=…&run=…` side by side, their metrics overlaid.
async fn compare(
    State(state): State<AppState>,
    page: OrgPage<can::ReadExperiments>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let mut ids: Vec<String> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "run" && !ids.contains(&value.to_string()) {
            ids.push(value.into_owned());
        }
    }
    if ids.len() < 2 || ids.len() > MAX_COMPARED {
        return Err(
            ApiError::invalid(format!("select from 2 to {MAX_COMPARED} runs to compare")).into(),
        );
    }
    let org = &page.access.org.id;
    let mut found = Vec::new();
    {
        let conn = state.db.read().await;
        for id in &ids {
            found.push(
                tracking::get_run(&conn, org, id)
                    .await
                    .map_err(page_error)?,
            );
        }
    }
    let mut per_run = Vec::new();
    for run in &found {
        per_run.push(histories(&state, org, run).await?);
    }
    let keys: BTreeSet<&String> = per_run.iter().flat_map(|h| h.keys()).collect();
    let charts: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let lines: Vec<(String, &[(i64, f64)])> = found
                .iter()
                .zip(&per_run)
                .filter_map(|(run, h)| {
                    h.get(*key)
                        .map(|points| (run.info.run_name.clone(), points.as_slice()))
                })
                .collect();
            json!({ "id": format!("metric-{i}"), "data": step_chart(key, &lines) })
        })
        .collect();
    let rows: Vec<_> = found.iter().map(row).collect();
    let param_keys: BTreeSet<String> = found
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.clone()))
        .collect();
    let metric_keys: BTreeSet<String> = keys.into_iter().cloned().collect();
    let frame = page
        .frame
        .clone()
        .page("experiments", format!("Comparing {} runs", found.len()));
    render::page(
        "experiments/compare.html",
        &frame,
        context! { rows, param_keys, metric_keys, charts },
    )
}
