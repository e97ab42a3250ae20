//! End-to-end on a real libSQL server (`sqld`): `wisp serve` nodes as separate processes
//! survive its outages and restarts. The server is killed and started again under load
//! (no `500`, only `503 database_unavailable` while it is down, warm predicts keep
//! answering, recovery without restarting wisp); a SIGTERM during an outage stops within
//! `server.shutdown_timeout_secs` and the next start stores the metered calls exactly
//! once; an embedded-replica node reads its own writes and sees another node's; and a
//! network cut (a relay that stops forwarding) answers within the statement timeout.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::*;
use common::sqld::Sqld;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp::db::{Db, DbError, DbLocation};

const ORG: &str = "team";
const JWT_SECRET: &str = "a shared secret of the fleet, at least 32 bytes";
/// The stop bound the tests configure.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// A node's configuration: the database on `sqld`, blobs in `blobs` (shared by the
/// nodes), a shared JWT secret, and `extra` TOML appended to the `[database]` table.
fn node(mut command: Command, data: &Path, blobs: &Path, sqld: &Sqld, database: &str) -> Command {
    let config = format!(
        "[database]\nurl = \"{url}\"\n{database}\n\
         [server]\nshutdown_timeout_secs = {SHUTDOWN_TIMEOUT_SECS}\n\
         [auth]\njwt_secret = \"{JWT_SECRET}\"\n\
         [object_store]\nkind = \"local\"\npath = \"{blobs}\"\n",
        url = sqld.url(),
        blobs = blobs.display(),
    );
    let path = data.join("wisp.toml");
    std::fs::create_dir_all(data).expect("data dir");
    std::fs::write(&path, config).expect("config");
    command
        .env("WISP_CONFIG", &path)
        .env("WISP_METRICS_LISTEN", "");
    command
}

/// One answer: its status, on an error its `code` and `Retry-After`, and the call's
/// `wisp-usage-id` (its prediction id) if it has one.
#[derive(Debug, Clone)]
struct Answer {
    what: &'static str,
    status: StatusCode,
    code: Option<String>,
    retry_after: Option<String>,
    usage_id: Option<String>,
}

impl Answer {
    async fn of(what: &'static str, response: reqwest::Response) -> Self {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_owned())
        };
        let (retry_after, usage_id) = (header("retry-after"), header("wisp-usage-id"));
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Self {
            what,
            status,
            code: body["code"].as_str().map(str::to_owned),
            retry_after,
            usage_id,
        }
    }

    /// `503 database_unavailable` with a `Retry-After`.
    fn is_database_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.code.as_deref() == Some("database_unavailable")
            && self.retry_after.is_some()
    }
}

async fn predict(http: &reqwest::Client, base: &str, key: &str) -> Answer {
    let response = http
        .post(format!("{base}/v1/orgs/{ORG}/models/iris/predict"))
        .bearer_auth(key)
        .json(&json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }))
        .send()
        .await
        .expect("predict");
    Answer::of("predict", response).await
}

/// A write: a new API key (a transaction with its audit entry).
async fn create_key(http: &reqwest::Client, base: &str, token: &str) -> Answer {
    let response = http
        .post(format!("{base}/v1/orgs/{ORG}/api-keys"))
        .bearer_auth(token)
        .json(&json!({ "name": "churn", "scopes": ["predict"] }))
        .send()
        .await
        .expect("create key");
    Answer::of("create key", response).await
}

/// A read that no memo holds.
async fn list_keys(http: &reqwest::Client, base: &str, token: &str) -> Answer {
    let response = http
        .get(format!("{base}/v1/orgs/{ORG}/api-keys"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list keys");
    Answer::of("list keys", response).await
}

async fn healthz(http: &reqwest::Client, base: &str, path: &str) -> (StatusCode, Value) {
    let response = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("health");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn billed_calls(http: &reqwest::Client, base: &str, token: &str) -> Option<u64> {
    let usage: Value = http
        .get(format!("{base}/v1/orgs/{ORG}/usage"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    usage["totals"]["billed_calls"].as_u64()
}

/// Waits until the recorded billed calls reach `expected` (they are stored by a background
/// drainer), then checks that no more arrive: none lost, none doubled.
async fn assert_billed_exactly(http: &reqwest::Client, base: &str, token: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recorded = billed_calls(http, base, token).await;
        if recorded == Some(expected) {
            break;
        }
        assert!(
            recorded.is_none_or(|n| n < expected),
            "doubled calls: {recorded:?} recorded, {expected} answered"
        );
        assert!(
            Instant::now() < deadline,
            "lost calls: {recorded:?} recorded, {expected} answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A late duplicate would show up after a drain or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(billed_calls(http, base, token).await, Some(expected));
}

/// Polls `call` until it answers `200`/`201`; the time that took.
async fn until_ok<F, Fut>(what: &str, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        let answer = call().await;
        if answer.status.is_success() {
            return started.elapsed();
        }
        assert!(
            answer.status != StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {answer:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{what} never succeeded: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn remote(sqld: &Sqld) -> Db {
    remote_at(sqld.url(), None).await
}

async fn remote_at(url: String, statement_timeout: Option<Duration>) -> Db {
    Db::open(&DbLocation::Remote {
        url,
        auth_token: String::new(),
        statement_timeout,
    })
    .await
    .expect("open the remote database")
}

/// A TCP relay to `upstream` that can stop forwarding without closing anything: a network
/// cut as a client sees it (no reset, no end of stream; its bytes go nowhere).
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Relay {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let relay_cut = Arc::clone(&cut);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, Arc::clone(&relay_cut)));
                tokio::spawn(forward(server_read, client_write, Arc::clone(&relay_cut)));
            }
        });
        Self { port, cut }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`; while cut, what arrives is dropped and nothing is closed.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_cut_answers_unavailable_within_the_statement_timeout_and_heals() {
    let sqld = Sqld::start().await;
    let port: u16 = sqld
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("sqld's port");
    let relay = Relay::start(port).await;
    let db = remote_at(relay.url(), Some(Duration::from_secs(1))).await;
    assert_eq!(count_orgs(&db).await.expect("count"), 0);

    relay.cut(true);
    // Bounded, not timed: without the statement timeout these would wait for TCP to give
    // up (minutes); the bound here only turns such a hang into a failure.
    let bound = Duration::from_secs(60);
    let read = tokio::time::timeout(bound, count_orgs(&db))
        .await
        .expect("a read during the cut answers")
        .expect_err("no answer from the database");
    assert!(read.is_unavailable(), "{read}");
    assert!(db.health().is_unavailable());
    let write: Result<u64, DbError> = tokio::time::timeout(
        bound,
        db.transaction(async |tx| insert_org(tx, "during-the-cut").await),
    )
    .await
    .expect("a transaction during the cut answers");
    let write = write.expect_err("no answer from the database");
    assert!(write.is_unavailable(), "{write}");
    // Requests during the cut do not queue up behind one another's timeouts: after an
    // attempt with no answer, the next ones fail at once for a moment, then one tries.
    // (Serially, 40 reads would take 40 × 2 × 1 s.)
    let reads: Vec<_> = (0..40).map(|_| count_orgs(&db)).collect();
    let answers = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(reads),
    )
    .await
    .expect("reads during the cut do not wait for each other's timeouts");
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_err_and(DbError::is_unavailable))
    );

    relay.cut(false);
    let deadline = Instant::now() + bound;
    loop {
        match count_orgs(&db).await {
            Ok(_) => break,
            Err(error) => assert!(Instant::now() < deadline, "never healed: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!db.health().is_unavailable());
    db.transaction(async |tx| insert_org(tx, "after-the-cut").await)
        .await
        .expect("a write after the cut");
    let conn = db.read().await;
    let mut rows = conn
        .query("SELECT slug FROM orgs ORDER BY slug", ())
        .await
        .expect("orgs");
    let mut slugs = Vec::new();
    while let Some(row) = rows.next().await.expect("row") {
        slugs.push(row.get::<String>(0).expect("slug"));
    }
    // The cut transaction never committed: BEGIN got no answer, so nothing ran after it.
    assert_eq!(slugs, ["after-the-cut"]);
}

async fn count_orgs(db: &Db) -> Result<i64, DbError> {
    let conn = db.read().await;
    let mut rows = conn.query("SELECT COUNT(*) FROM orgs", ()).await?;
    let row = rows.next().await?.expect("one row");
    Ok(row.get(0)?)
}

async fn insert_org(conn: &wisp::db::Writer, slug: &str) -> Result<u64, DbError> {
    Ok(conn
        .execute(
            "INSERT INTO orgs (id, slug, name, created_at) VALUES (?1, ?1, ?1, 0)",
            [slug],
        )
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_transaction_is_one_transaction_and_a_failed_one_leaves_nothing() {
    let sqld = Sqld::start().await;
    let db = remote(&sqld).await;
    let failed: Result<(), DbError> = db
        .transaction(async |tx| {
            insert_org(tx, "rolled-back").await?;
            Err(DbError::Corrupt("the body fails".into()))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(count_orgs(&db).await.expect("count"), 0);
    db.transaction(async |tx| insert_org(tx, "kept").await)
        .await
        .expect("commit");
    assert_eq!(count_orgs(&db).await.expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_is_reconnected_to_on_the_next_statement() {
    let mut sqld = Sqld::start().await;
    let db = remote(&sqld).await;
    assert_eq!(count_orgs(&db).await.expect("count"), 0);
    sqld.stop();
    let down = count_orgs(&db).await.expect_err("the server is down");
    assert!(down.is_unavailable(), "{down}");
    assert!(db.health().is_unavailable());
    sqld.resume().await;
    // A read, and a write (its baton is new: the server never saw the old one's request).
    assert_eq!(count_orgs(&db).await.expect("a read after the restart"), 0);
    insert_org(&*db.write().await, "after")
        .await
        .expect("a write after the restart");
    assert!(!db.health().is_unavailable());

    // Restarted while the stream is idle: the stale baton is refused, and the statement
    // runs again on a new stream.
    sqld.stop();
    sqld.resume().await;
    insert_org(&*db.write().await, "after-idle-restart")
        .await
        .expect("a write on a stale stream");
    assert_eq!(count_orgs(&db).await.expect("count"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_that_loses_its_connection_fails_whole_and_the_next_one_works() {
    let mut sqld = Sqld::start().await;
    let db = remote(&sqld).await;
    let lost: Result<(), DbError> = db
        .transaction(async |tx| {
            insert_org(tx, "half").await?;
            sqld.stop();
            sqld.resume().await;
            // The server forgot the transaction: this must not run outside it.
            insert_org(tx, "other-half").await?;
            Ok(())
        })
        .await;
    let error = lost.expect_err("the transaction's stream is gone");
    assert!(error.is_unavailable(), "{error}");
    assert_eq!(
        count_orgs(&db).await.expect("count"),
        0,
        "nothing of it committed"
    );
    db.transaction(async |tx| insert_org(tx, "next").await)
        .await
        .expect("the next transaction");
    assert_eq!(count_orgs(&db).await.expect("count"), 1);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Before,
    Outage,
    After,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_under_load_is_survived_without_restarting_wisp() {
    let mut sqld = Sqld::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let blobs = data.path().join("blobs");
    let port = free_port();
    let command = node(
        with_admin(&data.path().join("node"), port, ORG),
        &data.path().join("node"),
        &blobs,
        &sqld,
        "",
    );
    let server = start(command, port).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let token = login(&base).await;
    let key = deploy_iris_with_predict_key(&base, &token, ORG).await;
    // Another organisation, with its own model: its calls must stay refused to `team`'s
    // key during the outage exactly as before it.
    let rival: Value = http
        .post(format!("{base}/v1/orgs"))
        .bearer_auth(&token)
        .json(&json!({ "slug": "rival" }))
        .send()
        .await
        .expect("rival")
        .json()
        .await
        .expect("json");
    assert_eq!(rival["slug"], "rival", "{rival}");
    let cross_tenant = async |http: &reqwest::Client| {
        let response = http
            .post(format!("{base}/v1/orgs/rival/models/iris/predict"))
            .bearer_auth(&key)
            .json(&json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }))
            .send()
            .await
            .expect("cross-tenant predict");
        Answer::of("cross-tenant predict", response).await
    };
    let refused_before = cross_tenant(&http).await;
    assert!(
        refused_before.status.is_client_error(),
        "{refused_before:?}"
    );

    // Load: predicts and writes and reads, until told to stop, each answer noted with the
    // phase it was sent in.
    let phase = Arc::new(Mutex::new(Phase::Before));
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(Phase, Answer)>>> = Arc::default();
    let mut load = Vec::new();
    for client in 0..4 {
        let (http, base, key, token) = (http.clone(), base.clone(), key.clone(), token.clone());
        let (phase, stop, answers) = (Arc::clone(&phase), Arc::clone(&stop), Arc::clone(&answers));
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let sent_in = *phase.lock().unwrap();
                let answer = match client {
                    0 => create_key(&http, &base, &token).await,
                    1 => list_keys(&http, &base, &token).await,
                    _ => predict(&http, &base, &key).await,
                };
                answers.lock().unwrap().push((sent_in, answer));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    sqld.stop();
    *phase.lock().unwrap() = Phase::Outage;
    // Past the memos' staleness bounds: warm predicts must not need the database at all.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, health) = healthz(&http, &base, "/healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the proxy must keep sending inference"
    );
    assert_eq!(health["status"], "degraded", "{health}");
    let (status, _) = healthz(&http, &base, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let refused_during = cross_tenant(&http).await;
    assert_eq!(
        (refused_during.status, &refused_during.code),
        (refused_before.status, &refused_before.code),
        "another organisation's model answers the same during an outage"
    );
    // The MLflow and V2 encodings of the same error.
    let mlflow = http
        .post(format!("{base}/api/2.0/mlflow/experiments/create"))
        .bearer_auth(&token)
        .header("x-wisp-org", ORG)
        .json(&json!({ "name": "during-the-outage" }))
        .send()
        .await
        .expect("mlflow");
    assert_eq!(mlflow.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(mlflow.headers().contains_key("retry-after"));
    let mlflow: Value = mlflow.json().await.expect("json");
    assert_eq!(mlflow["error_code"], "TEMPORARILY_UNAVAILABLE", "{mlflow}");
    let v2 = http
        .get(format!("{base}/v2/models/not-memoised"))
        .bearer_auth(&token)
        .header("x-wisp-org", ORG)
        .send()
        .await
        .expect("v2");
    assert_eq!(v2.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(v2.headers().contains_key("retry-after"));
    let v2: Value = v2.json().await.expect("json");
    assert!(v2["error"].is_string(), "{v2}");

    let restarted = Instant::now();
    sqld.resume().await;
    let sqld_ready = restarted.elapsed();
    *phase.lock().unwrap() = Phase::After;
    // The same process, not restarted: a write succeeds again.
    let first_write = until_ok("a write after the restart", || {
        create_key(&http, &base, &token)
    })
    .await;
    eprintln!(
        "sqld restart: ready after {sqld_ready:?}; first successful write {first_write:?} after that"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.expect("load");
    }

    let answers = answers.lock().unwrap().clone();
    let count = |phase: Phase, what: &str, ok: bool| {
        answers
            .iter()
            .filter(|(p, a)| *p == phase && a.what == what && a.status.is_success() == ok)
            .count()
    };
    for (phase, answer) in &answers {
        assert!(
            answer.status.is_success() || answer.is_database_unavailable(),
            "{phase:?}: {answer:?}"
        );
    }
    eprintln!(
        "predicts ok before/during/after: {}/{}/{}; writes refused during: {}",
        count(Phase::Before, "predict", true),
        count(Phase::Outage, "predict", true),
        count(Phase::After, "predict", true),
        count(Phase::Outage, "create key", false),
    );
    assert_eq!(
        count(Phase::Outage, "predict", false),
        0,
        "warm predicts answer through the outage"
    );
    assert!(count(Phase::Outage, "predict", true) > 0);
    assert!(count(Phase::Outage, "create key", false) > 0);
    assert!(count(Phase::After, "predict", true) > 0);
    assert!(count(Phase::After, "list keys", true) > 0);
    let (_, health) = healthz(&http, &base, "/healthz").await;
    assert_eq!(health["status"], "ok", "{health}");

    // Every answered predict is billed once: the outage's events waited in the outbox.
    let predicts = answers
        .iter()
        .filter(|(_, a)| a.what == "predict" && a.status.is_success())
        .count() as u64;
    assert_billed_exactly(&http, &base, &token, predicts).await;
}

/// Rows the drift report counts over the last day, once the report answers.
async fn drift_rows(http: &reqwest::Client, base: &str, token: &str) -> Option<u64> {
    let response = http
        .get(format!("{base}/v1/orgs/{ORG}/models/iris/drift/report"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Value>().await.ok()?["rows"].as_u64()
}

/// Waits until the drift report counts `rows`, failing after a minute.
async fn until_rows(http: &reqwest::Client, base: &str, token: &str, rows: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = drift_rows(http, base, token).await;
        if seen == Some(rows) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the drift report counts {seen:?} rows, not {rows}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_profiles_and_predictions_of_an_outage_are_written_when_the_database_returns() {
    let mut sqld = Sqld::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("node");
    let blobs = data.path().join("blobs");
    let port = free_port();
    // Profiles are written every second (not every minute): the outage spans several
    // failed writes.
    let drift = "\n[drift]\nflush_interval_secs = 1\n";
    let server = start(
        node(with_admin(&dir, port, ORG), &dir, &blobs, &sqld, drift),
        port,
    )
    .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let token = login(&base).await;
    let key = deploy_iris_with_predict_key(&base, &token, ORG).await;
    let reference = http
        .put(format!("{base}/v1/orgs/{ORG}/models/iris/drift/reference"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body("input[0],input[1],input[2],input[3]\n5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3\n")
        .send()
        .await
        .expect("reference");
    assert_eq!(reference.status(), StatusCode::OK);
    let config = http
        .put(format!("{base}/v1/orgs/{ORG}/models/iris/drift/config"))
        .bearer_auth(&token)
        .json(&json!({ "sample_rate": 1.0 }))
        .send()
        .await
        .expect("config");
    assert_eq!(config.status(), StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(predict(&http, &base, &key).await.status, StatusCode::OK);
    }
    until_rows(&http, &base, &token, 3).await;

    sqld.stop();
    let mut during = Vec::new();
    for _ in 0..10 {
        let answer = predict(&http, &base, &key).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        during.push(answer.usage_id.expect("a prediction id"));
    }
    // Several writes fail meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sqld.resume().await;
    // The three before and the ten during: nothing profiled in the outage was dropped.
    until_rows(&http, &base, &token, 13).await;
    // Nor what the outage's calls answered: their outcomes are taken as feedback.
    let items: Vec<Value> = during
        .iter()
        .map(|id| json!({ "prediction_id": id, "actual": 0 }))
        .collect();
    let feedback: Value = http
        .post(format!("{base}/v1/orgs/{ORG}/models/iris/feedback"))
        .bearer_auth(&key)
        .json(&json!({ "items": items }))
        .send()
        .await
        .expect("feedback")
        .json()
        .await
        .expect("json");
    assert_eq!(feedback["accepted"], 10, "{feedback}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_outage_stops_within_the_bound_and_the_next_start_stores_the_calls() {
    let mut sqld = Sqld::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("node");
    let blobs = data.path().join("blobs");
    let port = free_port();
    let mut server = start(
        node(with_admin(&dir, port, ORG), &dir, &blobs, &sqld, ""),
        port,
    )
    .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let token = login(&base).await;
    let key = deploy_iris_with_predict_key(&base, &token, ORG).await;
    for _ in 0..10 {
        assert_eq!(predict(&http, &base, &key).await.status, StatusCode::OK);
    }

    sqld.stop();
    for _ in 0..20 {
        let answer = predict(&http, &base, &key).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    let signalled = Instant::now();
    let status = terminate(&mut server);
    let stopped_after = signalled.elapsed();
    eprintln!("SIGTERM during the outage: exited with {status} after {stopped_after:?}");
    assert!(status.success(), "{status}");
    // The bound, plus room for a loaded machine: a stop that waits for the database
    // never ends (the outbox drain retries until it is back).
    assert!(
        stopped_after < Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 10),
        "{stopped_after:?}"
    );
    let leftovers = std::fs::read_dir(dir.join("usage-outbox"))
        .expect("outbox")
        .filter_map(Result::ok)
        .filter(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
        .count();
    assert!(leftovers > 0, "the outage's calls stay in the outbox");

    sqld.resume().await;
    let port = free_port();
    let server = start(node(wisp(&dir, port), &dir, &blobs, &sqld, ""), port).await;
    let token = login(&server.base).await;
    assert_billed_exactly(&http, &server.base, &token, 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_replica_node_reads_its_own_writes_and_sees_the_other_nodes() {
    let mut sqld = Sqld::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let blobs = data.path().join("blobs");
    let (dir_a, dir_b) = (data.path().join("a"), data.path().join("b"));
    let port_a = free_port();
    let a = start(
        node(with_admin(&dir_a, port_a, ORG), &dir_a, &blobs, &sqld, ""),
        port_a,
    )
    .await;
    let token_a = login(&a.base).await;
    let key = deploy_iris_with_predict_key(&a.base, &token_a, ORG).await;
    let replica = format!(
        "replica_path = \"{}\"\nsync_interval_secs = 1",
        dir_b.join("replica.db").display()
    );
    let port_b = free_port();
    let b = start(
        node(wisp(&dir_b, port_b), &dir_b, &blobs, &sqld, &replica),
        port_b,
    )
    .await;
    let http = reqwest::Client::new();
    // A's session works on B; A's deployment serves on B (the shared blob directory).
    let token_b = login(&b.base).await;
    assert_eq!(predict(&http, &b.base, &key).await.status, StatusCode::OK);

    let create_model = async |base: &str, token: &str, name: &str| {
        let response = http
            .post(format!("{base}/v1/orgs/{ORG}/models"))
            .bearer_auth(token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("create model");
        Answer::of("create model", response).await
    };
    let get_model = async |base: &str, token: &str, name: &str| {
        let response = http
            .get(format!("{base}/v1/orgs/{ORG}/models/{name}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("get model");
        Answer::of("get model", response).await
    };

    // Read-your-writes on the replica node: its very next request sees its write.
    for n in 0..5 {
        let name = format!("from-b-{n}");
        let created = create_model(&b.base, &token_b, &name).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        let seen = get_model(&b.base, &token_b, &name).await;
        assert_eq!(
            seen.status,
            StatusCode::OK,
            "{name} on the node that wrote it: {seen:?}"
        );
        let seen = get_model(&a.base, &token_a, &name).await;
        assert_eq!(
            seen.status,
            StatusCode::OK,
            "{name} on the primary's node: {seen:?}"
        );
    }

    // A write on the other node reaches the replica within the sync interval.
    let created = create_model(&a.base, &token_a, "from-a").await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let visible = until_ok("A's write on the replica node", || {
        get_model(&b.base, &token_b, "from-a")
    })
    .await;
    eprintln!("a write on the plain node was visible on the replica node after {visible:?}");

    // The primary restarts: the replica node's writes work again without restarting it,
    // and it still reads its own.
    sqld.stop();
    let refused = create_model(&b.base, &token_b, "during").await;
    assert!(refused.is_database_unavailable(), "{refused:?}");
    assert_eq!(
        predict(&http, &b.base, &key).await.status,
        StatusCode::OK,
        "warm predicts on the replica node"
    );
    sqld.resume().await;
    let recovered = until_ok("a write on the replica node after the restart", || {
        create_model(&b.base, &token_b, "after-restart")
    })
    .await;
    eprintln!("replica node: first write {recovered:?} after the primary was back");
    let seen = get_model(&b.base, &token_b, "after-restart").await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
}

/// The time from a database restart to this node's first successful write, five times:
/// `cargo test -p wisp --locked --test e2e_database -- --ignored --nocapture
/// restart_to_first_write`. A measurement, not a test of speed: it asserts only that the
/// write succeeds. Recorded in docs/benchmarks.md.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run explicitly"]
async fn restart_to_first_write() {
    let mut sqld = Sqld::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("node");
    let port = free_port();
    let command = node(
        with_admin(&dir, port, ORG),
        &dir,
        &data.path().join("blobs"),
        &sqld,
        "",
    );
    let server = start(command, port).await;
    let http = reqwest::Client::new();
    let token = login(&server.base).await;
    let mut from_ready = Vec::new();
    let mut from_spawn = Vec::new();
    for _ in 0..5 {
        assert!(
            create_key(&http, &server.base, &token)
                .await
                .status
                .is_success()
        );
        sqld.stop();
        // The node notices the outage (a refused write), as it would under traffic.
        assert!(
            create_key(&http, &server.base, &token)
                .await
                .is_database_unavailable()
        );
        let spawned = Instant::now();
        sqld.resume().await;
        let ready = spawned.elapsed();
        let write = until_ok("first write", || create_key(&http, &server.base, &token)).await;
        from_ready.push(write);
        from_spawn.push(ready + write);
    }
    from_ready.sort();
    from_spawn.sort();
    println!(
        "restart to first successful write: median {:?} after sqld answers /health \
         (all: {from_ready:?}); median {:?} from starting sqld (all: {from_spawn:?})",
        from_ready[2], from_spawn[2]
    );
}
