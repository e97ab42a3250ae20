//! Data drift of a model: its reference profile (uploaded, from an MLflow run's artifact,
//! or from the next calls), its drift settings, drift per feature over time, and a report
//! over a range. Viewers read; members (`models:write`) set the reference and settings.
//! See `docs/monitoring.md`.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::models::find_model;
use super::{ApiPath, ApiQuery, AppState};
use crate::access::OrgAccess;
use crate::api::{Authorized, Meta};
use crate::auth::rbac::can;
use crate::db::{self, Reader};
use crate::domain::drift::NewReference;
use crate::domain::{self, Acting};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::inspect::ModelSignature;
use crate::registry::{self, Model};
use crate::serving::drift::compare::Comparison;
use crate::serving::drift::profile::{FeatureProfile, Profile};
use crate::serving::drift::reference::{self, Format, Parsed};
use crate::serving::drift::timeline::{self, Point};
use crate::serving::drift::{DriftSettings, store};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_reference,
            put_reference,
            post_reference,
            delete_reference
        ))
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(get_config, put_config))
        .routes(routes!(drift_timeline))
        .routes(routes!(drift_report))
}

/// Most steps one timeline answers.
const MAX_POINTS: i64 = 1000;
/// Most rows a `from_calls` reference collects.
const MAX_FROM_CALLS: u64 = 1_000_000;

/// A reference from somewhere other than the request body (`Content-Type:
/// application/json`): `from_calls`, or `mlflow_run_id` with either `artifact_path` or
/// `dataset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSource {
    /// Profile the next N rows the model serves (1 to 1,000,000).
    pub from_calls: Option<u64>,
    /// A run of the organisation's MLflow tracking…
    pub mlflow_run_id: Option<String>,
    /// …and the path of a `.csv` or `.ndjson`/`.jsonl` artifact under its artifact root…
    pub artifact_path: Option<String>,
    /// …or the name of a data set logged on it (`mlflow.log_input`), whose file is one of
    /// wisp's artifacts (see docs/monitoring.md).
    pub dataset: Option<String>,
    /// With `dataset`: the input's `mlflow.data.context` (`training`, …).
    pub context: Option<String>,
    /// With `dataset`: its digest, when the run logged several versions of it.
    pub digest: Option<String>,
    /// Columns (CSV) or keys (NDJSON) of the file to leave out: a label column, an id.
    #[serde(default)]
    pub ignore_columns: Vec<String>,
}

/// Query of a data set sent as the body.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Columns (CSV) or keys (NDJSON) to leave out, comma-separated: a label column, an id.
    pub ignore_columns: Option<String>,
}

/// One profiled feature of a reference.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureInfo {
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Values counted (missing ones are not).
    pub count: u64,
}

/// A model's reference profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferenceInfo {
    pub model: String,
    /// Where it came from: `{"kind": "upload", "format": "csv"}`,
    /// `{"kind": "mlflow", "run_id", "artifact_path"}`, `{"kind": "from_calls", "calls"}`.
    #[schema(value_type = Object)]
    pub source: Value,
    /// `collecting` (from calls, until `target_rows`) or `ready`.
    pub status: String,
    pub rows: i64,
    pub target_rows: Option<i64>,
    /// `raw` (≤ 1,000 rows: every value kept, for KS and chi-squared) or `sketches`.
    pub stored_as: String,
    pub features: Vec<FeatureInfo>,
    /// Output columns (the prediction's reference), if the data set had them.
    pub outputs: Vec<FeatureInfo>,
    /// Names a CSV header gave a 2-D input's columns, by input.
    pub columns: BTreeMap<String, Vec<String>>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Drift per feature over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftTimeline {
    pub model: String,
    /// The range, Unix seconds (`from` inclusive, `to` exclusive).
    pub from: i64,
    pub to: i64,
    /// Seconds per point.
    pub step: i64,
    /// The model's live window length.
    pub window_secs: u64,
    pub reference_rows: i64,
    /// Steps with calls, oldest first.
    pub points: Vec<Point>,
    /// Calls this process dropped from profiling since it started (queue full).
    pub dropped_calls: u64,
}

/// Drift over a range, every window in it merged.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftReport {
    pub model: String,
    pub from: i64,
    pub to: i64,
    /// Live windows merged.
    pub windows: usize,
    pub reference_rows: i64,
    #[schema(value_type = Object)]
    pub reference_source: Value,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// The range of a timeline or report: Unix seconds or RFC 3339; by default the last 24
/// hours.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// Start (inclusive): Unix seconds or RFC 3339. Default: `to` − 24 h.
    pub from: Option<String>,
    /// End (exclusive). Default: now.
    pub to: Option<String>,
    /// Seconds per point of a timeline (default: the model's window length).
    pub step: Option<i64>,
}

fn bad(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(message).with_details(json!({ "reason": reason }))
}

fn instant(value: &str) -> ApiResult<i64> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            bad(
                "invalid_time",
                format!("{value:?} is neither Unix seconds nor RFC 3339"),
            )
        })
}

fn range(query: &RangeQuery) -> ApiResult<(i64, i64)> {
    let to = query
        .to
        .as_deref()
        .map(instant)
        .transpose()?
        .unwrap_or_else(db::now);
    let from = query
        .from
        .as_deref()
        .map(instant)
        .transpose()?
        .unwrap_or(to - 86_400);
    if from >= to {
        return Err(bad("invalid_range", "`from` must be before `to`"));
    }
    Ok((from, to))
}

/// The signature references are read against: the deployed version's, else the latest.
async fn signature(conn: &Reader, model: &Model) -> ApiResult<ModelSignature> {
    let deployed = crate::deployments::get(conn, &model.id)
        .await?
        .map(|d| d.version);
    let Some(number) = deployed.or(model.latest_version) else {
        return Err(bad(
            "no_version",
            "the model has no version to read a reference against",
        ));
    };
    let version = registry::get_version(conn, &model.id, number)
        .await?
        .ok_or_else(|| ApiError::not_found("model version"))?;
    Ok(version.signature)
}

fn features(side: &BTreeMap<String, FeatureProfile>) -> Vec<FeatureInfo> {
    side.iter()
        .map(|(name, f)| FeatureInfo {
            name: name.clone(),
            kind: f.kind().to_owned(),
            count: f.count(),
        })
        .collect()
}

fn stored_as(profile: &Profile) -> &'static str {
    if profile.is_raw() { "raw" } else { "sketches" }
}

fn info(model: &Model, reference: store::Reference) -> ReferenceInfo {
    ReferenceInfo {
        model: model.name.clone(),
        source: reference.source,
        status: reference.status,
        rows: reference.rows,
        target_rows: reference.target_rows,
        stored_as: stored_as(&reference.profile).to_owned(),
        features: features(&reference.profile.features),
        outputs: features(&reference.profile.outputs),
        columns: reference.columns,
        created_by: reference.created_by,
        created_at: db::rfc3339(reference.created_at),
        updated_at: db::rfc3339(reference.updated_at),
    }
}

async fn load_reference(conn: &Reader, org_id: &str, model: &Model) -> ApiResult<store::Reference> {
    store::reference(conn, org_id, &model.id)
        .await?
        .ok_or_else(|| ApiError::not_found("drift reference"))
}

/// The model's reference profile.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/drift/reference", tag = "drift",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = ReferenceInfo), (status = 404, description = "`not_found`: no such model, or no reference", body = crate::error::ErrorBody)))]
async fn get_reference(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<ReferenceInfo>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    let reference = load_reference(&conn, &access.org.id, &model).await?;
    Ok(Json(info(&model, reference)))
}

/// Sets the model's reference profile (replacing any). The body is the data set
/// (`Content-Type: text/csv` or `application/x-ndjson`; columns named after the model's
/// features, see docs/monitoring.md), or `application/json` naming where to get it:
/// `{"from_calls": N}`, `{"mlflow_run_id", "artifact_path"}` or `{"mlflow_run_id",
/// "dataset"}`. `ignore_columns` (query for a body, field for a JSON source) leaves
/// columns of the file out.
#[utoipa::path(put, path = "/v1/orgs/{org}/models/{model}/drift/reference", tag = "drift",
    request_body(description = "A CSV or NDJSON data set, or a JSON source", content((String = "text/csv"), (String = "application/x-ndjson"), (ReferenceSource = "application/json"))),
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), UploadQuery),
    responses(
        (status = 200, body = ReferenceInfo),
        (status = 400, description = "`invalid_request` (`details.reason`: `unknown_column`, `not_a_number`, `wrong_field_count`, `empty_reference`, `no_input_columns`, `duplicate_column`, `unterminated_quote`, `invalid_row`, `not_utf8`, `no_version`, `unsupported_format`, `invalid_source`, `dataset_not_stored`, `ambiguous_dataset`, `dataset_mismatch`); `invalid_json`", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no such model, MLflow run, logged dataset or artifact", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::error::ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = crate::error::ErrorBody)))]
async fn put_reference(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ReferenceInfo>> {
    let (_, name) = path;
    set_reference(state, access, meta, name, query, headers, body).await
}

/// The same as `PUT`.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/drift/reference", tag = "drift",
    request_body(content((String = "text/csv"), (String = "application/x-ndjson"), (ReferenceSource = "application/json"))),
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), UploadQuery),
    responses((status = 200, body = ReferenceInfo), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn post_reference(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ReferenceInfo>> {
    let (_, name) = path;
    set_reference(state, access, meta, name, query, headers, body).await
}

async fn read_body(body: Body, limit: u64) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the reference is larger than {limit} bytes"),
            )
        })
}

/// Parses a data set off the executor.
async fn parse(
    bytes: bytes::Bytes,
    format: Format,
    signature: ModelSignature,
    ignored: BTreeSet<String>,
) -> ApiResult<Parsed> {
    tokio::task::spawn_blocking(move || reference::parse(&bytes, format, &signature, &ignored))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

async fn set_reference(
    state: AppState,
    access: Authorized<can::WriteModels>,
    meta: crate::audit::RequestMeta,
    name: String,
    query: UploadQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ReferenceInfo>> {
    let from_query: BTreeSet<String> = query
        .ignore_columns
        .iter()
        .flat_map(|list| list.split(','))
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let org_id = access.org.id.clone();
    let limit = state.settings.max_upload_bytes;
    let (model, signature) = {
        let conn = state.db.read().await;
        let model = find_model(&conn, &org_id, &name).await?;
        let signature = signature(&conn, &model).await?;
        (model, signature)
    };
    // (source, target rows, parsed profile, columns left out)
    let (mut source, target_rows, parsed, ignored) = match media.as_str() {
        "text/csv" | "application/x-ndjson" | "application/jsonl" => {
            let format = if media == "text/csv" {
                Format::Csv
            } else {
                Format::Ndjson
            };
            let bytes = read_body(body, limit).await?;
            let parsed = parse(bytes, format, signature, from_query.clone()).await?;
            let kind = if format == Format::Csv {
                "csv"
            } else {
                "ndjson"
            };
            let source = json!({ "kind": "upload", "format": kind });
            (source, None, parsed, from_query)
        }
        "application/json" => {
            let bytes = read_body(body, 64 << 10).await?;
            let request: ReferenceSource = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("invalid reference source: {e}"),
                )
            })?;
            if !from_query.is_empty() {
                return Err(bad(
                    "invalid_source",
                    "with a JSON source, name the columns to leave out in its `ignore_columns`",
                ));
            }
            let ignored: BTreeSet<String> = request.ignore_columns.iter().cloned().collect();
            let (source, target_rows, parsed) =
                json_source(&state, &org_id, request, signature, ignored.clone(), limit).await?;
            (source, target_rows, parsed, ignored)
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the reference as text/csv or application/x-ndjson, or a JSON source as application/json",
            ));
        }
    };
    // What was left out is part of where the reference came from.
    if !ignored.is_empty() {
        source["ignore_columns"] = json!(ignored);
    }
    let profile = serde_json::to_string(&parsed.profile).map_err(ApiError::internal)?;
    let columns = serde_json::to_string(&parsed.columns).map_err(ApiError::internal)?;
    let acting = Acting::new(&access, &meta);
    let status = if target_rows.is_some() {
        "collecting"
    } else {
        "ready"
    };
    state
        .db
        .transaction(async |tx| -> ApiResult<()> {
            // The model again, inside the transaction: it may have been deleted meanwhile.
            let model = find_model(tx, &org_id, &name).await?;
            let new = NewReference {
                source: &source,
                status,
                target_rows,
                rows: parsed.profile.rows as i64,
                columns: &columns,
                profile: &profile,
                stored_as: stored_as(&parsed.profile),
            };
            domain::drift::set_reference(tx, &acting, &model, new).await?;
            Ok(())
        })
        .await?;
    // Sampling starts (and the collected rows go to this reference) from the next call.
    state.drift.refresh().await;
    let conn = state.db.read().await;
    let reference = load_reference(&conn, &org_id, &model).await?;
    Ok(Json(info(&model, reference)))
}

/// The reference a JSON source names: (source for the record, target rows, profile).
async fn json_source(
    state: &AppState,
    org_id: &str,
    request: ReferenceSource,
    signature: ModelSignature,
    ignored: BTreeSet<String>,
    limit: u64,
) -> ApiResult<(Value, Option<i64>, Parsed)> {
    match request {
        ReferenceSource {
            from_calls: Some(calls),
            mlflow_run_id: None,
            artifact_path: None,
            dataset: None,
            context: None,
            digest: None,
            ignore_columns,
        } if ignore_columns.is_empty() => {
            if !(1..=MAX_FROM_CALLS).contains(&calls) {
                return Err(bad(
                    "invalid_source",
                    format!("from_calls must be between 1 and {MAX_FROM_CALLS}"),
                ));
            }
            let empty = Parsed {
                profile: Profile::default(),
                columns: BTreeMap::new(),
            };
            Ok((
                json!({ "kind": "from_calls", "calls": calls }),
                Some(calls as i64),
                empty,
            ))
        }
        ReferenceSource {
            from_calls: None,
            mlflow_run_id: Some(run_id),
            artifact_path: Some(path),
            dataset: None,
            context: None,
            digest: None,
            ..
        } => {
            let (bytes, format) = mlflow_artifact(state, org_id, &run_id, &path, limit).await?;
            let parsed = parse(bytes, format, signature, ignored).await?;
            let source = json!({ "kind": "mlflow", "run_id": run_id, "artifact_path": path });
            Ok((source, None, parsed))
        }
        ReferenceSource {
            from_calls: None,
            mlflow_run_id: Some(run_id),
            artifact_path: None,
            dataset: Some(name),
            context,
            digest,
            ..
        } => {
            let logged = logged_dataset(
                state,
                org_id,
                &run_id,
                &name,
                context.as_deref(),
                digest.as_deref(),
            )
            .await?;
            let (bytes, format) = read_artifact(state, &logged.file, limit).await?;
            let parsed = parse(bytes, format, signature, ignored).await?;
            if let Some(rows) = logged.dataset.rows
                && rows != parsed.profile.rows
            {
                return Err(bad(
                    "dataset_mismatch",
                    format!(
                        "the logged dataset {name:?} has {rows} rows, the artifact {:?} {}",
                        logged.artifact_path, parsed.profile.rows
                    ),
                ));
            }
            let source = json!({
                "kind": "mlflow_dataset",
                "run_id": run_id,
                "dataset": name,
                "digest": logged.dataset.digest,
                "context": logged.dataset.context,
                "artifact_path": logged.artifact_path,
            });
            Ok((source, None, parsed))
        }
        _ => Err(bad(
            "invalid_source",
            "give either `from_calls`, or `mlflow_run_id` with `artifact_path` or `dataset` (`context` and `digest` only with `dataset`, `ignore_columns` only with a file)",
        )),
    }
}

/// A logged data set and the artifact holding its rows.
struct LoggedRows {
    dataset: crate::mlflow::datasets::LoggedDataset,
    file: crate::mlflow::artifacts::StoredFile,
    /// The file's path under the run's artifact root (or in the namespace, if elsewhere).
    artifact_path: String,
}

/// Finds the data set `name` logged on the organisation's run `run_id`, and its file.
async fn logged_dataset(
    state: &AppState,
    org_id: &str,
    run_id: &str,
    name: &str,
    context: Option<&str>,
    digest: Option<&str>,
) -> ApiResult<LoggedRows> {
    use crate::mlflow::{artifacts, datasets, tracking};
    let conn = state.db.read().await;
    // Another organisation's run is answered like a missing one.
    let run = tracking::get_run(&conn, org_id, run_id)
        .await
        .map_err(|_| ApiError::not_found("MLflow run"))?;
    let dataset = datasets::find(&run, name, context, digest)
        .map_err(|_| ApiError::not_found("logged dataset"))?;
    let file = match datasets::rows(&conn, org_id, &run, &dataset)
        .await
        .map_err(ApiError::internal)?
    {
        datasets::Rows::Found(file) => file,
        datasets::Rows::NotStored(why) => return Err(bad("dataset_not_stored", why)),
        datasets::Rows::Ambiguous(paths) => {
            return Err(bad(
                "ambiguous_dataset",
                format!(
                    "several artifacts of the run could hold the dataset ({}); name one as artifact_path",
                    paths.join(", ")
                ),
            ));
        }
    };
    let root = artifacts::path_of_uri(&run.info.artifact_uri).unwrap_or_default();
    let artifact_path = file
        .path
        .strip_prefix(&format!("{root}/"))
        .unwrap_or(&file.path)
        .to_owned();
    Ok(LoggedRows {
        dataset,
        file,
        artifact_path,
    })
}

/// The bytes and format of a stored artifact: a `.csv`, `.ndjson`/`.jsonl`/`.json` file
/// within the upload limit.
async fn read_artifact(
    state: &AppState,
    file: &crate::mlflow::artifacts::StoredFile,
    limit: u64,
) -> ApiResult<(bytes::Bytes, Format)> {
    let format = Format::of_path(&file.path).ok_or_else(|| {
        bad(
            "unsupported_format",
            "the artifact must be a .csv, .ndjson, .jsonl or .json file",
        )
    })?;
    if file.size as u64 > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the artifact is larger than {limit} bytes"),
        ));
    }
    let bytes = state
        .blobs
        .get(&file.sha256)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("MLflow artifact"))?;
    Ok((bytes, format))
}

/// The bytes and format of an artifact of one of the organisation's MLflow runs.
async fn mlflow_artifact(
    state: &AppState,
    org_id: &str,
    run_id: &str,
    path: &str,
    limit: u64,
) -> ApiResult<(bytes::Bytes, Format)> {
    use crate::mlflow::{artifacts, tracking};
    let relative = artifacts::normalize(path)
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            bad(
                "invalid_source",
                format!("{path:?} is not an artifact path"),
            )
        })?;
    if Format::of_path(&relative).is_none() {
        return Err(bad(
            "unsupported_format",
            "the artifact must be a .csv, .ndjson, .jsonl or .json file",
        ));
    }
    let file = {
        let conn = state.db.read().await;
        // Another organisation's run is answered like a missing one.
        let run = tracking::get_run(&conn, org_id, run_id)
            .await
            .map_err(|_| ApiError::not_found("MLflow run"))?;
        let root = artifacts::path_of_uri(&run.info.artifact_uri)
            .ok_or_else(|| ApiError::not_found("MLflow artifact"))?;
        artifacts::get(&conn, org_id, &format!("{root}/{relative}"))
            .await
            .map_err(|_| ApiError::not_found("MLflow artifact"))?
            .ok_or_else(|| ApiError::not_found("MLflow artifact"))?
    };
    read_artifact(state, &file, limit).await
}

/// Deletes the model's reference (its windows stay).
#[utoipa::path(delete, path = "/v1/orgs/{org}/models/{model}/drift/reference", tag = "drift",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_reference(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, name) = path;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .transaction(async |tx| -> ApiResult<()> {
            let model = find_model(tx, &access.org.id, &name).await?;
            domain::drift::delete_reference(tx, &acting, &model).await?;
            Ok(())
        })
        .await?;
    state.drift.refresh().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The model's drift settings (the defaults if none were set).
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/drift/config", tag = "drift",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = DriftSettings), (status = 404, body = crate::error::ErrorBody)))]
async fn get_config(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<DriftSettings>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(
        store::settings(&conn, &access.org.id, &model.id).await?,
    ))
}

/// Sets the model's drift settings: window length, sampling rate and the tests'
/// configuration (omitted fields take their defaults; unknown ones are refused).
#[utoipa::path(put, path = "/v1/orgs/{org}/models/{model}/drift/config", tag = "drift", request_body = DriftSettings,
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = DriftSettings), (status = 400, description = "`invalid_request`, `invalid_json`", body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn put_config(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    body: bytes::Bytes,
) -> ApiResult<Json<DriftSettings>> {
    let (_, name) = path;
    // Parsed here rather than by the extractor, so that a misspelt key of the tests'
    // configuration is `invalid_request` with serde's message naming it.
    let settings: DriftSettings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid drift settings: {e}")))?;
    settings.check().map_err(ApiError::invalid)?;
    let value = serde_json::to_value(&settings).map_err(ApiError::internal)?;
    let acting = Acting::new(&access, &meta);
    state
        .db
        .transaction(async |tx| -> ApiResult<()> {
            let model = find_model(tx, &access.org.id, &name).await?;
            domain::drift::set_settings(tx, &acting, &model, &value).await?;
            Ok(())
        })
        .await?;
    state.drift.refresh().await;
    Ok(Json(settings))
}

/// The reference (ready) and settings of a model, for the reads below.
async fn ready_reference(
    conn: &Reader,
    org_id: &str,
    model: &Model,
) -> ApiResult<(store::Reference, DriftSettings)> {
    let reference = load_reference(conn, org_id, model).await?;
    if reference.status != "ready" {
        return Err(ApiError::not_found("drift reference").with_details(json!({
            "reason": "collecting",
            "rows": reference.rows,
            "target_rows": reference.target_rows,
        })));
    }
    let settings = store::settings(conn, org_id, &model.id).await?;
    Ok((reference, settings))
}

/// Drift per feature (and per output) over time: the live windows starting in
/// `[from, to)`, grouped by `step`, each against the reference.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/drift", tag = "drift",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), RangeQuery),
    responses((status = 200, body = DriftTimeline), (status = 400, description = "`invalid_request` (`invalid_time`, `invalid_range`, `too_many_points`)", body = crate::error::ErrorBody), (status = 404, description = "`not_found`: no such model, or no ready reference", body = crate::error::ErrorBody)))]
async fn drift_timeline(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> ApiResult<Json<DriftTimeline>> {
    let (_, name) = path;
    Ok(Json(timeline_of(&state, &access, &name, &query).await?))
}

/// Model `name`'s drift timeline (the API's and the dashboard's monitoring page's).
pub(crate) async fn timeline_of(
    state: &AppState,
    access: &OrgAccess,
    name: &str,
    query: &RangeQuery,
) -> ApiResult<DriftTimeline> {
    let (from, to) = range(query)?;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, name).await?;
    let (reference, settings) = ready_reference(&conn, &access.org.id, &model).await?;
    let step = query.step.unwrap_or(settings.window_secs as i64);
    if step <= 0 || (to - from) / step > MAX_POINTS {
        return Err(bad(
            "too_many_points",
            format!("step must be positive and give at most {MAX_POINTS} points"),
        ));
    }
    let windows = store::windows(&conn, &access.org.id, &model.id, from, to).await?;
    drop(conn);
    let points = timeline::timeline(&reference.profile, &windows, from, step, &settings.tests);
    Ok(DriftTimeline {
        model: model.name,
        from,
        to,
        step,
        window_secs: settings.window_secs,
        reference_rows: reference.rows,
        points,
        dropped_calls: state.drift.dropped(),
    })
}

/// A drift report over `[from, to)`: every window in it merged, each feature's verdict,
/// the dataset-drift verdict and share, and prediction drift.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/drift/report", tag = "drift",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), RangeQuery),
    responses((status = 200, body = DriftReport), (status = 400, body = crate::error::ErrorBody), (status = 404, description = "`not_found`: no such model, or no ready reference", body = crate::error::ErrorBody)))]
async fn drift_report(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> ApiResult<Json<DriftReport>> {
    let (_, name) = path;
    Ok(Json(report_of(&state, &access, &name, &query).await?))
}

/// Model `name`'s drift report (the API's and the dashboard's monitoring page's).
pub(crate) async fn report_of(
    state: &AppState,
    access: &OrgAccess,
    name: &str,
    query: &RangeQuery,
) -> ApiResult<DriftReport> {
    let (from, to) = range(query)?;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, name).await?;
    let (reference, settings) = ready_reference(&conn, &access.org.id, &model).await?;
    let windows = store::windows(&conn, &access.org.id, &model.id, from, to).await?;
    drop(conn);
    let comparison = timeline::report(&reference.profile, &windows, &settings.tests);
    Ok(DriftReport {
        model: model.name,
        from,
        to,
        windows: windows.len(),
        reference_rows: reference.rows,
        reference_source: reference.source,
        comparison,
    })
}
