//! End-to-end: the real `tritonclient[http]` against the real `wisp serve` binary, over the
//! Open Inference Protocol V2, in its default binary mode and in JSON mode.
//!
//! The client runs from the venv `scripts/test-env.sh` installs; without it this test
//! fails rather than skips.

mod common;

use std::process::Command;

use common::clients;
use common::server::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_test_artifacts::{fixture, fixtures_dir};

const ORG: &str = "team";
const MODELS: &[(&str, &str)] = &[
    ("iris", "iris_logreg.onnx"),
    ("digits-mlp", "digits_mlp.onnx"),
    ("digits-cnn", "digits_cnn.onnx"),
];

/// Creates `name` in [`ORG`], uploads `file` as version 1 and deploys it, over HTTP.
async fn deploy(http: &reqwest::Client, base: &str, token: &str, name: &str, file: &str) {
    let created = http
        .post(format!("{base}/v1/orgs/{ORG}/models"))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("create model");
    assert_eq!(created.status(), StatusCode::CREATED);
    let uploaded = http
        .post(format!("{base}/v1/orgs/{ORG}/models/{name}/versions"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(fixture(file))
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), StatusCode::CREATED, "upload {file}");
    let deployment: Value = http
        .put(format!("{base}/v1/orgs/{ORG}/models/{name}/deployment"))
        .bearer_auth(token)
        .json(&json!({ "version": 1, "wait": true }))
        .send()
        .await
        .expect("deploy")
        .json()
        .await
        .expect("json");
    assert_eq!(deployment["status"], "ready", "{deployment}");
}

#[tokio::test]
async fn tritonclient_infers_the_fixtures_in_binary_and_json() {
    // Before starting anything: without the client this fails, it does not skip.
    let python = clients::python();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = start(with_admin(data.path(), port, ORG), port).await;
    let token = login(&server.base).await;
    let http = reqwest::Client::new();
    for (name, file) in MODELS {
        deploy(&http, &server.base, &token, name, file).await;
    }
    let key: Value = http
        .post(format!("{}/v1/orgs/{ORG}/api-keys", server.base))
        .bearer_auth(&token)
        .json(&json!({ "name": "tritonclient", "scopes": ["predict"] }))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("json");
    let key = key["secret"].as_str().expect("secret");

    let models: Vec<String> = MODELS.iter().map(|(n, f)| format!("{n}={f}")).collect();
    let output = Command::new(&python)
        .arg(clients::script("triton_client_test.py"))
        .env("WISP_URL", format!("127.0.0.1:{port}"))
        .env("WISP_API_KEY", key)
        .env("WISP_REFERENCES", fixtures_dir().join("references.json"))
        .env("WISP_MODELS", models.join(","))
        .output()
        .expect("run the tritonclient script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tritonclient script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for (name, _) in MODELS {
        assert!(stdout.contains(&format!("ok: {name} ")), "{stdout}");
    }
    assert!(stdout.contains("ok: errors"), "{stdout}");
}
