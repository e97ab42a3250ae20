//! Deployments and predictions over the router with real models: the upload is inspected
//! by the ONNX backend, the deployment loads it into the runtime, and predictions run
//! through the `onnx-runner` component (or an uploaded one) and wasi-nn.

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use wisp_test_artifacts::{component, components, fixture, fixtures_dir};

fn predict_uri(model: &str) -> String {
    format!("/v1/orgs/{ORG}/models/{model}/predict")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployed_onnx_model_predicts_the_references() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;

    let refs = &references()["iris_logreg.onnx"];
    let input = &refs["inputs"]["input"];
    let reply = app
        .post(
            &predict_uri("iris"),
            &key,
            json!({ "inputs": { "input": { "shape": input["shape"], "data": input["data"] } } }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["version"], 1);
    let outputs = &reply.body["outputs"];
    assert_eq!(outputs["label"]["data"], refs["outputs"]["label"]["data"]);
    assert_eq!(outputs["label"]["dtype"], "i64");
    assert_eq!(outputs["probabilities"]["shape"], json!([5, 3]));
    close(
        &outputs["probabilities"]["data"],
        &refs["outputs"]["probabilities"]["data"],
    );
    let usage = &reply.body["usage"];
    assert!(usage["fuel"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["input_bytes"], 5 * 4 * 4);
    assert_eq!(
        usage["graph_warm"], true,
        "the deployment loaded it: {usage}"
    );

    // Nested arrays work too, and a single row gives a single label.
    let nested = app
        .post(
            &predict_uri("iris"),
            &key,
            json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }),
        )
        .await;
    assert_eq!(
        nested.body["outputs"]["label"]["data"],
        json!([0]),
        "{nested:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_predictions_get_their_own_codes() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "idle").await;
    let not_deployed = app
        .post(&predict_uri("idle"), &admin, json!({ "inputs": {} }))
        .await;
    assert_eq!(not_deployed.status, StatusCode::CONFLICT);
    assert_eq!(not_deployed.code(), "not_deployed");

    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let cases = [
        (
            json!({ "inputs": { "input": [[1.0, 2.0, 3.0]] } }),
            "invalid_input",
            "expected f32 [?, 4], got f32 [1, 3]",
        ),
        (
            json!({ "inputs": { "features": [[1.0, 2.0, 3.0, 4.0]] } }),
            "invalid_input",
            "no such input",
        ),
        (json!({ "inputs": {} }), "invalid_input", "missing"),
        (
            json!({ "inputs": { "input": { "dtype": "i64", "data": [[1, 2, 3, 4]] } } }),
            "invalid_input",
            "expected dtype f32",
        ),
        (
            json!({ "inputs": { "input": [[1.0, "x", 3.0, 4.0]] } }),
            "invalid_input",
            "not a number",
        ),
        (
            json!({ "inputs": { "input": [[1.0, 2.0], [3.0]] } }),
            "invalid_input",
            "ragged",
        ),
        (
            json!({ "input": [[1.0, 2.0, 3.0, 4.0]] }),
            "invalid_request",
            "unknown field",
        ),
        (
            json!({ "inputs": { "input": [[1.0, 2.0, 3.0, 4.0]] }, "version": 9 }),
            "not_found",
            "version",
        ),
        (
            json!({ "inputs": { "input": [[1.0, 2.0, 3.0, 4.0]] }, "alias": "nope" }),
            "not_found",
            "alias",
        ),
    ];
    for (body, code, needle) in cases {
        let reply = app.post(&predict_uri("iris"), &admin, body.clone()).await;
        assert_eq!(reply.code(), code, "{body}: {reply:?}");
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let malformed = app
        .send(
            axum::http::Request::post(predict_uri("iris"))
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{\"inputs\": {\"input\": [1,"))
                .unwrap(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "invalid_json");

    // After all of that the model still serves.
    let ok = app
        .post(
            &predict_uri("iris"),
            &admin,
            json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
}

/// Polls the deployment until it is no longer pending.
async fn settled(app: &TestApp, token: &str, model: &str) -> Value {
    for _ in 0..600 {
        let reply = app
            .get(&format!("/v1/orgs/{ORG}/models/{model}/deployment"), token)
            .await;
        if reply.body["status"] != "pending" {
            return reply.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the deployment of {model} stayed pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_follow_aliases_roll_back_and_keep_history() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "digits").await;
    for file in ["digits_mlp.onnx", "digits_cnn.onnx"] {
        let reply = app.upload(ORG, "digits", &admin, fixture(file)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    let alias_uri = format!("/v1/orgs/{ORG}/models/digits/aliases/production");
    app.put(&alias_uri, &admin, json!({ "version": 1 })).await;
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/digits/deployment"),
            &admin,
            json!({ "alias": "production" }),
        )
        .await;
    assert_eq!(deploy.status, StatusCode::ACCEPTED, "{deploy:?}");
    assert_eq!(deploy.body["follow_alias"], "production");
    assert_eq!(settled(&app, &admin, "digits").await["status"], "ready");

    let row = references()["digits_mlp.onnx"]["inputs"]["input"]["data"]
        .as_array()
        .unwrap()[..64]
        .to_vec();
    let mlp_input = json!({ "inputs": { "input": [row] } });
    let first = app
        .post(&predict_uri("digits"), &admin, mlp_input.clone())
        .await;
    assert_eq!(first.body["version"], 1, "{first:?}");

    // Moving the alias redeploys.
    let moved = app.put(&alias_uri, &admin, json!({ "version": 2 })).await;
    assert_eq!(moved.body["redeployed"], true, "{moved:?}");
    let now = settled(&app, &admin, "digits").await;
    assert_eq!(
        (now["version"].clone(), now["status"].clone()),
        (json!(2), json!("ready"))
    );
    // Version 2 is the CNN: the MLP's input no longer fits.
    let mismatch = app
        .post(&predict_uri("digits"), &admin, mlp_input.clone())
        .await;
    assert_eq!(mismatch.code(), "invalid_input", "{mismatch:?}");
    // An explicit version still reaches version 1.
    let pinned = json!({ "inputs": mlp_input["inputs"], "version": 1 });
    let explicit = app.post(&predict_uri("digits"), &admin, pinned).await;
    assert_eq!(explicit.status, StatusCode::OK, "{explicit:?}");

    // The followed alias cannot be deleted from under the deployment.
    let delete = app
        .call(Method::DELETE, &alias_uri, Some(&admin), None)
        .await;
    assert_eq!(delete.code(), "alias_in_use");

    // Roll back to the previous version, which pins it.
    let rolled = app
        .post(
            &format!("/v1/orgs/{ORG}/models/digits/deployment/rollback"),
            &admin,
            json!({ "wait": true }),
        )
        .await;
    assert_eq!(rolled.status, StatusCode::OK, "{rolled:?}");
    assert_eq!(rolled.body["version"], 1);
    assert_eq!(rolled.body["follow_alias"], Value::Null);
    let back = app
        .post(&predict_uri("digits"), &admin, mlp_input.clone())
        .await;
    assert_eq!(back.body["version"], 1, "{back:?}");

    let history = app
        .get(
            &format!("/v1/orgs/{ORG}/models/digits/deployment/history"),
            &admin,
        )
        .await;
    let actions: Vec<_> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["action"].as_str().unwrap().to_owned(),
                h["version"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("rolled_back".to_owned(), Some(1)),
            ("alias_moved".to_owned(), Some(2)),
            ("deployed".to_owned(), Some(1)),
        ]
    );
    assert!(
        history.body[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );

    let undeploy = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/models/digits/deployment"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(undeploy.status, StatusCode::NO_CONTENT);
    let gone = app.post(&predict_uri("digits"), &admin, mlp_input).await;
    assert_eq!(gone.code(), "not_deployed");

    let audit = app
        .get(&format!("/v1/orgs/{ORG}/audit?limit=100"), &admin)
        .await;
    let logged: Vec<_> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "model.deployed",
        "model.alias.moved",
        "model.rolled_back",
        "model.undeployed",
    ] {
        assert!(
            logged.iter().any(|a| a == action),
            "{action} missing from {logged:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_whose_file_is_gone_fails_with_a_reason() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    let upload = app
        .upload(ORG, "iris", &admin, fixture("iris_logreg.onnx"))
        .await;
    let sha = upload.body["sha256"].as_str().unwrap();
    std::fs::remove_file(
        app.dir
            .path()
            .join(format!("blobs/sha256/{}/{sha}", &sha[..2])),
    )
    .unwrap();
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "failed", "{deploy:?}");
    assert_eq!(deploy.body["failure"]["code"], "internal", "{deploy:?}");
    let reply = app
        .post(
            &predict_uri("iris"),
            &admin,
            json!({ "inputs": { "input": [[1.0, 2.0, 3.0, 4.0]] } }),
        )
        .await;
    assert_eq!(reply.code(), "deployment_failed", "{reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_components_are_validated_deployed_and_served_with_their_graph() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "digit-reader").await;
    let reader = component(components::IMAGE_CLASSIFIER);
    let graph = fixture("digits_cnn.onnx");
    let upload = app
        .upload_parts(
            ORG,
            "digit-reader",
            &admin,
            &[("file", &reader), ("graph", &graph)],
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    assert_eq!(upload.body["framework"], "wasm-component");
    assert_eq!(upload.body["signature"]["inputs"][0]["name"], "image");
    assert!(upload.body["graph_sha256"].is_string());
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/digit-reader/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");

    let refs = &references()["digits_png"];
    for (file, expected) in refs.as_object().unwrap() {
        let png = std::fs::read(fixtures_dir().join("digits_png").join(file)).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(png);
        let reply = app
            .post(
                &predict_uri("digit-reader"),
                &admin,
                json!({ "inputs": { "image": { "base64": encoded } } }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{file}: {reply:?}");
        assert_eq!(
            reply.body["outputs"]["top_k_indices"]["data"][0], expected["label"],
            "{file}"
        );
    }

    // Not components: each its own code, nothing stored.
    let blobs = app.blob_count();
    let core_module = app
        .upload(ORG, "digit-reader", &admin, b"\0asm\x01\0\0\0".to_vec())
        .await;
    assert_eq!(core_module.code(), "invalid_component", "{core_module:?}");
    let broken_graph = app
        .upload_parts(
            ORG,
            "digit-reader",
            &admin,
            &[("file", &reader), ("graph", &graph[..graph.len() / 2])],
        )
        .await;
    assert_eq!(broken_graph.code(), "invalid_model", "{broken_graph:?}");
    let graph_without_component = app
        .upload_parts(
            ORG,
            "digit-reader",
            &admin,
            &[("file", &graph), ("graph", &graph)],
        )
        .await;
    assert_eq!(graph_without_component.code(), "invalid_request");
    assert_eq!(app.blob_count(), blobs);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_limits_stop_runaway_components() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    {
        let conn = app.state.db.write().await;
        conn.execute(
            // 50,000 compute units: 50 million fuel. The deadline leaves the fuel burner
            // and the allocation bomb time to reach their own limits on a loaded machine
            // (at 300 ms a busy CI host once ran the bomb into the deadline first).
            "INSERT INTO plans (id, name, max_upload_bytes, compute_units_per_call,
                max_memory_bytes, deadline_ms, max_output_bytes)
             VALUES ('tiny', 'Tiny', 33554432, 50000, 33554432, 2000, 1048576)",
            (),
        )
        .await
        .unwrap();
        conn.execute("UPDATE orgs SET plan_id = 'tiny'", ())
            .await
            .unwrap();
    }
    for (name, guest) in [
        ("spin", components::SPIN_LOOP),
        ("burn", components::FUEL_BURN),
        ("bomb", components::ALLOC_BOMB),
    ] {
        app.model(&admin, ORG, name).await;
        let upload = app.upload(ORG, name, &admin, component(guest)).await;
        assert_eq!(upload.status, StatusCode::CREATED, "{name}: {upload:?}");
        app.put(
            &format!("/v1/orgs/{ORG}/models/{name}/deployment"),
            &admin,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    }
    let expect = |name, status, code| {
        let (app, admin) = (&app, &admin);
        async move {
            let reply = app
                .post(&predict_uri(name), admin, json!({ "inputs": {} }))
                .await;
            assert_eq!(
                (reply.status, reply.code()),
                (status, code),
                "{name}: {reply:?}"
            );
        }
    };
    expect("burn", StatusCode::UNPROCESSABLE_ENTITY, "fuel_exhausted").await;
    expect(
        "bomb",
        StatusCode::UNPROCESSABLE_ENTITY,
        "memory_limit_exceeded",
    )
    .await;
    expect("spin", StatusCode::UNPROCESSABLE_ENTITY, "fuel_exhausted").await;
    // With fuel to spare, the deadline stops the loop; plan changes apply at once.
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE plans SET compute_units_per_call = 1000000000000 WHERE id = 'tiny'",
            (),
        )
        .await
        .unwrap();
    }
    expect("spin", StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_describes_the_model_and_its_example_runs() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let schema = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/schema"), &admin)
        .await;
    assert_eq!(schema.status, StatusCode::OK, "{schema:?}");
    assert_eq!(schema.body["version"], 1);
    let input = &schema.body["request"]["properties"]["inputs"]["properties"]["input"];
    assert_eq!(input["anyOf"][0]["items"]["maxItems"], 4, "{input}");
    assert!(
        schema.body["response"]["properties"]["outputs"]["properties"]["probabilities"].is_object()
    );
    let example = schema.body["example_request"].clone();
    let reply = app.post(&predict_uri("iris"), &admin, example).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organisation_cannot_deploy_or_predict() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let outsider = app
        .user_with_role(&admin, ORG, "temp@example.com", "member")
        .await;
    app.org(&outsider, "rival").await;
    let (_, rival_key) = app
        .api_key(&outsider, "rival", &["predict", "models:write"])
        .await;
    let body = json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } });
    for uri in [
        format!("/v1/orgs/{ORG}/models/iris/predict"),
        "/v1/orgs/rival/models/iris/predict".to_owned(),
    ] {
        let reply = app.post(&uri, &rival_key, body.clone()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}: {reply:?}");
    }
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &rival_key,
            json!({ "version": 1 }),
        )
        .await;
    assert_eq!(deploy.status, StatusCode::NOT_FOUND, "{deploy:?}");
    // A predict-only key cannot deploy in its own organisation either.
    let (_, predict_only) = app.api_key(&admin, ORG, &["predict"]).await;
    let forbidden = app
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &predict_only,
            json!({ "version": 1 }),
        )
        .await;
    assert_eq!(forbidden.code(), "forbidden");
}
