//! End-to-end: a batch job on the real `wisp serve` survives `kill -9` mid-job. After a
//! restart on the same data directory it resumes from its last completed chunk, and its
//! result file has every row exactly once, equal to a job that ran uninterrupted.

mod common;

use std::time::Duration;

use common::server::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_test_artifacts::fixture;

const ROWS: usize = 3000;

/// Small chunks and few rows in flight: many chunk boundaries, and a job long enough to be
/// caught mid-way.
const CONFIG: &str = "[batch]\nchunk_rows = 16\nrow_concurrency = 2\n";

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            token: login(&server.base).await,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/orgs/team{path}", self.base)
    }

    async fn job(&self, id: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/batch-jobs/{id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get job");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    async fn settled(&self, id: &str) -> Value {
        for _ in 0..6000 {
            let job = self.job(id).await;
            if !matches!(job["status"].as_str(), Some("queued" | "running")) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("batch job {id} did not finish");
    }

    async fn results(&self, id: &str) -> Vec<String> {
        let response = self
            .http
            .get(self.url(&format!("/batch-jobs/{id}/results")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("results");
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("text");
        text.lines().map(str::to_owned).collect()
    }
}

fn input() -> (String, usize) {
    let refs: Value = serde_json::from_slice(&fixture("references.json")).unwrap();
    let flat: Vec<f64> = refs["iris_logreg.onnx"]["inputs"]["input"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let rows: Vec<&[f64]> = flat.chunks(4).collect();
    let mut text = String::new();
    let mut bad = 0;
    for i in 0..ROWS {
        if i % 97 == 5 {
            text.push_str("{\"input\": \"not a tensor\"}\n");
            bad += 1;
        } else {
            text.push_str(&json!({ "input": rows[i % rows.len()] }).to_string());
            text.push('\n');
        }
    }
    (text, bad)
}

#[tokio::test]
async fn a_job_killed_mid_way_resumes_without_losing_or_repeating_a_row() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("wisp.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let serve = |port| {
        let mut command = with_admin(data.path(), port, "team");
        command.env("WISP_CONFIG", &config);
        command
    };

    let port = free_port();
    let mut server = start(serve(port), port).await;
    let api = Api::new(&server).await;
    let created = api
        .http
        .post(api.url("/models"))
        .bearer_auth(&api.token)
        .json(&json!({ "name": "iris" }))
        .send()
        .await
        .expect("create model");
    assert_eq!(created.status(), StatusCode::CREATED);
    let uploaded = api
        .http
        .post(api.url("/models/iris/versions"))
        .bearer_auth(&api.token)
        .header("content-type", "application/octet-stream")
        .body(fixture("iris_logreg.onnx").to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let deployed: Value = api
        .http
        .put(api.url("/models/iris/deployment"))
        .bearer_auth(&api.token)
        .json(&json!({ "version": 1, "wait": true }))
        .send()
        .await
        .expect("deploy")
        .json()
        .await
        .expect("json");
    assert_eq!(deployed["status"], "ready", "{deployed}");

    let (text, bad) = input();
    let job: Value = api
        .http
        .post(api.url("/batch-jobs?model=iris"))
        .bearer_auth(&api.token)
        .header("content-type", "application/x-ndjson")
        .body(text)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let id = job["id"].as_str().expect("job id").to_owned();
    assert_eq!(job["rows_total"], ROWS);

    // Kill -9 once some, but not all, chunks are done.
    let done_before = loop {
        let job = api.job(&id).await;
        let done = job["rows_done"].as_u64().unwrap();
        assert!(
            done < ROWS as u64,
            "the job finished before it could be killed; make it longer"
        );
        if done > 0 {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    drop(server);

    let port = free_port();
    let server = start(serve(port), port).await;
    let api = Api::new(&server).await;
    let resumed = api.job(&id).await;
    assert!(
        resumed["rows_done"].as_u64().unwrap() >= done_before,
        "committed progress survives: {resumed}"
    );
    let finished = api.settled(&id).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["rows_done"], ROWS);
    assert_eq!(finished["errors"], bad);

    let lines = api.results(&id).await;
    assert_eq!(lines.len(), ROWS, "one line per row");
    for (i, line) in lines.iter().enumerate() {
        let line: Value = serde_json::from_str(line).expect("json line");
        assert_eq!(line["row"], i, "every row once, in order");
        assert_eq!(line.get("error").is_some(), i % 97 == 5, "{line}");
    }

    // The same input run without interruption gives the same file.
    let again: Value = api
        .http
        .post(api.url("/batch-jobs"))
        .bearer_auth(&api.token)
        .json(&json!({ "model": "iris", "format": "ndjson", "input_sha256": finished["input_sha256"] }))
        .send()
        .await
        .expect("submit again")
        .json()
        .await
        .expect("json");
    let again_id = again["id"].as_str().expect("job id").to_owned();
    let uninterrupted = api.settled(&again_id).await;
    assert_eq!(uninterrupted["status"], "succeeded");
    // The same results; each row's call has a prediction id of its own.
    assert_eq!(
        without_prediction_ids(api.results(&again_id).await),
        without_prediction_ids(lines)
    );
}

/// Result lines without their `prediction_id`s (which differ from run to run), checking
/// that every line with outputs had one.
fn without_prediction_ids(lines: Vec<String>) -> Vec<Value> {
    lines
        .into_iter()
        .map(|line| {
            let mut line: Value = serde_json::from_str(&line).expect("a result line");
            let id = line.as_object_mut().unwrap().remove("prediction_id");
            assert_eq!(id.is_some(), line.get("outputs").is_some(), "{line}");
            line
        })
        .collect()
}
