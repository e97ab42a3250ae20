//! Batch jobs: the organisation's jobs with their status and progress, a job's page whose
//! progress is a fragment htmx polls every second while the job is queued or running (the
//! fragment stops the polling once the job has finished), cancelling a job (the API's
//! domain operation, audited like `POST …/batch-jobs/{id}/cancel`), and downloading its
//! results so far (the API's NDJSON stream).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_DISPOSITION;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use minijinja::context;

use crate::api::batch as api_batch;
use crate::api::{AppState, Meta};
use crate::auth::rbac::can;
use crate::batch::jobs;
use crate::batch::{BatchJob, JobStatus};
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::domain::Acting;
use crate::error::DomainResult;

pub(super) const TEMPLATES: &[(&str, &str)] =
    templates!["batch/list.html", "batch/job.html", "batch/progress.html",];

/// Jobs on the list (newest first).
const JOBS_SHOWN: i64 = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/batch", get(list))
        .route("/orgs/{org}/batch/{job}", get(show))
        .route("/orgs/{org}/batch/{job}/progress", get(progress))
        .route("/orgs/{org}/batch/{job}/cancel", post(cancel))
        .route("/orgs/{org}/batch/{job}/results", get(results))
}

/// Whether the job may still change (the page keeps polling, cancel is offered).
fn active(job: &BatchJob) -> bool {
    matches!(job.status, JobStatus::Queued | JobStatus::Running)
}

/// Done rows in percent.
fn percent(job: &BatchJob) -> i64 {
    if job.rows_total > 0 {
        job.rows_done * 100 / job.rows_total
    } else {
        0
    }
}

async fn list(State(state): State<AppState>, page: OrgPage<can::Predict>) -> PageResult {
    let jobs: Vec<_> = api_batch::list(&state, &page.access.org.id, Some(JOBS_SHOWN))
        .await?
        .into_iter()
        .map(|job| {
            let percent = percent(&job);
            context! { job, percent }
        })
        .collect();
    let frame = page.frame.clone().page("batch", "Batch jobs");
    render::page("batch/list.html", &frame, context! { jobs })
}

async fn show(
    State(state): State<AppState>,
    page: OrgPage<can::Predict>,
    Path((_, id)): Path<(String, String)>,
    Query(query): Query<super::Done>,
) -> PageResult {
    let job = api_batch::find_job(&state, &page.access.org.id, &id).await?;
    let notice = (query.done == "cancelled").then_some(
        "Cancel requested: the job stops at the next chunk boundary; the results done so far remain.",
    );
    let title = format!("Batch job {}", job.id);
    let frame = page.frame.clone().page("batch", title);
    render::page(
        "batch/job.html",
        &frame,
        context! {
            active => active(&job),
            percent => percent(&job),
            job,
            notice,
        },
    )
}

/// The progress fragment: polls itself while the job is active.
async fn progress(
    State(state): State<AppState>,
    page: OrgPage<can::Predict>,
    Path((_, id)): Path<(String, String)>,
) -> PageResult {
    let job = api_batch::find_job(&state, &page.access.org.id, &id).await?;
    render::fragment(
        "batch/progress.html",
        context! {
            org => page.access.org.slug,
            active => active(&job),
            percent => percent(&job),
            job,
        },
    )
}

async fn cancel(
    State(state): State<AppState>,
    page: OrgPage<can::Predict>,
    Meta(meta): Meta,
    Path((_, id)): Path<(String, String)>,
) -> PageResult {
    let acting = Acting::new(&page.access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> { jobs::cancel(tx, &acting, &id).await })
        .await?;
    Ok(Redirect::to(&format!(
        "/orgs/{}/batch/{id}?done=cancelled",
        page.access.org.slug
    ))
    .into_response())
}

/// The results so far, as the API streams them, as a download.
async fn results(
    State(state): State<AppState>,
    page: OrgPage<can::Predict>,
    Path((_, id)): Path<(String, String)>,
) -> PageResult {
    let mut response = api_batch::results(&state, &page.access.org.id, &id).await?;
    let name = format!(
        "attachment; filename=\"batch-{}.ndjson\"",
        id.replace('"', "")
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
