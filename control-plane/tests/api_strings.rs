//! String tensors through the real router: a classifier trained on string labels (a
//! scikit-learn export) answers its labels as JSON strings in wisp's predict and as `BYTES`
//! in Open Inference Protocol V2, and its signature says `string`; a categorical column
//! goes in as nested JSON strings.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wisp_test_artifacts::fixture;

/// Three iris rows (one of each species) and the labels onnxruntime gives them.
const ROWS: [[f32; 4]; 3] = [
    [5.1, 3.5, 1.4, 0.2],
    [6.7, 3.0, 5.2, 2.3],
    [5.9, 3.0, 4.2, 1.5],
];
const LABELS: [&str; 3] = ["setosa", "virginica", "versicolor"];

#[tokio::test(flavor = "multi_thread")]
async fn a_string_label_classifier_answers_strings_in_predict_and_v2() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "species").await;
    let upload = app
        .upload(
            ORG,
            "species",
            &admin,
            fixture("unsupported/iris_string_labels.onnx"),
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let outputs = upload.body["signature"]["outputs"].as_array().unwrap();
    let label = outputs.iter().find(|o| o["name"] == "label").unwrap();
    assert_eq!(label["dtype"], "string", "{upload:?}");

    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/species/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");

    // wisp's predict: string outputs are JSON strings.
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/species/predict"),
            &admin,
            json!({ "inputs": { "input": ROWS } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let label = &reply.body["outputs"]["label"];
    assert_eq!(label["dtype"], "string", "{reply:?}");
    assert_eq!(label["shape"], json!([3]));
    assert_eq!(label["data"], json!(LABELS));

    // V2: the same labels as BYTES.
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    let flat: Vec<f32> = ROWS.iter().flatten().copied().collect();
    let reply = app
        .post(
            "/v2/models/species/infer",
            &key,
            json!({
                "inputs": [{ "name": "input", "shape": [3, 4], "datatype": "FP32", "data": flat }],
                "outputs": [{ "name": "label" }],
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let output = &reply.body["outputs"][0];
    assert_eq!(output["name"], "label");
    assert_eq!(output["datatype"], "BYTES", "{reply:?}");
    assert_eq!(output["shape"], json!([3]));
    assert_eq!(output["data"], json!(LABELS));

    // V2 binary data: the labels come back after the JSON header in Triton's BYTES layout,
    // each a 4-byte little-endian length and its UTF-8 bytes.
    let request = json!({
        "inputs": [{ "name": "input", "shape": [3, 4], "datatype": "FP32", "data": flat }],
        "outputs": [{ "name": "label", "parameters": { "binary_data": true } }],
    });
    let response = app
        .app
        .clone()
        .oneshot(
            Request::post("/v2/models/species/infer")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .body(Body::from(request.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json_length: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let (head, binary) = body.split_at(json_length);
    let head: Value = serde_json::from_slice(head).unwrap();
    let output = &head["outputs"][0];
    assert_eq!(output["datatype"], "BYTES", "{head}");
    let mut expected = Vec::new();
    for label in LABELS {
        expected.extend_from_slice(&(label.len() as u32).to_le_bytes());
        expected.extend_from_slice(label.as_bytes());
    }
    assert_eq!(output["parameters"]["binary_data_size"], expected.len());
    assert_eq!(binary, &expected[..]);
}

/// A pipeline with a categorical column (scikit-learn's `OneHotEncoder` on strings next to
/// two numeric columns, `tests/fixtures/ml/weather_onehot_logreg.onnx`) takes the column as
/// nested JSON strings; its signature and the V2 metadata say `string` / `BYTES`.
#[tokio::test(flavor = "multi_thread")]
async fn a_categorical_column_goes_in_as_json_strings() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "weather").await;
    let upload = app
        .upload(
            ORG,
            "weather",
            &admin,
            fixture("ml/weather_onehot_logreg.onnx"),
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let inputs = upload.body["signature"]["inputs"].as_array().unwrap();
    let outlook = inputs.iter().find(|i| i["name"] == "outlook").unwrap();
    assert_eq!(outlook["dtype"], "string", "{upload:?}");
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/weather/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");

    // The first rows of the fixture's expected.json; "snow" is a category the encoder
    // never saw (a row of zeros, as onnxruntime does).
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/weather/predict"),
            &admin,
            json!({ "inputs": {
                "outlook": [["sunny"], ["rain"], ["snow"]],
                "temperature": [[21.5], [14.0], [3.0]],
                "humidity": [[45.0], [88.0], [70.0]],
            } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.body["outputs"]["label"]["data"],
        json!(["play", "stay", "stay"]),
        "{reply:?}"
    );

    let metadata = app.get("/v2/models/weather", &admin).await;
    let outlook = metadata.body["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "outlook")
        .unwrap_or_else(|| panic!("{metadata:?}"));
    assert_eq!(outlook["datatype"], "BYTES", "{metadata:?}");
}
