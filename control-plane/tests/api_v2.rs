//! The Open Inference Protocol V2 (with Triton's binary tensor extension) and KServe V1
//! over the router with real models: the organisation comes from the credential, calls run
//! through the runtime, errors are `{"error": "…"}`.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A raw response: status, headers, body bytes.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The V2 error message; asserts the body is exactly `{"error": "…"}`.
    fn error(&self) -> String {
        let body = self.json();
        let fields = body.as_object().expect("an object");
        assert_eq!(fields.len(), 1, "only `error`: {body}");
        body["error"].as_str().expect("error string").to_owned()
    }
}

/// Sends `body` as is, with no `Content-Type` (as `tritonclient` does) unless in `headers`.
async fn raw(
    app: &TestApp,
    method: Method,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Raw {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let response = app
        .app
        .clone()
        .oneshot(builder.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Raw {
        status,
        headers,
        body: body.to_vec(),
    }
}

async fn infer(app: &TestApp, model: &str, token: &str, request: Value) -> Raw {
    let uri = format!("/v2/models/{model}/infer");
    raw(
        app,
        Method::POST,
        &uri,
        Some(token),
        &[],
        request.to_string().into_bytes(),
    )
    .await
}

async fn get(app: &TestApp, uri: &str, token: Option<&str>) -> Raw {
    raw(app, Method::GET, uri, token, &[], Vec::new()).await
}

/// The V2 inputs of a fixture's references, as JSON.
fn json_inputs(refs: &Value) -> Value {
    refs["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, tensor)| {
            json!({"name": name, "shape": tensor["shape"], "datatype": "FP32", "data": tensor["data"]})
        })
        .collect()
}

/// An app with iris, the digits MLP and the digits CNN deployed in `acme`, the admin's
/// token and a predict-only API key.
async fn models() -> (TestApp, String, String) {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    deployed(&app, &admin, "digits", "digits_mlp.onnx").await;
    deployed(&app, &admin, "cnn", "digits_cnn.onnx").await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    (app, admin, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_inference_matches_the_references() {
    let (app, _, key) = models().await;
    let references = references();
    for (model, file) in [
        ("iris", "iris_logreg.onnx"),
        ("digits", "digits_mlp.onnx"),
        ("cnn", "digits_cnn.onnx"),
    ] {
        let refs = &references[file];
        let reply = infer(
            &app,
            model,
            &key,
            json!({"id": format!("req-{model}"), "inputs": json_inputs(refs)}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{model}: {}", reply.json());
        assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
        assert!(
            !reply
                .headers
                .contains_key("inference-header-content-length")
        );
        let body = reply.json();
        assert_eq!(body["model_name"], model);
        assert_eq!(body["model_version"], "1");
        assert_eq!(body["id"], format!("req-{model}"));
        let outputs = body["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), refs["outputs"].as_object().unwrap().len());
        for output in outputs {
            let name = output["name"].as_str().unwrap();
            let want = &refs["outputs"][name];
            assert_eq!(output["shape"], want["shape"], "{model}/{name}");
            match want["dtype"].as_str().unwrap() {
                "int64" => {
                    assert_eq!(output["datatype"], "INT64");
                    assert_eq!(output["data"], want["data"], "{model}/{name}");
                }
                _ => {
                    assert_eq!(output["datatype"], "FP32");
                    close(&output["data"], &want["data"]);
                }
            }
        }
    }

    // Nested data and a version in the path.
    let reply = raw(
        &app,
        Method::POST,
        "/v2/models/iris/versions/1/infer",
        Some(&key),
        &[("content-type", "application/json".into())],
        json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                           "data": [[5.1, 3.5, 1.4, 0.2]]}]})
        .to_string()
        .into_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["model_version"], "1");
    assert!(body.get("id").is_none(), "no id asked, none echoed: {body}");
    let label = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    assert_eq!(label["data"], json!([0]));
}

fn f32_bytes(values: &Value) -> Vec<u8> {
    values
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| (v.as_f64().unwrap() as f32).to_le_bytes())
        .collect()
}

/// The outputs of a binary response by name: the JSON entry and its bytes.
fn binary_outputs(reply: &Raw) -> Vec<(Value, Vec<u8>)> {
    let length: usize = reply.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let header: Value = serde_json::from_slice(&reply.body[..length]).unwrap();
    let mut offset = length;
    header["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|output| {
            let bytes = match output["parameters"]["binary_data_size"].as_u64() {
                Some(size) => {
                    let bytes = reply.body[offset..offset + size as usize].to_vec();
                    offset += size as usize;
                    bytes
                }
                None => Vec::new(),
            };
            (output.clone(), bytes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_tensors_round_trip() {
    let (app, _, key) = models().await;
    let refs = &references()["iris_logreg.onnx"];
    let input = &refs["inputs"]["input"];
    let header = json!({
        "id": "bin",
        "inputs": [{"name": "input", "shape": input["shape"], "datatype": "FP32",
                    "parameters": {"binary_data_size": 5 * 4 * 4}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(f32_bytes(&input["data"]));
    let reply = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&key),
        &[("inference-header-content-length", header.len().to_string())],
        body.clone(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let outputs = binary_outputs(&reply);
    assert_eq!(outputs.len(), 2);
    for (output, bytes) in &outputs {
        assert!(output.get("data").is_none(), "{output}");
        let name = output["name"].as_str().unwrap();
        let want = &refs["outputs"][name];
        assert_eq!(output["shape"], want["shape"]);
        if name == "label" {
            assert_eq!(output["datatype"], "INT64");
            let labels: Vec<i64> = bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(json!(labels), want["data"]);
        } else {
            assert_eq!(output["datatype"], "FP32");
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            close(&json!(values), &want["data"]);
        }
    }

    // Binary input, one output selected and asked for as JSON: a plain JSON response.
    let header = json!({
        "inputs": [{"name": "input", "shape": input["shape"], "datatype": "FP32",
                    "parameters": {"binary_data_size": 5 * 4 * 4}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": false}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(f32_bytes(&input["data"]));
    let reply = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&key),
        &[("inference-header-content-length", header.len().to_string())],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        !reply
            .headers
            .contains_key("inference-header-content-length")
    );
    let body = reply.json();
    assert_eq!(
        body["outputs"],
        json!([{"name": "label", "datatype": "INT64", "shape": [5], "data": refs["outputs"]["label"]["data"]}])
    );

    // A JSON input with one binary output selected: only that one, as bytes.
    let reply = infer(
        &app,
        "iris",
        &key,
        json!({"inputs": json_inputs(refs),
               "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let outputs = binary_outputs(&reply);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].0["name"], "probabilities");
    assert_eq!(outputs[0].1.len(), 5 * 3 * 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_v2_errors() {
    let (app, admin, key) = models().await;
    let input = |fields: Value| {
        let mut input = json!({"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": [5.1, 3.5, 1.4, 0.2]});
        input
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        json!({"inputs": [input]})
    };
    let cases = [
        (
            input(json!({"shape": [1, 3], "data": [1.0, 2.0, 3.0]})),
            "expected f32 [?, 4], got f32 [1, 3]",
        ),
        (
            input(json!({"datatype": "INT64", "data": [1, 2, 3, 4]})),
            "expected datatype FP32, got INT64",
        ),
        (input(json!({"name": "features"})), "no such input"),
        (input(json!({"shape": [2, 4]})), "holds 8 elements"),
        (json!({"inputs": []}), "missing"),
        (json!({"input": []}), "not a V2 inference request"),
    ];
    for (request, needle) in cases {
        let reply = infer(&app, "iris", &key, request.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{request}");
        let message = reply.error();
        assert!(message.contains(needle), "{request}: {message}");
    }
    let malformed = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&key),
        &[],
        b"{\"inputs\": [".to_vec(),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.error().contains("invalid JSON"));
    let bad_length = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&key),
        &[("inference-header-content-length", "9999".into())],
        input(json!({})).to_string().into_bytes(),
    )
    .await;
    assert_eq!(bad_length.status, StatusCode::BAD_REQUEST);
    bad_length.error();

    let unknown = infer(&app, "nope", &key, input(json!({}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error(), "model not found");
    let no_version = raw(
        &app,
        Method::POST,
        "/v2/models/iris/versions/7/infer",
        Some(&key),
        &[],
        input(json!({})).to_string().into_bytes(),
    )
    .await;
    assert_eq!(no_version.status, StatusCode::NOT_FOUND);
    assert_eq!(no_version.error(), "version not found");
    let bad_version = get(&app, "/v2/models/iris/versions/latest", Some(&key)).await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    bad_version.error();

    // Another organisation's model is not found, even by its owner's key.
    app.org(&admin, "beta").await;
    let beta_model = app.model(&admin, "beta", "secret").await;
    assert_eq!(beta_model.status, StatusCode::CREATED);
    let hidden = get(&app, "/v2/models/secret", Some(&key)).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    hidden.error();
    let (_, beta_key) = app.api_key(&admin, "beta", &["predict"]).await;
    let from_beta = infer(&app, "iris", &beta_key, input(json!({}))).await;
    assert_eq!(from_beta.status, StatusCode::NOT_FOUND);
    assert_eq!(from_beta.error(), "model not found");

    // No credentials: 401, in the V2 format.
    let anonymous = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        None,
        &[],
        input(json!({})).to_string().into_bytes(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.error().contains("bearer"));
    let anonymous = get(&app, "/v2/models/iris", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    anonymous.error();

    // An undeployed model: metadata yes, inference no.
    app.model(&admin, ORG, "idle").await;
    let idle = infer(&app, "idle", &key, input(json!({}))).await;
    assert_eq!(idle.status, StatusCode::CONFLICT);
    assert!(idle.error().contains("not deployed"));

    // After all of that the model still serves.
    let ok = infer(&app, "iris", &key, input(json!({}))).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metadata() {
    let (app, admin, key) = models().await;
    for uri in ["/v2/health/live", "/v2/health/ready"] {
        assert_eq!(get(&app, uri, None).await.status, StatusCode::OK, "{uri}");
    }
    let server = get(&app, "/v2", None).await;
    assert_eq!(server.status, StatusCode::OK);
    let server = server.json();
    assert_eq!(server["name"], "wisp");
    assert_eq!(server["extensions"], json!(["binary_tensor_data"]));
    assert!(server["version"].is_string());

    // A predict-only key may read what it is about to call.
    let metadata = get(&app, "/v2/models/iris", Some(&key)).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(
        metadata.json(),
        json!({
            "name": "iris", "versions": ["1"], "platform": "onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
        })
    );
    let cnn = get(&app, "/v2/models/cnn/versions/1", Some(&key))
        .await
        .json();
    assert_eq!(
        cnn["inputs"],
        json!([{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}])
    );
    assert_eq!(
        get(&app, "/v2/models/cnn/versions/2", Some(&key))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    for uri in ["/v2/models/iris/ready", "/v2/models/iris/versions/1/ready"] {
        let ready = get(&app, uri, Some(&key)).await;
        assert_eq!(ready.status, StatusCode::OK, "{uri}");
    }
    app.model(&admin, ORG, "idle").await;
    let idle = get(&app, "/v2/models/idle/ready", Some(&key)).await;
    assert_eq!(idle.status, StatusCode::BAD_REQUEST);
    assert!(idle.error().contains("not deployed"));
    let missing = get(&app, "/v2/models/nope/ready", Some(&key)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    missing.error();

    // The OpenAPI document describes both protocols.
    let openapi = app.get("/openapi.json", &admin).await.body;
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/v2",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}/infer",
        "/v1/models/{model}:predict",
        "/v1/models/{model}",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_organisation_comes_from_the_credential() {
    let (app, admin, _) = models().await;
    let request = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                     "data": [5.1, 3.5, 1.4, 0.2]}]});
    // The admin belongs to one organisation: no header needed.
    assert_eq!(
        infer(&app, "iris", &admin, request.clone()).await.status,
        StatusCode::OK
    );

    // With two, the user must say which.
    app.org(&admin, "beta").await;
    let ambiguous = infer(&app, "iris", &admin, request.clone()).await;
    assert_eq!(ambiguous.status, StatusCode::BAD_REQUEST);
    assert!(
        ambiguous.error().contains("x-wisp-org"),
        "{}",
        ambiguous.error()
    );
    let body = request.to_string().into_bytes();
    let in_acme = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&admin),
        &[("x-wisp-org", ORG.into())],
        body.clone(),
    )
    .await;
    assert_eq!(in_acme.status, StatusCode::OK);
    let in_beta = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&admin),
        &[("x-wisp-org", "beta".into())],
        body.clone(),
    )
    .await;
    assert_eq!(in_beta.status, StatusCode::NOT_FOUND);
    assert_eq!(in_beta.error(), "model not found");

    // A key is bound to its organisation: naming another one finds nothing.
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    let elsewhere = raw(
        &app,
        Method::POST,
        "/v2/models/iris/infer",
        Some(&key),
        &[("x-wisp-org", "beta".into())],
        body.clone(),
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.error(), "organisation not found");

    // The permission table applies: a viewer may describe but not infer; a read key may
    // not infer either.
    let viewer = app
        .user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    assert_eq!(
        get(&app, "/v2/models/iris", Some(&viewer)).await.status,
        StatusCode::OK
    );
    let forbidden = infer(&app, "iris", &viewer, request.clone()).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    forbidden.error();
    let (_, read_key) = app.api_key(&admin, ORG, &["read"]).await;
    assert_eq!(
        infer(&app, "iris", &read_key, request).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kserve_v1_predicts_rows() {
    let (app, admin, key) = models().await;
    let references = references();
    let refs = &references["iris_logreg.onnx"];
    let rows: Vec<Value> = refs["inputs"]["input"]["data"]
        .as_array()
        .unwrap()
        .chunks(4)
        .map(|row| json!(row))
        .collect();
    let predict = |model: &str, body: Value| {
        let uri = format!("/v1/models/{model}:predict");
        let key = key.clone();
        let app = &app;
        async move {
            raw(
                app,
                Method::POST,
                &uri,
                Some(&key),
                &[],
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    let reply = predict("iris", json!({"instances": rows})).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let predictions = reply.json()["predictions"].as_array().unwrap().clone();
    assert_eq!(predictions.len(), 5);
    let labels: Vec<Value> = predictions.iter().map(|p| p["label"].clone()).collect();
    assert_eq!(json!(labels), refs["outputs"]["label"]["data"]);
    let probabilities: Vec<Value> = predictions
        .iter()
        .flat_map(|p| p["probabilities"].as_array().unwrap().clone())
        .collect();
    close(
        &json!(probabilities),
        &refs["outputs"]["probabilities"]["data"],
    );

    // One output: each prediction is its row.
    let cnn = &references["digits_cnn.onnx"];
    let images: Vec<Value> = cnn["inputs"]["image"]["data"]
        .as_array()
        .unwrap()
        .chunks(64)
        .map(|pixels| json!([pixels.chunks(8).map(|row| json!(row)).collect::<Vec<_>>()]))
        .collect();
    let reply = predict("cnn", json!({"instances": images})).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let predictions = reply.json()["predictions"].clone();
    let flat: Vec<Value> = predictions
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p.as_array().unwrap().clone())
        .collect();
    close(&json!(flat), &cnn["outputs"]["probabilities"]["data"]);

    let status = get(&app, "/v1/models/iris", Some(&key)).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.json(), json!({"name": "iris", "ready": true}));
    app.model(&admin, ORG, "idle").await;
    let idle = get(&app, "/v1/models/idle", Some(&key)).await;
    assert_eq!(idle.status, StatusCode::SERVICE_UNAVAILABLE);
    idle.error();

    let cases = [
        (
            "iris",
            json!({"inputs": rows}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "iris",
            json!({"instances": []}),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            "iris",
            json!({"instances": [[1.0, 2.0]]}),
            StatusCode::BAD_REQUEST,
            "expected f32 [?, 4]",
        ),
        (
            "nope",
            json!({"instances": rows}),
            StatusCode::NOT_FOUND,
            "model not found",
        ),
    ];
    for (model, body, status, needle) in cases {
        let reply = predict(model, body.clone()).await;
        assert_eq!(reply.status, status, "{body}");
        let message = reply.error();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let explain = raw(
        &app,
        Method::POST,
        "/v1/models/iris:explain",
        Some(&key),
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(explain.status, StatusCode::NOT_FOUND);
    explain.error();
    let anonymous = raw(
        &app,
        Method::POST,
        "/v1/models/iris:predict",
        None,
        &[],
        json!({"instances": rows}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    anonymous.error();
}
