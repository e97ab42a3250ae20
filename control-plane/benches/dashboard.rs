//! Server-side time of each dashboard page with 1,000 models in the organisation (every
//! model with a version, one in ten deployed; their ~2,100 audit entries), through the router as a signed-in browser
//! (cookie, no sockets). The models are created through the domain operations, in one
//! transaction, directly in the database. Prints p50/p95 per page against the < 100 ms
//! target.
//!
//! cargo bench -p wisp --bench dashboard            # 200 requests per page
//! cargo bench -p wisp --bench dashboard -- --quick # 40

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;
use wisp::audit::RequestMeta;
use wisp::cli::Bootstrap;
use wisp::config::Config;
use wisp::deployments::Backend;
use wisp::domain::Acting;
use wisp::domain::deployments::Deploy;
use wisp::inspect::{DType, ModelSignature, TensorSpec};
use wisp::onnx_inspector::OnnxInspector;
use wisp::registry::NewVersion;

const ORG: &str = "bench";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "benchmark password";
const MODELS: usize = 1000;

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn cookies(headers: &axum::http::HeaderMap, jar: &mut Vec<String>) {
    for value in headers.get_all(header::SET_COOKIE) {
        let pair = value
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let name = pair.split('=').next().expect("name").to_owned();
        jar.retain(|c| !c.starts_with(&format!("{name}=")));
        if !pair.ends_with('=') {
            jar.push(pair);
        }
    }
}

async fn populate(state: &wisp::AppState) {
    let conn = state.db.read().await;
    let user = wisp::users::find_by_email(&conn, EMAIL)
        .await
        .expect("db")
        .expect("admin");
    let org = wisp::orgs::find_by_slug(&conn, ORG)
        .await
        .expect("db")
        .expect("org");
    drop(conn);
    let meta = RequestMeta::default();
    let acting = Acting {
        org_id: &org.id,
        actor: format!("user:{}", user.id),
        meta: &meta,
    };
    let signature = ModelSignature {
        inputs: vec![TensorSpec {
            name: "input".into(),
            dtype: DType::F32,
            shape: vec![-1, 4],
            class_labels: None,
        }],
        outputs: vec![TensorSpec {
            name: "probabilities".into(),
            dtype: DType::F32,
            shape: vec![-1, 3],
            class_labels: None,
        }],
    };
    let started = Instant::now();
    state
        .db
        .transaction(async |tx| -> Result<(), wisp::error::DomainError> {
            let empty_tags = BTreeMap::new();
            let empty_metrics = BTreeMap::new();
            for i in 0..MODELS {
                let name = format!("model-{i:04}");
                let model = wisp::domain::models::create(
                    tx,
                    &acting,
                    &name,
                    "a benchmark model",
                    json!({}),
                )
                .await?;
                let sha = format!("{i:064x}");
                wisp::domain::models::add_version(
                    tx,
                    &acting,
                    &model,
                    &NewVersion {
                        model_id: &model.id,
                        sha256: &sha,
                        graph_sha256: None,
                        size_bytes: 1024,
                        framework: "onnx",
                        description: "",
                        tags: &empty_tags,
                        metrics: &empty_metrics,
                        run_id: None,
                        signature: &signature,
                        created_by: &acting.actor,
                    },
                    json!({}),
                )
                .await?;
                if i % 10 == 0 {
                    let model = wisp::registry::get_model(tx, &org.id, &name)
                        .await?
                        .expect("model");
                    let deploy = Deploy {
                        version: Some(1),
                        alias: None,
                        traffic: None,
                        shadow: None,
                        cache_ttl_secs: 0,
                        backend: Backend::default(),
                    };
                    // Recorded only (pending): the pages read rows, nothing is loaded.
                    wisp::domain::deployments::deploy(tx, &acting, &model, deploy).await?;
                }
            }
            Ok(())
        })
        .await
        .expect("populate");
    println!(
        "created {MODELS} models (with versions, 1 in 10 deployed) in {:?}",
        started.elapsed()
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 40 } else { 200 };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let bootstrap = Bootstrap {
        admin_email: EMAIL.into(),
        admin_password: Some(PASSWORD.into()),
        org_slug: ORG.into(),
    };
    let state = wisp::serve::state(&config, &bootstrap, Arc::new(OnnxInspector::default()))
        .await
        .expect("state");
    populate(&state).await;
    let app = wisp::app(state);

    // Sign in as a browser does.
    let mut jar = Vec::new();
    let (_, headers, page) = send(
        &app,
        Request::get("/sign-in").body(Body::empty()).expect("req"),
    )
    .await;
    cookies(&headers, &mut jar);
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).expect("csrf field") + marker.len();
    let csrf = &page[start..start + 64];
    let form = format!("email=bench%40example.com&password=benchmark+password&_csrf={csrf}");
    let (status, headers, _) = send(
        &app,
        Request::post("/sign-in")
            .header(header::COOKIE, jar.join("; "))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    cookies(&headers, &mut jar);
    let cookie = jar.join("; ");

    let pages = [
        ("home (checklist)", format!("/orgs/{ORG}")),
        ("models, first page", format!("/orgs/{ORG}/models")),
        (
            "models, page after model-0500",
            format!("/orgs/{ORG}/models?after=model-0500"),
        ),
        (
            "models, search 'model-09'",
            format!("/orgs/{ORG}/models?q=model-09"),
        ),
        (
            "a deployed model's page",
            format!("/orgs/{ORG}/models/model-0990"),
        ),
        ("a model's page", format!("/orgs/{ORG}/models/model-0999")),
        ("API keys", format!("/orgs/{ORG}/keys")),
        ("members", format!("/orgs/{ORG}/members")),
        ("monitoring overview", format!("/orgs/{ORG}/monitoring")),
        (
            "a deployed model's monitoring",
            format!("/orgs/{ORG}/models/model-0990/monitoring"),
        ),
        (
            "monitoring, last 30 days",
            format!("/orgs/{ORG}/models/model-0990/monitoring?range=month"),
        ),
        ("batch jobs", format!("/orgs/{ORG}/batch")),
        ("usage and billing", format!("/orgs/{ORG}/usage")),
        ("audit log, first page", format!("/orgs/{ORG}/audit")),
        (
            "audit log, filtered",
            format!("/orgs/{ORG}/audit?action=model.deployed"),
        ),
        ("experiments", format!("/orgs/{ORG}/experiments")),
        ("password page", "/account/password".to_owned()),
        ("sign-in page", "/sign-in".to_owned()),
    ];
    println!("{rounds} requests per page, sequential, through the router:");
    println!(
        "{:<32} {:>10} {:>10} {:>8}",
        "page", "p50", "p95", "<100 ms"
    );
    for (name, uri) in pages {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            // The sign-in page is measured as a signed-out browser sees it.
            let mut request = Request::get(&uri);
            if uri != "/sign-in" {
                request = request.header(header::COOKIE, &cookie);
            }
            let request = request.body(Body::empty()).expect("req");
            let started = Instant::now();
            let (status, _, body) = send(&app, request).await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            assert!(body.contains("</html>"), "{uri}: a whole page");
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let (p50, p95) = (p(0.50), p(0.95));
        println!(
            "{name:<32} {:>10} {:>10} {:>8}",
            ms(p50),
            ms(p95),
            if p95 < Duration::from_millis(100) {
                "yes"
            } else {
                "NO"
            }
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
