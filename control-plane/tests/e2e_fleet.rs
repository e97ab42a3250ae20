//! End-to-end: two or three `wisp serve` nodes as separate processes on one real `sqld`,
//! sharing a blob directory and a JWT secret, act as one fleet: a key revoked, a model
//! redeployed or a member's role changed on one node holds on the others within the
//! invalidation bound; the monthly calls quota is exact across nodes; a batch job of a node
//! killed with SIGKILL is taken over by another and completes with every row once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::*;
use common::sqld::Sqld;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_test_artifacts::fixture;

const ORG: &str = "team";
const SECRET: &str = "a fleet-wide jwt secret of at least 32 bytes";
const IRIS_ROW: &str = r#"{"inputs": {"input": [[5.1, 3.5, 1.4, 0.2]]}}"#;

/// Everything the nodes share: the database server and the blob directory.
struct Fleet {
    sqld: Sqld,
    shared: tempfile::TempDir,
}

impl Fleet {
    async fn new() -> Self {
        Self {
            sqld: Sqld::start().await,
            shared: tempfile::tempdir().expect("shared dir"),
        }
    }

    /// A node with its own data directory (`name`) and `extra` configuration.
    fn node(&self, name: &str, port: u16, extra: &str) -> Command {
        let data = self.shared.path().join(name);
        std::fs::create_dir_all(&data).expect("node dir");
        let config = data.join("wisp.toml");
        let blobs = self.shared.path().join("blobs");
        std::fs::write(
            &config,
            format!(
                "[object_store]\nkind = \"local\"\npath = {blobs:?}\n\n[fleet]\ninvalidation_poll_ms = 100\n\n{extra}"
            ),
        )
        .expect("config");
        let mut command = with_admin(&data, port, ORG);
        command
            .env("WISP_CONFIG", &config)
            .env("WISP_DATABASE_URL", self.sqld.url())
            .env("WISP_JWT_SECRET", SECRET)
            .env("WISP_PLATFORM_OPERATORS", OPS_EMAIL)
            .env("WISP_METRICS_LISTEN", "");
        command
    }

    async fn start(&self, name: &str, extra: &str) -> Server {
        let port = free_port();
        start(self.node(name, port, extra), port).await
    }
}

fn url(base: &str, path: &str) -> String {
    format!("{base}/v1/orgs/{ORG}{path}")
}

async fn predict(base: &str, secret: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url(base, "/models/iris/predict"))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body(IRIS_ROW)
        .send()
        .await
        .expect("predict")
}

/// Waits until `done` holds (a change made on another node arrives within the fleet's
/// invalidation bound; the deadline only keeps a broken build from hanging).
async fn eventually(what: &str, done: impl AsyncFnMut() -> bool) {
    eventually_within(Duration::from_secs(30), what, done).await;
}

/// [`eventually`], for work that takes a while (a batch job on a debug build).
async fn eventually_within(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_deployments_and_roles_changed_on_one_node_hold_on_the_others() {
    let fleet = Fleet::new().await;
    let a = fleet.start("a", "").await;
    let b = fleet.start("b", "").await;
    let http = reqwest::Client::new();
    let token = login(&a.base).await;
    let secret = deploy_iris_with_predict_key(&a.base, &token, ORG).await;

    // B serves what A deployed, with A's key; and caches its results.
    let cached = http
        .put(url(&a.base, "/models/iris/deployment"))
        .bearer_auth(&token)
        .json(&json!({ "version": 1, "wait": true, "cache_ttl_secs": 3600 }))
        .send()
        .await
        .expect("cache");
    assert_eq!(cached.status(), StatusCode::OK);
    eventually("B caches iris's results", async || {
        let first = predict(&b.base, &secret).await;
        first.status() == StatusCode::OK
            && predict(&b.base, &secret).await.headers()["x-wisp-cache"] == "hit"
    })
    .await;

    // Redeployed on A (a new version): B no longer answers the old version's cached result.
    let uploaded = http
        .post(url(&a.base, "/models/iris/versions"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(fixture("iris_logreg.onnx"))
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let redeployed = http
        .put(url(&a.base, "/models/iris/deployment"))
        .bearer_auth(&token)
        .json(&json!({ "version": 2, "wait": true, "cache_ttl_secs": 3600 }))
        .send()
        .await
        .expect("redeploy");
    assert_eq!(redeployed.status(), StatusCode::OK);
    eventually("B answers version 2", async || {
        let response = predict(&b.base, &secret).await;
        let cache = response.headers()["x-wisp-cache"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        body["version"] == 2 && cache != "hit"
    })
    .await;

    // A member's role changed on A: B enforces the new one.
    let invited: Value = http
        .post(url(&a.base, "/members"))
        .bearer_auth(&token)
        .json(&json!({ "email": "dev@example.com", "role": "admin" }))
        .send()
        .await
        .expect("invite")
        .json()
        .await
        .expect("json");
    let accepted: Value = http
        .post(format!("{}/v1/invitations/accept", b.base))
        .json(&json!({ "token": invited["token"], "password": "another long password" }))
        .send()
        .await
        .expect("accept")
        .json()
        .await
        .expect("json");
    let dev = accepted["session"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{accepted}"))
        .to_owned();
    let user_id = accepted["user_id"].as_str().expect("user id").to_owned();
    let create_model = async |base: &str, name: &str| {
        http.post(url(base, "/models"))
            .bearer_auth(&dev)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("create model")
            .status()
    };
    assert_eq!(create_model(&b.base, "by-admin").await, StatusCode::CREATED);
    let demoted = http
        .patch(url(&a.base, &format!("/members/{user_id}")))
        .bearer_auth(&token)
        .json(&json!({ "role": "viewer" }))
        .send()
        .await
        .expect("demote");
    assert_eq!(demoted.status(), StatusCode::OK);
    eventually("B refuses the viewer a change", async || {
        create_model(&b.base, "by-viewer").await == StatusCode::FORBIDDEN
    })
    .await;

    // The key revoked on A: refused by B.
    let keys: Value = http
        .get(url(&a.base, "/api-keys"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let key_id = keys
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["name"] == "load"))
        .and_then(|k| k["id"].as_str())
        .unwrap_or_else(|| panic!("{keys}"))
        .to_owned();
    let revoked = http
        .delete(url(&a.base, &format!("/api-keys/{key_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert!(revoked.status().is_success(), "{}", revoked.status());
    eventually("B refuses the revoked key", async || {
        predict(&b.base, &secret).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_calls_quota_is_exact_across_three_nodes() {
    const QUOTA: u64 = 40;
    let fleet = Fleet::new().await;
    let first = fleet.start("a", "").await;
    let token = login(&first.base).await;
    let secret = deploy_iris_with_predict_key(&first.base, &token, ORG).await;
    let quota = reqwest::Client::new()
        .put(format!("{}/v1/platform/orgs/{ORG}/plan", first.base))
        .bearer_auth(&token)
        .json(&json!({ "overrides": { "calls_per_month": QUOTA } }))
        .send()
        .await
        .expect("override");
    assert_eq!(quota.status(), StatusCode::OK);
    let nodes = [
        first,
        fleet.start("b", "").await,
        fleet.start("c", "").await,
    ];

    // Three times the quota, from every node at once.
    let calls: Vec<_> = (0..3 * QUOTA as usize)
        .map(|i| {
            let base = nodes[i % 3].base.clone();
            let secret = secret.clone();
            tokio::spawn(async move { code(predict(&base, &secret).await).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.expect("call") {
            (StatusCode::OK, _) => ok += 1,
            (StatusCode::TOO_MANY_REQUESTS, code) if code == "quota_exceeded" => {}
            (StatusCode::TOO_MANY_REQUESTS, code) if code == "rate_limited" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // Rate limits may have refused some: keep calling until every node refuses.
    for node in nodes.iter().cycle().take(30 * 3) {
        match code(predict(&node.base, &secret).await).await {
            (StatusCode::OK, _) => ok += 1,
            (_, code) if code == "rate_limited" => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            (StatusCode::TOO_MANY_REQUESTS, code) if code == "quota_exceeded" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(ok, QUOTA, "exactly the quota, whichever node served");
}

/// An NDJSON input of `rows` iris rows.
fn input(rows: usize) -> String {
    let mut text = String::new();
    for i in 0..rows {
        let x = 4.0 + (i % 30) as f64 / 10.0;
        text.push_str(&json!({ "input": [x, 3.0, 1.4, 0.2] }).to_string());
        text.push('\n');
    }
    text
}

async fn job(base: &str, token: &str, id: &str) -> Value {
    reqwest::Client::new()
        .get(url(base, &format!("/batch-jobs/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("job")
        .json()
        .await
        .expect("json")
}

fn kill_9(server: &mut Server) {
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_job_of_a_killed_node_is_taken_over_and_completed_once() {
    const ROWS: usize = 3000;
    // Short leases (taken over soon after the kill), small chunks and few rows in flight (a
    // job long enough to be caught mid-way).
    let batch = "[batch]\nlease_ms = 1500\nchunk_rows = 16\nrow_concurrency = 2\n";
    let fleet = Fleet::new().await;
    let mut a = fleet.start("a", batch).await;
    let token = login(&a.base).await;
    deploy_iris_with_predict_key(&a.base, &token, ORG).await;
    let created: Value = reqwest::Client::new()
        .post(url(&a.base, "/batch-jobs?model=iris"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(input(ROWS))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("job id").to_owned();
    // Running on A (it is the only node), some chunks done.
    eventually("A runs the job", async || {
        job(&a.base, &token, &id).await["rows_done"].as_u64() > Some(0)
    })
    .await;
    // B joins while A holds the lease: it must leave the job to A.
    let b = fleet.start("b", batch).await;
    let before = job(&b.base, &token, &id).await;
    assert_eq!(before["status"], "running", "{before}");
    assert!(
        before["rows_done"].as_u64().unwrap() < ROWS as u64,
        "make the job longer"
    );
    kill_9(&mut a);
    let done_at_kill = job(&b.base, &token, &id).await["rows_done"]
        .as_u64()
        .unwrap();

    let mut finished = Value::Null;
    eventually_within(
        Duration::from_secs(300),
        "B completes the job",
        async || {
            finished = job(&b.base, &token, &id).await;
            finished["status"] != "running" && finished["status"] != "queued"
        },
    )
    .await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["rows_done"], ROWS);
    assert!(
        done_at_kill < ROWS as u64,
        "B took over a job A had not finished"
    );
    let results = reqwest::Client::new()
        .get(url(&b.base, &format!("/batch-jobs/{id}/results")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("results")
        .text()
        .await
        .expect("text");
    let lines: Vec<Value> = results
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    assert_eq!(lines.len(), ROWS, "one line per row");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["row"], i, "every row once, in order");
        assert!(line.get("outputs").is_some(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_stop_gives_back_its_quota_blocks_to_the_other_nodes() {
    let fleet = Fleet::new().await;
    let mut a = fleet.start("a", "").await;
    let token = login(&a.base).await;
    let secret = deploy_iris_with_predict_key(&a.base, &token, ORG).await;
    let quota = reqwest::Client::new()
        .put(format!("{}/v1/platform/orgs/{ORG}/plan", a.base))
        .bearer_auth(&token)
        .json(&json!({ "overrides": { "calls_per_month": 100 } }))
        .send()
        .await
        .expect("override");
    assert_eq!(quota.status(), StatusCode::OK);
    // One call: A claims a block (a quarter of what is left) and holds the rest of it.
    assert_eq!(predict(&a.base, &secret).await.status(), StatusCode::OK);
    assert!(terminate(&mut a).success());
    // B, alone now, gets the other 99.
    let b = fleet.start("b", "").await;
    let mut ok = 0;
    loop {
        match code(predict(&b.base, &secret).await).await {
            (StatusCode::OK, _) => ok += 1,
            (_, code) if code == "rate_limited" => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            (StatusCode::TOO_MANY_REQUESTS, code) if code == "quota_exceeded" => break,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(ok, 99);
}
