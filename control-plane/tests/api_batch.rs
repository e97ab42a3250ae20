//! Batch jobs through the router: NDJSON and CSV inputs on the real iris model, bad rows,
//! re-running a stored input, cancellation, validation, permissions and tenant isolation.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};

const JOBS: &str = "/v1/orgs/acme/batch-jobs";

/// The reference iris rows (5 × 4 features) with their onnxruntime outputs.
fn iris_rows() -> (Vec<Vec<f64>>, Vec<i64>, Vec<Vec<f64>>) {
    let refs = &references()["iris_logreg.onnx"];
    let flat: Vec<f64> = refs["inputs"]["input"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let labels = refs["outputs"]["label"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let probabilities: Vec<f64> = refs["outputs"]["probabilities"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (
        flat.chunks(4).map(<[f64]>::to_vec).collect(),
        labels,
        probabilities.chunks(3).map(<[f64]>::to_vec).collect(),
    )
}

async fn submit(
    app: &TestApp,
    token: &str,
    query: &str,
    content_type: &str,
    body: String,
) -> Reply {
    let request = Request::post(format!("{JOBS}?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("request");
    app.send(request).await
}

/// Polls the job until it is no longer queued or running.
async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..6000 {
        let reply = app.get(&format!("{JOBS}/{id}"), token).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        if !matches!(reply.body["status"].as_str(), Some("queued" | "running")) {
            return reply.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("batch job {id} did not finish");
}

/// The result file, one parsed line per row.
async fn results(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let reply = app.get(&format!("{JOBS}/{id}/results"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/x-ndjson");
    match &reply.body {
        Value::Null => vec![],
        // A single line parses as JSON by itself.
        Value::Object(_) => vec![reply.body.clone()],
        Value::String(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).expect("result line"))
            .collect(),
        other => panic!("unexpected results {other}"),
    }
}

#[tokio::test]
async fn ndjson_job_answers_every_row_in_order_and_bad_rows_are_row_errors() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (rows, labels, probabilities) = iris_rows();

    // Three chunks of 64 and a bit; every 17th row is bad in one of three ways.
    let total = 200;
    let mut input = String::new();
    let mut bad = Vec::new();
    for i in 0..total {
        let features = &rows[i % rows.len()];
        let line = match (i % 17 == 3, i % 3) {
            (true, 0) => "this is not json".to_owned(),
            (true, 1) => json!({ "input": [1.0, 2.0, 3.0] }).to_string(),
            (true, _) => json!({ "inputs": [features] }).to_string(),
            // Alternate the flat row (batch dimension added) and the batched form.
            (false, _) if i % 2 == 0 => json!({ "input": features }).to_string(),
            (false, _) => json!({ "input": [features] }).to_string(),
        };
        if i % 17 == 3 {
            bad.push(i);
        }
        input.push_str(&line);
        input.push('\n');
    }
    let created = submit(&app, &admin, "model=iris", "application/x-ndjson", input).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["rows_total"], total);
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["format"], "ndjson");
    assert_eq!(created.body["chunk_rows"], 64);
    let id = created.body["id"].as_str().unwrap().to_owned();

    let job = settled(&app, &admin, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["rows_done"], total);
    assert_eq!(job["errors"], bad.len());
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());

    let lines = results(&app, &admin, &id).await;
    assert_eq!(lines.len(), total);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["row"], i, "rows in input order");
        if bad.contains(&i) {
            assert_eq!(line["error"]["code"], "invalid_input", "row {i}: {line}");
            assert!(line.get("outputs").is_none());
        } else {
            let outputs = &line["outputs"];
            assert_eq!(outputs["label"]["shape"], json!([1]), "row {i}: {line}");
            assert_eq!(outputs["label"]["data"][0], labels[i % rows.len()]);
            close(
                &outputs["probabilities"]["data"],
                &json!(probabilities[i % rows.len()]),
            );
        }
    }

    // The stored input runs again by digest, with the same results.
    let again = app
        .post(
            JOBS,
            &admin,
            json!({ "model": "iris", "format": "ndjson", "input_sha256": job["input_sha256"] }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    let again_id = again.body["id"].as_str().unwrap().to_owned();
    assert_ne!(again_id, id);
    settled(&app, &admin, &again_id).await;
    // The same results; each row's call has a prediction id of its own.
    assert_eq!(
        without_prediction_ids(results(&app, &admin, &again_id).await),
        without_prediction_ids(lines)
    );

    let list = app.get(JOBS, &admin).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 2);

    let audit = app
        .get("/v1/orgs/acme/audit?action=batch_job.created", &admin)
        .await;
    assert_eq!(audit.body["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        audit.body["entries"][1]["target"],
        format!("batch_job:{id}")
    );
}

#[tokio::test]
async fn csv_columns_are_the_features_of_the_single_input() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (rows, labels, _) = iris_rows();
    let mut csv = "sepal_length,sepal_width,petal_length,petal_width\n".to_owned();
    for features in &rows {
        let fields: Vec<String> = features.iter().map(f64::to_string).collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    csv.push_str("1,2,three,4\n1,2,3\n");

    // As a multipart form; the part's content type gives the format.
    let boundary = "batch-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"iris.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    let created = submit(
        &app,
        &admin,
        "model=iris",
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["format"], "csv");
    assert_eq!(created.body["rows_total"], rows.len() + 2);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let job = settled(&app, &admin, &id).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["errors"], 2);
    let lines = results(&app, &admin, &id).await;
    for (i, label) in labels.iter().enumerate() {
        assert_eq!(lines[i]["outputs"]["label"]["data"][0], *label);
    }
    let not_a_number = &lines[rows.len()]["error"];
    assert_eq!(not_a_number["code"], "invalid_input");
    assert!(
        not_a_number["message"]
            .as_str()
            .unwrap()
            .contains("not a number")
    );
    assert_eq!(lines[rows.len() + 1]["error"]["code"], "invalid_input");
}

#[tokio::test]
async fn a_cancelled_job_runs_no_further() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;

    // Every job slot taken: the job stays queued until they are released.
    let slots = app.state.batch.slots();
    let held = slots
        .clone()
        .acquire_many_owned(u32::try_from(app.state.batch.settings().max_running_jobs).unwrap())
        .await
        .expect("slots");
    let input = "{\"input\": [5.1, 3.5, 1.4, 0.2]}\n".repeat(100);
    let created = submit(
        &app,
        &admin,
        "model=iris&format=ndjson",
        "text/plain",
        input,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["status"], "queued");
    let id = created.body["id"].as_str().unwrap().to_owned();

    let cancelled = app
        .call(
            Method::POST,
            &format!("{JOBS}/{id}/cancel"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.body["finished_at"].is_string());
    let twice = app
        .call(
            Method::POST,
            &format!("{JOBS}/{id}/cancel"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.code(), "job_finished");

    // Released: the runner gets its slot, sees the cancellation and does nothing.
    drop(held);
    // Semaphores are fair: the runner, queued first, has had its turn once these are ours.
    let all = u32::try_from(app.state.batch.settings().max_running_jobs).unwrap();
    let _ = slots.acquire_many(all).await.expect("slots back");
    let job = app.get(&format!("{JOBS}/{id}"), &admin).await;
    assert_eq!(job.body["status"], "cancelled");
    assert_eq!(job.body["rows_done"], 0);
    assert!(results(&app, &admin, &id).await.is_empty());

    let audit = app
        .get("/v1/orgs/acme/audit?action=batch_job.cancelled", &admin)
        .await;
    assert_eq!(audit.body["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn submissions_are_checked_before_a_job_exists() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let row = "{\"input\": [5.1, 3.5, 1.4, 0.2]}\n".to_owned();

    let cases = [
        (
            "format=ndjson",
            "application/x-ndjson",
            row.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "model=iris",
            "application/octet-stream",
            row.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "model=iris&format=xml",
            "text/plain",
            row.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "model=iris",
            "text/csv",
            "a,b\n1,2\n".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "model=iris",
            "text/csv",
            "a,b,c,d\n".into(),
            StatusCode::BAD_REQUEST,
            "empty_upload",
        ),
        (
            "model=iris",
            "application/x-ndjson",
            String::new(),
            StatusCode::BAD_REQUEST,
            "empty_upload",
        ),
        (
            "model=nope",
            "application/x-ndjson",
            row.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "model=iris&version=9",
            "application/x-ndjson",
            row.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (query, content_type, body, status, code) in cases {
        let reply = submit(&app, &admin, query, content_type, body).await;
        assert_eq!(reply.status, status, "{query} {content_type}: {reply:?}");
        assert_eq!(reply.code(), code, "{query}");
    }

    app.model(&admin, ORG, "idle").await;
    let reply = submit(
        &app,
        &admin,
        "model=idle",
        "application/x-ndjson",
        row.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "not_deployed");

    // A digest the organisation never uploaded is unknown, whoever else has it.
    let reply = app
        .post(
            JOBS,
            &admin,
            json!({ "model": "iris", "format": "ndjson", "input_sha256": "0".repeat(64) }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");

    let viewer = app
        .user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let reply = submit(&app, &viewer, "model=iris", "application/x-ndjson", row).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(JOBS, &viewer).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(JOBS, &admin).await.body,
        json!([]),
        "no job was created"
    );
}

#[tokio::test]
async fn another_organisations_job_is_not_found() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let created = submit(
        &app,
        &admin,
        "model=iris",
        "application/x-ndjson",
        "{\"input\": [5.1, 3.5, 1.4, 0.2]}\n".into(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let sha = created.body["input_sha256"].clone();
    settled(&app, &admin, &id).await;

    // The admin's other organisation does not see acme's job…
    app.org(&admin, "rival").await;
    let rival = format!("/v1/orgs/rival/batch-jobs/{id}");
    for reply in [
        app.get(&rival, &admin).await,
        app.get(&format!("{rival}/results"), &admin).await,
        app.call(Method::POST, &format!("{rival}/cancel"), Some(&admin), None)
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
    }
    // …nor can it run acme's stored input by digest.
    app.model(&admin, "rival", "iris").await;
    let upload = app
        .upload(
            "rival",
            "iris",
            &admin,
            wisp_test_artifacts::fixture("iris_logreg.onnx"),
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let deploy = app
        .put(
            "/v1/orgs/rival/models/iris/deployment",
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
    let reply = app
        .post(
            "/v1/orgs/rival/batch-jobs",
            &admin,
            json!({ "model": "iris", "format": "ndjson", "input_sha256": sha }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");

    // A member of rival only does not see acme at all.
    let eve = app
        .user_with_role(&admin, "rival", "eve@example.com", "member")
        .await;
    let reply = app.get(&format!("{JOBS}/{id}"), &eve).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_batch_jobs() {
    let app = TestApp::new().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    let paths = &doc.body["paths"];
    for path in [
        "/v1/orgs/{org}/batch-jobs",
        "/v1/orgs/{org}/batch-jobs/{id}",
        "/v1/orgs/{org}/batch-jobs/{id}/cancel",
        "/v1/orgs/{org}/batch-jobs/{id}/results",
    ] {
        assert!(paths.get(path).is_some(), "{path} missing");
    }
    let create = &paths["/v1/orgs/{org}/batch-jobs"]["post"]["requestBody"]["content"];
    for media in [
        "application/x-ndjson",
        "text/csv",
        "multipart/form-data",
        "application/json",
    ] {
        assert!(create.get(media).is_some(), "{media} missing: {create}");
    }
    assert!(
        paths["/v1/orgs/{org}/batch-jobs/{id}/results"]["get"]["responses"]["200"]["content"]
            .get("application/x-ndjson")
            .is_some()
    );
}

#[tokio::test]
async fn a_json_body_is_bounded_though_input_bodies_stream() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    // The route lifts the body limit for streamed inputs; its JSON form used to be read
    // whole, however large.
    let huge = json!({
        "model": "iris",
        "format": "ndjson",
        "input_sha256": "a".repeat(64),
        "alias": "x".repeat(2 << 20),
    })
    .to_string();
    let reply = submit(&app, &admin, "", "application/json", huge).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{reply:?}"
    );
    // A small one is read as before (the model does not exist here).
    let small = json!({"model": "iris", "format": "ndjson", "input_sha256": "a".repeat(64)});
    let reply = submit(&app, &admin, "", "application/json", small.to_string()).await;
    assert_eq!(reply.code(), "not_found", "{reply:?}");
}

/// Result lines without their `prediction_id`s (which differ from run to run), checking
/// that every line with outputs had one.
fn without_prediction_ids(lines: Vec<Value>) -> Vec<Value> {
    lines
        .into_iter()
        .map(|mut line| {
            let id = line.as_object_mut().unwrap().remove("prediction_id");
            assert_eq!(id.is_some(), line.get("outputs").is_some(), "{line}");
            line
        })
        .collect()
}
