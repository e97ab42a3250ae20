//! Models: the list (paginated, with each model's deployment status), creating a model,
//! and a model's page — versions (signature, size, lineage), aliases, the deployment with
//! its history and traffic split, deploy / roll back / promote, the generated schema, a
//! try-it form that predicts through the API's pipeline, and uploading a version with a
//! progress bar. Every change calls the API's own domain operation with an `Acting`, so it
//! is audited like its API twin.

use std::collections::HashMap;

use axum::extract::{FromRef, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use crate::api::deployments::warm_up;
use crate::api::models::{find_model, validate_alias, validate_model_name};
use crate::api::{AppState, Meta};
use crate::auth::rbac::{Action, can};
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::deployments::{self, Backend};
use crate::domain::deployments::Deploy;
use crate::domain::{self, Acting};
use crate::error::{ApiError, DomainResult};
use crate::registry;
use crate::serving::pipeline::Pipeline;
use crate::serving::schema;

pub(super) const TEMPLATES: &[(&str, &str)] = templates![
    "models/list.html",
    "models/model.html",
    "models/try_it_result.html",
    "models/upload_result.html",
];

/// Models per page of the list.
const PAGE_SIZE: i64 = 50;
/// Versions shown on a model's page (newest first).
const VERSIONS_SHOWN: usize = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/models", get(list).post(create))
        .route("/orgs/{org}/models/{model}", get(show))
        .route("/orgs/{org}/models/{model}/deploy", post(deploy))
        .route("/orgs/{org}/models/{model}/rollback", post(rollback))
        .route("/orgs/{org}/models/{model}/promote", post(promote))
        .route("/orgs/{org}/models/{model}/alias", post(set_alias))
        .route("/orgs/{org}/models/{model}/predict", post(try_it))
        .route(
            "/orgs/{org}/models/{model}/versions",
            post(upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    /// Names starting with this.
    #[serde(default)]
    q: String,
    /// The last name of the previous page.
    #[serde(default)]
    after: String,
    /// A message after a change (`created`).
    #[serde(default)]
    error: String,
}

async fn list(
    State(state): State<AppState>,
    page: OrgPage<can::ReadModels>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let org = &page.access.org;
    let (models, deployed) = {
        let conn = state.db.read().await;
        let mut models =
            registry::list_models_page(&conn, &org.id, query.q.trim(), &query.after, PAGE_SIZE + 1)
                .await?;
        let more = models.len() as i64 > PAGE_SIZE;
        models.truncate(PAGE_SIZE as usize);
        let deployed: HashMap<String, deployments::Deployment> = deployments::list(&conn, &org.id)
            .await?
            .into_iter()
            .map(|d| (d.model.clone(), d))
            .collect();
        ((models, more), deployed)
    };
    let (models, more) = models;
    let rows: Vec<_> = models
        .iter()
        .map(|m| {
            let d = deployed.get(&m.name);
            json!({
                "name": m.name,
                "description": m.description,
                "latest_version": m.latest_version,
                "created_at": m.created_at,
                "deployed_version": d.map(|d| d.version),
                "status": d.map(|d| d.status),
            })
        })
        .collect();
    let next = more
        .then(|| models.last().map(|m| m.name.clone()))
        .flatten();
    let frame = page.frame.clone().page("models", "Models");
    render::page(
        "models/list.html",
        &frame,
        context! {
            rows,
            q => query.q,
            after => query.after,
            next,
            error => query.error,
            can_write => page.can(Action::WriteModels),
        },
    )
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create(
    State(state): State<AppState>,
    page: OrgPage<can::WriteModels>,
    Meta(meta): Meta,
    Form(form): Form<CreateForm>,
) -> PageResult {
    let name = form.name.trim().to_owned();
    validate_model_name(&name)?;
    let acting = Acting::new(&page.access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::models::create(tx, &acting, &name, form.description.trim(), json!({})).await
        })
        .await?;
    Ok(Redirect::to(&model_url(&page.access.org.slug, &name)).into_response())
}

fn model_url(org: &str, model: &str) -> String {
    format!("/orgs/{org}/models/{}", path_segment(model))
}

/// `text` as one URL path segment: everything but RFC 3986's unreserved characters
/// percent-encoded (model names are free text).
fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

async fn show(
    State(state): State<AppState>,
    page: OrgPage<can::ReadModels>,
    Path((_, name)): Path<(String, String)>,
    Query(query): Query<super::Done>,
) -> PageResult {
    let org = &page.access.org;
    let (model, mut versions, aliases, deployment, mut history) = {
        let conn = state.db.read().await;
        let model = find_model(&conn, &org.id, &name).await?;
        let versions = registry::list_versions(&conn, &model.id).await?;
        let aliases = registry::list_aliases(&conn, &model.id).await?;
        let deployment = deployments::get(&conn, &model.id).await?;
        let history = deployments::history(&conn, &model.id).await?;
        (model, versions, aliases, deployment, history)
    };
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let version_numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
    versions.truncate(VERSIONS_SHOWN);
    history.truncate(20);
    // The schema and the try-it example of the version a call without a selector reaches:
    // the deployed one, else the newest.
    let described = deployment
        .as_ref()
        .and_then(|d| versions.iter().find(|v| v.version == d.version))
        .or(versions.first());
    let described_version = described.map(|v| v.version);
    let (schema_request, schema_response, example) = match described {
        Some(v) => {
            let example = schema::example(&v.signature);
            (
                pretty(&schema::request(&v.signature)),
                pretty(&schema::response(&v.signature)),
                Some((pretty(&example.request), example.note)),
            )
        }
        None => (String::new(), String::new(), None),
    };
    let traffic = state.traffic.of_model(&model.id);
    let title = format!("Model {}", model.name);
    let frame = page.frame.clone().page("models", title);
    render::page(
        "models/model.html",
        &frame,
        context! {
            model,
            url => model_url(&org.slug, &name),
            versions,
            version_numbers,
            aliases,
            deployment,
            history,
            traffic,
            described_version,
            schema_request,
            schema_response,
            example,
            notice => notice(&query.done),
            can_write => page.can(Action::WriteModels),
            can_deploy => page.can(Action::Deploy),
            can_predict => page.can(Action::Predict),
        },
    )
}

/// The notice after a change that redirected here.
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "deployed" => "Deployed.",
        "rolled_back" => "Rolled back.",
        "promoted" => "Promoted.",
        "alias_moved" => "Alias moved.",
        "uploaded" => "Version uploaded.",
        _ => return None,
    })
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct VersionForm {
    version: i64,
}

/// Deploys a version (`PUT …/deployment` with `wait`): back to the model's page once it
/// is ready or failed.
async fn deploy(
    State(state): State<AppState>,
    page: OrgPage<can::Deploy>,
    Meta(meta): Meta,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<VersionForm>,
) -> PageResult {
    let acting = Acting::new(&page.access, &meta);
    let job = state
        .db
        .transaction(async |tx| -> Result<_, ApiError> {
            let model = find_model(tx, &page.access.org.id, &name).await?;
            let deploy = Deploy {
                version: Some(form.version),
                alias: None,
                traffic: None,
                shadow: None,
                cache_ttl_secs: 0,
                backend: Backend::default(),
            };
            Ok(domain::deployments::deploy(tx, &acting, &model, deploy).await?)
        })
        .await?;
    warm_up(&state, job, true).await?;
    done(&page, &name, "deployed")
}

#[derive(Debug, Deserialize)]
struct RollbackForm {
    /// Empty: the previous version.
    #[serde(default)]
    version: String,
}

async fn rollback(
    State(state): State<AppState>,
    page: OrgPage<can::Deploy>,
    Meta(meta): Meta,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<RollbackForm>,
) -> PageResult {
    let version = match form.version.trim() {
        "" => None,
        text => Some(
            text.parse::<i64>()
                .map_err(|_| ApiError::invalid("version must be a number"))?,
        ),
    };
    let acting = Acting::new(&page.access, &meta);
    let job = state
        .db
        .transaction(async |tx| -> Result<_, ApiError> {
            let model = find_model(tx, &page.access.org.id, &name).await?;
            Ok(domain::deployments::rollback(tx, &acting, &model, version).await?)
        })
        .await?;
    warm_up(&state, job, true).await?;
    done(&page, &name, "rolled_back")
}

async fn promote(
    State(state): State<AppState>,
    page: OrgPage<can::Deploy>,
    Meta(meta): Meta,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<VersionForm>,
) -> PageResult {
    let acting = Acting::new(&page.access, &meta);
    let job = state
        .db
        .transaction(async |tx| -> Result<_, ApiError> {
            let model = find_model(tx, &page.access.org.id, &name).await?;
            Ok(domain::deployments::promote(tx, &acting, &model, form.version).await?)
        })
        .await?;
    warm_up(&state, job, true).await?;
    done(&page, &name, "promoted")
}

#[derive(Debug, Deserialize)]
struct AliasForm {
    alias: String,
    version: i64,
}

async fn set_alias(
    State(state): State<AppState>,
    page: OrgPage<can::WriteModels>,
    Meta(meta): Meta,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<AliasForm>,
) -> PageResult {
    let alias = form.alias.trim().to_owned();
    validate_alias(&alias)?;
    let acting = Acting::new(&page.access, &meta);
    let redeploy = state
        .db
        .transaction(async |tx| -> Result<_, ApiError> {
            let model = find_model(tx, &page.access.org.id, &name).await?;
            let moved =
                domain::models::move_alias(tx, &acting, &model, &alias, form.version).await?;
            Ok(moved.redeploy)
        })
        .await?;
    if let Some(job) = redeploy {
        warm_up(&state, job, false).await?;
    }
    done(&page, &name, "alias_moved")
}

/// Back to the model's page with a notice.
fn done<P>(page: &OrgPage<P>, name: &str, what: &str) -> PageResult {
    Ok(Redirect::to(&format!(
        "{}?done={what}",
        model_url(&page.access.org.slug, name)
    ))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct TryItForm {
    /// The predict request body (JSON).
    body: String,
}

/// The try-it form: the request goes through the API's predict pipeline (admission, rate
/// limits, quotas, metering, the result cache), as the signed-in user; the answer (or the
/// error) is shown as a fragment.
async fn try_it(
    State(state): State<AppState>,
    page: OrgPage<can::Predict>,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<TryItForm>,
) -> PageResult {
    let response = match predict(&state, &page.access, name, form.body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 8 << 20)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("reading a predict answer: {e}")))?;
    let body = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map(|v| pretty(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
    render::fragment(
        "models/try_it_result.html",
        context! { status => status.as_u16(), ok => status.is_success(), body },
    )
}

/// One call of the API's predict route's own path: admission, then the pipeline.
async fn predict(
    state: &AppState,
    access: &crate::access::OrgAccess,
    model: String,
    body: String,
) -> Result<Response, ApiError> {
    let pipeline = Pipeline::from_ref(state);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let admitted = pipeline.admit(access).await?;
    crate::api::predict::predict_call(&pipeline, access, model, &headers, admitted, body.into())
        .await
}

/// Uploads a version (the dashboard's script sends the API's multipart form: `file` and
/// `metadata`); answers a fragment, and `X-Wisp-Location` for the script to go to.
async fn upload(
    State(state): State<AppState>,
    page: OrgPage<can::WriteModels>,
    Meta(meta): Meta,
    Path((_, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let uploaded = crate::api::upload::upload(
        &state,
        &page.access,
        &meta,
        &name,
        crate::api::upload::UploadQuery::default(),
        request,
    )
    .await;
    match uploaded {
        Ok(version) => {
            let location = format!("{}?done=uploaded", model_url(&page.access.org.slug, &name));
            let mut response = render::fragment(
                "models/upload_result.html",
                context! { ok => true, version => version.version },
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert("x-wisp-location", value);
            }
            response
        }
        Err(error) => {
            let status =
                StatusCode::from_u16(error.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = render::fragment(
                "models/upload_result.html",
                context! { ok => false, code => error.code().as_str(), message => error.message() },
            )
            .into_response();
            *response.status_mut() = status;
            response
        }
    }
}
