//! Uploading model versions: stream, hash, inspect, store, record — or store nothing.
//!
//! The body (raw, or the `file` part of a multipart form) is streamed into staging with the
//! size limit enforced while reading. The staged file is handed to the
//! [`ModelInspector`](crate::inspect::ModelInspector); only when it is accepted is the blob
//! committed to the object store and the version row inserted.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::models::find_model;
use super::{ApiPath, ApiQuery, AppState};
use crate::api::Authorized;
use crate::api::Meta;
use crate::auth::rbac::can;
use crate::blob::intents::Intent;
use crate::blob::{StageError, StagedBlob};
use crate::domain::{self, Acting};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::inspect::{Framework, InspectError, InspectedModel, ModelSignature};
use crate::metering::quota::{self, QuotaKind};
use crate::metering::storage;
use crate::plans::{self, Plan};
use crate::registry::{self, ModelVersion, NewVersion};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_versions, upload_version))
        // Uploads enforce their own limit while streaming; axum's 2 MB default would cut
        // multipart uploads short.
        .layer(DefaultBodyLimit::disable())
}

/// Metadata given with a raw-body upload.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    pub description: Option<String>,
    /// The experiment run that produced the model.
    pub run_id: Option<String>,
}

/// Metadata given as the `metadata` part of a multipart upload.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMetadata {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    pub run_id: Option<String>,
}

/// A raw model file (`.onnx`, or a `.wasm` component). Described for the OpenAPI document;
/// the handler streams the body itself.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(value_type = String, format = Binary)]
struct ModelFile(Vec<u8>);

/// An upload as a multipart form: the file and optional metadata.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The model file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// JSON-encoded [`UploadMetadata`].
    metadata: Option<UploadMetadata>,
}

fn stage_error(error: StageError) -> ApiError {
    match error {
        StageError::TooLarge { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload exceeds the limit of {limit} bytes"),
        ),
        StageError::Body(e) => ApiError::invalid(format!("reading the upload failed: {e}")),
        StageError::Io(e) => ApiError::internal(e),
    }
}

fn inspect_error(error: InspectError) -> ApiError {
    refusal(error, ErrorCode::InvalidModel)
}

/// An inspection failure as `code` (`invalid_model`, `invalid_component`); a bound that was
/// exceeded says which in `details.reason`, with `details.limit`.
fn refusal(error: InspectError, code: ErrorCode) -> ApiError {
    match error {
        InspectError::Unsupported(message) => {
            ApiError::new(ErrorCode::UnsupportedModelFormat, message)
        }
        InspectError::Invalid(message) => ApiError::new(code, message),
        InspectError::Refused {
            reason,
            limit,
            message,
        } => ApiError::new(code, message).with_details(json!({ "reason": reason, "limit": limit })),
        InspectError::UnsupportedOperator { operators, message } => {
            ApiError::new(ErrorCode::UnsupportedOperator, message)
                .with_details(json!({ "operators": operators }))
        }
    }
}

/// The staged parts of an upload.
struct Staged {
    file: StagedBlob,
    /// The ONNX graph a custom component comes with.
    graph: Option<StagedBlob>,
    metadata: UploadMetadata,
}

async fn stage_multipart(state: &AppState, request: Request, limit: u64) -> ApiResult<Staged> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::invalid(e.body_text()))?;
    let mut staged = None;
    let mut graph = None;
    let mut metadata = UploadMetadata::default();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::invalid(format!("malformed multipart body: {e}")))?;
        let Some(field) = field else { break };
        match field.name() {
            Some("file") if staged.is_none() => {
                let blob = state
                    .staging
                    .write(field, limit)
                    .await
                    .map_err(stage_error)?;
                staged = Some(blob);
            }
            Some("graph") if graph.is_none() => {
                let blob = state
                    .staging
                    .write(field, limit)
                    .await
                    .map_err(stage_error)?;
                graph = Some(blob);
            }
            Some("metadata") => {
                let bytes = read_bounded(field, state.settings.max_json_body_bytes).await?;
                metadata = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("metadata: {e}")))?;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unexpected multipart field {other:?}; expected one `file`, an optional `graph` and an optional `metadata`"
                )));
            }
        }
    }
    let file = staged.ok_or_else(|| ApiError::invalid("multipart upload has no `file` part"))?;
    Ok(Staged {
        file,
        graph,
        metadata,
    })
}

/// Reads a small multipart part into memory, refusing it past `limit` bytes: the route
/// lifts the body limit for the streamed `file`, which must not let the other parts
/// buffer unbounded memory.
async fn read_bounded(mut field: Field<'_>, limit: u64) -> ApiResult<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::invalid(format!("malformed multipart body: {e}")))?
    {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the `metadata` part exceeds the limit of {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Checks a staged upload and extracts its signature: an ONNX file with the backend that
/// will serve it, a component (with its graph) by instantiating it and asking.
async fn inspect(state: &AppState, staged: &Staged, plan: &Plan) -> ApiResult<InspectedModel> {
    let bytes = staged.file.read().await.map_err(ApiError::internal)?;
    if bytes.starts_with(WASM_MAGIC) {
        let graph = match &staged.graph {
            Some(graph) => Some(graph.read().await.map_err(ApiError::internal)?),
            None => None,
        };
        // Bounded first (counts, sizes, compile and load in the inspection budget), so
        // that the runtime's in-process compile and load below are known to fit.
        let inspector = state.inspector.clone();
        let (bytes, graph) = tokio::task::spawn_blocking(move || {
            inspector
                .inspect_component(&bytes)
                .map_err(|e| refusal(e, ErrorCode::InvalidComponent))?;
            if let Some(graph) = &graph {
                inspector.inspect(graph).map_err(inspect_error)?;
            }
            Ok::<_, ApiError>((bytes, graph))
        })
        .await
        .map_err(ApiError::internal)??;
        let signature = state
            .serving
            .runtime()
            .describe_component(bytes, graph, &plan.tenant_limits())
            .await?;
        return Ok(InspectedModel {
            framework: Framework::WasmComponent,
            signature: ModelSignature::from(signature),
        });
    }
    if staged.graph.is_some() {
        return Err(ApiError::invalid(
            "a `graph` part only goes with a WebAssembly component `file`",
        ));
    }
    let inspector = state.inspector.clone();
    tokio::task::spawn_blocking(move || inspector.inspect(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(inspect_error)
}

/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Versions of a model, newest first.
#[utoipa::path(get, path = "/v1/orgs/{org}/models/{model}/versions", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name")),
    responses((status = 200, body = [ModelVersion]), (status = 404, body = crate::error::ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    access: Authorized<can::ReadModels>,
    ApiPath(path): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<ModelVersion>>> {
    let (_, name) = path;
    let conn = state.db.read().await;
    let model = find_model(&conn, &access.org.id, &name).await?;
    Ok(Json(registry::list_versions(&conn, &model.id).await?))
}

/// Uploads a new version: the raw file as the body (`application/octet-stream`), or a
/// `multipart/form-data` form with a `file` part and an optional JSON `metadata` part.
/// The file is validated and its signature extracted before anything is stored.
#[utoipa::path(post, path = "/v1/orgs/{org}/models/{model}/versions", tag = "models",
    params(("org" = String, Path, description = "Organisation slug"), ("model" = String, Path, description = "Model name"), UploadQuery),
    request_body(content(
        (ModelFile = "application/octet-stream"),
        (UploadForm = "multipart/form-data"),
    )),
    responses(
        (status = 201, body = ModelVersion),
        (status = 400, description = "`empty_upload`, `invalid_request`", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::error::ErrorBody),
        (status = 422, description = "`unsupported_model_format`, `invalid_model`, `invalid_component`; a bound on uploads names itself in `details.reason`; `unsupported_operator`: `details.operators` names what no enabled backend runs", body = crate::error::ErrorBody),
        (status = 429, description = "`quota_exceeded`: the plan's storage", body = crate::error::ErrorBody),
    ))]
async fn upload_version(
    State(state): State<AppState>,
    access: Authorized<can::WriteModels>,
    Meta(meta): Meta,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<ModelVersion>)> {
    let (_, name) = path;
    let version = upload(&state, &access, &meta, &name, query, request).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

/// Stages, inspects, stores and registers an uploaded version of model `name` (a raw body
/// or a multipart form): the one upload path of the API and the dashboard. The caller has
/// checked the `WriteModels` permission.
pub(crate) async fn upload(
    state: &AppState,
    access: &crate::access::OrgAccess,
    meta: &crate::audit::RequestMeta,
    name: &str,
    query: UploadQuery,
    request: Request,
) -> ApiResult<ModelVersion> {
    let name = name.to_owned();
    let acting = Acting::new(access, meta);
    // Fail fast, before reading a byte, when the model does not exist.
    let plan = {
        let conn = state.db.read().await;
        find_model(&conn, &access.org.id, &name).await?;
        let plan = plans::of_org(&conn, &access.org.id).await?;
        let stored = storage::org_bytes(&conn, &access.org.id).await?;
        quota::check(
            QuotaKind::StorageBytes,
            stored,
            1,
            plan.quotas.max_storage_bytes,
        )?;
        plan
    };
    let limit = state.settings.max_upload_bytes.min(plan.max_upload_bytes);
    let is_multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let staged = if is_multipart {
        stage_multipart(state, request, limit).await?
    } else {
        let body = request.into_body().into_data_stream();
        let file = state
            .staging
            .write(body, limit)
            .await
            .map_err(stage_error)?;
        let metadata = UploadMetadata {
            description: query.description.unwrap_or_default(),
            run_id: query.run_id,
            ..UploadMetadata::default()
        };
        Staged {
            file,
            graph: None,
            metadata,
        }
    };
    if staged.file.size == 0 || staged.graph.as_ref().is_some_and(|g| g.size == 0) {
        return Err(ApiError::new(ErrorCode::EmptyUpload, "the upload is empty"));
    }

    let inspected = inspect(state, &staged, &plan).await?;

    let Staged {
        file,
        graph,
        metadata,
    } = staged;
    let (digest, size) = (file.sha256.clone(), file.size);
    let graph_digest = graph.as_ref().map(|g| g.sha256.clone());
    let graph_size = graph.as_ref().map_or(0, |g| g.size);
    let mut blobs = vec![(digest.as_str(), size)];
    blobs.extend(graph_digest.as_deref().map(|g| (g, graph_size)));
    // Checked before anything is committed: a refused upload leaves no blob behind.
    storage::check_room(
        &*state.db.read().await,
        &access.org.id,
        plan.quotas.max_storage_bytes,
        &blobs,
    )
    .await??;
    let digests: Vec<&str> = blobs.iter().map(|(d, _)| *d).collect();
    let intent = Intent::record(&state.db, &digests).await?;
    let committed = async {
        state.blobs.commit(file).await?;
        if let Some(graph) = graph {
            state.blobs.commit(graph).await?;
        }
        Ok::<_, crate::blob::BlobError>(())
    }
    .await;
    if let Err(error) = committed {
        intent.abandon(&state.db, &*state.blobs).await;
        return Err(ApiError::internal(error));
    }

    let version = state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            // Looked up again: the model may have been deleted while the file streamed in.
            let model = find_model(tx, &access.org.id, &name).await?;
            // Checked again under the lock: concurrent uploads may have used the room. A
            // refusal here abandons the intent, which deletes the blobs nothing else uses.
            storage::check_room(tx, &access.org.id, plan.quotas.max_storage_bytes, &blobs)
                .await??;
            let number = domain::models::add_version(
                tx,
                &acting,
                &model,
                &NewVersion {
                    model_id: &model.id,
                    sha256: &digest,
                    graph_sha256: graph_digest.as_deref(),
                    size_bytes: size as i64,
                    framework: inspected.framework.as_str(),
                    description: &metadata.description,
                    tags: &metadata.tags,
                    metrics: &metadata.metrics,
                    run_id: metadata.run_id.as_deref(),
                    signature: &inspected.signature,
                    created_by: &acting.actor,
                },
                json!({}),
            )
            .await?;
            if graph_digest.is_some() {
                storage::set_graph_size(tx, &model.id, number, graph_size).await?;
            }
            // A concurrent deletion of the last model using these bytes removes the blob under
            // this same lock; check it survived before the version becomes visible.
            for blob in std::iter::once(&digest).chain(graph_digest.as_ref()) {
                if !state.blobs.exists(blob).await.map_err(ApiError::internal)? {
                    return Err(ApiError::internal(anyhow::anyhow!(
                        "blob {blob} was deleted concurrently"
                    )));
                }
            }
            registry::get_version(tx, &model.id, number)
                .await?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("version vanished")))
        })
        .await;
    let version = match version {
        Ok(version) => {
            intent.settle(&state.db).await;
            version
        }
        Err(error) => {
            intent.abandon(&state.db, &*state.blobs).await;
            return Err(error);
        }
    };
    tracing::info!(model = %name, version = version.version, sha256 = %version.sha256, "model version uploaded");
    Ok(version)
}
