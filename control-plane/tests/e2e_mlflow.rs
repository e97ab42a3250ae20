//! End-to-end: the official `mlflow` client (3.x) against the real `wisp serve` binary —
//! a training script that logs, registers and reads everything back — then the model it
//! registered is deployed through wisp's API following the alias the script set, predicted
//! with, and redeployed when the alias is moved through the MLflow API.
//!
//! The client runs from the venv `scripts/test-env.sh` installs; without it this test
//! fails rather than skips.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::clients;
use common::server::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ORG: &str = "lab";

fn close(got: &Value, want: &Value) {
    let (got, want) = (
        got.as_array().expect("array"),
        want.as_array().expect("array"),
    );
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        let (g, w) = (g.as_f64().expect("number"), w.as_f64().expect("number"));
        assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
    }
}

async fn predict(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    model: &str,
    input: &Value,
) -> Value {
    let response = http
        .post(format!("{base}/v1/orgs/{ORG}/models/{model}/predict"))
        .bearer_auth(key)
        .json(&json!({ "inputs": { "X": input } }))
        .send()
        .await
        .expect("predict");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

fn assert_prediction(prediction: &Value, expected: &Value) {
    let label = expected["label_output"].as_str().expect("label output");
    let probabilities = expected["probabilities_output"]
        .as_str()
        .expect("probabilities output");
    assert_eq!(
        prediction["outputs"][label]["data"], expected["label"],
        "{prediction}"
    );
    close(
        &prediction["outputs"][probabilities]["data"],
        &expected["probabilities"],
    );
}

/// The model's drift reference taken from what the script logged on its run: the data
/// set logged with `mlflow.log_input` (its file found among the run's artifacts, by the
/// local source's file name or by its download URL), or the artifact by path.
async fn drift_references_from_the_run(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    model: &str,
    summary: &Value,
) {
    let run_id = summary["run_id"].as_str().expect("run id");
    let put = |source: Value| async move {
        let response = http
            .put(format!(
                "{base}/v1/orgs/{ORG}/models/{model}/drift/reference"
            ))
            .bearer_auth(token)
            .json(&source)
            .send()
            .await
            .expect("put reference");
        let status = response.status();
        (status, response.json::<Value>().await.expect("json"))
    };
    let (status, reference) = put(json!({
        "mlflow_run_id": run_id,
        "dataset": "iris-train",
        "context": "training",
        "ignore_columns": ["species"],
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{reference}");
    assert_eq!(reference["rows"], 150, "{reference}");
    assert_eq!(reference["source"]["kind"], "mlflow_dataset");
    assert_eq!(reference["source"]["artifact_path"], "data/iris_train.csv");
    assert_eq!(
        reference["columns"]["X"], summary["features"],
        "{reference}"
    );
    let features: Vec<&str> = reference["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        features,
        ["petal_length", "petal_width", "sepal_length", "sepal_width"]
    );

    let (status, by_url) = put(json!({
        "mlflow_run_id": run_id, "dataset": "iris-url", "ignore_columns": ["species"],
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{by_url}");
    assert_eq!(by_url["rows"], 150);
    let (status, by_path) = put(json!({
        "mlflow_run_id": run_id, "artifact_path": "data/iris_train.csv",
        "ignore_columns": ["species"],
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{by_path}");
    assert_eq!(by_path["source"]["kind"], "mlflow");

    for (source, reason) in [
        (json!({ "dataset": "iris-train" }), "unknown_column"),
        (
            json!({ "dataset": "iris-head", "ignore_columns": ["species"] }),
            "dataset_mismatch",
        ),
        (json!({ "dataset": "iris-code" }), "dataset_not_stored"),
        (
            json!({ "dataset": "iris-train", "artifact_path": "data/iris_train.csv" }),
            "invalid_source",
        ),
    ] {
        let mut source = source;
        source["mlflow_run_id"] = json!(run_id);
        let (status, error) = put(source.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{source}: {error}");
        assert_eq!(error["details"]["reason"], reason, "{source}: {error}");
    }
    let (status, missing) = put(json!({
        "mlflow_run_id": run_id, "dataset": "iris-train", "context": "validation",
    }))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

#[tokio::test]
async fn the_mlflow_client_logs_registers_and_its_model_is_served() {
    // Before starting anything: without the client this fails, it does not skip.
    let python = clients::python();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = start(with_admin(data.path(), port, ORG), port).await;
    let base = server.base.clone();
    let token = login(&base).await;
    let http = reqwest::Client::new();
    let key: Value = http
        .post(format!("{base}/v1/orgs/{ORG}/api-keys"))
        .bearer_auth(&token)
        .json(&json!({ "name": "mlflow", "scopes": ["models:write", "predict"] }))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("json");
    let key = key["secret"].as_str().expect("secret").to_owned();

    let summary_path = data.path().join("summary.json");
    let output = Command::new(&python)
        .arg(clients::script("mlflow_client_test.py"))
        .arg(&summary_path)
        .env("MLFLOW_TRACKING_URI", &base)
        .env("MLFLOW_TRACKING_TOKEN", &key)
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        // No usage reporting to the internet from a test.
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        // No retries with back-off on a failing call: fail fast and show why.
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("run the mlflow client script");
    assert!(
        output.status.success(),
        "mlflow client script failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(&summary_path).expect("summary")).expect("json");
    let model = summary["model"].as_str().expect("model name");

    // The two MLflow versions are wisp versions of the same name, with the inspector's
    // signature and the run as lineage.
    let versions: Value = http
        .get(format!("{base}/v1/orgs/{ORG}/models/{model}/versions"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("versions")
        .json()
        .await
        .expect("json");
    let versions = versions.as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{versions:?}");
    let first = versions.iter().find(|v| v["version"] == 1).expect("v1");
    assert_eq!(first["framework"], "onnx");
    assert_eq!(first["run_id"], summary["run_id"]);
    assert_eq!(first["signature"]["inputs"][0]["name"], "X", "{first}");
    assert_eq!(first["aliases"], json!(["champion"]), "{first}");

    // Deploy following the alias the script set, and predict.
    let deployment: Value = http
        .put(format!("{base}/v1/orgs/{ORG}/models/{model}/deployment"))
        .bearer_auth(&token)
        .json(&json!({ "alias": "champion", "wait": true }))
        .send()
        .await
        .expect("deploy")
        .json()
        .await
        .expect("json");
    assert_eq!(deployment["status"], "ready", "{deployment}");
    assert_eq!(deployment["version"], 1);
    let input = &summary["input"];
    let prediction = predict(&http, &base, &key, model, input).await;
    assert_prediction(&prediction, &summary["expected"]["1"]);

    drift_references_from_the_run(&http, &base, &token, model, &summary).await;

    // Move the alias through MLflow: the deployment follows it to version 2.
    let moved = http
        .post(format!("{base}/api/2.0/mlflow/registered-models/alias"))
        .bearer_auth(&key)
        .json(&json!({ "name": model, "alias": "champion", "version": "2" }))
        .send()
        .await
        .expect("set alias");
    assert_eq!(moved.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deployment: Value = http
            .get(format!("{base}/v1/orgs/{ORG}/models/{model}/deployment"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("deployment")
            .json()
            .await
            .expect("json");
        if deployment["version"] == 2 && deployment["status"] == "ready" {
            break;
        }
        assert_ne!(deployment["status"], "failed", "{deployment}");
        assert!(Instant::now() < deadline, "no redeploy: {deployment}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let prediction = predict(&http, &base, &key, model, input).await;
    assert_prediction(&prediction, &summary["expected"]["2"]);

    // The move is audited as coming from MLflow, with the redeploy.
    let audit: Value = http
        .get(format!(
            "{base}/v1/orgs/{ORG}/audit?action=model.alias.moved"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let moves = audit["entries"].as_array().expect("entries");
    assert!(
        moves.iter().any(|e| e["details"]["source"] == "mlflow"
            && e["details"]["to_mlflow_version"] == "2"
            && e["details"]["redeployed"] == true),
        "{moves:?}"
    );
}
