//! Traffic splitting: weighted variants sticky on a request key, a shadow that gets a copy
//! of calls without touching responses, per-variant statistics, and promotion in one call.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use wisp_test_artifacts::fixture;

async fn predict(app: &TestApp, token: &str, route_key: Option<&str>) -> Reply {
    let mut request = Request::post(format!("/v1/orgs/{ORG}/models/iris/predict"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = route_key {
        request = request.header("x-wisp-route-key", key);
    }
    let body = r#"{"inputs": {"input": [[5.1, 3.5, 1.4, 0.2]]}}"#;
    app.send(request.body(Body::from(body)).unwrap()).await
}

async fn stats(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app
        .get(
            &format!("/v1/orgs/{ORG}/models/iris/deployment/traffic"),
            token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body.as_array().unwrap().clone()
}

fn calls(stats: &[Value], version: i64, role: &str) -> u64 {
    stats
        .iter()
        .find(|s| s["version"] == version && s["role"] == role)
        .map_or(0, |s| s["calls"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_split_sticky_keys_shadow_and_promotion() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    for _ in 0..3 {
        let upload = app
            .upload(ORG, "iris", &admin, fixture("iris_logreg.onnx"))
            .await;
        assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    }
    let uri = format!("/v1/orgs/{ORG}/models/iris/deployment");
    let invalid = app
        .put(
            &uri,
            &admin,
            json!({ "traffic": [{ "version": 1, "weight": 90 }, { "version": 2, "weight": 20 }] }),
        )
        .await;
    assert_eq!(invalid.code(), "invalid_request", "{invalid:?}");
    let deploy = app
        .put(
            &uri,
            &admin,
            json!({
                "traffic": [{ "version": 1, "weight": 80 }, { "version": 2, "weight": 20 }],
                "shadow": { "version": 3, "percent": 100 },
                "wait": true,
            }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
    assert_eq!(
        deploy.body["version"], 1,
        "the heaviest variant is the primary"
    );

    let mut served: BTreeMap<i64, u32> = BTreeMap::new();
    for user in 0..100 {
        let key = format!("user-{user}");
        let first = predict(&app, &admin, Some(&key)).await;
        assert_eq!(first.status, StatusCode::OK, "{first:?}");
        let version = first.body["version"].as_i64().unwrap();
        assert_ne!(version, 3, "the shadow never answers");
        *served.entry(version).or_default() += 1;
        let again = predict(&app, &admin, Some(&key)).await;
        assert_eq!(
            again.body["version"], version,
            "{key} sticks to its variant"
        );
        assert_eq!(again.body["outputs"], first.body["outputs"]);
    }
    assert!(
        served.get(&1).copied().unwrap_or(0) > served.get(&2).copied().unwrap_or(0),
        "{served:?}"
    );
    assert!(
        served.contains_key(&2),
        "the canary gets traffic: {served:?}"
    );

    // Every routed call (200) was mirrored; the copies finish in the background.
    let mut mirrored = 0;
    for _ in 0..600 {
        mirrored = calls(&stats(&app, &admin).await, 3, "shadow");
        if mirrored == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(mirrored, 200);
    let now = stats(&app, &admin).await;
    assert_eq!(
        calls(&now, 1, "live") + calls(&now, 2, "live"),
        200,
        "{now:?}"
    );
    assert!(now.iter().all(|s| s["errors"] == 0), "{now:?}");

    // An explicit version is not split or mirrored.
    let pinned = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &admin,
            json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] }, "version": 3 }),
        )
        .await;
    assert_eq!(pinned.body["version"], 3);

    let promoted = app
        .post(
            &format!("{uri}/promote"),
            &admin,
            json!({ "version": 2, "wait": true }),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{promoted:?}");
    assert_eq!(
        (
            promoted.body["version"].clone(),
            promoted.body["traffic"].clone()
        ),
        (json!(2), Value::Null)
    );
    for user in 0..20 {
        let reply = predict(&app, &admin, Some(&format!("user-{user}"))).await;
        assert_eq!(reply.body["version"], 2);
    }
    let history = app.get(&format!("{uri}/history"), &admin).await;
    assert_eq!(history.body[0]["action"], "promoted");
    let audit = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=model.promoted"),
            &admin,
        )
        .await;
    assert_eq!(
        audit.body["entries"].as_array().unwrap().len(),
        1,
        "{audit:?}"
    );
}
