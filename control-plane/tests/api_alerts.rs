//! Alert rules, their evaluation and signed webhooks, against a real HTTP receiver.
//!
//! The receiver is a separate HTTP server on a local port that verifies each message as a
//! third party would (Standard Webhooks: HMAC-SHA256 of `id.timestamp.body` with the
//! `whsec_` secret, a 5-minute timestamp tolerance), with its own HMAC, not wisp's signer.
//! It answers 401 to a message that does not verify, else the next scripted status.
//! Evaluation and delivery are driven by hand at chosen times (the background loops wait
//! an hour), so nothing depends on the wall clock's pace.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wisp_test_artifacts::{component, components};

/// A message the receiver got.
#[derive(Debug, Clone)]
struct Received {
    verified: bool,
    answered: u16,
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

#[derive(Debug, Default)]
struct ReceiverState {
    /// The key, decoded from the `whsec_…` secret.
    key: Vec<u8>,
    /// Statuses to answer verified messages with, in order; 200 once empty.
    script: VecDeque<u16>,
    received: Vec<Received>,
}

struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

/// Standard Webhooks verification, written from the specification.
fn verifies(key: &[u8], headers: &HeaderMap, body: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - timestamp).abs() > 300 {
        return false;
    }
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body.as_bytes());
            mac.verify_slice(&tag).is_ok()
        })
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let shared = Arc::clone(&state);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let shared = Arc::clone(&shared);
                async move {
                    let mut state = shared.lock().unwrap();
                    let verified = verifies(&state.key, &headers, &body);
                    let answered = if verified {
                        state.script.pop_front().unwrap_or(200)
                    } else {
                        401
                    };
                    state.received.push(Received {
                        verified,
                        answered,
                        headers,
                        body,
                    });
                    (
                        StatusCode::from_u16(answered).unwrap(),
                        format!("receiver says {answered}"),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn trust(&self, secret: &str) {
        let encoded = secret.strip_prefix("whsec_").expect("whsec_ prefix");
        self.state.lock().unwrap().key = STANDARD.decode(encoded).expect("base64 secret");
    }

    fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses);
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

/// A test app that may send to loopback and never evaluates or delivers on its own.
async fn alerting_app(serving: bool) -> TestApp {
    let tune = |config: &mut wisp::config::Config| {
        config.alerts.allow_private_targets = true;
        config.alerts.evaluation_interval = std::time::Duration::from_secs(3_600);
        config.alerts.delivery_interval = std::time::Duration::from_secs(3_600);
        config.alerts.max_attempts = 3;
    };
    if serving {
        TestApp::serving_with(tune).await
    } else {
        TestApp::with_config(tune).await
    }
}

fn rules_uri(org: &str) -> String {
    format!("/v1/orgs/{org}/alerts/rules")
}

fn webhooks_uri(org: &str) -> String {
    format!("/v1/orgs/{org}/alerts/webhooks")
}

/// Creates a webhook to the receiver, which trusts its secret; returns its id.
async fn webhook(app: &TestApp, token: &str, receiver: &Receiver) -> String {
    let created = app
        .post(
            &webhooks_uri(ORG),
            token,
            json!({ "url": receiver.url, "description": "on-call" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let secret = created.body["secret"].as_str().expect("secret shown once");
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.trust(secret);
    created.body["id"].as_str().unwrap().to_owned()
}

/// One good call of `iris`.
async fn iris(app: &TestApp, token: &str) {
    let ok = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            token,
            json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_rate_rule_fires_after_failing_calls_and_resolves_after_good_ones() {
    let app = alerting_app(true).await;
    let admin = app.admin().await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &admin, &receiver).await;
    // A monthly calls quota of 1000 on the organisation's plan.
    app.state
        .db
        .write()
        .await
        .execute(
            "UPDATE plans SET calls_per_month = 1000
             WHERE id = (SELECT plan_id FROM orgs WHERE slug = ?1)",
            [ORG],
        )
        .await
        .unwrap();

    // `boom` traps on every call (metered, outcome `guest_trap`); `iris` answers.
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
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let rule = app
        .post(
            &rules_uri(ORG),
            &admin,
            json!({
                "name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 0.5,
                "window": "1h", "for": "1m", "cooldown": "10m", "channels": [hook],
            }),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{rule:?}");
    assert_eq!(rule.body["window"], "1h");
    assert_eq!(rule.body["status"]["state"], "ok");
    let rule_id = rule.body["id"].as_str().unwrap().to_owned();
    // A rule scoped to `iris` alone, which only ever sees good calls.
    let iris_rule = app
        .post(
            &rules_uri(ORG),
            &admin,
            json!({
                "name": "iris errors", "model": "iris", "metric": "error_rate",
                "comparison": ">", "threshold": 0.5, "window": "1h",
            }),
        )
        .await;
    assert_eq!(iris_rule.status, StatusCode::CREATED, "{iris_rule:?}");
    // The other metrics measured from usage: iris's p99 latency and cold-load time, and
    // the monthly quota's use.
    for (name, metric, model) in [
        ("iris p99", "latency_p99_ms", json!("iris")),
        ("iris cold loads", "cold_load_ms", json!("iris")),
        ("boom cold loads", "cold_load_ms", json!("boom")),
        ("quota", "quota_use", Value::Null),
    ] {
        let created = app
            .post(
                &rules_uri(ORG),
                &admin,
                json!({ "name": name, "metric": metric, "model": model,
                        "comparison": ">", "threshold": 0.0, "window": "1h" }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    }
    // Drift of a model without a drift reference says so, and never fires.
    let drift = app
        .post(
            &rules_uri(ORG),
            &admin,
            json!({ "name": "drift", "model": "iris", "metric": "drift_share",
                    "comparison": ">=", "threshold": 0.0, "window": "1h" }),
        )
        .await;
    assert_eq!(drift.status, StatusCode::CREATED, "{drift:?}");

    // No calls yet: no data.
    let t0 = now() + 1;
    app.state.alerts.evaluate_at(t0).await.unwrap();
    let states = app.get(&format!("/v1/orgs/{ORG}/alerts"), &admin).await;
    let state_of = |states: &Reply, name: &str| {
        states
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["rule_name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        state_of(&states, "errors")["state"],
        "no_data",
        "{states:?}"
    );
    assert_eq!(
        state_of(&states, "errors")["reason"],
        "no calls in the window"
    );

    for _ in 0..4 {
        let failed = app
            .post(
                &format!("/v1/orgs/{ORG}/models/boom/predict"),
                &admin,
                json!({ "inputs": {} }),
            )
            .await;
        assert_eq!(failed.code(), "guest_trap", "{failed:?}");
    }
    // iris's deployment loaded it; evicted, its next call loads it again (a cold start),
    // whose load time `cold_load_ms` reads. boom's calls were all warm.
    app.state.serving.runtime().evict_all().await;
    iris(&app, &admin).await;
    app.state.metering.flush().await.unwrap();

    // 4 of 5 calls failed: pending, then firing once breached for a minute.
    let t1 = now().max(t0) + 1;
    app.state.alerts.evaluate_at(t1).await.unwrap();
    let states = app.get(&format!("/v1/orgs/{ORG}/alerts"), &admin).await;
    assert_eq!(state_of(&states, "errors")["state"], "pending");
    assert_eq!(state_of(&states, "errors")["value"], 0.8);
    assert_eq!(state_of(&states, "iris errors")["state"], "ok");
    let p99 = state_of(&states, "iris p99");
    assert_eq!(p99["state"], "firing", "{p99}");
    assert!(p99["value"].as_f64().unwrap() > 0.0, "{p99}");
    let quota = state_of(&states, "quota");
    assert_eq!(quota["state"], "firing", "{quota}");
    // One billed call (iris's; failed calls are not billed) of 1000.
    assert_eq!(quota["value"], 0.001, "{quota}");
    let cold = state_of(&states, "iris cold loads");
    assert_eq!(cold["state"], "firing", "{cold}");
    assert!(cold["value"].as_f64().unwrap() > 0.0, "{cold}");
    let warm = state_of(&states, "boom cold loads");
    assert_eq!(warm["state"], "no_data", "{warm}");
    assert_eq!(warm["reason"], "no cold starts in the window");
    let drift = state_of(&states, "drift");
    assert_eq!(drift["state"], "no_data");
    assert_eq!(drift["reason"], "the model has no drift reference");
    assert_eq!(drift["value"], Value::Null);
    // The same evaluation time again changes nothing (idempotent per rule and time).
    let again = app.state.alerts.evaluate_at(t1).await.unwrap();
    assert_eq!(again.rules, 0);
    assert_eq!(app.state.alerts.deliver_due(t1 + 30).await.unwrap(), 0);

    let t2 = t1 + 60;
    let fired = app.state.alerts.evaluate_at(t2).await.unwrap();
    assert_eq!(fired.notifications, 1);
    assert_eq!(app.state.alerts.deliver_due(t2).await.unwrap(), 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified, "{:?}", received[0]);
    let firing = received[0].json();
    assert_eq!(firing["type"], "alert.firing");
    assert_eq!(firing["data"]["state"], "firing");
    assert_eq!(firing["data"]["previous_state"], "pending");
    assert_eq!(firing["data"]["value"], 0.8);
    assert_eq!(firing["data"]["threshold"], 0.5);
    assert_eq!(firing["data"]["org"], ORG);
    assert_eq!(firing["data"]["rule"]["id"], rule_id.as_str());
    assert_eq!(
        firing["data"]["link"],
        format!("/v1/orgs/{ORG}/alerts/history?rule={rule_id}")
    );

    // Good traffic brings the rate to 4/25: resolved, notified.
    for _ in 0..20 {
        iris(&app, &admin).await;
    }
    app.state.metering.flush().await.unwrap();
    let t3 = now().max(t2) + 1;
    app.state.alerts.evaluate_at(t3).await.unwrap();
    app.state.alerts.deliver_due(t3).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received[1].verified);
    let resolved = received[1].json();
    assert_eq!(resolved["type"], "alert.resolved");
    assert_eq!(resolved["data"]["state"], "ok");
    assert_eq!(resolved["data"]["value"], 0.16);
    // A message id is unique per message.
    assert_ne!(
        received[0].headers["webhook-id"],
        received[1].headers["webhook-id"]
    );

    let history = app
        .get(
            &format!("/v1/orgs/{ORG}/alerts/history?rule={rule_id}"),
            &admin,
        )
        .await;
    let events: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["resolved", "firing", "pending", "no_data"]);
    let deliveries = app
        .get(&format!("{}/{hook}/deliveries", webhooks_uri(ORG)), &admin)
        .await;
    let log = deliveries.body.as_array().unwrap();
    assert_eq!(log.len(), 2, "{deliveries:?}");
    for entry in log {
        assert_eq!(entry["status"], "delivered");
        assert_eq!(entry["attempts"], 1);
        assert_eq!(entry["response_code"], 200);
        assert_eq!(entry["response_prefix"], "receiver says 200");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_send_is_signed_retried_with_backoff_and_logged() {
    let app = alerting_app(false).await;
    let admin = app.admin().await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &admin, &receiver).await;

    // First attempt: the receiver answers 500; the delivery waits for its retry.
    receiver.script(&[500]);
    let sent = app
        .post(
            &format!("{}/{hook}/test", webhooks_uri(ORG)),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{sent:?}");
    assert_eq!(sent.body["event_type"], "alert.test");
    assert_eq!(sent.body["status"], "pending");
    assert_eq!(sent.body["attempts"], 1);
    assert_eq!(sent.body["response_code"], 500);
    assert_eq!(sent.body["response_prefix"], "receiver says 500");
    assert_eq!(sent.body["error"], "HTTP 500");
    assert!(sent.body["next_retry_at"].is_string(), "{sent:?}");
    let id = sent.body["id"].as_str().unwrap().to_owned();

    // Not due yet (the first retry waits 30 s); then due, delivered.
    let before = now();
    assert_eq!(app.state.alerts.deliver_due(before).await.unwrap(), 0);
    assert_eq!(app.state.alerts.deliver_due(before + 31).await.unwrap(), 1);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.verified));
    assert_eq!(
        received.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 200]
    );
    // The same message both times: same id, same body.
    assert_eq!(received[0].headers["webhook-id"], id.as_str());
    assert_eq!(received[1].headers["webhook-id"], id.as_str());
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(received[1].json()["type"], "alert.test");
    let log = app
        .get(&format!("{}/{hook}/deliveries", webhooks_uri(ORG)), &admin)
        .await;
    let entry = &log.body[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["status"], "delivered");
    assert_eq!(entry["attempts"], 2);
    assert_eq!(entry["response_code"], 200);
    assert_eq!(entry["next_retry_at"], Value::Null);

    // A receiver that always fails: three attempts (the configured maximum), then failed.
    receiver.script(&[503, 503, 503]);
    let sent = app
        .post(
            &format!("{}/{hook}/test", webhooks_uri(ORG)),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(sent.body["status"], "pending");
    let later = now() + 10_000;
    assert_eq!(app.state.alerts.deliver_due(later).await.unwrap(), 1);
    assert_eq!(
        app.state.alerts.deliver_due(later + 10_000).await.unwrap(),
        1
    );
    assert_eq!(
        app.state.alerts.deliver_due(later + 20_000).await.unwrap(),
        0
    );
    let log = app
        .get(&format!("{}/{hook}/deliveries", webhooks_uri(ORG)), &admin)
        .await;
    assert_eq!(log.body[0]["status"], "failed", "{log:?}");
    assert_eq!(log.body[0]["attempts"], 3);
    assert_eq!(log.body[0]["response_code"], 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_rejects_tampered_messages_and_stale_secrets() {
    let app = alerting_app(false).await;
    let admin = app.admin().await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &admin, &receiver).await;
    let sent = app
        .post(
            &format!("{}/{hook}/test", webhooks_uri(ORG)),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(sent.body["status"], "delivered", "{sent:?}");
    let genuine = receiver.received().remove(0);
    assert!(genuine.verified);

    // The same headers with a changed body, or a changed signature: refused.
    let http = reqwest::Client::new();
    let replay = |body: String, signature: String| {
        let mut request = http.post(&receiver.url).body(body);
        for name in ["webhook-id", "webhook-timestamp"] {
            request = request.header(name, genuine.headers[name].to_str().unwrap());
        }
        request.header("webhook-signature", signature).send()
    };
    let signature = genuine.headers["webhook-signature"].to_str().unwrap();
    let tampered_body = genuine.body.replace("alert.test", "alert.firing");
    assert_ne!(tampered_body, genuine.body);
    let answer = replay(tampered_body, signature.to_owned()).await.unwrap();
    assert_eq!(answer.status(), 401);
    let mut flipped = STANDARD
        .decode(signature.strip_prefix("v1,").unwrap())
        .unwrap();
    flipped[0] ^= 1;
    let answer = replay(
        genuine.body.clone(),
        format!("v1,{}", STANDARD.encode(&flipped)),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 401);
    // The untouched message still verifies: the receiver is not refusing everything.
    let answer = replay(genuine.body.clone(), signature.to_owned())
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    // After a rotation the receiver, still on the old secret, refuses wisp's messages; the
    // delivery log shows it, and once the receiver has the new secret the retry succeeds.
    let rotated = app
        .post(
            &format!("{}/{hook}/rotate-secret", webhooks_uri(ORG)),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    let sent = app
        .post(
            &format!("{}/{hook}/test", webhooks_uri(ORG)),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(sent.body["status"], "pending");
    assert_eq!(sent.body["response_code"], 401);
    receiver.trust(&new_secret);
    assert_eq!(app.state.alerts.deliver_due(now() + 60).await.unwrap(), 1);
    let last = receiver.received().pop().unwrap();
    assert!(last.verified);
    // The secret is never shown again.
    let shown = app
        .get(&format!("{}/{hook}", webhooks_uri(ORG)), &admin)
        .await;
    assert_eq!(shown.body["secret"], Value::Null);
    assert_eq!(shown.body["url"], receiver.url.as_str());
}

#[tokio::test]
async fn rule_changes_are_validated_audited_and_need_an_editor() {
    let app = alerting_app(false).await;
    let admin = app.admin().await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &admin, &receiver).await;
    let valid = json!({
        "name": "slow", "model": "iris", "metric": "latency_p99_ms", "comparison": ">=",
        "threshold": 250.0, "window": "5m", "for": "2m", "channels": [hook],
    });
    let invalid = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (invalid("metric", json!("vibes")), "metric"),
        (invalid("comparison", json!("==")), "comparison"),
        (invalid("window", json!("5 minutes")), "window"),
        (invalid("window", json!("30d")), "window"),
        (invalid("for", json!("-1m")), "for"),
        (invalid("name", json!("")), "name"),
        (invalid("channels", json!(["nope"])), "channels"),
        (invalid("feature", json!("age")), "feature"),
        (invalid("metric", json!("feature_drift_score")), "feature"),
        (invalid("metric", json!("quota_use")), "model"),
    ] {
        let reply = app.post(&rules_uri(ORG), &admin, body).await;
        assert_eq!(reply.code(), "invalid_request", "{field}: {reply:?}");
        assert_eq!(reply.body["details"]["field"], field, "{reply:?}");
    }
    let created = app.post(&rules_uri(ORG), &admin, valid.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let duplicate = app.post(&rules_uri(ORG), &admin, valid.clone()).await;
    assert_eq!(duplicate.code(), "already_exists");

    // A viewer reads, but cannot change.
    let viewer = app
        .user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let listed = app.get(&rules_uri(ORG), &viewer).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body[0]["name"], "slow");
    assert_eq!(
        app.post(&rules_uri(ORG), &viewer, valid.clone())
            .await
            .code(),
        "forbidden"
    );
    assert_eq!(
        app.post(&webhooks_uri(ORG), &viewer, json!({ "url": receiver.url }))
            .await
            .code(),
        "forbidden"
    );
    let hooks = app.get(&webhooks_uri(ORG), &viewer).await;
    assert_eq!(hooks.body[0]["id"], hook.as_str());
    assert_eq!(hooks.body[0]["secret"], Value::Null);
    // A member (an editor) changes rules.
    let member = app
        .user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    let mut changed = valid.clone();
    changed["threshold"] = json!(500.0);
    changed["enabled"] = json!(false);
    let replaced = app
        .put(&format!("{}/{id}", rules_uri(ORG)), &member, changed)
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{replaced:?}");
    assert_eq!(replaced.body["threshold"], 500.0);
    assert_eq!(replaced.body["enabled"], false);

    // Deleting the webhook takes it out of the rule.
    let deleted = app
        .call(
            Method::DELETE,
            &format!("{}/{hook}", webhooks_uri(ORG)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let rule = app.get(&format!("{}/{id}", rules_uri(ORG)), &admin).await;
    assert_eq!(rule.body["channels"], json!([]));
    let deleted = app
        .call(
            Method::DELETE,
            &format!("{}/{id}", rules_uri(ORG)),
            Some(&member),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let audit = app
        .get(&format!("/v1/orgs/{ORG}/audit?limit=50"), &admin)
        .await;
    let actions: Vec<&str> = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| a.starts_with("alert."))
        .collect();
    assert_eq!(
        actions,
        [
            "alert.rule.deleted",
            "alert.webhook.deleted",
            "alert.rule.updated",
            "alert.rule.updated",
            "alert.rule.created",
            "alert.webhook.created",
        ],
        "{audit:?}"
    );
    let entries = audit.body["entries"].as_array().unwrap();
    let created_entry = entries
        .iter()
        .find(|e| e["action"] == "alert.rule.created")
        .unwrap();
    assert_eq!(created_entry["target"], format!("alert_rule:{id}"));
    assert_eq!(created_entry["details"]["threshold"], 250.0);
    assert!(!audit.body.to_string().contains("whsec_"));
}

#[tokio::test]
async fn webhook_targets_must_be_http_and_public_by_default() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    for url in [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http://127.0.0.1:9000/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
    ] {
        let reply = app
            .post(&webhooks_uri(ORG), &admin, json!({ "url": url }))
            .await;
        assert_eq!(reply.code(), "invalid_request", "{url}: {reply:?}");
        assert_eq!(reply.body["details"]["field"], "url");
    }
    // A name is checked where it resolves, when sending: `localhost` is accepted as a
    // URL, but the test send is refused at connection time.
    let created = app
        .post(
            &webhooks_uri(ORG),
            &admin,
            json!({ "url": "http://localhost:9/hook" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap();
    let sent = app
        .post(
            &format!("{}/{id}/test", webhooks_uri(ORG)),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(sent.body["status"], "pending", "{sent:?}");
    assert_eq!(sent.body["response_code"], Value::Null);
    let error = sent.body["error"].as_str().unwrap();
    assert!(error.contains("no public address"), "{error}");
}

#[tokio::test]
async fn another_orgs_rules_and_webhooks_are_not_found() {
    let app = alerting_app(false).await;
    let alice = app.admin().await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &alice, &receiver).await;
    let rule = app
        .post(
            &rules_uri(ORG),
            &alice,
            json!({ "name": "errors", "metric": "error_rate", "comparison": ">",
                    "threshold": 0.1, "window": "5m", "channels": [hook] }),
        )
        .await;
    let rule_id = rule.body["id"].as_str().unwrap().to_owned();

    let mallory = app
        .user_with_role(&alice, ORG, "mallory@example.com", "viewer")
        .await;
    app.org(&mallory, "evil").await;
    let mallory_id = app.get("/v1/me", &mallory).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::DELETE,
        &format!("/v1/orgs/{ORG}/members/{mallory_id}"),
        Some(&alice),
        None,
    )
    .await;

    // Through her own organisation, acme's ids are unknown.
    let evil_rule = format!("{}/{rule_id}", rules_uri("evil"));
    let evil_hook = format!("{}/{hook}", webhooks_uri("evil"));
    for (method, uri, body) in [
        (Method::GET, evil_rule.clone(), None),
        (
            Method::PUT,
            evil_rule.clone(),
            Some(
                json!({ "name": "x", "metric": "error_rate", "comparison": ">",
                         "threshold": 0.1, "window": "5m" }),
            ),
        ),
        (Method::DELETE, evil_rule.clone(), None),
        (Method::GET, evil_hook.clone(), None),
        (
            Method::PUT,
            evil_hook.clone(),
            Some(json!({ "url": "http://127.0.0.1:1/x" })),
        ),
        (Method::DELETE, evil_hook.clone(), None),
        (Method::POST, format!("{evil_hook}/test"), Some(json!({}))),
        (
            Method::POST,
            format!("{evil_hook}/rotate-secret"),
            Some(json!({})),
        ),
        (Method::GET, format!("{evil_hook}/deliveries"), None),
    ] {
        let reply = app.call(method.clone(), &uri, Some(&mallory), body).await;
        assert_eq!(reply.code(), "not_found", "{method} {uri}: {reply:?}");
    }
    // Nor can her rules notify acme's webhook, nor does she see acme's rules or history.
    let borrowed = app
        .post(
            &rules_uri("evil"),
            &mallory,
            json!({ "name": "x", "metric": "error_rate", "comparison": ">",
                    "threshold": 0.1, "window": "5m", "channels": [hook] }),
        )
        .await;
    assert_eq!(borrowed.code(), "invalid_request", "{borrowed:?}");
    assert_eq!(borrowed.body["details"]["field"], "channels");
    for uri in [
        rules_uri("evil"),
        webhooks_uri("evil"),
        "/v1/orgs/evil/alerts".to_owned(),
        "/v1/orgs/evil/alerts/history".to_owned(),
    ] {
        let reply = app.get(&uri, &mallory).await;
        assert_eq!(reply.body, json!([]), "{uri}: {reply:?}");
    }
    // And acme's own paths are closed to her.
    let reply = app.get(&rules_uri(ORG), &mallory).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
    // Acme's rule is untouched.
    let still = app
        .get(&format!("{}/{rule_id}", rules_uri(ORG)), &alice)
        .await;
    assert_eq!(still.body["channels"], json!([hook]));
}

#[tokio::test]
async fn the_alert_api_is_in_the_openapi_document() {
    let app = TestApp::new().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    for path in [
        "/v1/orgs/{org}/alerts",
        "/v1/orgs/{org}/alerts/history",
        "/v1/orgs/{org}/alerts/rules",
        "/v1/orgs/{org}/alerts/rules/{rule_id}",
        "/v1/orgs/{org}/alerts/webhooks",
        "/v1/orgs/{org}/alerts/webhooks/{webhook_id}",
        "/v1/orgs/{org}/alerts/webhooks/{webhook_id}/rotate-secret",
        "/v1/orgs/{org}/alerts/webhooks/{webhook_id}/deliveries",
        "/v1/orgs/{org}/alerts/webhooks/{webhook_id}/test",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path}");
    }
    let schemas = &doc.body["components"]["schemas"];
    for schema in [
        "AlertRule",
        "AlertHistoryEntry",
        "HistoryEntry",
        "Delivery",
        "Webhook",
    ] {
        assert!(schemas[schema].is_object(), "{schema}");
    }
    // The deployments' history keeps its own schema.
    assert!(schemas["HistoryEntry"]["properties"]["version"].is_object());
}
