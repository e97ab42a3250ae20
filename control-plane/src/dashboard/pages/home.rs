//! The landing redirect (`/`) and an organisation's home page with the first-run
//! checklist: create an API key → push a model → deploy it → make a first prediction →
//! connect the MLflow client, each with its exact commands, ticked from what exists
//! ([`crate::onboarding`]).

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use minijinja::context;
use serde::Serialize;

use crate::api::AppState;
use crate::auth::rbac::{Action, can};
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::{OrgPage, SignedIn};
use crate::onboarding;

pub(super) const TEMPLATES: &[(&str, &str)] = templates!["home/home.html", "home/no_org.html"];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/orgs/{org}", get(home))
}

/// Signed in: to the first organisation's home (or a page saying there is none).
async fn landing(State(state): State<AppState>, signed: SignedIn) -> PageResult {
    let frame = signed.frame(&state).await?;
    match frame.orgs.first() {
        Some(org) => Ok(Redirect::to(&format!("/orgs/{}", org.slug)).into_response()),
        None => render::page(
            "home/no_org.html",
            &frame.page("home", "No organisation yet"),
            context! {},
        ),
    }
}

/// This server's address as the browser reached it, for the commands (`http://host`).
pub(crate) fn server_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

/// One step of the checklist.
#[derive(Debug, Serialize)]
struct Step {
    id: &'static str,
    title: &'static str,
    done: bool,
    /// What the step is for.
    why: String,
    /// `(label, command)`: the exact commands, filled in.
    commands: Vec<(&'static str, String)>,
    /// A dashboard page doing the same, if any.
    link: Option<(String, &'static str)>,
}

async fn home(
    State(state): State<AppState>,
    page: OrgPage<can::ReadModels>,
    headers: HeaderMap,
) -> PageResult {
    let org = &page.access.org;
    let progress = {
        let conn = state.db.read().await;
        onboarding::progress(&conn, &org.id).await?
    };
    let server = server_url(&headers);
    let slug = &org.slug;
    let key = progress
        .key_prefix
        .as_deref()
        .map(|prefix| format!("{prefix}…"))
        .unwrap_or_else(|| "wisp_…".to_owned());
    let model = progress.model.clone().unwrap_or_else(|| "iris".to_owned());
    let deployed = progress.deployed.clone().unwrap_or_else(|| model.clone());
    let models_url = format!("/orgs/{slug}/models");
    let steps = vec![
        Step {
            id: "key",
            title: "Create an API key",
            done: progress.key_prefix.is_some(),
            why: "Programs call wisp with a key; its secret is shown once.".to_owned(),
            commands: vec![
                ("wisp CLI", format!("export WISP_SERVER={server} WISP_ORG={slug}\nwisp login --email {}\nwisp keys create my-app --scope predict --scope models:write", page.signed.user.email)),
                ("curl", format!("curl -X POST {server}/v1/orgs/{slug}/api-keys \\\n  -H \"Authorization: Bearer $WISP_TOKEN\" -H 'Content-Type: application/json' \\\n  -d '{{\"name\": \"my-app\", \"scopes\": [\"predict\", \"models:write\"]}}'")),
            ],
            // Viewers cannot open the keys page (nor create keys, as in the API).
            link: page.can(Action::ManageKeys).then(|| (format!("/orgs/{slug}/keys"), "API keys page: create a key (its secret is shown once)")),
        },
        Step {
            id: "model",
            title: "Push a model",
            done: progress.model.is_some(),
            why: "Upload an ONNX file (or a WebAssembly component): it becomes version 1.".to_owned(),
            commands: vec![
                ("wisp CLI", format!("wisp models push tests/fixtures/iris_logreg.onnx --model {model}")),
            ],
            link: Some((models_url.clone(), "Models page: create a model and upload a version")),
        },
        Step {
            id: "deploy",
            title: "Deploy it",
            done: progress.deployed.is_some(),
            why: "A deployment makes a version answer predictions.".to_owned(),
            commands: vec![
                ("wisp CLI", format!("wisp deploy {model}")),
                ("curl", format!("curl -X PUT {server}/v1/orgs/{slug}/models/{model}/deployment \\\n  -H \"Authorization: Bearer $WISP_TOKEN\" -H 'Content-Type: application/json' \\\n  -d '{{\"version\": 1, \"wait\": true}}'")),
            ],
            link: Some((format!("{models_url}/{model}"), "The model's page: Deploy")),
        },
        Step {
            id: "predict",
            title: "Make a first prediction",
            done: progress.predicted,
            why: format!("Call the deployed model with your key ({key}: use its full secret)."),
            commands: vec![
                ("curl", format!("curl -H \"Authorization: Bearer $WISP_KEY\" -H 'Content-Type: application/json' \\\n  -d '{{\"inputs\": {{\"input\": [[5.1, 3.5, 1.4, 0.2]]}}}}' \\\n  {server}/v1/orgs/{slug}/models/{deployed}/predict")),
                ("Python", format!("import requests\nr = requests.post(\"{server}/v1/orgs/{slug}/models/{deployed}/predict\",\n    headers={{\"Authorization\": \"Bearer \" + WISP_KEY}},\n    json={{\"inputs\": {{\"input\": [[5.1, 3.5, 1.4, 0.2]]}}}})\nprint(r.json())")),
            ],
            link: Some((format!("{models_url}/{deployed}#try-it"), "The model's try-it form")),
        },
        Step {
            id: "mlflow",
            title: "Connect the MLflow client",
            done: progress.mlflow,
            why: "wisp is an MLflow tracking server: runs, metrics and registered models land here.".to_owned(),
            commands: vec![
                ("shell", format!("export MLFLOW_TRACKING_URI={server}\nexport MLFLOW_TRACKING_TOKEN={key}   # the full secret of a models:write key")),
                ("Python", "import mlflow\nwith mlflow.start_run():\n    mlflow.log_param(\"lr\", 0.1)\n    mlflow.log_metric(\"accuracy\", 0.93)".to_owned()),
            ],
            link: None,
        },
    ];
    let done = steps.iter().filter(|s| s.done).count();
    let frame = page
        .frame
        .clone()
        .page("home", format!("{} · Home", org.name));
    render::page(
        "home/home.html",
        &frame,
        context! {
            steps,
            done,
            total => 5,
            complete => progress.done(),
            progress,
            can_write => page.can(Action::WriteModels),
        },
    )
}
