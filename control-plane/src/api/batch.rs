//! Batch jobs: submit a file of rows for a model, follow its progress, cancel it, download
//! its NDJSON results.
//!
//! The input arrives as the raw body (`?model=&format=`), as the `file` part of a multipart
//! form (same query), or is named by the `input_sha256` of an earlier job of the
//! organisation in a JSON body. It is checked against the model's signature, stored in the
//! object store, and the job is recorded (with its audit entry) before it starts in the
//! background. See [`crate::batch`] for how it runs.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Limited;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::api::Authorized;
use crate::api::Meta;
use crate::auth::rbac::can;
use crate::batch::input::InputFile;
use crate::batch::jobs::{self, JobRequest};
use crate::batch::runner::RunnerState;
use crate::batch::store;
use crate::batch::{BatchJob, Format, ResultLine, runner};
use crate::blob::intents::Intent;
use crate::blob::{StageError, StagedBlob};
use crate::domain::Acting;
use crate::error::{ApiError, ApiResult, DomainResult, ErrorCode};
use crate::metering::storage;
use crate::serving::pipeline::{Pipeline, Selector, Target};
use axum::extract::FromRef;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, create_job))
        // Inputs are streamed into staging under the plan's upload limit.
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_results))
}

/// The model and format of a job whose input is the body or a multipart `file` part.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// The deployed model to run.
    pub model: Option<String>,
    /// `ndjson` or `csv`; by default from the `Content-Type` (`application/x-ndjson`,
    /// `text/csv`).
    pub format: Option<String>,
    /// Run this version instead of the deployed one.
    pub version: Option<i64>,
    /// Run the version this alias points at instead of the deployed one.
    pub alias: Option<String>,
}

/// A job over an input the organisation already stored (the `input_sha256` of an earlier
/// job).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFromStored {
    pub model: String,
    pub format: Format,
    pub input_sha256: String,
    pub version: Option<i64>,
    pub alias: Option<String>,
}

/// Paging of the job list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many jobs, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

/// An input file. Described for the OpenAPI document; the handler streams the body itself.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(value_type = String, format = Binary)]
struct InputBody(Vec<u8>);

/// An input file as a multipart form.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct InputForm {
    /// The NDJSON or CSV file; its `Content-Type` may give the format.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn stage_error(error: StageError) -> ApiError {
    match error {
        StageError::TooLarge { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the input exceeds the limit of {limit} bytes"),
        ),
        StageError::Body(e) => ApiError::invalid(format!("reading the input failed: {e}")),
        StageError::Io(e) => ApiError::internal(e),
    }
}

fn format_of(query: Option<&str>, media_type: Option<&str>) -> ApiResult<Format> {
    match (query, media_type.and_then(Format::from_media_type)) {
        (Some(text), _) => Format::parse(text).ok_or_else(|| {
            ApiError::invalid(format!("unknown format {text:?}; use ndjson or csv"))
        }),
        (None, Some(format)) => Ok(format),
        (None, None) => Err(ApiError::invalid(
            "give `format=ndjson` or `format=csv`, or a Content-Type of application/x-ndjson or text/csv",
        )),
    }
}

/// Streams the multipart `file` part into staging; returns it with its content type.
async fn stage_multipart(
    state: &AppState,
    request: Request,
    limit: u64,
) -> ApiResult<(StagedBlob, Option<String>)> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::invalid(e.body_text()))?;
    let mut staged = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::invalid(format!("malformed multipart body: {e}")))?
    {
        if field.name() != Some("file") || staged.is_some() {
            return Err(ApiError::invalid(
                "expected exactly one multipart part, named `file`",
            ));
        }
        let media_type = field.content_type().map(str::to_owned);
        let blob = state
            .staging
            .write(field, limit)
            .await
            .map_err(stage_error)?;
        staged = Some((blob, media_type));
    }
    staged.ok_or_else(|| ApiError::invalid("multipart body has no `file` part"))
}

/// Checks an input against the target's signature; returns its row count.
fn check_input(bytes: Bytes, format: Format, target: &Target) -> ApiResult<i64> {
    let file = InputFile::parse(bytes, format, &target.version.signature)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if file.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyUpload,
            "the input has no rows",
        ));
    }
    Ok(file.len() as i64)
}

/// Submits a batch job. The input is the body (`?model=…&format=…`), the `file` part of a
/// multipart form (same query), or — with a JSON body — the `input_sha256` of an earlier
/// job of the organisation. NDJSON lines are objects of named inputs; a CSV has a header
/// and numeric columns (the features of a single `[-1, n]` input, or one column per input).
/// The job runs the deployed version (or `version`/`alias`) in the background.
#[utoipa::path(post, path = "/v1/orgs/{org}/batch-jobs", tag = "batch",
    params(("org" = String, Path, description = "Organisation slug"), CreateQuery),
    request_body(content(
        (InputBody = "application/x-ndjson"),
        (InputBody = "text/csv"),
        (InputForm = "multipart/form-data"),
        (CreateFromStored = "application/json"),
    )),
    responses(
        (status = 201, body = BatchJob),
        (status = 400, description = "`invalid_request` (no model or format, a CSV header that fits no rule), `empty_upload`, `invalid_json`", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: model, version, alias or stored input", body = crate::error::ErrorBody),
        (status = 409, description = "`not_deployed`, `deployment_failed`", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::error::ErrorBody),
    ))]
async fn create_job(
    State(state): State<AppState>,
    access: Authorized<can::Predict>,
    Meta(meta): Meta,
    ApiQuery(query): ApiQuery<CreateQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<BatchJob>)> {
    let media_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let org_id = access.org.id.clone();
    let is = |prefix: &str| media_type.as_deref().is_some_and(|m| m.starts_with(prefix));

    let (target, format, input_sha256, input_bytes, rows_total, staged) = if is("application/json")
    {
        if query.model.is_some() || query.format.is_some() {
            return Err(ApiError::invalid(
                "with a JSON body, give the model and format in the body, not the query",
            ));
        }
        // The route lifts the body limit for streamed inputs; a JSON body is small.
        let limit = usize::try_from(state.settings.max_json_body_bytes).unwrap_or(usize::MAX);
        let request = request.map(|body| Body::new(Limited::new(body, limit)));
        let ApiJson(body) = ApiJson::<CreateFromStored>::from_request(request, &state).await?;
        let target = Pipeline::from_ref(&state)
            .target(
                &org_id,
                &body.model,
                &Selector {
                    version: body.version,
                    alias: body.alias.as_deref().map(str::to_owned),
                },
            )
            .await?;
        let known = {
            let conn = state.db.read().await;
            store::org_has_input(&conn, &org_id, &body.input_sha256).await?
        };
        let bytes = match known {
            true => state
                .blobs
                .get(&body.input_sha256)
                .await
                .map_err(ApiError::internal)?,
            false => None,
        }
        .ok_or_else(|| ApiError::not_found("input"))?;
        let size = bytes.len() as i64;
        let rows = check_input(bytes, body.format, &target)?;
        (target, body.format, body.input_sha256, size, rows, None)
    } else {
        let model = query
            .model
            .as_deref()
            .ok_or_else(|| ApiError::invalid("the `model` query parameter is required"))?;
        // Fail fast, before reading a byte, when the model cannot run.
        let target = Pipeline::from_ref(&state)
            .target(
                &org_id,
                model,
                &Selector {
                    version: query.version,
                    alias: query.alias.as_deref().map(str::to_owned),
                },
            )
            .await?;
        let limit = state
            .settings
            .max_upload_bytes
            .min(target.plan.max_upload_bytes);
        let (staged, part_type) = if is("multipart/form-data") {
            stage_multipart(&state, request, limit).await?
        } else {
            let body = request.into_body().into_data_stream();
            let staged = state
                .staging
                .write(body, limit)
                .await
                .map_err(stage_error)?;
            (staged, media_type.clone())
        };
        if staged.size == 0 {
            return Err(ApiError::new(ErrorCode::EmptyUpload, "the input is empty"));
        }
        let format = format_of(query.format.as_deref(), part_type.as_deref())?;
        let bytes = Bytes::from(staged.read().await.map_err(ApiError::internal)?);
        let rows = check_input(bytes, format, &target)?;
        let (sha256, size) = (staged.sha256.clone(), staged.size as i64);
        (target, format, sha256, size, rows, Some(staged))
    };

    // The input counts toward the plan's storage: checked before it is committed, so a
    // refusal leaves nothing behind, and again when the job is created.
    let input_blob = [(
        input_sha256.as_str(),
        u64::try_from(input_bytes).unwrap_or(0),
    )];
    let storage_limit = target.plan.quotas.max_storage_bytes;
    storage::check_room(&*state.db.read().await, &org_id, storage_limit, &input_blob).await??;
    let intent = Intent::record(&state.db, &[input_sha256.as_str()]).await?;
    if let Some(staged) = staged
        && let Err(error) = state.blobs.commit(staged).await
    {
        intent.abandon(&state.db, &*state.blobs).await;
        return Err(ApiError::internal(error));
    }
    let request = JobRequest {
        model: &target.model.name,
        version: target.version.version,
        format,
        input_sha256: &input_sha256,
        input_bytes,
        chunk_rows: i64::from(state.batch.settings().chunk_rows),
        rows_total,
        storage_limit,
    };
    let acting = Acting::new(&access, &meta);
    let job = state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            jobs::create(tx, &acting, &*state.blobs, request).await
        })
        .await
        .map_err(ApiError::from);
    let job = match job {
        Ok(job) => {
            intent.settle(&state.db).await;
            job
        }
        Err(error) => {
            intent.abandon(&state.db, &*state.blobs).await;
            return Err(error);
        }
    };
    tracing::info!(job.id = %job.id, model = %job.model, version = job.version, rows = job.rows_total, "batch job created");
    runner::spawn(RunnerState::from_ref(&state), job.id.clone());
    Ok((StatusCode::CREATED, Json(job)))
}

/// Batch jobs of the organisation, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/batch-jobs", tag = "batch",
    params(("org" = String, Path, description = "Organisation slug"), ListQuery),
    responses((status = 200, body = [BatchJob])))]
async fn list_jobs(
    State(state): State<AppState>,
    access: Authorized<can::Predict>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<BatchJob>>> {
    Ok(Json(list(&state, &access.org.id, query.limit).await?))
}

/// The organisation's jobs, newest first, at most `limit` (1–500, default 100): the API's
/// list and the dashboard's.
pub(crate) async fn list(
    state: &AppState,
    org_id: &str,
    limit: Option<i64>,
) -> ApiResult<Vec<BatchJob>> {
    let limit = limit.unwrap_or(100).clamp(1, 500);
    let conn = state.db.read().await;
    Ok(store::list(&conn, org_id, limit).await?)
}

/// Job `id` of the organisation (`not_found` for another organisation's).
pub(crate) async fn find_job(state: &AppState, org_id: &str, id: &str) -> ApiResult<BatchJob> {
    let conn = state.db.read().await;
    store::get(&conn, org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("batch job"))
}

/// A job: status and progress.
#[utoipa::path(get, path = "/v1/orgs/{org}/batch-jobs/{id}", tag = "batch",
    params(("org" = String, Path, description = "Organisation slug"), ("id" = String, Path, description = "Job id")),
    responses((status = 200, body = BatchJob), (status = 404, body = crate::error::ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    access: Authorized<can::Predict>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<BatchJob>> {
    let (_, id) = path;
    Ok(Json(find_job(&state, &access.org.id, &id).await?))
}

/// Cancels a queued or running job. It stops at the next chunk boundary; the results of
/// the chunks done so far remain downloadable.
#[utoipa::path(post, path = "/v1/orgs/{org}/batch-jobs/{id}/cancel", tag = "batch",
    params(("org" = String, Path, description = "Organisation slug"), ("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, body = BatchJob),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "`job_finished`", body = crate::error::ErrorBody),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    access: Authorized<can::Predict>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<BatchJob>> {
    let (_, id) = path;
    let acting = Acting::new(&access, &meta);
    let job = state
        .db
        .transaction(async |tx| -> DomainResult<_> { jobs::cancel(tx, &acting, &id).await })
        .await?;
    Ok(Json(job))
}

/// The results so far, streamed as NDJSON: one line per done row, in input order, each
/// `{"row", "outputs"}` or `{"row", "error": {"code", "message"}}`. Complete once the job
/// has `succeeded`.
#[utoipa::path(get, path = "/v1/orgs/{org}/batch-jobs/{id}/results", tag = "batch",
    params(("org" = String, Path, description = "Organisation slug"), ("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, body = ResultLine, content_type = "application/x-ndjson", description = "One line per done row"),
        (status = 404, body = crate::error::ErrorBody),
    ))]
async fn job_results(
    State(state): State<AppState>,
    access: Authorized<can::Predict>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let (_, id) = path;
    results(&state, &access.org.id, &id).await
}

/// Job `id`'s results so far as an NDJSON stream (the API's and the dashboard's download).
pub(crate) async fn results(state: &AppState, org_id: &str, id: &str) -> ApiResult<Response> {
    let job = find_job(state, org_id, id).await?;
    let chunks = {
        let conn = state.db.read().await;
        store::chunks(&conn, &job.id).await?
    };
    let blobs = state.blobs.clone();
    let body = futures_util::stream::iter(chunks).then(move |chunk| {
        let blobs = blobs.clone();
        async move {
            match blobs.get(&chunk.sha256).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(std::io::Error::other(format!(
                    "result blob {} is missing",
                    chunk.sha256
                ))),
                Err(e) => Err(std::io::Error::other(e)),
            }
            .inspect_err(|e| tracing::error!(error = %e, "failed to stream batch results"))
        }
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
