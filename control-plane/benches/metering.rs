//! Metering's overhead on predict: the same model, the same requests, through the same
//! router: metering on (the default: the outbox is written, not synced, before the
//! response) against metering off, then metering with the outbox also synced
//! (`metering.fsync`) against off; calls interleaved so that both variants of a comparison
//! see the same machine. Prints p50/p99 of each and the p50 ratios against "off".
//!
//! cargo bench -p wisp --bench metering            # 3,000 calls per variant
//! cargo bench -p wisp --bench metering -- --quick # 600

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wisp::cli::Bootstrap;
use wisp::config::Config;
use wisp::metering::Metering;
use wisp::onnx_inspector::OnnxInspector;
use wisp_test_artifacts::fixture;

const ORG: &str = "bench";

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Body,
    json: bool,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request = request.header(
        header::CONTENT_TYPE,
        if json {
            "application/json"
        } else {
            "application/octet-stream"
        },
    );
    let response = app
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post(app: &Router, uri: &str, token: Option<&str>, body: Value) -> Value {
    let (status, reply) = send(app, "POST", uri, token, Body::from(body.to_string()), true).await;
    assert!(status.is_success(), "{uri}: {status} {reply}");
    reply
}

/// An app with `iris` deployed, and an API key for it.
async fn app(dir: &std::path::Path, fsync: bool, metering_off: bool) -> (Router, String) {
    let mut config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    config.metering.fsync = fsync;
    let bootstrap = Bootstrap {
        admin_email: "bench@example.com".into(),
        admin_password: Some("benchmark password".into()),
        org_slug: ORG.into(),
    };
    let mut state = wisp::serve::state(&config, &bootstrap, Arc::new(OnnxInspector::default()))
        .await
        .expect("state");
    if metering_off {
        state.metering = Metering::disabled();
    }
    // This measures metering, not the plan's rate limits (Enterprise: 1,000 req/s per key),
    // which a sequential loop of fast calls would reach.
    state
        .db
        .write()
        .await
        .execute(
            "UPDATE plans SET key_requests_per_second = 1000000, org_requests_per_second = 1000000",
            (),
        )
        .await
        .expect("lift the rate limits");
    let app = wisp::app(state);
    let login = post(
        &app,
        "/v1/auth/login",
        None,
        json!({ "email": "bench@example.com", "password": "benchmark password" }),
    )
    .await;
    let token = login["access_token"].as_str().expect("token").to_owned();
    post(
        &app,
        &format!("/v1/orgs/{ORG}/models"),
        Some(&token),
        json!({ "name": "iris" }),
    )
    .await;
    let (status, reply) = send(
        &app,
        "POST",
        &format!("/v1/orgs/{ORG}/models/iris/versions"),
        Some(&token),
        Body::from(fixture("iris_logreg.onnx")),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (status, reply) = send(
        &app,
        "PUT",
        &format!("/v1/orgs/{ORG}/models/iris/deployment"),
        Some(&token),
        Body::from(json!({ "version": 1, "wait": true }).to_string()),
        true,
    )
    .await;
    assert_eq!(reply["status"], "ready", "{status} {reply}");
    let key = post(
        &app,
        &format!("/v1/orgs/{ORG}/api-keys"),
        Some(&token),
        json!({ "name": "bench", "scopes": ["predict"] }),
    )
    .await;
    (app, key["secret"].as_str().expect("secret").to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Times `calls` predictions of every variant after 100 warm-up calls each, interleaved
/// call by call with the order rotating every round, so that no variant always follows the
/// same one (an fsync's disk flush lands on whatever call comes next). Prints p50/p99 of
/// each and the p50 ratio of every variant against the last one.
async fn compare(variants: &[(&str, &(Router, String))], calls: usize, body: &str, uri: &str) {
    let mut times = vec![Vec::with_capacity(calls); variants.len()];
    for round in 0..calls + 100 {
        for turn in 0..variants.len() {
            let i = (round + turn) % variants.len();
            let (app, key) = variants[i].1;
            let started = Instant::now();
            let (status, reply) = send(
                app,
                "POST",
                uri,
                Some(key),
                Body::from(body.to_owned()),
                true,
            )
            .await;
            let elapsed = started.elapsed();
            assert_eq!(status, StatusCode::OK, "{reply}");
            if round >= 100 {
                times[i].push(elapsed);
            }
        }
    }
    println!("predict, iris, 1 row, sequential, {calls} calls per variant (interleaved):");
    let mut p50s = Vec::new();
    for ((name, _), times) in variants.iter().zip(&mut times) {
        times.sort();
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        p50s.push(p50);
        println!(
            "  {name:<24} p50 {:>9.1} µs   p99 {:>9.1} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    let (base_name, _) = variants[variants.len() - 1];
    let base = p50s[variants.len() - 1].as_secs_f64();
    for (i, (name, _)) in variants.iter().enumerate().take(variants.len() - 1) {
        let ratio = p50s[i].as_secs_f64() / base;
        println!(
            "  {name} / {base_name}: p50 ratio {ratio:.3} ({:+.1}%){}",
            (ratio - 1.0) * 100.0,
            if ratio <= 1.05 { "" } else { "  > 5% goal" }
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let calls = if quick { 600 } else { 3_000 };
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let fsync = app(dirs[0].path(), true, false).await;
    let default = app(dirs[1].path(), false, false).await;
    let off = app(dirs[2].path(), false, true).await;
    let body = json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }).to_string();
    let uri = format!("/v1/orgs/{ORG}/models/iris/predict");
    // The goal, default metering against none; then fsync apart, so that its disk flushes
    // do not disturb the first comparison.
    for metered in [
        ("metering on (default)", &default),
        ("metering on (fsync)", &fsync),
    ] {
        compare(&[metered, ("metering off", &off)], calls, &body, &uri).await;
        println!();
    }
}
