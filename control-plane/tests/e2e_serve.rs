//! End-to-end: the real `wisp serve` binary on a free port, driven over HTTP.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_test_artifacts::fixture;

#[tokio::test]
async fn login_key_model_upload_audit_over_http() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = start(with_admin(data.path(), port, "team"), port).await;
    let http = reqwest::Client::new();
    let base = server.base.clone();

    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": "ops@example.com", "password": "a long enough password" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();

    let key: Value = http
        .post(format!("{base}/v1/orgs/team/api-keys"))
        .bearer_auth(&token)
        .json(&json!({ "name": "ci", "scopes": ["models:write", "read"] }))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("json");
    let secret = key["secret"].as_str().expect("secret").to_owned();

    let created = http
        .post(format!("{base}/v1/orgs/team/models"))
        .bearer_auth(&secret)
        .json(&json!({ "name": "iris" }))
        .send()
        .await
        .expect("create model");
    assert_eq!(created.status(), StatusCode::CREATED);

    let model_bytes = fixture("iris_logreg.onnx");
    let uploaded = http
        .post(format!(
            "{base}/v1/orgs/team/models/iris/versions?description=first"
        ))
        .bearer_auth(&secret)
        .header("content-type", "application/octet-stream")
        .body(model_bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let version: Value = uploaded.json().await.expect("json");
    assert_eq!(version["version"], 1);
    assert_eq!(version["description"], "first");

    let audit = http
        .get(format!("{base}/v1/orgs/team/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("audit");
    assert_eq!(audit.status(), StatusCode::OK);
    let audit: Value = audit.json().await.expect("json");
    let entries = audit["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "model.version.uploaded",
            "model.created",
            "apikey.created",
            "org.created"
        ]
    );
    assert_eq!(entries[0]["source_ip"], "127.0.0.1");
    assert!(entries[0]["request_id"].is_string());
    assert!(
        entries[0]["actor"]
            .as_str()
            .expect("actor")
            .starts_with("key:")
    );

    let docs = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(docs.status(), StatusCode::OK);

    let status = terminate(&mut server);
    assert!(
        status.success(),
        "SIGTERM must lead to a clean exit, got {status}"
    );

    // Restart on the same data: the state is there, no new admin is created.
    let port = free_port();
    let server = start(wisp(data.path(), port), port).await;
    let login = http
        .post(format!("{}/v1/auth/login", server.base))
        .json(&json!({ "email": "ops@example.com", "password": "a long enough password" }))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::OK);
    let versions: Value = http
        .get(format!("{}/v1/orgs/team/models/iris/versions", server.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("versions")
        .json()
        .await
        .expect("json");
    assert_eq!(versions[0]["sha256"], version["sha256"]);
}

/// Runs the `wisp` CLI against `server` with its session in `config_dir`; returns stdout,
/// panicking with stderr when it fails.
fn cli(config_dir: &Path, server: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .env("WISP_CONFIG_DIR", config_dir)
        .env("WISP_SERVER", server)
        .env_remove("WISP_ORG")
        .env_remove("WISP_TOKEN")
        .env_remove("WISP_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the wisp CLI");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("wisp CLI ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wisp {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The README's quick start, step by step: `wisp serve` with no configuration writes a
/// one-time password to a file and prints its path; log in with it, choose a new password,
/// create an API key, push the iris model, deploy it, call predict with curl, find it all
/// in the audit log, invite a colleague who accepts with a password of their own, log out.
#[tokio::test]
async fn the_readme_quick_start_works_end_to_end() {
    let data = tempfile::tempdir().expect("tempdir");
    let config_dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = wisp(data.path(), port).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    // Keep draining stdout after the password line, so the server never writes to a
    // closed pipe.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, path)) = line.split_once(wisp::serve::ADMIN_PASSWORD_ANNOUNCEMENT) {
                let _ = sender.send(path.to_owned());
            }
        }
    });
    let password_file = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("a line naming the one-time password file");
    let password = std::fs::read_to_string(&password_file).expect("the password file");
    let password = password.trim();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &mut child).await;
    let _server = Server {
        child,
        base: base.clone(),
        logs: Logs::default(),
    };
    let dir = config_dir.path();

    let login = cli(
        dir,
        &base,
        &["login", "--email", "admin@localhost", "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert!(login.contains("organisation default"), "{login}");
    assert!(login.contains("wisp password change"), "{login}");
    let changed = cli(
        dir,
        &base,
        &["password", "change", "--password-stdin"],
        Some(&format!("{password}\nmy own admin password\n")),
    );
    assert!(changed.contains("Password changed"), "{changed}");

    let key: Value = serde_json::from_str(&cli(
        dir,
        &base,
        &[
            "keys",
            "create",
            "quickstart",
            "--scope",
            "predict",
            "--json",
        ],
        None,
    ))
    .expect("key JSON");
    let secret = key["secret"].as_str().expect("secret");
    assert!(secret.starts_with("wisp_"), "{key}");

    let iris = wisp_test_artifacts::fixtures_dir().join("iris_logreg.onnx");
    let pushed = cli(
        dir,
        &base,
        &["models", "push", iris.to_str().unwrap(), "--model", "iris"],
        None,
    );
    assert!(pushed.contains("Pushed iris version 1"), "{pushed}");
    assert!(pushed.contains("input input f32 [-1,4]"), "{pushed}");

    let deployed = cli(dir, &base, &["deploy", "iris"], None);
    assert!(deployed.contains("iris version 1: ready"), "{deployed}");

    let curl = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-H",
            &format!("Authorization: Bearer {secret}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"inputs": {"input": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}"#,
            &format!("{base}/v1/orgs/default/models/iris/predict"),
        ])
        .output()
        .expect("curl is installed");
    let body = String::from_utf8_lossy(&curl.stdout);
    assert!(curl.status.success(), "curl: {body}");
    let prediction: Value = serde_json::from_str(&body).expect("prediction JSON");
    assert_eq!(
        prediction["outputs"]["label"]["data"],
        json!([0, 2]),
        "{prediction}"
    );

    let predicted = cli(
        dir,
        &base,
        &[
            "predict",
            "iris",
            "--input",
            r#"{"input": [[5.1, 3.5, 1.4, 0.2]]}"#,
        ],
        None,
    );
    assert!(predicted.contains("label i64 [1]: [0]"), "{predicted}");

    let audit: Value = serde_json::from_str(&cli(
        dir,
        &base,
        &["audit", "--limit", "50", "--json"],
        None,
    ))
    .expect("audit JSON");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "org.created",
        "apikey.created",
        "model.created",
        "model.version.uploaded",
        "model.deployed",
    ] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
    let table = cli(dir, &base, &["audit"], None);
    assert!(table.contains("model.deployed"), "{table}");

    // Invite a colleague: the admin gets a single-use command to forward, never a password.
    let invited = cli(
        dir,
        &base,
        &["members", "add", "dev@example.com", "--role", "member"],
        None,
    );
    assert!(
        invited.contains("Invited dev@example.com as member"),
        "{invited}"
    );
    let accept = invited
        .lines()
        .find_map(|line| line.trim().strip_prefix("wisp invitations accept "))
        .expect("an accept command");
    let token = accept.split_whitespace().next().expect("token");
    let colleague = tempfile::tempdir().expect("tempdir");
    let joined = cli(
        colleague.path(),
        &base,
        &["invitations", "accept", token, "--password-stdin"],
        Some("the colleague's password\n"),
    );
    assert!(
        joined.contains("Joined organisation default as member"),
        "{joined}"
    );
    let members = cli(dir, &base, &["members", "list"], None);
    assert!(members.contains("dev@example.com"), "{members}");

    let out = cli(dir, &base, &["logout"], None);
    assert!(out.contains("logged out"), "{out}");
}

#[tokio::test]
async fn invalid_config_fails_before_binding() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("wisp.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nlisen = \"typo\"\n").expect("write");
    let port = free_port();
    let output = wisp(data.path(), port)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lisen"),
        "the error names the unknown key: {stderr}"
    );
    assert!(
        !data.path().join("wisp.db").exists(),
        "nothing is created before the config is valid"
    );
}

/// Starts a server with a known admin on fresh data; returns it with an access token and a
/// model `m` created in organisation `team`.
async fn server_with_model(data: &Path) -> (Server, String) {
    let port = free_port();
    let server = start(with_admin(data, port, "team"), port).await;
    let token = login(&server.base).await;
    let created = reqwest::Client::new()
        .post(format!("{}/v1/orgs/team/models", server.base))
        .bearer_auth(&token)
        .json(&json!({ "name": "m" }))
        .send()
        .await
        .expect("create model");
    assert_eq!(created.status(), StatusCode::CREATED);
    (server, token)
}

/// Opens a raw upload of `body` and sends the headers and the first `sent` bytes of it.
fn partial_upload(base: &str, token: &str, body: &[u8], sent: usize) -> std::net::TcpStream {
    let total = body.len();
    use std::io::Write;
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "POST /v1/orgs/team/models/m/versions HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
    )
    .expect("headers");
    stream.write_all(&body[..sent]).expect("body");
    stream.flush().expect("flush");
    stream
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn kill_9_during_an_upload_leaves_no_partial_version() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut server, token) = server_with_model(data.path()).await;
    let mut body = fixture("digits_mlp.onnx");
    body.resize(1_000_000, 0);
    let _stream = partial_upload(&server.base, &token, &body, 200_000);
    wait_for("the upload to be staged", || {
        files_in(&data.path().join("tmp")) == 1
    });
    server.child.kill().expect("kill -9");
    server.child.wait().expect("wait");

    let port = free_port();
    let server = start(wisp(data.path(), port), port).await;
    assert_eq!(
        files_in(&data.path().join("tmp")),
        0,
        "stale staged upload removed at start"
    );
    let token = login(&server.base).await;
    let http = reqwest::Client::new();
    let versions: Value = http
        .get(format!("{}/v1/orgs/team/models/m/versions", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("versions")
        .json()
        .await
        .expect("json");
    assert_eq!(versions, json!([]), "no partial version");
    let uploaded = http
        .post(format!("{}/v1/orgs/team/models/m/versions", server.base))
        .bearer_auth(&token)
        .body(fixture("iris_logreg.onnx"))
        .send()
        .await
        .expect("upload");
    assert_eq!(
        uploaded.status(),
        StatusCode::CREATED,
        "the restarted server works"
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_upload_finish() {
    use std::io::{Read, Write};
    let data = tempfile::tempdir().expect("tempdir");
    let (mut server, token) = server_with_model(data.path()).await;
    // A real model, so the upload is accepted once the rest of it arrives.
    let body = fixture("digits_mlp.onnx");
    let first = body.len() / 3;
    let mut stream = partial_upload(&server.base, &token, &body, first);
    wait_for("the upload to be staged", || {
        files_in(&data.path().join("tmp")) == 1
    });

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "still draining"
    );

    stream.write_all(&body[first..]).expect("rest of the body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    wait_for("the server to exit", || {
        server.child.try_wait().expect("wait").is_some()
    });
    let status = server.child.wait().expect("status");
    assert!(status.success(), "{status}");
}
