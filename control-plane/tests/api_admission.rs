//! What happens before the runtime: the result cache, rate limits from the plan, and a
//! cold model after scale-to-zero answering instead of failing.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use wisp_test_artifacts::fixture;

const IRIS_ROW: &str = r#"{"inputs": {"input": [[5.1, 3.5, 1.4, 0.2]]}}"#;

async fn predict(app: &TestApp, org: &str, token: &str, cache_control: Option<&str>) -> Reply {
    let mut request = Request::post(format!("/v1/orgs/{org}/models/iris/predict"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = cache_control {
        request = request.header(header::CACHE_CONTROL, value);
    }
    app.send(request.body(Body::from(IRIS_ROW)).unwrap()).await
}

fn cache(reply: &Reply) -> &str {
    reply.headers["x-wisp-cache"].to_str().unwrap()
}

/// Deploys iris in `org` with a result cache.
async fn deploy_cached(app: &TestApp, token: &str, org: &str) {
    app.post(
        &format!("/v1/orgs/{org}/models"),
        token,
        json!({ "name": "iris" }),
    )
    .await;
    let upload = app
        .upload(org, "iris", token, fixture("iris_logreg.onnx"))
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let deploy = app
        .put(
            &format!("/v1/orgs/{org}/models/iris/deployment"),
            token,
            json!({ "version": 1, "wait": true, "cache_ttl_secs": 600 }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
    assert_eq!(deploy.body["cache_ttl_secs"], 600);
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_requests_hit_the_cache_of_their_own_organisation_only() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deploy_cached(&app, &admin, ORG).await;

    let first = predict(&app, ORG, &admin, None).await;
    assert_eq!(
        (first.status, cache(&first)),
        (StatusCode::OK, "miss"),
        "{first:?}"
    );
    let second = predict(&app, ORG, &admin, None).await;
    assert_eq!(cache(&second), "hit");
    assert_eq!(second.body["outputs"], first.body["outputs"]);
    assert_eq!(second.body["usage"]["fuel"], 0, "a hit runs nothing");
    assert!(first.body["usage"]["fuel"].as_u64().unwrap() > 0);
    let bypass = predict(&app, ORG, &admin, Some("no-cache")).await;
    assert_eq!(cache(&bypass), "bypass");
    assert!(bypass.body["usage"]["fuel"].as_u64().unwrap() > 0, "it ran");

    // The same file and input in another organisation is that organisation's own miss.
    let outsider = app
        .user_with_role(&admin, ORG, "other@example.com", "member")
        .await;
    app.org(&outsider, "rival").await;
    deploy_cached(&app, &outsider, "rival").await;
    let theirs = predict(&app, "rival", &outsider, None).await;
    assert_eq!(
        (theirs.status, cache(&theirs)),
        (StatusCode::OK, "miss"),
        "{theirs:?}"
    );

    // A deployment without a TTL does not cache.
    app.put(
        &format!("/v1/orgs/{ORG}/models/iris/deployment"),
        &admin,
        json!({ "version": 1, "wait": true }),
    )
    .await;
    let uncached = predict(&app, ORG, &admin, None).await;
    assert_eq!(cache(&uncached), "bypass");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_are_rate_limited_by_the_plan_and_changes_apply_at_once() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE plans SET key_requests_per_second = 1 WHERE id = 'enterprise'",
            (),
        )
        .await
        .unwrap();
    }
    // One request per second: of five in a row, at least one is refused (all five would
    // need a second each to pass).
    let mut refused: Option<Reply> = None;
    for _ in 0..5 {
        let reply = predict(&app, ORG, &key, Some("no-cache")).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let refused = refused.expect("the key's rate limit applies");
    assert_eq!(refused.code(), "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);

    // The plan changes; the next request sees the new limit without a restart.
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE plans SET key_requests_per_second = 1000 WHERE id = 'enterprise'",
            (),
        )
        .await
        .unwrap();
    }
    for _ in 0..5 {
        let reply = predict(&app, ORG, &key, Some("no-cache")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_request_after_scale_to_zero_waits_for_the_model() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    app.state.serving.runtime().evict_all().await;
    let stats = app.state.serving.runtime().stats();
    assert_eq!(stats.graphs.entries, 0, "scaled to zero: {stats:?}");
    let reply = predict(&app, ORG, &admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let usage: &Value = &reply.body["usage"];
    assert_eq!(usage["graph_warm"], false, "it loaded the model: {usage}");
    assert_eq!(reply.body["outputs"]["label"]["data"], json!([0]));
}

/// A body that records being read, and fails if it is.
fn poisoned_body(polled: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> Body {
    let polled = polled.clone();
    Body::from_stream(futures_util::stream::once(async move {
        polled.store(true, std::sync::atomic::Ordering::SeqCst);
        Err::<bytes::Bytes, _>(std::io::Error::other("the body was read"))
    }))
}

#[tokio::test]
async fn callers_over_their_rate_or_without_credentials_send_bodies_nobody_reads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE plans SET key_requests_per_second = 1 WHERE id = 'enterprise'",
            (),
        )
        .await
        .unwrap();
    }
    let request = |uri: &str, token: Option<&str>, body: Body| {
        let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(body).unwrap()
    };
    let uris = [
        format!("/v1/orgs/{ORG}/models/iris/predict"),
        "/v2/models/iris/infer".to_owned(),
        "/v1/models/iris:predict".to_owned(),
    ];
    for uri in &uris {
        // Unauthenticated: refused on the headers alone.
        let polled = Arc::new(AtomicBool::new(false));
        let reply = app
            .send(request(uri.as_str(), None, poisoned_body(&polled)))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}: {reply:?}");
        assert!(!polled.load(Ordering::SeqCst), "{uri}: read before auth");

        // Over the key's rate (one request a second): the bucket is emptied with ordinary
        // calls, then a call whose body fails if read must be refused unread. A token
        // that refills in between (a slow machine) only means another round.
        let mut refused_unread = false;
        for _ in 0..5 {
            for _ in 0..50 {
                let reply = app
                    .send(request(uri.as_str(), Some(&key), Body::from(IRIS_ROW)))
                    .await;
                if reply.status == StatusCode::TOO_MANY_REQUESTS {
                    break;
                }
            }
            let polled = Arc::new(AtomicBool::new(false));
            let reply = app
                .send(request(uri.as_str(), Some(&key), poisoned_body(&polled)))
                .await;
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                assert!(
                    !polled.load(Ordering::SeqCst),
                    "{uri}: read before the rate limit"
                );
                refused_unread = true;
                break;
            }
        }
        assert!(
            refused_unread,
            "{uri}: the rate limit applies before the body is read"
        );
    }

    // A declared length over the limit is refused before reading, for an admitted caller.
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE plans SET key_requests_per_second = 1000 WHERE id = 'enterprise'",
            (),
        )
        .await
        .unwrap();
    }
    for uri in &uris {
        let polled = Arc::new(AtomicBool::new(false));
        let mut oversized = request(uri.as_str(), Some(&key), poisoned_body(&polled));
        oversized
            .headers_mut()
            .insert(header::CONTENT_LENGTH, (64u64 << 20).into());
        let reply = app.send(oversized).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{uri}: {reply:?}"
        );
        assert!(!polled.load(Ordering::SeqCst), "{uri}");
    }
}
