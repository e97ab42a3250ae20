//! Per-version analytics (issue 17 item 2): calls through the real router are drained into
//! minute, hour and day rollups; the analytics API answers their counts, errors by code
//! and quantiles (within the sketch's 1 % of the exact values of the stored events),
//! after a restart on the same database too; an hour is exactly the merge of its minutes;
//! viewers read, other organisations find nothing. The CLI prints the same over HTTP from
//! the real `wisp serve`.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::server::{free_port, login, start, with_admin};
use common::*;
use serde_json::{Value, json};
use wisp::metering::analytics::series::{self, AnalyticsQuery};
use wisp::metering::analytics::{Resolution, Rollup};
use wisp_test_artifacts::{component, components, fixture};

/// An app on the database file `db` with its outbox in `data` (blobs next to the
/// database), as `wisp serve` starts on them.
async fn app_on(db: &std::path::Path, data: &std::path::Path) -> TestApp {
    let mut config = wisp::config::Config {
        data_dir: data.to_owned(),
        object_store: wisp::config::ObjectStoreConfig::Local {
            path: Some(db.with_file_name("blobs")),
        },
        ..wisp::config::Config::default()
    };
    config.database.url = Some(db.to_str().unwrap().to_owned());
    config.validate().unwrap();
    let bootstrap = wisp::cli::Bootstrap {
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        org_slug: ORG.into(),
    };
    let state = wisp::serve::state(
        &config,
        &bootstrap,
        Arc::new(common::sandboxed_inspector(&config)),
    )
    .await
    .unwrap();
    TestApp {
        app: wisp::app(state.clone()),
        state,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn analytics_uri(model: &str, query: &str) -> String {
    format!("/v1/orgs/{ORG}/models/{model}/analytics?{query}")
}

async fn analytics(app: &TestApp, token: &str, model: &str, query: &str) -> Value {
    let reply = app.get(&analytics_uri(model, query), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body
}

fn row(i: usize) -> Value {
    json!({ "input": [[5.1 + 0.1 * i as f64, 3.5, 1.4, 0.2]] })
}

/// The exact value of rank `⌊q (n − 1)⌋`, the sketch's definition of a quantile.
fn exact(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn assert_within_one_percent(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() <= 0.01 * want.abs() + 1e-9,
        "{what}: {got} vs exact {want}"
    );
}

/// The organisation's and a model's ids.
async fn ids(app: &TestApp, model: &str) -> (String, String) {
    let conn = app.state.db.read().await;
    let row = conn
        .query(
            "SELECT o.id, m.id FROM orgs o JOIN models m ON m.org_id = o.id
             WHERE o.slug = ?1 AND m.name = ?2",
            [ORG, model],
        )
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    (row.get(0).unwrap(), row.get(1).unwrap())
}

/// Wall and inference times (ms) of the stored events of a model, sorted: the truth the
/// sketches are checked against. Inference times only of calls that ran the model.
async fn stored_times(app: &TestApp, model_id: &str) -> (Vec<f64>, Vec<f64>) {
    let conn = app.state.db.read().await;
    let mut rows = conn
        .query(
            "SELECT wall_us, inference_us, fuel, cache_hit FROM usage_events WHERE model_id = ?1",
            [model_id],
        )
        .await
        .unwrap();
    let (mut wall, mut inference) = (Vec::new(), Vec::new());
    while let Some(row) = rows.next().await.unwrap() {
        wall.push(row.get::<i64>(0).unwrap() as f64 / 1e3);
        if row.get::<i64>(2).unwrap() > 0 && !row.get::<bool>(3).unwrap() {
            inference.push(row.get::<i64>(1).unwrap() as f64 / 1e3);
        }
    }
    wall.sort_by(f64::total_cmp);
    inference.sort_by(f64::total_cmp);
    (wall, inference)
}

#[tokio::test(flavor = "multi_thread")]
async fn analytics_count_calls_errors_and_cache_hits_per_version_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wisp.db");
    let data = dir.path().join("data");
    let app = app_on(&db, &data).await;
    let admin = app.admin().await;

    // iris: version 1 deployed with a result cache, version 2 called by number.
    app.model(&admin, ORG, "iris").await;
    for _ in 0..2 {
        let upload = app
            .upload(ORG, "iris", &admin, fixture("iris_logreg.onnx"))
            .await;
        assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    }
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &admin,
            json!({ "version": 1, "wait": true, "cache_ttl_secs": 3600 }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
    // boom: a model whose every call fails.
    app.model(&admin, ORG, "boom").await;
    let upload = app
        .upload(ORG, "boom", &admin, component(components::PANICKER))
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/boom/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;

    let predict = |model: &'static str, body: Value| {
        let (app, key) = (&app, &key);
        async move {
            app.post(&format!("/v1/orgs/{ORG}/models/{model}/predict"), key, body)
                .await
        }
    };
    // 8 distinct rows on version 1, then the first row 3 more times: 3 cache hits.
    for i in (0..8).chain([0, 0, 0]) {
        let reply = predict("iris", json!({ "inputs": row(i) })).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    // 5 calls on version 2.
    for i in 0..5 {
        let reply = predict("iris", json!({ "inputs": row(i), "version": 2 })).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    // 4 failing calls: the model panics, a `guest_trap`.
    for _ in 0..4 {
        let reply = predict("boom", json!({ "inputs": {} })).await;
        assert_eq!(reply.code(), "guest_trap", "{reply:?}");
    }

    let hour = analytics(&app, &admin, "iris", "step=hour").await;
    let total = &hour["total"];
    assert_eq!(total["calls"], 16, "{hour}");
    assert_eq!(total["errors"], 0, "{hour}");
    assert_eq!(total["error_rate"], 0.0, "{hour}");
    assert_eq!(total["cache_hits"], 3, "{hour}");
    assert_eq!(total["cache_hit_rate"], 3.0 / 16.0, "{hour}");
    assert!(total["compute_units"].as_u64().unwrap() > 0, "{hour}");
    assert!(total["cold_starts"].as_u64().unwrap() <= 13, "{hour}");
    let versions: Vec<(i64, u64, u64)> = hour["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["calls"].as_u64().unwrap(),
                v["cache_hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, 11, 3), (2, 5, 0)], "{hour}");
    let points: u64 = hour["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(points, 16);

    // Quantiles within 1 % of the exact ones of the stored events.
    let (org_id, iris_id) = ids(&app, "iris").await;
    let (wall, inference) = stored_times(&app, &iris_id).await;
    assert_eq!(wall.len(), 16);
    assert_eq!(
        inference.len(),
        13,
        "every call but the cache hits ran the model"
    );
    for (q, field) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        assert_within_one_percent(&total["latency_ms"][field], exact(&wall, q), field);
    }
    for (q, field) in [(0.5, "p50"), (0.99, "p99")] {
        assert_within_one_percent(
            &total["inference_ms"][field],
            exact(&inference, q),
            &format!("inference {field}"),
        );
    }
    // One version only.
    let v2 = analytics(&app, &admin, "iris", "step=day&version=2").await;
    assert_eq!(v2["total"]["calls"], 5, "{v2}");
    assert_eq!(v2["versions"].as_array().unwrap().len(), 1, "{v2}");

    // The failures, by code.
    let boom = analytics(&app, &admin, "boom", "step=minute").await;
    assert_eq!(boom["total"]["calls"], 4, "{boom}");
    assert_eq!(boom["total"]["errors"], 4, "{boom}");
    assert_eq!(boom["total"]["error_rate"], 1.0, "{boom}");
    assert_eq!(
        boom["total"]["errors_by_code"],
        json!({ "guest_trap": 4 }),
        "{boom}"
    );

    // An hour is exactly the merge of its minutes (the stored rows, as the API reads them).
    let read = |step| {
        let (app, org_id, iris_id) = (&app, &org_id, &iris_id);
        async move {
            let now = wisp::db::now();
            series::query(
                &*app.state.db.read().await,
                AnalyticsQuery {
                    org_id,
                    model_id: iris_id,
                    from: now - 7_200,
                    to: now + 60,
                    step,
                    version: None,
                },
            )
            .await
            .unwrap()
        }
    };
    let (minutes, hours) = (read(Resolution::Minute).await, read(Resolution::Hour).await);
    for hour in &hours.points {
        let mut merged = Rollup::default();
        for minute in minutes
            .points
            .iter()
            .filter(|m| m.version == hour.version && Resolution::Hour.start(m.start) == hour.start)
        {
            merged.merge(&minute.rollup);
        }
        assert_eq!(merged.calls, hour.rollup.calls);
        assert_eq!(merged.cache_hits, hour.rollup.cache_hits);
        assert_eq!(merged.latency.count(), hour.rollup.latency.count());
        for i in 0..=20 {
            let q = f64::from(i) / 20.0;
            assert_eq!(
                merged.latency.quantile(q).unwrap(),
                hour.rollup.latency.quantile(q).unwrap(),
                "q={q}"
            );
        }
    }

    // A restart on the same database and outbox (whose events are replayed, and ignored):
    // the same answer.
    let day = analytics(&app, &admin, "iris", "step=day").await;
    drop(app);
    let restarted = app_on(&db, &data).await;
    let admin = restarted.admin().await;
    let again = analytics(&restarted, &admin, "iris", "step=day").await;
    assert_eq!(again, day);
    assert_eq!(again["total"]["calls"], 16);
    let boom_again = analytics(&restarted, &admin, "boom", "step=minute").await;
    assert_eq!(boom_again["total"], boom["total"]);
}

#[tokio::test]
async fn viewers_read_other_organisations_find_nothing_and_bad_ranges_are_refused() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    let viewer = app
        .user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let empty = analytics(&app, &viewer, "iris", "").await;
    assert_eq!(empty["total"]["calls"], 0, "{empty}");
    assert_eq!(empty["total"]["error_rate"], Value::Null, "{empty}");
    assert_eq!(empty["step"], "hour");
    let (_, read_key) = app.api_key(&admin, ORG, &["read"]).await;
    analytics(&app, &read_key, "iris", "step=day").await;

    // Another organisation's model answers like a missing one.
    let outsider = app
        .user_with_role(&admin, ORG, "outsider@example.com", "member")
        .await;
    app.org(&outsider, "rival").await;
    let (_, rival_key) = app.api_key(&outsider, "rival", &["read"]).await;
    let missing = app
        .get("/v1/orgs/rival/models/nothing/analytics", &rival_key)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    let theirs = app
        .get("/v1/orgs/rival/models/iris/analytics", &rival_key)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{theirs:?}");
    assert_eq!(theirs.body, missing.body);
    // Through the other organisation's path: as an organisation that does not exist.
    let nowhere = app
        .get("/v1/orgs/nowhere/models/iris/analytics", &rival_key)
        .await;
    let across = app.get(&analytics_uri("iris", ""), &rival_key).await;
    assert_eq!(across.status, StatusCode::NOT_FOUND, "{across:?}");
    assert_eq!(across.body, nowhere.body);

    for query in [
        "step=week",
        "from=yesterday",
        "from=2026-12-05T10:00:00Z&to=2026-12-05T09:00:00Z",
        "step=minute&from=2026-12-01T00:00:00Z&to=2026-12-03T00:00:00Z",
        "version=two",
        "colour=blue",
    ] {
        let reply = app.get(&analytics_uri("iris", query), &viewer).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {reply:?}");
        assert_eq!(reply.code(), "invalid_request", "{query}: {reply:?}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_analytics_endpoint() {
    let app = TestApp::new().await;
    let doc = app
        .call(axum::http::Method::GET, "/openapi.json", None, None)
        .await;
    let get = &doc.body["paths"]["/v1/orgs/{org}/models/{model}/analytics"]["get"];
    let params: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("documented: {get}"))
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["org", "model", "from", "to", "step", "version"]);
    let schemas = &doc.body["components"]["schemas"];
    for field in ["points", "versions", "total"] {
        assert!(
            schemas["ModelAnalytics"]["properties"].get(field).is_some(),
            "{field}"
        );
    }
    assert!(schemas["Stats"]["properties"].get("latency_ms").is_some());
}

/// Runs the `wisp` CLI against `base` with `token`; its standard output.
fn cli(base: &str, token: &str, args: &[&str]) -> String {
    common::server::wisp_cli(base, token, "team", args)
}

/// `wisp analytics` against the real `wisp serve`, before and after the server restarts.
#[tokio::test]
async fn the_cli_prints_a_models_analytics_from_a_restarted_server() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(with_admin(data.path(), port, "team"), port).await;
    let token = login(&server.base).await;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let created = http
        .post(format!("{base}/v1/orgs/team/models"))
        .bearer_auth(&token)
        .json(&json!({ "name": "iris" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let uploaded = http
        .post(format!("{base}/v1/orgs/team/models/iris/versions"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(fixture("iris_logreg.onnx").to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), reqwest::StatusCode::CREATED);
    let deployed = cli(&base, &token, &["deploy", "iris"]);
    assert!(deployed.contains("ready"), "{deployed}");
    for i in 0..6 {
        let reply = http
            .post(format!("{base}/v1/orgs/team/models/iris/predict"))
            .bearer_auth(&token)
            .json(&json!({ "inputs": row(i) }))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), reqwest::StatusCode::OK);
    }
    let report: Value =
        serde_json::from_str(&cli(&base, &token, &["analytics", "iris", "--json"])).unwrap();
    assert_eq!(report["total"]["calls"], 6, "{report}");
    assert_eq!(report["step"], "hour");

    // A new process on the same data directory.
    drop(server);
    server = start(with_admin(data.path(), port, "team"), port).await;
    let token = login(&server.base).await;
    let text = cli(
        &server.base,
        &token,
        &["analytics", "iris", "--since", "2h", "--step", "minute"],
    );
    // Shown with `--nocapture`: what a person sees.
    println!("{text}");
    assert!(text.starts_with("iris from "), "{text}");
    assert!(text.contains("P50 MS"), "{text}");
    let total = text
        .lines()
        .find(|line| line.starts_with("total"))
        .unwrap_or_else(|| panic!("a total line: {text}"));
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(cells[..4], ["total", "all", "6", "0"], "{text}");
    let again: Value = serde_json::from_str(&cli(
        &server.base,
        &token,
        &[
            "analytics",
            "iris",
            "--step",
            "day",
            "--version",
            "1",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(again["total"]["calls"], 6, "{again}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(["analytics", "iris", "--step", "week"])
        .env("WISP_SERVER", &server.base)
        .env("WISP_TOKEN", &token)
        .env("WISP_ORG", "team")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("step"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // A refusal by the server is one line, whatever RUST_BACKTRACE says.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(["analytics", "no-such-model"])
        .env("WISP_SERVER", &server.base)
        .env("WISP_TOKEN", &token)
        .env("WISP_ORG", "team")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("Error: ") && stderr.contains("not_found"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
