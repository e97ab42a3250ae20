//! The models people train, through the real router: every coverage fixture of
//! `tests/fixtures/ml` (scikit-learn via skl2onnx) and `tests/fixtures/exporters` (PyTorch,
//! Keras via tf2onnx, XGBoost and LightGBM via onnxmltools) is uploaded, deployed and
//! called, and its outputs compared with onnxruntime's in the fixtures' `expected.json`;
//! what no enabled backend runs is refused at upload with `unsupported_operator`; a default
//! skl2onnx export (`ZipMap`) serves its probabilities with the class labels in the
//! signature, the schema and the V2 metadata; the fixtures with string (categorical) inputs
//! also go through V2, as JSON `BYTES` and as binary data.

mod common;

use axum::http::StatusCode;
use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use wisp_host::OnnxBackend;
use wisp_test_artifacts::fixture;

/// Scores within this of onnxruntime's (as the host's coverage suites compare).
const RELATIVE: f64 = 1e-4;
const ABSOLUTE: f64 = 1e-5;

fn expected(folder: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("{folder}/expected.json"))).unwrap()
}

/// A fixture input as wisp's predict takes it: the raw little-endian bytes in `base64`,
/// so every float (NaN included) arrives exactly; strings as JSON strings.
fn input(value: &Value) -> Value {
    if value["dtype"] == "string" {
        return json!({ "dtype": "string", "shape": value["shape"], "data": value["data"] });
    }
    let data = value["data"].as_array().unwrap();
    let (dtype, bytes): (&str, Vec<u8>) = match value["dtype"].as_str().unwrap() {
        "float32" => (
            "f32",
            data.iter()
                .flat_map(|x| {
                    let x = match x.as_str() {
                        Some(special) => special.parse::<f32>().unwrap(),
                        None => x.as_f64().unwrap() as f32,
                    };
                    x.to_le_bytes()
                })
                .collect(),
        ),
        "int64" => (
            "i64",
            data.iter()
                .flat_map(|x| x.as_i64().unwrap().to_le_bytes())
                .collect(),
        ),
        other => panic!("unexpected dtype {other}"),
    };
    json!({
        "dtype": dtype,
        "shape": value["shape"],
        "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn predict_body(entry: &Value) -> Value {
    let inputs: serde_json::Map<String, Value> = entry["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), input(value)))
        .collect();
    json!({ "inputs": inputs })
}

/// The first difference between wisp's outputs and onnxruntime's: integers and strings
/// (labels) exactly, floats within tolerance. JSON has no number for NaN or ±Infinity: wisp's
/// predict writes them as `null`, which stands for any of them here.
fn compare(entry: &Value, got: &Value) -> Result<(), String> {
    let want = entry["outputs"].as_object().unwrap();
    let got = got.as_object().ok_or("no outputs")?;
    if got.len() != want.len() {
        return Err(format!(
            "outputs {:?}, onnxruntime has {:?}",
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        ));
    }
    for (name, want) in want {
        let got = got.get(name).ok_or_else(|| format!("no output `{name}`"))?;
        if got["shape"] != want["shape"] {
            return Err(format!(
                "`{name}`: shape {}, onnxruntime {}",
                got["shape"], want["shape"]
            ));
        }
        let (got_data, want_data) = (
            got["data"].as_array().unwrap(),
            want["data"].as_array().unwrap(),
        );
        match want["dtype"].as_str().unwrap() {
            "int64" | "string" => {
                let dtype = if want["dtype"] == "int64" {
                    "i64"
                } else {
                    "string"
                };
                if got["dtype"] != dtype || got_data != want_data {
                    return Err(format!(
                        "`{name}`: {} {:?}, onnxruntime {want_data:?}",
                        got["dtype"], got_data
                    ));
                }
            }
            "float32" => {
                if got["dtype"] != "f32" {
                    return Err(format!("`{name}`: {}, onnxruntime f32", got["dtype"]));
                }
                for (i, (g, w)) in got_data.iter().zip(want_data).enumerate() {
                    let w = match w.as_str() {
                        Some(special) => special.parse::<f64>().unwrap(),
                        None => w.as_f64().unwrap(),
                    };
                    let Some(g) = g.as_f64() else {
                        if w.is_finite() {
                            return Err(format!("`{name}`[{i}]: null, onnxruntime {w}"));
                        }
                        continue;
                    };
                    let close = (g - w).abs() <= ABSOLUTE + RELATIVE * w.abs();
                    if !close && g != w && !(g.is_nan() && w.is_nan()) {
                        return Err(format!("`{name}`[{i}]: {g}, onnxruntime {w}"));
                    }
                }
            }
            other => return Err(format!("unexpected dtype {other}")),
        }
    }
    Ok(())
}

const MODEL: &str = "coverage";

/// Uploads `<folder>/<file>` as the next version of [`MODEL`], deploys it (on `backend`,
/// or the default), calls it with the fixture's inputs and compares.
async fn serve_fixture(
    app: &TestApp,
    token: &str,
    folder: &str,
    file: &str,
    entry: &Value,
    backend: Option<OnnxBackend>,
) -> Result<(), String> {
    let upload = app
        .upload(ORG, MODEL, token, fixture(&format!("{folder}/{file}")))
        .await;
    if upload.status != StatusCode::CREATED {
        return Err(format!(
            "upload: {} {}",
            upload.code(),
            upload.body["message"]
        ));
    }
    let mut deploy = json!({ "version": upload.body["version"], "wait": true });
    if let Some(backend) = backend {
        deploy["backend"] = json!(backend.to_string());
    }
    let deployed = app
        .put(
            &format!("/v1/orgs/{ORG}/models/{MODEL}/deployment"),
            token,
            deploy,
        )
        .await;
    if deployed.body["status"] != "ready" {
        return Err(format!("deploy: {}", deployed.body));
    }
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/{MODEL}/predict"),
            token,
            predict_body(entry),
        )
        .await;
    if reply.status != StatusCode::OK {
        return Err(format!(
            "predict: {} {}",
            reply.code(),
            reply.body["message"]
        ));
    }
    compare(entry, &reply.body["outputs"])
}

/// Every fixture of both folders through upload → deploy → predict on `backend`; the
/// number of fixtures and the failures, one line printed each.
async fn coverage(backend: Option<OnnxBackend>) -> (usize, Vec<(String, String)>) {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, MODEL).await;
    let mut count = 0;
    let mut failures = Vec::new();
    for folder in ["ml", "exporters"] {
        let expected = expected(folder);
        for (file, entry) in expected["models"].as_object().unwrap() {
            count += 1;
            match serve_fixture(&app, &admin, folder, file, entry, backend).await {
                Ok(()) => println!("pass  {folder}/{file}"),
                Err(why) => {
                    println!("FAIL  {folder}/{file}: {why}");
                    failures.push((format!("{folder}/{file}"), why));
                }
            }
        }
    }
    (count, failures)
}

/// The bar, through the router: every coverage fixture (100, across skl2onnx,
/// torch.onnx, tf2onnx and onnxmltools) deployed on tract; at least 95 % match
/// onnxruntime, and what fails is only what tract refuses: at upload with
/// `unsupported_operator` on a wisp without onnxruntime (which inspects with tract alone),
/// at deployment on one with it (the upload is accepted: onnxruntime runs it).
#[tokio::test(flavor = "multi_thread")]
async fn every_coverage_fixture_serves_through_the_router_on_tract() {
    let (count, failures) = coverage(Some(OnnxBackend::Tract)).await;
    let passed = count - failures.len();
    println!("tract through the router: {passed} of {count} fixtures match onnxruntime");
    assert!(count >= 30, "{count} fixtures");
    assert!(
        passed * 100 >= count * 95,
        "{passed} of {count}: {failures:#?}"
    );
    let refusal = if OnnxBackend::Onnxruntime.is_built_in() {
        "deploy: "
    } else {
        "upload: unsupported_operator"
    };
    for (file, why) in &failures {
        assert!(why.starts_with(refusal), "{file}: {why}");
    }
}

/// With the onnxruntime backend built in, `auto` serves every fixture.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(feature = "onnxruntime"),
    ignore = "needs the onnxruntime backend: `make test` runs it in its second pass"
)]
async fn every_coverage_fixture_serves_through_the_router_on_auto() {
    let (count, failures) = coverage(Some(OnnxBackend::Auto)).await;
    println!(
        "auto through the router: {} of {count} fixtures match onnxruntime",
        count - failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A graph tract cannot run, on a wisp without onnxruntime, is refused at upload with
/// `unsupported_operator`, naming the operator, its operator set and what to do; nothing
/// is stored.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    feature = "onnxruntime",
    ignore = "with the onnxruntime backend built in, no graph here is refused by every backend"
)]
async fn a_graph_no_backend_runs_is_refused_naming_its_operator() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "recurrent").await;
    for (file, operator) in [("keras_gru.onnx", "Loop"), ("keras_lstm.onnx", "Expand")] {
        let blobs = app.blob_count();
        let reply = app
            .upload(
                ORG,
                "recurrent",
                &admin,
                fixture(&format!("exporters/{file}")),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{file}: {reply:?}"
        );
        assert_eq!(reply.code(), "unsupported_operator", "{file}: {reply:?}");
        let operators = reply.body["details"]["operators"].as_array().unwrap();
        let named = operators
            .iter()
            .find(|o| o["op_type"] == operator)
            .unwrap_or_else(|| panic!("{file}: {reply:?}"));
        assert_eq!(named["domain"], "ai.onnx", "{named}");
        let opset = named["opset"].as_i64().unwrap();
        assert!(opset >= 7, "{named}");
        let message = reply.body["message"].as_str().unwrap();
        for needle in [
            format!("{operator} (ai.onnx opset {opset})"),
            "onnxruntime".to_owned(),
            "export the model with other options".to_owned(),
        ] {
            assert!(message.contains(&needle), "{file}: {message}");
        }
        assert_eq!(app.blob_count(), blobs, "{file}: nothing stored");
    }
    // A file that is merely broken is still `invalid_model`.
    let model = fixture("ml/iris_logreg.onnx");
    let broken = app
        .upload(ORG, "recurrent", &admin, model[..model.len() / 2].to_vec())
        .await;
    assert_eq!(broken.code(), "invalid_model", "{broken:?}");
}

/// A default skl2onnx export (`ZipMap` on the probabilities) just works: the probabilities
/// are served as a tensor, and which column is which class is in the version's signature,
/// the predict schema and the V2 model metadata.
#[tokio::test(flavor = "multi_thread")]
async fn a_zipmap_export_serves_its_probabilities_with_the_class_labels() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let file = "iris_logreg_zipmap.onnx";
    let entry = &expected("ml")["models"][file];
    assert_eq!(
        entry["zipmap_labels"]["output_probability"],
        json!([0, 1, 2])
    );

    app.model(&admin, ORG, "iris").await;
    let upload = app
        .upload(ORG, "iris", &admin, fixture(&format!("ml/{file}")))
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let outputs = upload.body["signature"]["outputs"].as_array().unwrap();
    let probabilities = outputs
        .iter()
        .find(|o| o["name"] == "output_probability")
        .unwrap_or_else(|| panic!("{upload:?}"));
    assert_eq!(probabilities["dtype"], "f32");
    assert_eq!(probabilities["class_labels"], json!([0, 1, 2]));
    let label = outputs
        .iter()
        .find(|o| o["name"] == "output_label")
        .unwrap();
    assert!(label.get("class_labels").is_none(), "{label}");

    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &admin,
            predict_body(entry),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    compare(entry, &reply.body["outputs"]).unwrap();

    let schema = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/schema"), &admin)
        .await;
    assert_eq!(schema.status, StatusCode::OK, "{schema:?}");
    let described =
        &schema.body["response"]["properties"]["outputs"]["properties"]["output_probability"];
    assert_eq!(described["x-class-labels"], json!([0, 1, 2]), "{described}");
    assert!(
        described["description"]
            .as_str()
            .is_some_and(|d| d.contains("class")),
        "{described}"
    );

    let metadata = app.get("/v2/models/iris", &admin).await;
    assert_eq!(metadata.status, StatusCode::OK, "{metadata:?}");
    let v2 = metadata.body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "output_probability")
        .unwrap_or_else(|| panic!("{metadata:?}"))
        .clone();
    assert_eq!(v2["datatype"], "FP32");
    assert_eq!(v2["parameters"]["class_labels"], json!([0, 1, 2]), "{v2}");
}

/// A deployment names its backend; `tract` is the default. On a wisp built without the
/// onnxruntime backend, `onnxruntime` and `auto` are refused with a clear error and the
/// deployment stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_chooses_its_backend() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let uri = format!("/v1/orgs/{ORG}/models/iris/deployment");
    let current = app.get(&uri, &admin).await;
    assert_eq!(current.body["backend"], "tract", "{current:?}");

    let explicit = app
        .put(
            &uri,
            &admin,
            json!({ "version": 1, "backend": "tract", "wait": true }),
        )
        .await;
    assert_eq!(explicit.body["status"], "ready", "{explicit:?}");
    assert_eq!(explicit.body["backend"], "tract");

    let unknown = app
        .put(&uri, &admin, json!({ "version": 1, "backend": "cuda" }))
        .await;
    assert_eq!(unknown.code(), "invalid_request", "{unknown:?}");

    for backend in ["onnxruntime", "auto"] {
        let reply = app
            .put(
                &uri,
                &admin,
                json!({ "version": 1, "backend": backend, "wait": true }),
            )
            .await;
        if OnnxBackend::Onnxruntime.is_built_in() {
            assert_eq!(reply.body["status"], "ready", "{backend}: {reply:?}");
            assert_eq!(reply.body["backend"], backend);
        } else {
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{backend}: {reply:?}"
            );
            assert_eq!(reply.code(), "invalid_request");
            let message = reply.body["message"].as_str().unwrap();
            assert!(
                message.contains("not built into this wisp") && message.contains(backend),
                "{message}"
            );
            let unchanged = app.get(&uri, &admin).await;
            assert_eq!(unchanged.body["backend"], "tract");
        }
    }
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/predict"),
            &admin,
            json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

/// With the onnxruntime backend built in: what tract refuses is accepted at upload (any
/// enabled backend runs it), fails to deploy on `tract` with `unsupported_operator` naming
/// the operator, and serves on `auto` and `onnxruntime` with onnxruntime's outputs.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(feature = "onnxruntime"),
    ignore = "needs the onnxruntime backend: `make test` runs it in its second pass"
)]
async fn a_graph_tract_refuses_serves_on_auto_and_onnxruntime() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, MODEL).await;
    let entry = &expected("exporters")["models"]["keras_gru.onnx"];
    serve_fixture(
        &app,
        &admin,
        "exporters",
        "keras_gru.onnx",
        entry,
        Some(OnnxBackend::Auto),
    )
    .await
    .unwrap();
    let uri = format!("/v1/orgs/{ORG}/models/{MODEL}/deployment");
    let on_tract = app
        .put(
            &uri,
            &admin,
            json!({ "version": 1, "backend": "tract", "wait": true }),
        )
        .await;
    assert_eq!(on_tract.body["status"], "failed", "{on_tract:?}");
    // Why, as an upload says it on a wisp without onnxruntime: the operator tract lacks.
    assert_eq!(
        on_tract.body["failure"]["code"], "unsupported_operator",
        "{on_tract:?}"
    );
    let message = on_tract.body["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("Loop (ai.onnx opset 17)") && message.contains("backend `onnxruntime`"),
        "{message}"
    );
    let on_ort = app
        .put(
            &uri,
            &admin,
            json!({ "version": 1, "backend": "onnxruntime", "wait": true }),
        )
        .await;
    assert_eq!(on_ort.body["status"], "ready", "{on_ort:?}");
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/{MODEL}/predict"),
            &admin,
            predict_body(entry),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    compare(entry, &reply.body["outputs"]).unwrap();
}

async fn mlflow(app: &TestApp, key: &str, path: &str, body: Value) -> Reply {
    let reply = app
        .post(&format!("/api/2.0/mlflow/{path}"), key, body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
    reply
}

/// The MLflow bridge inspects a registered version's ONNX file as an upload is inspected:
/// a graph no enabled backend runs makes no wisp version, and the MLflow version is
/// tagged with the same `unsupported_operator` refusal.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    feature = "onnxruntime",
    ignore = "with the onnxruntime backend built in, no graph here is refused by every backend"
)]
async fn the_mlflow_bridge_refuses_what_no_backend_runs_the_same_way() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let (_, key) = app.api_key(&admin, ORG, &["models:write"]).await;
    let exp = mlflow(&app, &key, "experiments/create", json!({ "name": "gru" })).await;
    let exp = exp.body["experiment_id"].as_str().unwrap().to_owned();
    let run = mlflow(
        &app,
        &key,
        "runs/create",
        json!({ "experiment_id": exp, "start_time": 1000 }),
    )
    .await;
    let run_id = run.body["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = app
        .send(
            axum::http::Request::put(format!(
                "/api/2.0/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts/model/model.onnx"
            ))
            .header("authorization", format!("Bearer {key}"))
            .body(axum::body::Body::from(fixture("exporters/keras_gru.onnx")))
            .unwrap(),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{put:?}");
    mlflow(
        &app,
        &key,
        "registered-models/create",
        json!({ "name": "gru" }),
    )
    .await;
    let version = mlflow(
        &app,
        &key,
        "model-versions/create",
        json!({ "name": "gru", "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
    )
    .await;
    let tags = version.body["model_version"]["tags"].to_string();
    assert!(tags.contains("wisp.serving_error"), "{version:?}");
    assert!(
        tags.contains("unsupported_operator: no enabled backend runs Loop (ai.onnx opset"),
        "{tags}"
    );
    let versions = app
        .get(&format!("/v1/orgs/{ORG}/models/gru/versions"), &admin)
        .await;
    assert!(
        versions.status == StatusCode::NOT_FOUND
            || versions.body.as_array().is_some_and(|v| v.is_empty()),
        "{versions:?}"
    );
}

/// The V2 datatype of a fixture dtype.
fn v2_datatype(dtype: &str) -> &'static str {
    match dtype {
        "float32" => "FP32",
        "int64" => "INT64",
        "string" => "BYTES",
        other => panic!("unexpected dtype {other}"),
    }
}

/// A fixture input's elements in V2 binary data: little-endian numbers, or for `BYTES`
/// each string as a 4-byte little-endian length and its UTF-8 bytes (Triton's layout).
fn v2_binary(value: &Value) -> Vec<u8> {
    let data = value["data"].as_array().unwrap();
    let mut bytes = Vec::new();
    for x in data {
        match value["dtype"].as_str().unwrap() {
            "float32" => bytes.extend((x.as_f64().unwrap() as f32).to_le_bytes()),
            "int64" => bytes.extend(x.as_i64().unwrap().to_le_bytes()),
            _ => {
                let text = x.as_str().unwrap();
                bytes.extend((text.len() as u32).to_le_bytes());
                bytes.extend(text.as_bytes());
            }
        }
    }
    bytes
}

/// V2 outputs as wisp's predict writes them (`{name: {dtype, shape, data}}`), to compare.
fn v2_outputs(body: &Value) -> Value {
    let outputs = body["outputs"].as_array().expect("outputs");
    let mut named = serde_json::Map::new();
    for output in outputs {
        let dtype = match output["datatype"].as_str().unwrap() {
            "FP32" => "f32",
            "INT64" => "i64",
            "BYTES" => "string",
            other => other,
        };
        named.insert(
            output["name"].as_str().unwrap().to_owned(),
            json!({ "dtype": dtype, "shape": output["shape"], "data": output["data"] }),
        );
    }
    Value::Object(named)
}

/// The fixtures with a string input (categorical columns: `OneHotEncoder`, `LabelEncoder`,
/// `CategoryMapper`, `OrdinalEncoder`) through Open Inference Protocol V2, on tract and on
/// onnxruntime where it is built in: the strings as JSON `BYTES` data, then every input as
/// binary data after the JSON header (`Inference-Header-Content-Length`, as tritonclient
/// sends it), and the outputs compared with onnxruntime's.
#[tokio::test(flavor = "multi_thread")]
async fn string_inputs_serve_through_v2_json_and_binary_bytes() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, MODEL).await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    let expected = expected("ml");
    let with_strings: Vec<(&String, &Value)> = expected["models"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, entry)| {
            entry["inputs"]
                .as_object()
                .unwrap()
                .values()
                .any(|input| input["dtype"] == "string")
        })
        .collect();
    assert!(with_strings.len() >= 9, "{} fixtures", with_strings.len());
    let mut backends = vec![OnnxBackend::Tract];
    if OnnxBackend::Onnxruntime.is_built_in() {
        backends.push(OnnxBackend::Onnxruntime);
    }
    let mut failures = Vec::new();
    for backend in backends {
        for (file, entry) in &with_strings {
            let served = serve_fixture(&app, &admin, "ml", file, entry, Some(backend)).await;
            if let Err(why) = served {
                failures.push(format!("{file} on {backend}, predict: {why}"));
                continue;
            }
            let inputs = entry["inputs"].as_object().unwrap();
            let json_inputs: Vec<Value> = inputs
                .iter()
                .map(|(name, value)| {
                    json!({
                        "name": name,
                        "shape": value["shape"],
                        "datatype": v2_datatype(value["dtype"].as_str().unwrap()),
                        "data": value["data"],
                    })
                })
                .collect();
            let reply = app
                .post(
                    &format!("/v2/models/{MODEL}/infer"),
                    &key,
                    json!({ "inputs": json_inputs }),
                )
                .await;
            let result = if reply.status == StatusCode::OK {
                compare(entry, &v2_outputs(&reply.body))
            } else {
                Err(format!("{} {}", reply.code(), reply.body["message"]))
            };
            if let Err(why) = result {
                failures.push(format!("{file} on {backend}, V2 JSON: {why}"));
            }

            let mut binary = Vec::new();
            let header_inputs: Vec<Value> = inputs
                .iter()
                .map(|(name, value)| {
                    let bytes = v2_binary(value);
                    let size = bytes.len();
                    binary.extend(bytes);
                    json!({
                        "name": name,
                        "shape": value["shape"],
                        "datatype": v2_datatype(value["dtype"].as_str().unwrap()),
                        "parameters": { "binary_data_size": size },
                    })
                })
                .collect();
            let header = json!({ "inputs": header_inputs }).to_string();
            let mut body = header.clone().into_bytes();
            body.extend(binary);
            let reply = app
                .send(
                    axum::http::Request::post(format!("/v2/models/{MODEL}/infer"))
                        .header("authorization", format!("Bearer {key}"))
                        .header("content-type", "application/octet-stream")
                        .header("inference-header-content-length", header.len())
                        .body(axum::body::Body::from(body))
                        .unwrap(),
                )
                .await;
            let result = if reply.status == StatusCode::OK {
                compare(entry, &v2_outputs(&reply.body))
            } else {
                Err(format!("{} {}", reply.code(), reply.body["message"]))
            };
            if let Err(why) = result {
                failures.push(format!("{file} on {backend}, V2 binary: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
