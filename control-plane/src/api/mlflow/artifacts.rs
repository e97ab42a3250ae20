//! Artifacts proxied through wisp (`mlflow-artifacts:/` URIs): `PUT`, `GET`, `DELETE`
//! `/api/2.0/mlflow-artifacts/artifacts/<path>` and the listing
//! `GET /api/2.0/mlflow-artifacts/artifacts?path=<dir>`; plus the tracking service's
//! `GET /api/2.0/mlflow/artifacts/list?run_id=…`.
//!
//! Both directions stream: an upload goes through staging (hashed and size-checked while
//! it is read) into the object store, a download is read from the object store chunk by
//! chunk. Nothing holds a whole file, and no request timeout applies.

use crate::api::Meta;
use crate::db::Reader;
use crate::domain::Acting;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, Fields, MlflowError, MlflowResult, empty, required_str};
use crate::api::AppState;
use crate::auth::rbac::can;
use crate::blob::StageError;
use crate::blob::intents::Intent;
use crate::error::ApiError;
use crate::metering::storage;
use crate::mlflow::{ErrorCode, artifacts, tracking};
use crate::{plans, registry};

const ROOT: &str = "/api/2.0/mlflow-artifacts/artifacts";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(ROOT, get(list))
        .route(
            &format!("{ROOT}/{{*path}}"),
            get(download).put(upload).delete(delete),
        )
        .route("/api/2.0/mlflow/artifacts/list", get(list_run_artifacts))
        // Uploads enforce the plan's limit while streaming.
        .layer(DefaultBodyLimit::disable())
}

/// The artifact path of a request: everything after the artifacts root.
fn request_path(request: &Request) -> MlflowResult<String> {
    uri_path(request.uri())
}

fn uri_path(uri: &Uri) -> MlflowResult<String> {
    let raw = uri.path().strip_prefix(ROOT).unwrap_or("");
    let decoded = percent_decode(raw)?;
    Ok(artifacts::normalize(&decoded)?)
}

fn percent_decode(raw: &str) -> MlflowResult<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                None => return Err(MlflowError::invalid("malformed percent-encoding in path")),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| MlflowError::invalid("artifact path is not UTF-8"))
}

async fn upload(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    request: Request,
) -> MlflowResult<Json<Value>> {
    let path = request_path(&request)?;
    if path.is_empty() {
        return Err(MlflowError::invalid("an artifact upload needs a file path"));
    }
    let plan = state.lookups.plan(&access.org.id).await?;
    let limit = state.settings.max_upload_bytes.min(plan.max_upload_bytes);
    let staged = state
        .staging
        .write(request.into_body().into_data_stream(), limit)
        .await
        .map_err(|e| match e {
            StageError::TooLarge { limit } => MlflowError::new(
                ErrorCode::InvalidParameterValue,
                format!("the artifact exceeds the limit of {limit} bytes"),
            ),
            StageError::Body(e) => MlflowError::new(
                ErrorCode::BadRequest,
                format!("reading the upload failed: {e}"),
            ),
            StageError::Io(e) => MlflowError::internal(e),
        })?;
    let (digest, size) = (staged.sha256.clone(), staged.size as i64);
    // Artifacts count toward the plan's storage: checked before the blob is committed, so
    // a refusal leaves nothing behind.
    let blobs = [(digest.as_str(), staged.size)];
    let room = storage::check_room(
        &*state.db.read().await,
        &access.org.id,
        plan.quotas.max_storage_bytes,
        &blobs,
    )
    .await?;
    room.map_err(|e| MlflowError::from(ApiError::from(e)))?;
    let intent = Intent::record(&state.db, &[digest.as_str()]).await?;
    if let Err(error) = state.blobs.commit(staged).await {
        intent.abandon(&state.db, &*state.blobs).await;
        return Err(MlflowError::internal(error));
    }
    let stored = store_artifact(&state, &access.org.id, &path, &digest, size, &plan).await;
    match stored {
        Ok(()) => intent.settle(&state.db).await,
        Err(error) => {
            intent.abandon(&state.db, &*state.blobs).await;
            return Err(error);
        }
    }
    tracing::debug!(path, size, sha256 = %digest, "mlflow artifact stored");
    Ok(empty())
}

/// Records an uploaded artifact whose blob is committed.
async fn store_artifact(
    state: &AppState,
    org_id: &str,
    path: &str,
    digest: &str,
    size: i64,
    plan: &plans::Plan,
) -> MlflowResult<()> {
    // Recorded under the database lock, after checking the blob survived a concurrent
    // deletion of its last other reference; a replaced blob is collected under it too.
    let conn = state.db.write().await;
    let orphans = conn
        .transaction(async |tx| -> MlflowResult<_> {
            // Again under the lock: concurrent uploads may have used the room meanwhile.
            let room = storage::check_room(
                tx,
                org_id,
                plan.quotas.max_storage_bytes,
                &[(digest, u64::try_from(size).unwrap_or(0))],
            )
            .await?;
            if let Err(exceeded) = room {
                return Err(ApiError::from(exceeded).into());
            }
            let replaced = artifacts::put(tx, org_id, path, digest, size).await?;
            if !state
                .blobs
                .exists(digest)
                .await
                .map_err(MlflowError::internal)?
            {
                return Err(MlflowError::internal(anyhow::anyhow!(
                    "blob {digest} was deleted concurrently"
                )));
            }
            Ok(match replaced {
                Some(old) => registry::unreferenced(tx, &[old]).await?,
                None => Vec::new(),
            })
        })
        .await?;
    delete_blobs(state, orphans).await;
    drop(conn);
    Ok(())
}

async fn delete_blobs(state: &AppState, digests: Vec<String>) {
    for digest in digests {
        if let Err(e) = state.blobs.delete(&digest).await {
            tracing::warn!(error = %e, blob = digest, "failed to delete unreferenced blob");
        }
    }
}

async fn download(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    request: Request,
) -> MlflowResult<Response> {
    let path = request_path(&request)?;
    let file = {
        let conn = state.db.read().await;
        artifacts::get(&conn, &access.org.id, &path).await?
    }
    .ok_or_else(|| MlflowError::not_found(format!("No artifact at path {path:?}")))?;
    crate::api::download::blob_response(state.blobs.as_ref(), &file.sha256)
        .await
        .map_err(MlflowError::internal)
}

/// The path of a deletion: a file or directory within the artifact root of one of the
/// organisation's runs or logged models, given plainly. The root of the namespace (``,
/// `/`, or `%2F` decoding to it), an absolute path (`//x`), an encoded separator and
/// anything outside a run are refused: `DELETE …/artifacts/%2F` used to remove every
/// artifact of the organisation.
async fn deletion_path(conn: &Reader, org_id: &str, uri: &Uri) -> MlflowResult<String> {
    let raw = uri.path().strip_prefix(ROOT).unwrap_or("");
    let lowered = raw.to_ascii_lowercase();
    if lowered.contains("%2f") || lowered.contains("%5c") || lowered.contains("%25") {
        return Err(MlflowError::invalid(format!(
            "Invalid artifact path {raw:?}: separators and '%' may not be percent-encoded"
        )));
    }
    if raw.starts_with("//") {
        return Err(MlflowError::invalid(format!(
            "Invalid artifact path {raw:?}: the path must be relative"
        )));
    }
    let path = uri_path(uri)?;
    if path.is_empty() {
        return Err(MlflowError::invalid(
            "Deleting the artifact root is not allowed: name a path within a run's artifacts",
        ));
    }
    if artifacts::owning_root(conn, org_id, &path).await?.is_none() {
        return Err(MlflowError::invalid(format!(
            "Invalid artifact path {path:?}: only artifacts within the artifact root of a run or logged model can be deleted"
        )));
    }
    Ok(path)
}

async fn delete(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Meta(meta): Meta,
    uri: Uri,
) -> MlflowResult<Json<Value>> {
    let conn = state.db.write().await;
    let orphans = conn
        .transaction(async |tx| -> MlflowResult<_> {
            let path = deletion_path(tx, &access.org.id, &uri).await?;
            let digests = artifacts::delete(tx, &access.org.id, &path).await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.artifact.deleted",
                    &format!("artifact:{path}"),
                    json!({ "path": path, "blobs": digests.len() }),
                )
                .await?;
            Ok(registry::unreferenced(tx, &digests).await?)
        })
        .await?;
    delete_blobs(&state, orphans).await;
    drop(conn);
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct ListRequest {
    path: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<ListRequest>,
) -> MlflowResult<Json<Value>> {
    let dir = artifacts::normalize(request.path.as_deref().unwrap_or(""))?;
    let conn = state.db.read().await;
    let files = artifacts::list(&conn, &access.org.id, &dir).await?;
    Ok(Json(json!({ "files": files })))
}

#[derive(Debug, Deserialize)]
struct RunListRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

async fn list_run_artifacts(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<RunListRequest>,
) -> MlflowResult<Json<Value>> {
    let run_id = required_str(request.run_id.or(request.run_uuid), "run_id")?;
    let conn = state.db.read().await;
    let run = tracking::get_run(&conn, &access.org.id, &run_id).await?;
    let root = artifacts::path_of_uri(&run.info.artifact_uri).unwrap_or_default();
    let sub = artifacts::normalize(request.path.as_deref().unwrap_or(""))?;
    let dir = [root.as_str(), sub.as_str()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let files: Vec<Value> = artifacts::list(&conn, &access.org.id, &dir)
        .await?
        .into_iter()
        .map(|f| {
            let path = if sub.is_empty() {
                f.path.clone()
            } else {
                format!("{sub}/{}", f.path)
            };
            json!({ "path": path, "is_dir": f.is_dir, "file_size": f.file_size })
        })
        .collect();
    Ok(Json(
        json!({ "root_uri": run.info.artifact_uri, "files": files }),
    ))
}
