//! The real `wisp serve` binary on a free loopback port, for end-to-end tests.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// The admin that [`with_admin`] creates on first start.
pub const OPS_EMAIL: &str = "ops@example.com";
pub const OPS_PASSWORD: &str = "a long enough password";

/// A running `wisp serve`, killed when dropped; its log is printed when a test fails.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Every line the server wrote to stdout and stderr so far (both pipes are drained, so
    /// the server never blocks on a full one).
    pub logs: Logs,
}

/// A server's output lines, shared with the threads that read its pipes.
pub type Logs = Arc<Mutex<Vec<String>>>;

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let logs = self
                .logs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let tail = &logs[logs.len().saturating_sub(60)..];
            eprintln!("--- last lines of wisp serve at {} ---", self.base);
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// Reads `pipe` line by line into `logs` until it closes.
fn drain(pipe: Option<impl Read + Send + 'static>, logs: &Logs) {
    if let Some(pipe) = pipe {
        let logs = Arc::clone(logs);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                logs.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `wisp serve` on `data` and `port`, with no inherited bootstrap or config variables.
pub fn wisp(data: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wisp"));
    command
        .arg("serve")
        .env("WISP_DATA", data)
        .env("WISP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env_remove("WISP_ADMIN_EMAIL")
        .env_remove("WISP_ADMIN_PASSWORD")
        .env_remove("WISP_ORG")
        .env_remove("WISP_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// [`wisp`] whose first start creates [`OPS_EMAIL`], owner of organisation `org`.
pub fn with_admin(data: &Path, port: u16, org: &str) -> Command {
    let mut command = wisp(data, port);
    command
        .env("WISP_ADMIN_EMAIL", OPS_EMAIL)
        .env("WISP_ADMIN_PASSWORD", OPS_PASSWORD)
        .env("WISP_ORG", org);
    command
}

pub async fn wait_ready(base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("wisp serve exited early with {status}");
        }
        if let Ok(response) = reqwest::get(format!("{base}/healthz")).await
            && response.status() == StatusCode::OK
        {
            return;
        }
        assert!(Instant::now() < deadline, "wisp serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Spawns `command` (listening on `port`) and waits until it answers.
pub async fn start(mut command: Command, port: u16) -> Server {
    let mut child = command.spawn().expect("spawn wisp");
    let logs = Logs::default();
    drain(child.stdout.take(), &logs);
    drain(child.stderr.take(), &logs);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &mut child).await;
    Server { child, base, logs }
}

/// Sends SIGTERM and waits for the exit.
pub fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "wisp serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `wisp` CLI against `server` as `token` in organisation `org` (flags, not the
/// environment, with a fresh config directory: no stored session); its stdout, after
/// asserting it succeeded.
pub fn wisp_cli(server: &str, token: &str, org: &str, args: &[&str]) -> String {
    let config = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .args(["--server", server, "--token", token, "--org", org])
        .env("WISP_CONFIG_DIR", config.path())
        .env_remove("WISP_ORG")
        .env_remove("WISP_TOKEN")
        .output()
        .expect("run the wisp CLI");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wisp {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Logs [`OPS_EMAIL`] in; returns the access token.
pub async fn login(base: &str) -> String {
    let login: Value = reqwest::Client::new()
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": OPS_EMAIL, "password": OPS_PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    login["access_token"].as_str().expect("token").to_owned()
}

/// Creates model `iris` in `org` from `iris_logreg.onnx`, deploys version 1 (waiting until
/// it is ready) and returns the secret of a new `predict` API key: the setup of every test
/// that loads a running `wisp serve`.
pub async fn deploy_iris_with_predict_key(base: &str, token: &str, org: &str) -> String {
    let http = reqwest::Client::new();
    let authed = |r: reqwest::RequestBuilder| r.bearer_auth(token);
    let created = authed(http.post(format!("{base}/v1/orgs/{org}/models")))
        .json(&json!({ "name": "iris" }))
        .send()
        .await
        .expect("model");
    assert_eq!(created.status(), StatusCode::CREATED);
    let uploaded = authed(http.post(format!("{base}/v1/orgs/{org}/models/iris/versions")))
        .header("content-type", "application/octet-stream")
        .body(wisp_test_artifacts::fixture("iris_logreg.onnx"))
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let deployed: Value = authed(http.put(format!("{base}/v1/orgs/{org}/models/iris/deployment")))
        .json(&json!({ "version": 1, "wait": true }))
        .send()
        .await
        .expect("deploy")
        .json()
        .await
        .expect("json");
    assert_eq!(deployed["status"], "ready", "{deployed}");
    let key: Value = authed(http.post(format!("{base}/v1/orgs/{org}/api-keys")))
        .json(&json!({ "name": "load", "scopes": ["predict"] }))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    key["secret"].as_str().expect("secret").to_owned()
}
