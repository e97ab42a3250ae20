//! End-to-end: `kill -9` the real `wisp serve` in the middle of a load; after a restart the
//! recorded usage matches what the clients were told, none lost and none doubled.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::server::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp::db::{Db, DbLocation};

const ORG: &str = "team";
const CLIENTS: usize = 8;
/// Successful calls to wait for before the kill.
const BEFORE_KILL: usize = 150;

enum Outcome {
    /// `200`, with the usage event id of the call.
    Billed(String),
    /// The connection failed: the call may or may not have run.
    Unknown,
}

async fn predict(http: &reqwest::Client, base: &str, key: &str, idempotency: &str) -> Outcome {
    let sent = http
        .post(format!("{base}/v1/orgs/{ORG}/models/iris/predict"))
        .bearer_auth(key)
        .header("idempotency-key", idempotency)
        .json(&json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }))
        .send()
        .await;
    let Ok(response) = sent else {
        return Outcome::Unknown;
    };
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["wisp-usage-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    // A body cut off by the kill: the call ran, the client cannot know it succeeded.
    match response.bytes().await {
        Ok(_) => Outcome::Billed(id),
        Err(_) => Outcome::Unknown,
    }
}

async fn billed_calls(http: &reqwest::Client, base: &str, token: &str) -> u64 {
    let usage: Value = http
        .get(format!("{base}/v1/orgs/{ORG}/usage"))
        .bearer_auth(token)
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json");
    usage["totals"]["billed_calls"].as_u64().expect("billed")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_load_loses_no_billed_call_and_doubles_none() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = start(with_admin(data.path(), port, ORG), port).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let token = login(&base).await;
    let key = deploy_iris_with_predict_key(&base, &token, ORG).await;

    // Clients call until their connection fails; each call has its own idempotency key.
    let successes = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            let (successes, dead) = (Arc::clone(&successes), Arc::clone(&dead));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0.. {
                    let idempotency = format!("c{client}-{n}");
                    let outcome = predict(&http, &base, &key, &idempotency).await;
                    let unknown = matches!(outcome, Outcome::Unknown);
                    if !unknown {
                        successes.fetch_add(1, Ordering::SeqCst);
                    }
                    outcomes.push((idempotency, outcome));
                    if unknown || dead.load(Ordering::SeqCst) {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect();
    while successes.load(Ordering::SeqCst) < BEFORE_KILL {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    dead.store(true, Ordering::SeqCst);
    let mut billed = HashMap::new();
    let mut unknown = Vec::new();
    for client in clients {
        for (idempotency, outcome) in client.await.expect("client") {
            match outcome {
                Outcome::Billed(id) => {
                    billed.insert(idempotency, id);
                }
                Outcome::Unknown => unknown.push(idempotency),
            }
        }
    }
    assert!(billed.len() >= BEFORE_KILL);

    // Restarted on the same data: the outbox is replayed before the first request.
    let port = free_port();
    let mut server = start(wisp(data.path(), port), port).await;
    let base = server.base.clone();
    let token = login(&base).await;
    let recorded = billed_calls(&http, &base, &token).await;
    let seen = billed.len() as u64;
    eprintln!(
        "after kill -9: {recorded} recorded, {seen} answered, {} cut off",
        unknown.len()
    );
    assert!(
        recorded >= seen,
        "lost calls: {recorded} recorded, {seen} answered"
    );
    assert!(
        recorded <= seen + unknown.len() as u64,
        "{recorded} recorded, {seen} answered, {} in flight",
        unknown.len()
    );
    // The calls cut off by the kill, retried with their keys, never run twice: a key whose
    // response was stored replays it (the same usage event), and a key whose call was in
    // flight stays held (`409 idempotency_conflict`, `in_progress`) until its lease ends.
    for idempotency in &unknown {
        let retried = http
            .post(format!("{base}/v1/orgs/{ORG}/models/iris/predict"))
            .bearer_auth(&key)
            .header("idempotency-key", idempotency)
            .json(&json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }))
            .send()
            .await
            .expect("the restarted server answers");
        match retried.status() {
            StatusCode::OK => {
                let id = retried.headers()["wisp-usage-id"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                billed.insert(idempotency.clone(), id);
            }
            StatusCode::CONFLICT => {
                let body: Value = retried.json().await.expect("json");
                assert_eq!(body["code"], "idempotency_conflict", "{body}");
            }
            other => panic!("a retried call answered {other}"),
        }
    }
    // A retry whose first try never reached the server runs now, once; none runs twice.
    let after_retries = billed_calls(&http, &base, &token).await;
    assert!(
        after_retries >= billed.len() as u64,
        "lost calls: {after_retries} recorded, {} answered",
        billed.len()
    );
    assert!(
        after_retries <= seen + unknown.len() as u64,
        "a key billed twice: {after_retries} recorded for {} keys",
        seen + unknown.len() as u64
    );
    assert_eq!(terminate(&mut server).code(), Some(0));

    // And they are the very events the clients were told about.
    let db = Db::open(&DbLocation::File(data.path().join("wisp.db")))
        .await
        .expect("open the database");
    let conn = db.write().await;
    let mut rows = conn
        .query("SELECT id FROM usage_events WHERE outcome = 'ok'", ())
        .await
        .expect("events");
    let mut stored = std::collections::HashSet::new();
    while let Some(row) = rows.next().await.expect("row") {
        stored.insert(row.get::<String>(0).expect("id"));
    }
    let told: std::collections::HashSet<String> = billed.into_values().collect();
    assert!(
        told.is_subset(&stored),
        "answered calls missing from the usage events"
    );
}
