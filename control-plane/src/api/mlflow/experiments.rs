//! `/api/2.0/mlflow/experiments/*`: create, get, get-by-name, search, update, delete,
//! restore, and experiment tags.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, Fields, MlflowError, MlflowResult, empty, required_str, wire};
use crate::api::AppState;
use crate::api::Meta;
use crate::audit::RequestMeta;
use crate::auth::rbac::can;
use crate::domain::Acting;
use crate::mlflow::tracking::{self, ViewType};
use crate::mlflow::{self, KeyValue};

pub(super) fn routes() -> Router<AppState> {
    let base = "/api/2.0/mlflow/experiments";
    Router::new()
        .route(&format!("{base}/create"), post(create))
        .route(&format!("{base}/get"), get(get_experiment))
        .route(&format!("{base}/get-by-name"), get(get_by_name))
        .route(&format!("{base}/search"), post(search).get(search))
        .route(&format!("{base}/update"), post(update))
        .route(&format!("{base}/delete"), post(delete))
        .route(&format!("{base}/restore"), post(restore))
        .route(&format!("{base}/set-experiment-tag"), post(set_tag))
        .route(&format!("{base}/delete-experiment-tag"), post(delete_tag))
}

#[derive(Debug, Deserialize)]
struct CreateRequest {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Meta(meta): Meta,
    Fields(request): Fields<CreateRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.name, "name")?;
    let id = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            let id = tracking::create_experiment(
                tx,
                &access.org.id,
                &name,
                request.artifact_location.as_deref(),
                &request.tags,
            )
            .await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.experiment.created",
                    &format!("experiment:{id}"),
                    json!({ "name": name }),
                )
                .await?;
            Ok(id)
        })
        .await?;
    Ok(Json(json!({ "experiment_id": id })))
}

#[derive(Debug, Deserialize)]
struct IdRequest {
    experiment_id: Option<String>,
}

async fn get_experiment(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<IdRequest>,
) -> MlflowResult<Json<Value>> {
    let id = required_str(request.experiment_id, "experiment_id")?;
    let conn = state.db.write_unmemoised().await;
    let experiment = tracking::get_experiment(&conn, &access.org.id, &id).await?;
    Ok(Json(json!({ "experiment": experiment })))
}

#[derive(Debug, Deserialize)]
struct ByNameRequest {
    experiment_name: Option<String>,
}

async fn get_by_name(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<ByNameRequest>,
) -> MlflowResult<Json<Value>> {
    let name = required_str(request.experiment_name, "experiment_name")?;
    let conn = state.db.write_unmemoised().await;
    tracking::ensure_default_experiment(&conn, &access.org.id).await?;
    let experiment = tracking::find_experiment_by_name(&conn, &access.org.id, &name)
        .await?
        .ok_or_else(|| {
            MlflowError::not_found(format!("Could not find experiment with name '{name}'"))
        })?;
    Ok(Json(json!({ "experiment": experiment })))
}

#[derive(Debug, Deserialize)]
struct SearchRequest {
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::strings")]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "wire::opt_enum")]
    view_type: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<SearchRequest>,
) -> MlflowResult<Json<Value>> {
    let max = mlflow::max_results(request.max_results, 1000, 50_000)?;
    let offset = mlflow::page_offset(request.page_token.as_deref())?;
    let view = ViewType::parse(request.view_type.as_deref())?;
    let experiments = {
        let conn = state.db.write_unmemoised().await;
        tracking::search_experiments(
            &conn,
            &access.org.id,
            view,
            request.filter.as_deref().unwrap_or(""),
            &request.order_by,
        )
        .await?
    };
    let (page, next) = mlflow::paginate(experiments, offset, max);
    Ok(Json(super::page_body("experiments", page, next)))
}

#[derive(Debug, Deserialize)]
struct UpdateRequest {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Meta(meta): Meta,
    Fields(request): Fields<UpdateRequest>,
) -> MlflowResult<Json<Value>> {
    let id = required_str(request.experiment_id, "experiment_id")?;
    let new_name = required_str(request.new_name, "new_name")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::rename_experiment(tx, &access.org.id, &id, &new_name).await?;
            Acting::new(&access, &meta)
                .audit(
                    tx,
                    "mlflow.experiment.renamed",
                    &format!("experiment:{id}"),
                    json!({ "name": new_name }),
                )
                .await?;
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn change_stage(
    state: &AppState,
    access: &Access<can::WriteExperiments>,
    meta: &RequestMeta,
    id: Option<String>,
    stage: &str,
) -> MlflowResult<Json<Value>> {
    let id = required_str(id, "experiment_id")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::set_experiment_stage(tx, &access.org.id, &id, stage).await?;
            let action = if stage == tracking::DELETED {
                "mlflow.experiment.deleted"
            } else {
                "mlflow.experiment.restored"
            };
            Acting::new(access, meta)
                .audit(tx, action, &format!("experiment:{id}"), json!({}))
                .await?;
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn delete(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Meta(meta): Meta,
    Fields(request): Fields<IdRequest>,
) -> MlflowResult<Json<Value>> {
    change_stage(
        &state,
        &access,
        &meta,
        request.experiment_id,
        tracking::DELETED,
    )
    .await
}

async fn restore(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Meta(meta): Meta,
    Fields(request): Fields<IdRequest>,
) -> MlflowResult<Json<Value>> {
    change_stage(
        &state,
        &access,
        &meta,
        request.experiment_id,
        tracking::ACTIVE,
    )
    .await
}

#[derive(Debug, Deserialize)]
struct TagRequest {
    experiment_id: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

async fn set_tag(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<TagRequest>,
) -> MlflowResult<Json<Value>> {
    let id = required_str(request.experiment_id, "experiment_id")?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            let experiment = tracking::get_experiment(tx, &access.org.id, &id).await?;
            if experiment.lifecycle_stage != tracking::ACTIVE {
                return Err(crate::mlflow::MlflowError::invalid(format!(
                    "The experiment {id} must be in the 'active' state."
                )));
            }
            let number = tracking::parse_experiment_id(&id)?;
            tracking::set_experiment_tag(tx, &access.org.id, number, &key, &request.value).await
        })
        .await?;
    Ok(empty())
}

async fn delete_tag(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<TagRequest>,
) -> MlflowResult<Json<Value>> {
    let id = required_str(request.experiment_id, "experiment_id")?;
    let key = required_str(request.key, "key")?;
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            tracking::get_experiment(tx, &access.org.id, &id).await?;
            let number = tracking::parse_experiment_id(&id)?;
            tracking::delete_experiment_tag(tx, &access.org.id, number, &key).await
        })
        .await?;
    Ok(empty())
}
