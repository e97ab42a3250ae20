//! Billing holds against a tenant that games it: an `Idempotency-Key` runs one request
//! once and bills every run (issue 14, item 7); the calls quota survives a restart and
//! counts other machines' calls (item 8); every blob an organisation stores counts toward
//! its storage quota, every path that creates models goes through the models quota, and a
//! refused upload leaves no blob behind (item 9).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use wisp::plans::{self, Overrides};

const ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

fn predict_uri() -> String {
    format!("/v1/orgs/{ORG}/models/iris/predict")
}

fn row_body(first: f32) -> Value {
    json!({ "inputs": { "input": [[first, 3.5, 1.4, 0.2]] } })
}

/// A predict call with an `Idempotency-Key`.
async fn keyed(app: &TestApp, token: &str, key: &str, body: &Value) -> Reply {
    let request = Request::post(predict_uri())
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .expect("request");
    app.send(request).await
}

async fn usage(app: &TestApp, token: &str, org: &str) -> Value {
    let reply = app.get(&format!("/v1/orgs/{org}/usage"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

fn usage_id(reply: &Reply) -> String {
    reply.headers["wisp-usage-id"]
        .to_str()
        .expect("usage id")
        .to_owned()
}

async fn org_id(app: &TestApp, slug: &str) -> String {
    let conn = app.state.db.write().await;
    conn.query("SELECT id FROM orgs WHERE slug = ?1", [slug])
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .expect("org")
        .get(0)
        .unwrap()
}

async fn override_quotas(app: &TestApp, slug: &str, overrides: Overrides) {
    let id = org_id(app, slug).await;
    let conn = app.state.db.write().await;
    plans::set_overrides(&conn, &id, &overrides).await.unwrap();
}

async fn serving_app() -> (TestApp, String, String) {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    (app, admin, key)
}

// --- Item 7: Idempotency-Key -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn identical_calls_under_one_key_run_once_and_bill_once() {
    let (app, admin, key) = serving_app().await;
    let body = row_body(5.1);
    let first = keyed(&app, &key, "order-1", &body).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert!(!replayed(&first));
    for _ in 0..5 {
        let again = keyed(&app, &key, "order-1", &body).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        assert!(replayed(&again), "{again:?}");
        // The stored response, measurements included: the model did not run again.
        assert_eq!(again.body, first.body);
        assert_eq!(usage_id(&again), usage_id(&first));
        assert_eq!(again.headers[header::CONTENT_TYPE], "application/json");
    }
    let report = usage(&app, &admin, ORG).await;
    assert_eq!(report["totals"]["calls"], 1, "{report}");
    assert_eq!(report["totals"]["billed_calls"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_key_with_other_requests_is_refused_and_every_run_is_billed() {
    let (app, admin, key) = serving_app().await;
    assert_eq!(
        keyed(&app, &key, "constant", &row_body(5.1)).await.status,
        StatusCode::OK
    );
    // Thousands of different calls under one key used to run, each billed as the first.
    for i in 0..5 {
        let other = keyed(&app, &key, "constant", &row_body(6.0 + i as f32)).await;
        assert_eq!(other.status, StatusCode::CONFLICT, "{other:?}");
        assert_eq!(other.code(), "idempotency_conflict");
        assert_eq!(other.body["details"]["reason"], "different_request");
    }
    // The same key on another protocol is another request too.
    let v2 = app
        .send(
            Request::post("/v2/models/iris/infer")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header("idempotency-key", "constant")
                .body(Body::from(
                    json!({ "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW }] })
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(v2.status, StatusCode::CONFLICT, "{v2:?}");
    // Keys are per credential: another key of the organisation runs (and pays for) its own
    // call under the same key.
    let (_, second) = app.api_key(&admin, ORG, &["predict"]).await;
    let theirs = keyed(&app, &second, "constant", &row_body(5.1)).await;
    assert_eq!(theirs.status, StatusCode::OK, "{theirs:?}");
    assert!(!replayed(&theirs));
    // A call that did not run (bad input) gives its key back: the corrected retry runs.
    let bad = keyed(&app, &key, "fix-me", &json!({ "inputs": { "nope": [1] } })).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
    let fixed = keyed(&app, &key, "fix-me", &row_body(5.1)).await;
    assert_eq!(fixed.status, StatusCode::OK, "{fixed:?}");
    assert!(!replayed(&fixed));
    let report = usage(&app, &admin, ORG).await;
    assert_eq!(report["totals"]["billed_calls"], 3, "{report}");
    assert_eq!(report["totals"]["calls"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_under_one_key_run_once() {
    let (app, admin, key) = serving_app().await;
    let app = Arc::new(app);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (app, key) = (Arc::clone(&app), key.clone());
            tokio::spawn(async move { keyed(&app, &key, "race", &row_body(5.1)).await })
        })
        .collect();
    let mut ran = 0;
    for call in calls {
        let reply = call.await.unwrap();
        match reply.status {
            StatusCode::OK => ran += usize::from(!replayed(&reply)),
            StatusCode::CONFLICT => {
                assert_eq!(reply.body["details"]["reason"], "in_progress", "{reply:?}");
                assert_eq!(reply.headers[header::RETRY_AFTER], "1");
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    assert_eq!(ran, 1);
    let report = usage(&app, &admin, ORG).await;
    assert_eq!(report["totals"]["billed_calls"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_bounded_and_oversized_responses_are_neither_replayed_nor_rerun() {
    let (app, admin, key) = serving_app().await;
    for bad in ["k".repeat(256), "with space".to_owned()] {
        let reply = keyed(&app, &key, &bad, &row_body(5.1)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
        assert_eq!(reply.code(), "invalid_request");
    }
    // The same app with a replay bound smaller than a prediction.
    let mut state = app.state.clone();
    state.settings.idempotency.max_response_bytes = 16;
    let small = TestApp {
        app: wisp::app(state.clone()),
        state,
        dir: tempfile::tempdir().unwrap(),
    };
    let first = keyed(&small, &key, "big", &row_body(5.1)).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let retry = keyed(&small, &key, "big", &row_body(5.1)).await;
    assert_eq!(retry.status, StatusCode::CONFLICT, "{retry:?}");
    assert_eq!(retry.body["details"]["reason"], "not_replayable");
    assert_eq!(retry.body["details"]["status"], 200);
    assert_eq!(retry.body["details"]["usage_id"], usage_id(&first).as_str());
    let report = usage(&app, &admin, ORG).await;
    assert_eq!(report["totals"]["billed_calls"], 1, "{report}");
}

// --- Item 8: the calls quota after a restart and across machines -------------------------

/// An app on the database file `db` with its outbox in `data`; blobs are shared next to
/// the database, as machines share a bucket.
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

async fn predict(app: &TestApp, key: &str) -> Reply {
    app.post(&predict_uri(), key, row_body(5.1)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_calls_quota_holds_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wisp.db");
    let data = dir.path().join("data");
    let key = {
        let app = app_on(&db, &data).await;
        let admin = app.admin().await;
        deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
        let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
        override_quotas(
            &app,
            ORG,
            Overrides {
                calls_per_month: Some(3),
                ..Overrides::default()
            },
        )
        .await;
        for _ in 0..3 {
            assert_eq!(predict(&app, &key).await.status, StatusCode::OK);
        }
        let refused = predict(&app, &key).await;
        assert_eq!(refused.code(), "quota_exceeded", "{refused:?}");
        key
        // Stopped without draining its outbox, as a crash would.
    };
    let restarted = app_on(&db, &data).await;
    let refused = predict(&restarted, &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.code(), "quota_exceeded");
    assert_eq!(refused.body["details"]["used"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_served_by_another_machine_count_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wisp.db");
    let first = app_on(&db, &dir.path().join("one")).await;
    let admin = first.admin().await;
    deployed(&first, &admin, "iris", "iris_logreg.onnx").await;
    let (_, key) = first.api_key(&admin, ORG, &["predict"]).await;
    override_quotas(
        &first,
        ORG,
        Overrides {
            calls_per_month: Some(4),
            ..Overrides::default()
        },
    )
    .await;
    // A second machine on the same database, with its own outbox.
    let second = app_on(&db, &dir.path().join("two")).await;
    let served = predict(&second, &key).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
    for _ in 0..3 {
        let served = predict(&first, &key).await;
        assert_eq!(served.status, StatusCode::OK, "{served:?}");
    }
    // The quota is claimed from the database in blocks: the second machine's next call
    // finds nothing left to claim, with no resync and nothing drained.
    let refused = predict(&second, &key).await;
    assert_eq!(refused.code(), "quota_exceeded", "{refused:?}");
    assert_eq!(refused.body["details"]["used"], 4);
}

// --- Item 9: storage and models quotas everywhere ------------------------------------------

#[tokio::test]
async fn an_upload_past_the_storage_quota_leaves_no_blob() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    override_quotas(
        &app,
        ORG,
        Overrides {
            max_storage_bytes: Some(100),
            ..Overrides::default()
        },
    )
    .await;
    app.model(&admin, ORG, "m").await;
    let small = app.upload(ORG, "m", &admin, onnx_bytes("small")).await;
    assert_eq!(small.status, StatusCode::CREATED, "{small:?}");
    let blobs = app.blob_count();
    let big = app
        .upload(ORG, "m", &admin, onnx_bytes(&"x".repeat(200)))
        .await;
    assert_eq!(big.status, StatusCode::TOO_MANY_REQUESTS, "{big:?}");
    assert_eq!(big.code(), "quota_exceeded");
    assert_eq!(big.body["details"]["quota"], "storage_bytes");
    assert_eq!(app.blob_count(), blobs, "the refused upload left its blob");
    assert_eq!(app.staged_count(), 0);
}

async fn put_artifact(app: &TestApp, key: &str, path: &str, bytes: Vec<u8>) -> Reply {
    app.send(
        Request::put(format!("/api/2.0/mlflow-artifacts/artifacts/{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::from(bytes))
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn mlflow_artifacts_count_toward_storage() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (_, key) = app.api_key(&admin, ORG, &["models:write"]).await;
    override_quotas(
        &app,
        ORG,
        Overrides {
            max_storage_bytes: Some(100),
            ..Overrides::default()
        },
    )
    .await;
    let first = put_artifact(&app, &key, "1/run/artifacts/a.bin", vec![1; 60]).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(usage(&app, &admin, ORG).await["storage_bytes"], 60);
    let blobs = app.blob_count();
    let refused = put_artifact(&app, &key, "1/run/artifacts/b.bin", vec![2; 60]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.body["error_code"], "REQUEST_LIMIT_EXCEEDED");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .starts_with("quota_exceeded"),
        "{refused:?}"
    );
    assert_eq!(app.blob_count(), blobs);
    // The same bytes again are stored once: no room needed.
    let same = put_artifact(&app, &key, "1/run/artifacts/copy.bin", vec![1; 60]).await;
    assert_eq!(same.status, StatusCode::OK, "{same:?}");
}

async fn mlflow(app: &TestApp, key: &str, path: &str, body: Value) -> Reply {
    let reply = app
        .post(&format!("/api/2.0/mlflow/{path}"), key, body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
    reply
}

/// Registers MLflow model `name` with a version made from an ONNX artifact, as `key`.
async fn register_onnx(app: &TestApp, key: &str, name: &str) -> Reply {
    let exp = mlflow(app, key, "experiments/create", json!({ "name": name })).await;
    let exp = exp.body["experiment_id"].as_str().unwrap().to_owned();
    let run = mlflow(
        app,
        key,
        "runs/create",
        json!({ "experiment_id": exp, "start_time": 1000 }),
    )
    .await;
    let run_id = run.body["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = put_artifact(
        app,
        key,
        &format!("{exp}/{run_id}/artifacts/model/model.onnx"),
        onnx_bytes(name),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{put:?}");
    mlflow(
        app,
        key,
        "registered-models/create",
        json!({ "name": name }),
    )
    .await;
    mlflow(
        app,
        key,
        "model-versions/create",
        json!({ "name": name, "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
    )
    .await
}

#[tokio::test]
async fn the_mlflow_bridge_goes_through_the_models_quota_and_is_audited() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    // Enterprise: the bridge creates the wisp model, audited like the API does.
    let (_, key) = app.api_key(&admin, ORG, &["models:write"]).await;
    register_onnx(&app, &key, "iris").await;
    let model = app
        .get(&format!("/v1/orgs/{ORG}/models/iris"), &admin)
        .await;
    assert_eq!(model.status, StatusCode::OK, "{model:?}");
    let audit = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=model.created"),
            &admin,
        )
        .await;
    let entries = audit.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit:?}");
    assert_eq!(entries[0]["target"], "model:iris");
    assert_eq!(entries[0]["details"]["source"], "mlflow", "{audit:?}");
    // The version it bridges is audited as an upload is, naming where it came from.
    let uploads = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=model.version.uploaded"),
            &admin,
        )
        .await;
    let entries = uploads.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{uploads:?}");
    assert_eq!(entries[0]["target"], "model:iris/versions/1");
    assert_eq!(entries[0]["details"]["source"], "mlflow", "{uploads:?}");
    assert!(entries[0]["details"]["sha256"].is_string(), "{uploads:?}");

    // Free plan: one model. It has one already, so the bridge makes none.
    app.org(&admin, "tiny").await;
    let (_, tiny) = app.api_key(&admin, "tiny", &["models:write"]).await;
    assert_eq!(
        app.model(&admin, "tiny", "first").await.status,
        StatusCode::CREATED
    );
    let refused = register_onnx(&app, &tiny, "second").await;
    let tags = refused.body["model_version"]["tags"].to_string();
    assert!(tags.contains("wisp.serving_error"), "{refused:?}");
    assert!(tags.contains("quota_exceeded"), "{refused:?}");
    let models = app.get("/v1/orgs/tiny/models", &admin).await;
    let names: Vec<_> = models
        .body
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, [json!("first")], "{models:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_inputs_and_results_count_toward_storage() {
    let (app, admin, _) = serving_app().await;
    let stored = usage(&app, &admin, ORG).await["storage_bytes"]
        .as_u64()
        .unwrap();
    let row = json!({ "input": ROW }).to_string() + "\n";
    override_quotas(
        &app,
        ORG,
        Overrides {
            max_storage_bytes: Some(stored + row.len() as u64),
            ..Overrides::default()
        },
    )
    .await;
    let submit = |body: String| {
        app.send(
            Request::post(format!("/v1/orgs/{ORG}/batch-jobs?model=iris"))
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .body(Body::from(body))
                .unwrap(),
        )
    };
    let blobs = app.blob_count();
    let refused = submit(row.repeat(2)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.code(), "quota_exceeded");
    assert_eq!(app.blob_count(), blobs, "the refused input left its blob");
    // The input fits, exactly; its results do not.
    let created = submit(row).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let job = loop {
        let reply = app
            .get(&format!("/v1/orgs/{ORG}/batch-jobs/{id}"), &admin)
            .await;
        if !matches!(reply.body["status"].as_str(), Some("queued" | "running")) {
            break reply.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job.to_string().contains("quota_exceeded"), "{job}");
    assert_eq!(app.blob_count(), blobs + 1, "only the input is stored");
}
