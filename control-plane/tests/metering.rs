//! Metering is exact: every call clients saw is billed once, whatever the protocol, the
//! outcome or the concurrency; quotas admit exactly their limit; retries with the same
//! `Idempotency-Key` count once; usage, exports and invoices add up.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use wisp::metering::{CallSubject, Caller, Variant};
use wisp::plans::{self, Overrides};
use wisp_test_artifacts::{component, components};

const ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

fn predict_uri(model: &str) -> String {
    format!("/v1/orgs/{ORG}/models/{model}/predict")
}

/// One call of `kind` (0: simple predict, 1: V2, 2: KServe V1, 3: a failing model) as the
/// holder of `key`. Returns the status the client saw.
async fn call(app: &TestApp, key: &str, kind: usize) -> StatusCode {
    let (uri, body) = match kind {
        0 => (predict_uri("iris"), json!({ "inputs": { "input": [ROW] } })),
        1 => (
            "/v2/models/iris/infer".to_owned(),
            json!({ "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW }] }),
        ),
        2 => (
            "/v1/models/iris:predict".to_owned(),
            json!({ "instances": [ROW] }),
        ),
        _ => (predict_uri("boom"), json!({ "inputs": {} })),
    };
    app.post(&uri, key, body).await.status
}

async fn usage(app: &TestApp, token: &str) -> Value {
    let reply = app.get(&format!("/v1/orgs/{ORG}/usage"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body
}

async fn deploy_component(app: &TestApp, token: &str, name: &str, guest: &str) {
    app.model(token, ORG, name).await;
    let upload = app.upload(ORG, name, token, component(guest)).await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/{name}/deployment"),
            token,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_mixing_protocols_failures_and_cache_hits_are_billed_exactly() {
    let app = Arc::new(TestApp::serving().await);
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    deploy_component(&app, &admin, "boom", components::PANICKER).await;
    let (key_id, key) = app.api_key(&admin, ORG, &["predict"]).await;

    const CALLS: usize = 160;
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let (app, key) = (Arc::clone(&app), key.clone());
            tokio::spawn(async move { (i % 4, call(&app, &key, i % 4).await) })
        })
        .collect();
    // Cache hits, as the result cache records them: admitted, then finished with a stored
    // result and no compute.
    let (org_id, model_id) = {
        let conn = app.state.db.write().await;
        let row = conn
            .query(
                "SELECT o.id, m.id FROM orgs o JOIN models m ON m.org_id = o.id
                 WHERE o.slug = ?1 AND m.name = 'iris'",
                [ORG],
            )
            .await
            .unwrap()
            .next()
            .await
            .unwrap()
            .unwrap();
        (row.get::<String>(0).unwrap(), row.get::<String>(1).unwrap())
    };
    const HITS: u64 = 24;
    let plan = plans::of_org(&*app.state.db.write().await, &org_id)
        .await
        .unwrap();
    let hits: Vec<_> = (0..HITS)
        .map(|_| {
            let (app, plan, org_id, model_id, key_id) = (
                Arc::clone(&app),
                plan.clone(),
                org_id.clone(),
                model_id.clone(),
                key_id.clone(),
            );
            tokio::spawn(async move {
                let subject = CallSubject {
                    org_id: &org_id,
                    model_id: &model_id,
                    model_name: "iris",
                    version: 1,
                    variant: Variant::Primary,
                };
                let call = app
                    .state
                    .metering
                    .admit(Caller::ApiKey(key_id), subject, &plan)
                    .await
                    .expect("admitted");
                call.finish(Ok(()), None, true).await.expect("recorded");
            })
        })
        .collect();
    let mut seen = [[0u64; 2]; 4];
    for task in tasks {
        let (kind, status) = task.await.unwrap();
        seen[kind][usize::from(status != StatusCode::OK)] += 1;
    }
    for hit in hits {
        hit.await.unwrap();
    }
    // Every iris call succeeded, every boom call failed: what the clients saw.
    assert_eq!(seen[0], [40, 0]);
    assert_eq!(seen[1], [40, 0]);
    assert_eq!(seen[2], [40, 0]);
    assert_eq!(seen[3], [0, 40]);

    let report = usage(&app, &admin).await;
    let totals = &report["totals"];
    assert_eq!(totals["calls"], CALLS as u64 + HITS, "{report}");
    assert_eq!(totals["billed_calls"], 120 + HITS, "{report}");
    assert_eq!(totals["failed_calls"], 40, "{report}");
    assert_eq!(totals["cache_hits"], HITS, "{report}");
    assert!(totals["compute_units"].as_u64().unwrap() > 0);
    let by_model: Vec<_> = report["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["calls"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_model, [("boom", 40), ("iris", 120 + HITS)]);
    assert_eq!(report["by_caller"][0]["name"], format!("key:{key_id}"));
    assert_eq!(report["by_caller"][0]["calls"], CALLS as u64 + HITS);
    // The caller is named as people know it: the key's name and the start of its secret.
    let label = report["by_caller"][0]["label"].as_str().expect("label");
    assert!(label.starts_with("test key (wisp_"), "{label}");
    assert!(
        key.starts_with(label["test key (".len()..].trim_end_matches("…)")),
        "{label}"
    );
    let series: u64 = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(series, CALLS as u64 + HITS);

    // Exports say the same, hour by hour.
    let rows = app
        .get(&format!("/v1/orgs/{ORG}/usage/export"), &admin)
        .await;
    let billed: u64 = rows
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["billed_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(billed, 120 + HITS);
    let csv = app
        .get(&format!("/v1/orgs/{ORG}/usage/export?format=csv"), &admin)
        .await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let text = csv.body.as_str().unwrap();
    assert!(
        text.starts_with("hour,model,caller,calls,billed_calls"),
        "{text}"
    );
    let meter = app
        .get(&format!("/v1/orgs/{ORG}/usage/stripe-meter-events"), &admin)
        .await;
    let calls: u64 = meter
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_name"] == "wisp_calls")
        .map(|e| {
            e["payload"]["value"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(calls, 120 + HITS);
    let id = meter.body[0]["identifier"].as_str().unwrap();
    assert!(id.starts_with(&format!("{org_id}:calls:")), "{id}");
    let again = app
        .get(&format!("/v1/orgs/{ORG}/usage/stripe-meter-events"), &admin)
        .await;
    assert_eq!(again.body, meter.body, "identifiers are deterministic");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_1000_call_quota_exactly_1000_of_50_concurrent_clients_calls_succeed() {
    let app = Arc::new(TestApp::serving().await);
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    {
        let conn = app.state.db.write().await;
        let org_id: String = conn
            .query("SELECT id FROM orgs WHERE slug = ?1", [ORG])
            .await
            .unwrap()
            .next()
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        plans::set_overrides(
            &conn,
            &org_id,
            &Overrides {
                calls_per_month: Some(1_000),
                ..Overrides::default()
            },
        )
        .await
        .unwrap();
    }
    const CLIENTS: usize = 50;
    const EACH: usize = 22;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (app, key) = (Arc::clone(&app), key.clone());
            tokio::spawn(async move {
                let mut replies = Vec::new();
                for _ in 0..EACH {
                    replies.push(
                        app.post(
                            &predict_uri("iris"),
                            &key,
                            json!({ "inputs": { "input": [ROW] } }),
                        )
                        .await,
                    );
                }
                replies
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = Vec::new();
    let mut warned = 0;
    for client in clients {
        for reply in client.await.unwrap() {
            match reply.status {
                StatusCode::OK => {
                    ok += 1;
                    warned += usize::from(reply.headers.contains_key("wisp-quota-warning"));
                }
                _ => refused.push(reply),
            }
        }
    }
    assert_eq!(ok, 1_000);
    assert_eq!(refused.len(), CLIENTS * EACH - 1_000);
    // The soft limit (80 %) warned from the 800th billed call on.
    assert_eq!(warned, 201);
    let first = &refused[0];
    assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS, "{first:?}");
    assert_eq!(first.code(), "quota_exceeded");
    assert_eq!(first.body["details"]["quota"], "calls_per_month");
    assert_eq!(first.body["details"]["limit"], 1_000);
    // Calls still running hold their slots: a refusal may come before all are billed.
    assert!(first.body["details"]["used"].as_u64().unwrap() <= 1_000);
    assert!(
        first.body["details"]["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00Z")
    );
    assert!(first.headers.contains_key("retry-after"));
    // V2 clients get the same refusal in their format.
    let v2 = app
        .post(
            "/v2/models/iris/infer",
            &key,
            json!({ "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW }] }),
        )
        .await;
    assert_eq!(v2.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        v2.body["error"].as_str().unwrap().contains("quota"),
        "{v2:?}"
    );

    let report = usage(&app, &admin).await;
    assert_eq!(report["totals"]["billed_calls"], 1_000);
    // Refusals are recorded too, unbilled.
    assert_eq!(report["totals"]["calls"], (CLIENTS * EACH + 1) as u64);
    let calls = &report["quotas"][0];
    assert_eq!(calls["quota"], "calls_per_month");
    assert_eq!(
        (calls["limit"].clone(), calls["used"].clone()),
        (json!(1_000), json!(1_000))
    );
    assert!(calls["warning"].as_str().unwrap().contains("1000/1000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_with_the_same_idempotency_key_is_billed_once() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    let send = |idempotency: &'static str| {
        let request = axum::http::Request::builder()
            .method(Method::POST)
            .uri(predict_uri("iris"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency)
            .body(axum::body::Body::from(
                json!({ "inputs": { "input": [ROW] } }).to_string(),
            ))
            .unwrap();
        app.send(request)
    };
    let first = send("order-42").await;
    let retry = send("order-42").await;
    let other = send("order-43").await;
    for reply in [&first, &retry, &other] {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let id = |r: &Reply| r.headers["wisp-usage-id"].to_str().unwrap().to_owned();
    assert_eq!(id(&first), id(&retry));
    assert_ne!(id(&first), id(&other));
    let report = usage(&app, &admin).await;
    assert_eq!(report["totals"]["billed_calls"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_free_plan_allows_one_model_and_invoices_nothing() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.org(&admin, "tiny").await;
    let first = app
        .post("/v1/orgs/tiny/models", &admin, json!({ "name": "a" }))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = app
        .post("/v1/orgs/tiny/models", &admin, json!({ "name": "b" }))
        .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{second:?}");
    assert_eq!(second.code(), "quota_exceeded");
    assert_eq!(second.body["details"]["quota"], "models");
    assert_eq!(second.body["details"]["resets_at"], Value::Null);

    let preview = app
        .get("/v1/orgs/tiny/billing/invoice-preview", &admin)
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{preview:?}");
    assert_eq!(preview.body["status"], "preview");
    assert_eq!(preview.body["plan"], "free");
    assert_eq!(preview.body["total_micros"], 0);
    let kinds: Vec<_> = preview.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["plan_fee", "calls", "compute_units", "storage"]);
    let report = app.get("/v1/orgs/tiny/usage", &admin).await;
    assert_eq!(report.body["plan"]["quotas"]["calls_per_month"], 1_000);
    assert_eq!(report.body["quotas"][1]["used"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_periods_get_final_invoices_once() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let now = wisp::db::now();
    let this_month = wisp::metering::period::Period::containing(now);
    let last_month = this_month.previous();
    let org_id: String = {
        let conn = app.state.db.write().await;
        // The organisation has existed since two months ago.
        conn.execute(
            "UPDATE orgs SET created_at = ?1 WHERE slug = ?2",
            libsql::params![last_month.previous().start, ORG],
        )
        .await
        .unwrap();
        conn.query("SELECT id FROM orgs WHERE slug = ?1", [ORG])
            .await
            .unwrap()
            .next()
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap()
    };
    // 2,500 billed calls of 1,000 CU each last month, stored as the drainer stores them.
    let events: Vec<_> = (0..2_500)
        .map(|i| wisp::metering::UsageEvent {
            id: format!("past-{i}"),
            org_id: org_id.clone(),
            caller: Caller::User("u".into()),
            model_id: "m".into(),
            model_name: "iris".into(),
            version: 1,
            variant: Variant::Primary,
            outcome: "ok".into(),
            cache_hit: false,
            compute_units: 1_000,
            fuel: 1_000_000,
            wall_us: 10,
            inference_us: 0,
            peak_memory_bytes: 0,
            bytes_in: 0,
            bytes_out: 0,
            at_ms: (last_month.start + 3_600) * 1_000 + i,
            cold_start: false,
            cold_load_us: 0,
        })
        .collect();
    wisp::metering::store::insert(&*app.state.db.write().await, &events)
        .await
        .unwrap();

    let invoices = app
        .get(&format!("/v1/orgs/{ORG}/billing/invoices"), &admin)
        .await;
    assert_eq!(invoices.status, StatusCode::OK, "{invoices:?}");
    let list = invoices.body.as_array().unwrap();
    assert_eq!(list.len(), 2, "the two closed months: {list:?}");
    let last = &list[0];
    assert_eq!(last["period"], last_month.label());
    assert_eq!(last["status"], "final");
    assert_eq!(last["plan"], "enterprise");
    let line = |kind: &str| {
        last["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == kind)
            .unwrap()
            .clone()
    };
    assert_eq!(line("calls")["quantity"], 2_500.0);
    // Enterprise: $0.20 per 1,000 calls, $0.01 per million CU, $499 a month.
    assert_eq!(line("calls")["amount_micros"], 500_000);
    assert_eq!(line("compute_units")["amount_micros"], 25_000);
    assert_eq!(last["total_micros"], 499_000_000 + 500_000 + 25_000);
    assert_eq!(list[1]["lines"][1]["quantity"], 0.0);

    // A late event for a closed period does not change its invoice.
    let mut late = events[0].clone();
    late.id = "late".into();
    wisp::metering::store::insert(&*app.state.db.write().await, &[late])
        .await
        .unwrap();
    let again = app
        .get(&format!("/v1/orgs/{ORG}/billing/invoices"), &admin)
        .await;
    assert_eq!(again.body, invoices.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_is_for_admins_only() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let member = app
        .user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    let (_, predict_key) = app.api_key(&admin, ORG, &["predict"]).await;
    for token in [&member, &predict_key] {
        let reply = app.get(&format!("/v1/orgs/{ORG}/usage"), token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    }
    let bad = app
        .get(&format!("/v1/orgs/{ORG}/usage?period=2026-13"), &admin)
        .await;
    assert_eq!(bad.code(), "invalid_request");
}
