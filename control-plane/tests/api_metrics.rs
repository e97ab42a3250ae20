//! `/metrics` on the main port through the real router: absent without `metrics.token`,
//! closed to every credential but that token (another organisation's keys, an owner's
//! session), and the series an inference call leaves, in both exposition formats.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::json;

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use wisp::error::ErrorCode;
use wisp::serving::metrics::{MetricsSettings, Protocol, ServingMetrics};

const TOKEN: &str = "a-metrics-token-of-some-length";

async fn scrape(app: &TestApp, token: Option<&str>, accept: Option<&str>) -> Reply {
    let mut request = Request::builder().method(Method::GET).uri("/metrics");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

fn text(reply: &Reply) -> &str {
    reply.body.as_str().expect("a text body")
}

#[tokio::test]
async fn without_a_token_the_main_port_has_no_metrics() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    for token in [None, Some(admin.as_str()), Some(TOKEN)] {
        let reply = scrape(&app, token, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
        assert_eq!(reply.code(), "not_found");
    }
}

#[tokio::test]
async fn only_the_metrics_token_opens_them_and_no_tenant_credential_does() {
    let app = TestApp::with_config(|config| config.metrics.token = Some(TOKEN.into())).await;
    let admin = app.admin().await;
    let (_, own_key) = app.api_key(&admin, ORG, &["admin"]).await;
    app.org(&admin, "other").await;
    let (_, other_key) = app.api_key(&admin, "other", &["admin"]).await;
    let wrong = format!("{TOKEN}x");
    for token in [
        None,
        Some(admin.as_str()),
        Some(&own_key),
        Some(&other_key),
        Some(&wrong),
    ] {
        let reply = scrape(&app, token.map(|t| t as &str), None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{token:?}: {reply:?}"
        );
        assert_eq!(reply.code(), "unauthenticated");
    }
    let reply = scrape(&app, Some(TOKEN), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(text(&reply).contains("# TYPE process_cpu_seconds_total counter"));
}

#[tokio::test]
async fn a_call_leaves_its_series_labelled_with_its_own_org_only() {
    let app = TestApp::serving_with(|config| config.metrics.token = Some(TOKEN.into())).await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    app.org(&admin, "other").await;
    let (_, other_key) = app.api_key(&admin, "other", &["predict"]).await;
    let body = json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } });
    let ok = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &admin,
            body.clone(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    // Another organisation's key on acme's model: answered as missing, never counted as
    // acme's, nor under the model's name.
    let foreign = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &other_key,
            body.clone(),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{foreign:?}");
    let bad = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &admin,
            json!({ "inputs": { "input": [[1.0]] } }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");

    let reply = scrape(&app, Some(TOKEN), None).await;
    let exposition = text(&reply);
    let labels = r#"org="acme",model="iris",version="1",protocol="predict""#;
    for line in [
        format!("wisp_requests_total{{{labels},outcome=\"ok\"}} 1"),
        format!("wisp_requests_total{{{labels},outcome=\"error\"}} 1"),
        format!("wisp_request_duration_seconds_count{{{labels}}} 2"),
        r#"wisp_inference_duration_seconds_count{org="acme",model="iris",version="1"} 1"#
            .to_owned(),
        r#"wisp_errors_total{protocol="predict",code="invalid_input"} 1"#.to_owned(),
        r#"wisp_queue_wait_seconds_count{queue="runtime"} 1"#.to_owned(),
        "wisp_runtime_slots_capacity ".to_owned(),
        "wisp_metering_outbox_backlog ".to_owned(),
    ] {
        assert!(exposition.contains(&line), "no {line} in\n{exposition}");
    }
    assert!(
        !exposition.contains(r#"org="other",model="iris""#),
        "{exposition}"
    );
    let fuel = exposition
        .lines()
        .find(|l| l.starts_with(r#"wisp_fuel_consumed_total{org="acme",model="iris""#))
        .expect("fuel");
    assert!(!fuel.ends_with(" 0"), "{fuel}");

    let open = scrape(&app, Some(TOKEN), Some("application/openmetrics-text")).await;
    assert_eq!(
        open.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let open = text(&open);
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE wisp_requests counter"));
    assert!(open.contains("# UNIT wisp_request_duration_seconds seconds"));
}

fn encoded(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn with_recording_off_calls_leave_no_series_but_metrics_still_serve() {
    let app = TestApp::serving_with(|config| {
        config.metrics.token = Some(TOKEN.into());
        config.metrics.enabled = false;
    })
    .await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    for inputs in [json!([[5.1, 3.5, 1.4, 0.2]]), json!([[1.0]])] {
        app.post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &admin,
            json!({ "inputs": { "input": inputs } }),
        )
        .await;
    }
    let reply = scrape(&app, Some(TOKEN), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let exposition = text(&reply);
    for absent in [
        "wisp_requests_total{",
        "wisp_errors_total{",
        "wisp_fuel_consumed_total{",
    ] {
        assert!(!exposition.contains(absent), "{absent} in\n{exposition}");
    }
    assert!(exposition.contains("wisp_queue_wait_seconds_count{queue=\"runtime\"} 0"));
    assert!(exposition.contains("wisp_metering_outbox_backlog "));
}

#[test]
fn versions_past_the_cap_fold_into_other() {
    let mut registry = Registry::default();
    let settings = MetricsSettings {
        recording: true,
        per_org_labels: true,
        max_model_series: 2,
    };
    let metrics = ServingMetrics::new(settings, &mut registry);
    for version in 1..=4 {
        metrics.version("acme", "m1", "iris", version).record_call(
            Protocol::Predict,
            true,
            Duration::from_millis(3),
        );
    }
    let text = encoded(&registry);
    let line = |version: &str| {
        format!(
            "wisp_requests_total{{org=\"acme\",model=\"{}\",version=\"{version}\",protocol=\"predict\",outcome=\"ok\"}}",
            if version == "other" { "other" } else { "iris" }
        )
    };
    assert!(text.contains(&format!("{} 1", line("1"))), "{text}");
    assert!(text.contains(&format!("{} 1", line("2"))), "{text}");
    assert!(!text.contains(&line("3")), "{text}");
    assert!(text.contains(&format!("{} 2", line("other"))), "{text}");
}

#[test]
fn without_org_labels_orgs_share_series() {
    let mut registry = Registry::default();
    let settings = MetricsSettings {
        recording: true,
        per_org_labels: false,
        max_model_series: 10,
    };
    let metrics = ServingMetrics::new(settings, &mut registry);
    metrics
        .version("a", "id-a", "iris", 1)
        .record_call(Protocol::V2, false, Duration::ZERO);
    metrics
        .version("b", "id-b", "iris", 1)
        .record_call(Protocol::V2, false, Duration::ZERO);
    metrics.record_error("a", Some(Protocol::V2), ErrorCode::QuotaExceeded);
    let text = encoded(&registry);
    assert!(!text.contains("org="), "{text}");
    assert!(
        text.contains(
            "wisp_requests_total{model=\"iris\",version=\"1\",protocol=\"v2\",outcome=\"error\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("wisp_refusals_total{reason=\"quota\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wisp_errors_total{protocol=\"v2\",code=\"quota_exceeded\"} 1"),
        "{text}"
    );
}
