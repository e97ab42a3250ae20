//! `/api/2.0/mlflow/logged-models`: MLflow 3 logged models (create, get, finalize, delete,
//! search, tags, params), which `mlflow.<flavor>.log_model` uses on a 3.x client.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete as delete_route, get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, Fields, MlflowError, MlflowResult, empty, required_str, wire};
use crate::api::AppState;
use crate::auth::rbac::can;
use crate::mlflow::filter::{self, Entity};
use crate::mlflow::logged_models::{self, LoggedModel, NewLoggedModel};
use crate::mlflow::tracking::{self, Field};
use crate::mlflow::{self, KeyValue};

pub(super) fn routes() -> Router<AppState> {
    let base = "/api/2.0/mlflow/logged-models";
    Router::new()
        .route(base, post(create))
        .route(&format!("{base}/search"), post(search))
        .route(
            &format!("{base}/{{model_id}}"),
            get(get_model).patch(finalize).delete(delete),
        )
        .route(&format!("{base}/{{model_id}}/tags"), patch(set_tags))
        .route(
            &format!("{base}/{{model_id}}/tags/{{key}}"),
            delete_route(delete_tag),
        )
        .route(&format!("{base}/{{model_id}}/params"), post(log_params))
}

#[derive(Debug, Deserialize)]
struct CreateRequest {
    experiment_id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    model_type: String,
    #[serde(default)]
    source_run_id: String,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn create(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Fields(request): Fields<CreateRequest>,
) -> MlflowResult<Json<Value>> {
    let experiment_id = required_str(request.experiment_id, "experiment_id")?;
    let model = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            logged_models::create(
                tx,
                &access.org.id,
                &NewLoggedModel {
                    experiment_id: &experiment_id,
                    name: request.name.as_deref(),
                    model_type: &request.model_type,
                    source_run_id: &request.source_run_id,
                    params: &request.params,
                    tags: &request.tags,
                },
            )
            .await
        })
        .await?;
    Ok(Json(json!({ "model": model })))
}

async fn get_model(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Path(model_id): Path<String>,
) -> MlflowResult<Json<Value>> {
    let conn = state.db.read().await;
    let model = logged_models::get(&conn, &access.org.id, &model_id).await?;
    Ok(Json(json!({ "model": model })))
}

#[derive(Debug, Deserialize)]
struct FinalizeRequest {
    #[serde(default, deserialize_with = "wire::opt_enum")]
    status: Option<String>,
}

async fn finalize(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Path(model_id): Path<String>,
    Fields(request): Fields<FinalizeRequest>,
) -> MlflowResult<Json<Value>> {
    let status = logged_models::parse_status(&required_str(request.status, "status")?)?;
    let model = state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            logged_models::finalize(tx, &access.org.id, &model_id, status).await
        })
        .await?;
    Ok(Json(json!({ "model": model })))
}

async fn delete(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Path(model_id): Path<String>,
) -> MlflowResult<Json<Value>> {
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            logged_models::delete(tx, &access.org.id, &model_id).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct TagsRequest {
    #[serde(default)]
    tags: Vec<KeyValue>,
}

async fn set_tags(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Path(model_id): Path<String>,
    Fields(request): Fields<TagsRequest>,
) -> MlflowResult<Json<Value>> {
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            logged_models::set_tags(tx, &access.org.id, &model_id, &request.tags).await
        })
        .await?;
    Ok(empty())
}

async fn delete_tag(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Path((model_id, key)): Path<(String, String)>,
) -> MlflowResult<Json<Value>> {
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            logged_models::delete_tag(tx, &access.org.id, &model_id, &key).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct ParamsRequest {
    #[serde(default)]
    params: Vec<KeyValue>,
}

async fn log_params(
    State(state): State<AppState>,
    access: Access<can::WriteExperiments>,
    Path(model_id): Path<String>,
    Fields(request): Fields<ParamsRequest>,
) -> MlflowResult<Json<Value>> {
    state
        .db
        .transaction(async |tx| -> crate::mlflow::MlflowResult<_> {
            logged_models::log_params(tx, &access.org.id, &model_id, &request.params).await
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
struct OrderBy {
    field_name: String,
    #[serde(default = "yes", deserialize_with = "ascending")]
    ascending: bool,
}

fn yes() -> bool {
    true
}

fn ascending<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(wire::opt_bool(d)?.unwrap_or(true))
}

#[derive(Debug, Deserialize)]
struct SearchRequest {
    #[serde(default, deserialize_with = "wire::strings")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    page_token: Option<String>,
}

fn model_field(model: &LoggedModel, entity: Entity, key: &str) -> Option<Field> {
    let info = &model.info;
    match entity {
        Entity::Tag => info
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| Field::Text(t.value.clone())),
        Entity::Param => model
            .data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| Field::Text(p.value.clone())),
        Entity::Metric => model
            .data
            .metrics
            .iter()
            .find(|m| m.key == key)
            .map(|m| Field::Number(m.value)),
        Entity::Attribute => Some(match key {
            "name" => Field::Text(info.name.clone()),
            "model_id" => Field::Text(info.model_id.clone()),
            "model_type" => Field::Text(info.model_type.clone()),
            "status" => Field::Text(info.status.clone()),
            "source_run_id" => Field::Text(info.source_run_id.clone()),
            "creation_time" | "creation_timestamp" | "creation_timestamp_ms" => {
                Field::Number(info.creation_timestamp_ms as f64)
            }
            "last_updated_timestamp" | "last_updated_timestamp_ms" => {
                Field::Number(info.last_updated_timestamp_ms as f64)
            }
            _ => return None,
        }),
        Entity::Dataset => None,
    }
}

async fn search(
    State(state): State<AppState>,
    access: Access<can::ReadExperiments>,
    Fields(request): Fields<SearchRequest>,
) -> MlflowResult<Json<Value>> {
    let max = mlflow::max_results(request.max_results, 100, 50_000)?;
    let offset = mlflow::page_offset(request.page_token.as_deref())?;
    let clauses = filter::parse_filter(request.filter.as_deref().unwrap_or(""))?;
    if request.order_by.len() > filter::MAX_ORDER_BY_TERMS {
        return Err(MlflowError::invalid(format!(
            "{} order_by terms; at most {} are accepted",
            request.order_by.len(),
            filter::MAX_ORDER_BY_TERMS
        )));
    }
    let models = {
        let conn = state.db.read().await;
        logged_models::list(&conn, &access.org.id, None).await?
    };
    let mut matching = Vec::new();
    for model in models {
        if !request.experiment_ids.is_empty()
            && !request.experiment_ids.contains(&model.info.experiment_id)
        {
            continue;
        }
        let field = |c: &filter::Clause| model_field(&model, c.entity, &c.key);
        if tracking::evaluate_all(&clauses, field)? {
            matching.push(model);
        }
    }
    for order in request.order_by.iter().rev() {
        let (entity, key) = match order.field_name.split_once('.') {
            Some(("metrics", key)) => (Entity::Metric, key),
            Some(("params", key)) => (Entity::Param, key),
            Some(("tags", key)) => (Entity::Tag, key),
            _ => (Entity::Attribute, order.field_name.as_str()),
        };
        if entity == Entity::Attribute
            && model_field(
                &matching.first().cloned().unwrap_or_else(placeholder),
                entity,
                key,
            )
            .is_none()
        {
            return Err(MlflowError::invalid(format!(
                "Invalid order_by field {:?}",
                order.field_name
            )));
        }
        matching.sort_by(|a, b| {
            let ordering = compare_fields(model_field(a, entity, key), model_field(b, entity, key));
            if order.ascending {
                ordering
            } else {
                ordering.reverse()
            }
        });
    }
    let (page, next) = mlflow::paginate(matching, offset, max);
    Ok(Json(super::page_body("models", page, next)))
}

fn placeholder() -> LoggedModel {
    LoggedModel {
        info: logged_models::LoggedModelInfo {
            model_id: String::new(),
            experiment_id: String::new(),
            name: String::new(),
            creation_timestamp_ms: 0,
            last_updated_timestamp_ms: 0,
            artifact_uri: String::new(),
            status: String::new(),
            model_type: String::new(),
            source_run_id: String::new(),
            status_message: String::new(),
            tags: Vec::new(),
        },
        data: Default::default(),
    }
}

/// Orders present values before absent ones.
fn compare_fields(a: Option<Field>, b: Option<Field>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Field::Number(a)), Some(Field::Number(b))) => {
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
        (Some(Field::Text(a)), Some(Field::Text(b))) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}
