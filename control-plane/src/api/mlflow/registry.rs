//! `/api/2.0/mlflow/registered-models/*` and `/model-versions/*`, and the bridge to
//! serving.
//!
//! Bridge: a version whose files (its `source`, with `models:/<id>` and `runs:/<run>/<path>`
//! resolved) hold an ONNX model is inspected like an upload and becomes a version of the
//! wisp model of the same name (created if needed), sharing the artifact's blob. Moving an
//! MLflow alias moves the wisp alias of the same name to the matching wisp version, and a
//! deployment that follows it redeploys; the move is audited. Renaming or deleting a
//! registered model or version leaves the wisp model alone (deployments may serve it).
//! The bridge goes through the plan's models and storage quotas like the wisp API: a
//! version past them is created in MLflow, tagged `wisp.serving_error`
//! (`quota_exceeded: …`), and not bridged.

use crate::api::Meta;
use crate::db::Reader;
use crate::domain::{self, Acting};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Access, Fields, MlflowError, MlflowResult, empty, required, required_str, wire, wisp_name_of,
};
use crate::api::AppState;
use crate::auth::rbac::can;
use crate::deployments;
use crate::inspect::InspectedModel;
use crate::metering::quota::{self, QuotaKind};
use crate::metering::storage;
use crate::mlflow::artifacts::{self, StoredFile};
use crate::mlflow::filter::{self, Entity};
use crate::mlflow::registry::{self as mlregistry, ModelVersion, NewVersion, RegisteredModel};
use crate::mlflow::tracking::{self, Field};
use crate::mlflow::{self, ErrorCode, KeyValue, logged_models};
use crate::plans;
use crate::registry;
use crate::serving::warmup;

pub(super) fn routes() -> Router<AppState> {
    let models = "/api/2.0/mlflow/registered-models";
    let versions = "/api/2.0/mlflow/model-versions";
    Router::new()
        .route(&format!("{models}/create"), post(create_model))
        .route(&format!("{models}/get"), get(get_model))
        .route(&format!("{models}/rename"), post(rename_model))
        .route(
            &format!("{models}/update"),
            axum::routing::patch(update_model),
        )
        .route(
            &format!("{models}/delete"),
            axum::routing::delete(delete_model),
        )
        .route(&format!("{models}/search"), get(search_models))
        .route(
            &format!("{models}/get-latest-versions"),
            post(latest_versions).get(latest_versions),
        )
        .route(&format!("{models}/set-tag"), post(set_model_tag))
        .route(
            &format!("{models}/delete-tag"),
            axum::routing::delete(delete_model_tag),
        )
        .route(
            &format!("{models}/alias"),
            post(set_alias).delete(delete_alias).get(get_by_alias),
        )
        .route(&format!("{versions}/create"), post(create_version))
        .route(&format!("{versions}/get"), get(get_version))
        .route(
            &format!("{versions}/update"),
            axum::routing::patch(update_version),
        )
        .route(
            &format!("{versions}/delete"),
            axum::routing::delete(delete_version),
        )
        .route(&format!("{versions}/search"), get(search_versions))
        .route(&format!("{versions}/set-tag"), post(set_version_tag))
        .route(
            &format!("{versions}/delete-tag"),
            axum::routing::delete(delete_version_tag),
        )
        .route(&format!("{versions}/get-download-uri"), get(download_uri))
        .route(
            &format!("{versions}/transition-stage"),
            post(transition_stage),
        )
}

#[derive(Debug, Deserialize)]
struct ModelRequest {
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    key: Option<String>,
    #[serde(default)]
    value: String,
    alias: Option<String>,
    version: Option<String>,
    #[serde(default, deserialize_with = "wire::strings")]
    stages: Vec<String>,
}

async fn create_model(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let model = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            let model = mlregistry::create_model(
                tx,
                &access.org.id,
                &name,
                request.description.as_deref().unwrap_or(""),
                &request.tags,
                &access.actor(),
            )
            .await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.registered_model.created",
                    &format!("registered_model:{name}"),
                    json!({}),
                )
                .await?;
            Ok(model)
        })
        .await?;
    Ok(Json(json!({ "registered_model": model })))
}

async fn get_model(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let conn = state.db.read().await;
    let model = mlregistry::get_model(&conn, &access.org.id, &name).await?;
    Ok(Json(json!({ "registered_model": model })))
}

async fn rename_model(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let new_name = required_str(request.new_name, "new_name")?;
    let model = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::rename_model(tx, &access.org.id, &name, &new_name).await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.registered_model.renamed",
                    &format!("registered_model:{name}"),
                    json!({ "new_name": new_name }),
                )
                .await?;
            mlregistry::get_model(tx, &access.org.id, &new_name).await
        })
        .await?;
    Ok(Json(json!({ "registered_model": model })))
}

async fn update_model(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let model = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::update_model(
                tx,
                &access.org.id,
                &name,
                request.description.as_deref().unwrap_or(""),
            )
            .await?;
            mlregistry::get_model(tx, &access.org.id, &name).await
        })
        .await?;
    Ok(Json(json!({ "registered_model": model })))
}

async fn delete_model(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::delete_model(tx, &access.org.id, &name).await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.registered_model.deleted",
                    &format!("registered_model:{name}"),
                    json!({}),
                )
                .await?;
            Ok(())
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct SearchRequest {
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "wire::strings")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

fn tag_field(tags: &[KeyValue], key: &str) -> Option<Field> {
    tags.iter()
        .find(|t| t.key == key)
        .map(|t| Field::Text(t.value.clone()))
}

fn model_field(model: &RegisteredModel, entity: Entity, key: &str) -> Option<Field> {
    match (entity, key) {
        (Entity::Tag, key) => tag_field(&model.tags, key),
        (Entity::Attribute, "name") => Some(Field::Text(model.name.clone())),
        (Entity::Attribute, "creation_timestamp") => {
            Some(Field::Number(model.creation_timestamp as f64))
        }
        (Entity::Attribute, "last_updated_timestamp" | "timestamp") => {
            Some(Field::Number(model.last_updated_timestamp as f64))
        }
        _ => None,
    }
}

fn version_field(version: &ModelVersion, entity: Entity, key: &str) -> Option<Field> {
    match (entity, key) {
        (Entity::Tag, key) => tag_field(&version.tags, key),
        (Entity::Attribute, "name") => Some(Field::Text(version.name.clone())),
        (Entity::Attribute, "version" | "version_number") => {
            Some(Field::Number(version.version.parse().unwrap_or(0.0)))
        }
        (Entity::Attribute, "run_id") => Some(Field::Text(version.run_id.clone())),
        (Entity::Attribute, "source_path" | "source") => Some(Field::Text(version.source.clone())),
        (Entity::Attribute, "current_stage") => Some(Field::Text(version.current_stage.clone())),
        (Entity::Attribute, "model_id") => Some(Field::Text(version.model_id.clone())),
        (Entity::Attribute, "creation_timestamp") => {
            Some(Field::Number(version.creation_timestamp as f64))
        }
        (Entity::Attribute, "last_updated_timestamp" | "timestamp") => {
            Some(Field::Number(version.last_updated_timestamp as f64))
        }
        _ => None,
    }
}

/// Filters and sorts `items` by a search request; `field` names a value of an item.
fn search<T>(
    items: Vec<T>,
    filter_string: &str,
    order_by: &[String],
    field: impl Fn(&T, Entity, &str) -> Option<Field>,
    known: impl Fn(Entity, &str) -> bool,
) -> MlflowResult<Vec<T>> {
    let clauses = filter::parse_filter(filter_string)?;
    for clause in &clauses {
        if !known(clause.entity, &clause.key) {
            return Err(MlflowError::invalid(format!(
                "Invalid filter key '{}': search supports {}",
                clause.key, "name, tags.<key> and the documented attributes"
            )));
        }
    }
    let orders = filter::parse_order_bys(order_by)?;
    for order in &orders {
        if order.entity != Entity::Attribute || !known(order.entity, &order.key) {
            return Err(MlflowError::invalid(format!(
                "Invalid order_by key '{}'",
                order.key
            )));
        }
    }
    let mut matching = Vec::new();
    for item in items {
        if tracking::evaluate_all(&clauses, |c| field(&item, c.entity, &c.key))? {
            matching.push(item);
        }
    }
    for order in orders.iter().rev() {
        matching.sort_by(|a, b| {
            let ordering = match (
                field(a, order.entity, &order.key),
                field(b, order.entity, &order.key),
            ) {
                (Some(Field::Number(x)), Some(Field::Number(y))) => {
                    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                }
                (Some(Field::Text(x)), Some(Field::Text(y))) => x.cmp(&y),
                _ => std::cmp::Ordering::Equal,
            };
            if order.ascending {
                ordering
            } else {
                ordering.reverse()
            }
        });
    }
    Ok(matching)
}

async fn search_models(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<SearchRequest>,
) -> MlflowResult<Json<Value>> {
    let max = mlflow::max_results(request.max_results, 100, 1000)?;
    let offset = mlflow::page_offset(request.page_token.as_deref())?;
    let models = {
        let conn = state.db.read().await;
        mlregistry::list_models(&conn, &access.org.id, None).await?
    };
    let models = search(
        models,
        request.filter.as_deref().unwrap_or(""),
        &request.order_by,
        model_field,
        |entity, key| {
            entity == Entity::Tag
                || matches!(
                    key,
                    "name" | "creation_timestamp" | "last_updated_timestamp" | "timestamp"
                )
        },
    )?;
    let (page, next) = mlflow::paginate(models, offset, max);
    Ok(Json(super::page_body("registered_models", page, next)))
}

async fn search_versions(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<SearchRequest>,
) -> MlflowResult<Json<Value>> {
    let max = mlflow::max_results(request.max_results, 10_000, 200_000)?;
    let offset = mlflow::page_offset(request.page_token.as_deref())?;
    let mut versions = {
        let conn = state.db.read().await;
        mlregistry::list_versions(&conn, &access.org.id, None).await?
    };
    // Default order: by name, newest version first.
    versions.sort_by(|a, b| {
        a.name.cmp(&b.name).then_with(|| {
            b.version
                .parse::<i64>()
                .unwrap_or(0)
                .cmp(&a.version.parse::<i64>().unwrap_or(0))
        })
    });
    let versions = search(
        versions,
        request.filter.as_deref().unwrap_or(""),
        &request.order_by,
        version_field,
        |entity, key| {
            entity == Entity::Tag
                || matches!(
                    key,
                    "name"
                        | "version"
                        | "version_number"
                        | "run_id"
                        | "source_path"
                        | "source"
                        | "current_stage"
                        | "model_id"
                        | "creation_timestamp"
                        | "last_updated_timestamp"
                        | "timestamp"
                )
        },
    )?;
    let (page, next) = mlflow::paginate(versions, offset, max);
    Ok(Json(super::page_body("model_versions", page, next)))
}

async fn latest_versions(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let stages = request
        .stages
        .iter()
        .map(|s| mlregistry::canonical_stage(s))
        .collect::<crate::mlflow::MlflowResult<Vec<_>>>()?;
    let conn = state.db.read().await;
    mlregistry::check_model(&conn, &access.org.id, &name).await?;
    let versions = mlregistry::list_versions(&conn, &access.org.id, Some(&name)).await?;
    Ok(Json(
        json!({ "model_versions": mlregistry::latest_per_stage(versions, &stages) }),
    ))
}

async fn set_model_tag(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::set_model_tag(tx, &access.org.id, &name, &key, &request.value).await
        })
        .await?;
    Ok(empty())
}

async fn delete_model_tag(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::delete_model_tag(tx, &access.org.id, &name, &key).await
        })
        .await?;
    Ok(empty())
}

/// wisp's alias rules are narrower (at most 64 characters); a longer MLflow alias is not
/// carried over.
fn wisp_alias(alias: &str) -> Option<&str> {
    (alias.len() <= 64).then_some(alias)
}

async fn set_alias(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let alias = required_str(request.alias, "alias")?;
    let version = required_str(request.version, "version")?;
    let redeploy = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            let previous =
                mlregistry::set_alias(tx, &access.org.id, &name, &alias, &version).await?;
            let mlflow_version =
                mlregistry::get_version(tx, &access.org.id, &name, &version).await?;
            let actor = access.actor();
            // The bridge: move the wisp alias with it when the version was bridged.
            let mut redeploy = None;
            let mut wisp_version = None;
            if let (Some(target), Some(wisp_name), Some(wisp_alias)) = (
                mlflow_version.wisp_version,
                wisp_name_of(&name),
                wisp_alias(&alias),
            ) && let Some(model) = registry::get_model(tx, &access.org.id, wisp_name).await?
                && registry::get_version(tx, &model.id, target)
                    .await?
                    .is_some()
            {
                registry::set_alias(tx, &model.id, wisp_alias, target, &actor).await?;
                redeploy = crate::domain::deployments::follow_alias(
                    tx,
                    &Acting::new(&access, &meta),
                    &model,
                    wisp_alias,
                )
                .await?;
                wisp_version = Some(target);
            }
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "model.alias.moved",
                    &format!("model:{name}/aliases/{alias}"),
                    json!({
                        "source": "mlflow",
                        "from_mlflow_version": previous,
                        "to_mlflow_version": mlflow_version.version,
                        "wisp_version": wisp_version,
                        "redeployed": redeploy.is_some(),
                    }),
                )
                .await?;
            Ok(redeploy)
        })
        .await?;
    if let Some(job) = redeploy {
        warmup::spawn(state.db.clone(), state.serving.clone(), job);
    }
    Ok(empty())
}

async fn delete_alias(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let alias = required_str(request.alias, "alias")?;
    state.db.transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
        let previous = mlregistry::delete_alias(tx, &access.org.id, &name, &alias).await?;
        let actor = access.actor();
        if let (Some(wisp_name), Some(wisp_alias)) = (wisp_name_of(&name), wisp_alias(&alias))
            && let Some(model) = registry::get_model(tx, &access.org.id, wisp_name).await?
            && registry::alias_target(tx, &model.id, wisp_alias)
                .await?
                .is_some()
        {
            if let Some(deployment) = deployments::get(tx, &model.id).await?
                && deployment.follow_alias.as_deref() == Some(wisp_alias)
            {
                return Err(crate::mlflow::MlflowError::new(
                    ErrorCode::InvalidState,
                    format!(
                        "the wisp deployment of {name} follows alias {alias}; deploy a version or another alias first"
                    ),
                ));
            }
            registry::delete_alias(tx, &model.id, wisp_alias, &actor).await?;
        }
        Acting::new(&access, &meta)
                .audit(tx, "model.alias.deleted", &format!("model:{name}/aliases/{alias}"), json!({ "source": "mlflow", "from_mlflow_version": previous }))
                .await?;
        Ok(())
    }).await?;
    Ok(empty())
}

async fn get_by_alias(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<ModelRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let alias = required_str(request.alias, "alias")?;
    let conn = state.db.read().await;
    mlregistry::check_model(&conn, &access.org.id, &name).await?;
    let version = mlregistry::alias_target(&conn, &access.org.id, &name, &alias)
        .await?
        .ok_or_else(|| {
            MlflowError::not_found(format!(
                "Registered model alias {alias} not found for model {name}."
            ))
        })?;
    let version =
        mlregistry::get_version(&conn, &access.org.id, &name, &version.to_string()).await?;
    Ok(Json(json!({ "model_version": version })))
}

#[derive(Debug, Deserialize)]
struct VersionRequest {
    name: Option<String>,
    version: Option<String>,
    source: Option<String>,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    run_link: String,
    description: Option<String>,
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    tags: Vec<KeyValue>,
    key: Option<String>,
    #[serde(default)]
    value: String,
    stage: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    archive_existing_versions: Option<bool>,
}

/// Where a version's files are, and the logged model and run it comes from:
/// `models:/<model_id>` is the logged model's artifact location (its source run is the
/// version's run unless one was given), `runs:/<run_id>/<path>` a path in the run's
/// artifacts; anything else is taken as it is.
async fn resolve_source(
    conn: &Reader,
    org_id: &str,
    source: &str,
    given_model_id: &str,
    given_run_id: &str,
) -> MlflowResult<(String, String, String)> {
    let (mut model_id, mut run_id) = (given_model_id.to_owned(), given_run_id.to_owned());
    if let Some(rest) = source.strip_prefix("models:/") {
        let id = rest.trim_end_matches('/');
        if !id.contains('/') {
            let logged = logged_models::get(conn, org_id, id).await?;
            if model_id.is_empty() {
                model_id = logged.info.model_id.clone();
            }
            if run_id.is_empty() {
                run_id = logged.info.source_run_id.clone();
            }
            return Ok((logged.info.artifact_uri, model_id, run_id));
        }
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (source_run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let run = tracking::get_run(conn, org_id, source_run).await?;
        let base = run.info.artifact_uri.trim_end_matches('/').to_owned();
        if run_id.is_empty() {
            run_id = source_run.to_owned();
        }
        let location = if path.is_empty() {
            base
        } else {
            format!("{base}/{}", path.trim_matches('/'))
        };
        return Ok((location, model_id, run_id));
    }
    Ok((source.to_owned(), model_id, run_id))
}

/// What the bridge found in a new version's files.
enum Bridge {
    /// No ONNX file: nothing to serve.
    Nothing,
    /// An ONNX file wisp can serve, inspected.
    Serve(StoredFile, InspectedModel),
    /// An ONNX file wisp refused; the reason is tagged on the MLflow version.
    Refused(String),
}

async fn inspect_artifacts(state: &AppState, org_id: &str, location: &str) -> MlflowResult<Bridge> {
    let Some(dir) = artifacts::path_of_uri(location) else {
        return Ok(Bridge::Nothing);
    };
    let file = {
        let conn = state.db.read().await;
        artifacts::find_onnx(&conn, org_id, &dir).await?
    };
    let Some(file) = file else {
        return Ok(Bridge::Nothing);
    };
    let bytes = state
        .blobs
        .get(&file.sha256)
        .await
        .map_err(MlflowError::internal)?
        .ok_or_else(|| MlflowError::internal(anyhow::anyhow!("blob {} is missing", file.sha256)))?;
    let inspector = state.inspector.clone();
    let inspected = tokio::task::spawn_blocking(move || inspector.inspect(&bytes))
        .await
        .map_err(MlflowError::internal)?;
    Ok(match inspected {
        Ok(inspected) => Bridge::Serve(file, inspected),
        Err(e) => Bridge::Refused(e.to_string()),
    })
}

/// Why the bridge may not make a wisp version of `file` as model `wisp_name` under the
/// organisation's plan: a new wisp model past the models quota, or its file past the
/// storage quota (an artifact's blob is usually counted already). `None` when it may.
async fn bridge_refusal(
    conn: &Reader,
    org_id: &str,
    wisp_name: &str,
    file: &StoredFile,
) -> MlflowResult<Option<String>> {
    let plan = plans::of_org(conn, org_id).await?;
    if registry::get_model(conn, org_id, wisp_name)
        .await?
        .is_none()
    {
        let models = registry::list_models(conn, org_id).await?.len() as u64;
        if let Err(exceeded) = quota::check(QuotaKind::Models, models, 1, plan.quotas.max_models) {
            return Ok(Some(format!("quota_exceeded: {exceeded}")));
        }
    }
    let room = storage::check_room(
        conn,
        org_id,
        plan.quotas.max_storage_bytes,
        &[(file.sha256.as_str(), u64::try_from(file.size).unwrap_or(0))],
    )
    .await?;
    Ok(room
        .err()
        .map(|exceeded| format!("quota_exceeded: {exceeded}")))
}

/// The tag that tells why a version's ONNX file could not be served by wisp.
pub const SERVING_ERROR_TAG: &str = "wisp.serving_error";

async fn create_version(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let source = required_str(request.source, "source")?;
    let (location, model_id, run_id) = {
        let conn = state.db.read().await;
        mlregistry::check_model(&conn, &access.org.id, &name).await?;
        resolve_source(
            &conn,
            &access.org.id,
            &source,
            &request.model_id,
            &request.run_id,
        )
        .await?
    };
    // Inspected before the transaction: it can take a while and needs no lock.
    let bridge = inspect_artifacts(&state, &access.org.id, &location).await?;
    let acting = Acting::new(&access, &meta);
    let version = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            let number = mlregistry::create_version(
                tx,
                &access.org.id,
                &NewVersion {
                    name: &name,
                    source: &source,
                    storage_location: &location,
                    run_id: &run_id,
                    run_link: &request.run_link,
                    description: request.description.as_deref().unwrap_or(""),
                    model_id: &model_id,
                    tags: &request.tags,
                    user_id: &acting.actor,
                },
            )
            .await?;
            let mut wisp_version = None;
            let refusal = match (&bridge, wisp_name_of(&name)) {
                (Bridge::Serve(file, _), Some(wisp_name)) => {
                    bridge_refusal(tx, &access.org.id, wisp_name, file).await?
                }
                _ => None,
            };
            match (&bridge, wisp_name_of(&name), refusal) {
                (Bridge::Serve(..), Some(_), Some(reason)) => {
                    // The plan has no room for the wisp model or its file: the MLflow version
                    // exists, wisp serves nothing, and the tag says why.
                    mlregistry::set_version_tag(
                        tx,
                        &access.org.id,
                        &name,
                        number,
                        SERVING_ERROR_TAG,
                        &reason,
                    )
                    .await?;
                }
                (Bridge::Serve(file, inspected), Some(wisp_name), None) => {
                    let model = domain::models::find_or_create(
                        tx,
                        &acting,
                        wisp_name,
                        "registered through MLflow",
                        json!({ "source": "mlflow", "mlflow_version": number }),
                    )
                    .await?;
                    let no_map = Default::default();
                    let run_id = (!run_id.is_empty()).then_some(run_id.as_str());
                    let description = format!("MLflow version {number} ({})", file.path);
                    let created = domain::models::add_version(
                        tx,
                        &acting,
                        &model,
                        &registry::NewVersion {
                            model_id: &model.id,
                            sha256: &file.sha256,
                            graph_sha256: None,
                            size_bytes: file.size,
                            framework: inspected.framework.as_str(),
                            description: &description,
                            tags: &no_map,
                            metrics: &Default::default(),
                            run_id,
                            signature: &inspected.signature,
                            created_by: &acting.actor,
                        },
                        json!({
                            "source": "mlflow",
                            "mlflow_version": number,
                            "artifact": file.path,
                        }),
                    )
                    .await?;
                    mlregistry::set_wisp_version(tx, &access.org.id, &name, number, created)
                        .await?;
                    wisp_version = Some(created);
                }
                (Bridge::Refused(reason), _, _) => {
                    mlregistry::set_version_tag(
                        tx,
                        &access.org.id,
                        &name,
                        number,
                        SERVING_ERROR_TAG,
                        reason,
                    )
                    .await?;
                }
                _ => {}
            }
            acting
                .audit(
                    tx,
                    "mlflow.model_version.created",
                    &format!("registered_model:{name}/versions/{number}"),
                    json!({ "source": source, "wisp_version": wisp_version }),
                )
                .await?;
            mlregistry::get_version(tx, &access.org.id, &name, &number.to_string()).await
        })
        .await?;
    Ok(Json(json!({ "model_version": version })))
}

async fn get_version(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    let conn = state.db.read().await;
    let version = mlregistry::get_version(&conn, &access.org.id, &name, &version).await?;
    Ok(Json(json!({ "model_version": version })))
}

async fn update_version(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    let updated = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::update_version(
                tx,
                &access.org.id,
                &name,
                &version,
                request.description.as_deref().unwrap_or(""),
            )
            .await?;
            mlregistry::get_version(tx, &access.org.id, &name, &version).await
        })
        .await?;
    Ok(Json(json!({ "model_version": updated })))
}

async fn delete_version(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::delete_version(tx, &access.org.id, &name, &version).await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.model_version.deleted",
                    &format!("registered_model:{name}/versions/{version}"),
                    json!({}),
                )
                .await?;
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn set_version_tag(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            let found = mlregistry::get_version(tx, &access.org.id, &name, &version).await?;
            let number = mlregistry::parse_version(&name, &found.version)?;
            mlregistry::set_version_tag(tx, &access.org.id, &name, number, &key, &request.value)
                .await
        })
        .await?;
    Ok(empty())
}

async fn delete_version_tag(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::delete_version_tag(tx, &access.org.id, &name, &version, &key).await
        })
        .await?;
    Ok(empty())
}

async fn download_uri(
    State(state): State<AppState>,
    access: Access<can::ReadModels>,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    let conn = state.db.read().await;
    let found = mlregistry::get_version(&conn, &access.org.id, &name, &version).await?;
    Ok(Json(json!({ "artifact_uri": found.storage_location })))
}

async fn transition_stage(
    State(state): State<AppState>,
    access: Access<can::WriteModels>,
    Meta(meta): Meta,
    Fields(request): Fields<VersionRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let version = required_str(request.version, "version")?;
    let stage = required(request.stage, "stage")?;
    let updated = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            mlregistry::transition_stage(
                tx,
                &access.org.id,
                &name,
                &version,
                &stage,
                request.archive_existing_versions.unwrap_or(false),
            )
            .await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.model_version.stage_changed",
                    &format!("registered_model:{name}/versions/{version}"),
                    json!({ "stage": stage }),
                )
                .await?;
            mlregistry::get_version(tx, &access.org.id, &name, &version).await
        })
        .await?;
    Ok(Json(json!({ "model_version": updated })))
}
