//! Data drift end to end: a reference from a CSV, NDJSON or the first calls; live calls
//! through predict profiled off the request path; the timeline and the report checked
//! against scipy on the same samples (`tests/fixtures/drift/api_reference.json`, written
//! by `tests/fixtures/gen_drift_api_reference.py`); settings, roles, audit, other
//! organisations, and windows that outlive a restart.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};

fn fixture_json() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/drift/api_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn uri(model: &str, rest: &str) -> String {
    format!("/v1/orgs/{ORG}/models/{model}/drift{rest}")
}

/// A wide range: the windows of this test, whatever the clock says.
const RANGE: &str = "?from=0&to=99999999999";

async fn send_body(
    app: &TestApp,
    method: Method,
    uri: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("request");
    app.send(request).await
}

fn iris_csv(data: &Value) -> String {
    let mut csv = data["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    for row in data["reference"].as_array().unwrap() {
        let fields: Vec<String> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap().to_string())
            .collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    csv
}

fn weather_ndjson(rows: &Value) -> String {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!({ "outlook": [r[0]], "temperature": [r[1]], "humidity": [r[2]] }).to_string()
                + "\n"
        })
        .collect()
}

async fn predict(app: &TestApp, token: &str, model: &str, inputs: Value) {
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/{model}/predict"),
            token,
            json!({ "inputs": inputs }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

fn weather_inputs(rows: &Value) -> Value {
    let rows = rows.as_array().unwrap();
    let column = |i: usize| Value::Array(rows.iter().map(|r| json!([r[i]])).collect());
    json!({ "outlook": column(0), "temperature": column(1), "humidity": column(2) })
}

fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == name)
        .unwrap_or_else(|| panic!("no feature {name} in {report}"))
}

/// The report's statistic and p-value of each feature equal scipy's on the same samples.
fn assert_matches_scipy(report: &Value, expected: &Value) {
    for (name, want) in expected.as_object().unwrap() {
        let got = feature(report, name);
        assert_eq!(got["method"], want["method"], "{name}: {got}");
        assert_eq!(got["exact"], true, "{name}: {got}");
        for (field, key) in [("statistic", "statistic"), ("p_value", "p_value")] {
            let (g, w) = (got[field].as_f64().unwrap(), want[key].as_f64().unwrap());
            assert!((g - w).abs() <= 1e-9, "{name} {field}: {g} vs scipy {w}");
        }
        let drifted = want["p_value"].as_f64().unwrap() < 0.05;
        assert_eq!(got["drifted"], drifted, "{name}: {got}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shifted_means_drift_and_the_same_distribution_does_not() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let data = fixture_json();
    let iris = &data["iris"];
    for (model, case) in [("iris-same", "same"), ("iris-shifted", "shifted")] {
        deployed(&app, &admin, model, "iris_logreg.onnx").await;
        let set = send_body(
            &app,
            Method::PUT,
            &uri(model, "/reference"),
            &admin,
            "text/csv",
            iris_csv(iris),
        )
        .await;
        assert_eq!(set.status, StatusCode::OK, "{set:?}");
        assert_eq!(set.body["rows"], 300);
        assert_eq!(set.body["stored_as"], "raw");
        assert_eq!(set.body["columns"]["input"][0], "sepal_length");
        // Two calls, so the window merges two batches.
        let rows = iris[case].as_array().unwrap();
        predict(&app, &admin, model, json!({ "input": &rows[..120] })).await;
        predict(&app, &admin, model, json!({ "input": &rows[120..] })).await;
    }
    app.state.drift.flush().await;

    let same = app
        .get(&uri("iris-same", &format!("/report{RANGE}")), &admin)
        .await;
    assert_eq!(same.status, StatusCode::OK, "{same:?}");
    assert_eq!(same.body["rows"], 200);
    assert_matches_scipy(&same.body, &iris["expected"]["same"]);
    assert_eq!(same.body["dataset_drift"], false, "{same:?}");
    assert_eq!(same.body["drifted_features"], 0);
    // The prediction is profiled too (no reference for it in this CSV: nothing to test).
    assert_eq!(same.body["prediction"], json!([]));

    let shifted = app
        .get(&uri("iris-shifted", &format!("/report{RANGE}")), &admin)
        .await;
    assert_matches_scipy(&shifted.body, &iris["expected"]["shifted"]);
    for (name, drifted) in [
        ("sepal_length", true),
        ("sepal_width", false),
        ("petal_length", true),
        ("petal_width", false),
    ] {
        assert_eq!(feature(&shifted.body, name)["drifted"], drifted, "{name}");
    }
    assert_eq!(shifted.body["drifted_share"], 0.5);
    assert_eq!(
        shifted.body["dataset_drift"], true,
        "2 of 4 is the default share 0.5"
    );

    // The timeline: one point per step with the same verdicts.
    let timeline = app
        .get(
            &uri("iris-shifted", &format!("{RANGE}&step=99999999999")),
            &admin,
        )
        .await;
    assert_eq!(timeline.status, StatusCode::OK, "{timeline:?}");
    let points = timeline.body["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{timeline:?}");
    assert_eq!(points[0]["rows"], 200);
    assert_matches_scipy(&points[0], &iris["expected"]["shifted"]);
    assert_eq!(timeline.body["window_secs"], 3600);

    // Alert rules read the same verdicts: the drifted share, and a feature's score (its
    // p-value here, as scipy computes it).
    let rules = format!("/v1/orgs/{ORG}/alerts/rules");
    let sepal = iris["expected"]["shifted"]["sepal_length"]["p_value"]
        .as_f64()
        .unwrap();
    for (name, model, metric, feature, comparison, threshold) in [
        (
            "shifted share",
            "iris-shifted",
            "drift_share",
            None,
            ">=",
            0.5,
        ),
        ("same share", "iris-same", "drift_share", None, ">=", 0.5),
        (
            "sepal",
            "iris-shifted",
            "feature_drift_score",
            Some("sepal_length"),
            "<",
            0.05,
        ),
        (
            "nothing",
            "iris-shifted",
            "feature_drift_score",
            Some("colour"),
            "<",
            0.05,
        ),
    ] {
        let created = app
            .post(
                &rules,
                &admin,
                json!({ "name": name, "model": model, "metric": metric, "feature": feature,
                        "comparison": comparison, "threshold": threshold, "window": "1d" }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    }
    let at = time::OffsetDateTime::now_utc().unix_timestamp() + 1;
    app.state.alerts.evaluate_at(at).await.unwrap();
    let states = app.get(&format!("/v1/orgs/{ORG}/alerts"), &admin).await;
    let state = |name: &str| {
        states
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["rule_name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {name} in {states:?}"))
    };
    assert_eq!(state("shifted share")["state"], "firing", "{states:?}");
    assert_eq!(state("shifted share")["value"], 0.5);
    assert_eq!(state("same share")["state"], "ok", "{states:?}");
    assert_eq!(state("same share")["value"], 0.0);
    assert_eq!(state("sepal")["state"], "firing", "{states:?}");
    let score = state("sepal")["value"].as_f64().unwrap();
    assert!((score - sepal).abs() <= 1e-9, "{score} vs scipy {sepal}");
    assert_eq!(state("nothing")["state"], "no_data");
    assert_eq!(
        state("nothing")["reason"],
        "the reference has no feature \"colour\""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_category_mix_drifts_the_categorical_feature() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let data = fixture_json();
    let weather = &data["weather"];
    for (model, case) in [("weather-same", "same"), ("weather-changed", "changed")] {
        deployed(&app, &admin, model, "ml/weather_onehot_logreg.onnx").await;
        let set = send_body(
            &app,
            Method::POST,
            &uri(model, "/reference"),
            &admin,
            "application/x-ndjson",
            weather_ndjson(&weather["reference"]),
        )
        .await;
        assert_eq!(set.status, StatusCode::OK, "{set:?}");
        let kinds: Vec<_> = set.body["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&("outlook".into(), "categorical".into())),
            "{kinds:?}"
        );
        predict(&app, &admin, model, weather_inputs(&weather[case])).await;
    }
    app.state.drift.flush().await;
    let same = app
        .get(&uri("weather-same", &format!("/report{RANGE}")), &admin)
        .await;
    assert_matches_scipy(&same.body, &weather["expected"]["same"]);
    assert_eq!(same.body["dataset_drift"], false);
    let changed = app
        .get(&uri("weather-changed", &format!("/report{RANGE}")), &admin)
        .await;
    assert_matches_scipy(&changed.body, &weather["expected"]["changed"]);
    assert_eq!(feature(&changed.body, "outlook")["drifted"], true);
    assert_eq!(changed.body["drifted_features"], 1);
    assert_eq!(
        changed.body["dataset_drift"], false,
        "1 of 3 is under the share"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reference_from_the_first_calls_profiles_inputs_and_predictions() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let data = fixture_json();
    let iris = &data["iris"];
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let set = app
        .put(
            &uri("iris", "/reference"),
            &admin,
            json!({ "from_calls": 250 }),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    assert_eq!(
        (&set.body["status"], &set.body["rows"]),
        (&json!("collecting"), &json!(0))
    );
    let collecting = app
        .get(&uri("iris", &format!("/report{RANGE}")), &admin)
        .await;
    assert_eq!(collecting.code(), "not_found", "{collecting:?}");
    assert_eq!(collecting.body["details"]["reason"], "collecting");

    // 300 rows served: the first 250 become the reference, all 300 are live rows.
    let rows = iris["reference"].as_array().unwrap();
    predict(&app, &admin, "iris", json!({ "input": &rows[..200] })).await;
    predict(&app, &admin, "iris", json!({ "input": &rows[200..] })).await;
    app.state.drift.flush().await;
    let reference = app.get(&uri("iris", "/reference"), &admin).await;
    assert_eq!(reference.body["status"], "ready", "{reference:?}");
    assert_eq!(reference.body["rows"], 250);
    let outputs: Vec<_> = reference.body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(outputs.contains(&"label"), "{outputs:?}");
    assert!(outputs.contains(&"probabilities[2]"), "{outputs:?}");

    let report = app
        .get(&uri("iris", &format!("/report{RANGE}")), &admin)
        .await;
    assert_eq!(report.status, StatusCode::OK, "{report:?}");
    assert_eq!(report.body["rows"], 300);
    assert_eq!(report.body["dataset_drift"], false, "{report:?}");
    let label = report.body["prediction"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["feature"] == "label")
        .expect("label");
    // Three classes: a numeric column with few values is tested as categories.
    assert_eq!(label["method"], "chi_square", "{label}");
    assert_eq!(report.body["prediction_drift"], false, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_roles_audit_and_bad_input() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let config = app.get(&uri("iris", "/config"), &admin).await;
    assert_eq!(config.body["window_secs"], 3600, "{config:?}");
    assert_eq!(config.body["tests"]["p_value_threshold"], 0.05);
    let set = app
        .put(
            &uri("iris", "/config"),
            &admin,
            json!({ "window_secs": 600, "sample_rate": 0.5, "tests": { "drift_share": 0.75 } }),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    assert_eq!(
        app.get(&uri("iris", "/config"), &admin).await.body["tests"]["drift_share"],
        0.75
    );
    for bad in [
        json!({ "window_secs": 5 }),
        json!({ "sample_rate": 0 }),
        json!({ "tests": { "p_value_treshold": 0.1 } }),
        json!({ "window": 60 }),
    ] {
        let reply = app.put(&uri("iris", "/config"), &admin, bad.clone()).await;
        assert_eq!(reply.code(), "invalid_request", "{bad}: {reply:?}");
    }

    // Bad data sets say why.
    for (body, content_type, reason) in [
        ("a,b\n1,2\n", "text/csv", "unknown_column"),
        ("input[0]\nfive\n", "text/csv", "not_a_number"),
        ("input[0]\n", "text/csv", "empty_reference"),
        (
            "{\"input\": [1, 2]}\n",
            "application/x-ndjson",
            "wrong_field_count",
        ),
        ("{\"from_calls\": 0}", "application/json", "invalid_source"),
        (
            "{\"from_calls\": 5, \"mlflow_run_id\": \"x\"}",
            "application/json",
            "invalid_source",
        ),
    ] {
        let reply = send_body(
            &app,
            Method::PUT,
            &uri("iris", "/reference"),
            &admin,
            content_type,
            body.into(),
        )
        .await;
        assert_eq!(reply.code(), "invalid_request", "{body}: {reply:?}");
        assert_eq!(reply.body["details"]["reason"], reason, "{body}: {reply:?}");
    }
    let xml = send_body(
        &app,
        Method::PUT,
        &uri("iris", "/reference"),
        &admin,
        "text/xml",
        "<a/>".into(),
    )
    .await;
    assert_eq!(xml.code(), "unsupported_media_type");
    let run = app
        .put(
            &uri("iris", "/reference"),
            &admin,
            json!({ "mlflow_run_id": "nope", "artifact_path": "data/reference.csv" }),
        )
        .await;
    assert_eq!(run.code(), "not_found", "{run:?}");
    assert_eq!(
        app.get(&uri("iris", "/reference"), &admin).await.code(),
        "not_found"
    );

    // A viewer reads; only members and up change anything.
    let viewer = app
        .user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    assert_eq!(
        app.get(&uri("iris", "/config"), &viewer).await.status,
        StatusCode::OK
    );
    let csv = "input[0],input[1],input[2],input[3]\n1,2,3,4\n".to_owned();
    let refused = send_body(
        &app,
        Method::PUT,
        &uri("iris", "/reference"),
        &viewer,
        "text/csv",
        csv.clone(),
    )
    .await;
    assert_eq!(refused.code(), "forbidden", "{refused:?}");
    let refused = app.put(&uri("iris", "/config"), &viewer, json!({})).await;
    assert_eq!(refused.code(), "forbidden", "{refused:?}");
    let ok = send_body(
        &app,
        Method::PUT,
        &uri("iris", "/reference"),
        &admin,
        "text/csv",
        csv,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(
        app.get(&uri("iris", "/reference"), &viewer).await.body["rows"],
        1
    );

    // Every change is audited.
    let log = app
        .get(&format!("/v1/orgs/{ORG}/audit?limit=500"), &admin)
        .await;
    let text = log.body.to_string();
    for action in ["model.drift.config_set", "model.drift.reference_set"] {
        assert!(text.contains(action), "{action} in {text}");
    }
    let deleted = app
        .call(
            Method::DELETE,
            &uri("iris", "/reference"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let log = app
        .get(&format!("/v1/orgs/{ORG}/audit?limit=500"), &admin)
        .await;
    assert!(
        log.body
            .to_string()
            .contains("model.drift.reference_deleted")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organisation_sees_nothing() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let csv = "input[0],input[1],input[2],input[3]\n1,2,3,4\n".to_owned();
    let set = send_body(
        &app,
        Method::PUT,
        &uri("iris", "/reference"),
        &admin,
        "text/csv",
        csv.clone(),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    app.org(&admin, "rival").await;
    let (_, rival_key) = app.api_key(&admin, "rival", &["admin"]).await;
    let rival = |rest: &str| format!("/v1/orgs/rival/models/iris/drift{rest}");
    for token in [&admin, &rival_key] {
        for path in ["/reference", "/config", "", "/report"] {
            let reply = app.get(&rival(path), token).await;
            assert_eq!(reply.code(), "not_found", "{path}: {reply:?}");
        }
        let reply = send_body(
            &app,
            Method::PUT,
            &rival("/reference"),
            token,
            "text/csv",
            csv.clone(),
        )
        .await;
        assert_eq!(reply.code(), "not_found", "{reply:?}");
        let reply = app.put(&rival("/config"), token, json!({})).await;
        assert_eq!(reply.code(), "not_found", "{reply:?}");
    }
    // The rival's key on acme's model is refused before anything is read.
    let reply = app.get(&uri("iris", "/reference"), &rival_key).await;
    assert!(
        matches!(reply.code(), "forbidden" | "not_found"),
        "{reply:?}"
    );
    assert_ne!(reply.body["rows"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_outlive_a_restart() {
    // A database file, so that a second process state opens what the first wrote.
    let app = TestApp::serving_with(|config| config.database.url = None).await;
    let admin = app.admin().await;
    let data = fixture_json();
    let iris = &data["iris"];
    deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let set = send_body(
        &app,
        Method::PUT,
        &uri("iris", "/reference"),
        &admin,
        "text/csv",
        iris_csv(iris),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    let rows = iris["shifted"].as_array().unwrap();
    predict(&app, &admin, "iris", json!({ "input": &rows[..80] })).await;
    // What `wisp serve` does when it stops.
    app.state.drift.flush().await;

    let mut config = wisp::config::Config {
        data_dir: app.dir.path().to_owned(),
        ..wisp::config::Config::default()
    };
    config.limits.max_upload_bytes = 64 << 20;
    let bootstrap = wisp::cli::Bootstrap {
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(ADMIN_PASSWORD.into()),
        org_slug: ORG.into(),
    };
    let state = wisp::serve::state(&config, &bootstrap, Arc::new(sandboxed_inspector(&config)))
        .await
        .expect("second state");
    let again = TestApp {
        app: wisp::app(state.clone()),
        state,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let token = again.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // The same model is served again after the restart; its window goes on filling.
    let deploy = again
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &token,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.status, StatusCode::OK, "{deploy:?}");
    predict(&again, &token, "iris", json!({ "input": &rows[80..] })).await;
    again.state.drift.flush().await;
    let report = again
        .get(&uri("iris", &format!("/report{RANGE}")), &token)
        .await;
    assert_eq!(report.status, StatusCode::OK, "{report:?}");
    assert_eq!(report.body["rows"], 200, "{report:?}");
    // All 200 rows, before and after, are the sample: the statistics are scipy's.
    assert_matches_scipy(&report.body, &iris["expected"]["shifted"]);
}

#[tokio::test]
async fn the_openapi_document_describes_drift() {
    let app = TestApp::new().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    let paths = doc.body["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/v1/orgs/{org}/models/{model}/drift", &["get"][..]),
        ("/v1/orgs/{org}/models/{model}/drift/report", &["get"]),
        (
            "/v1/orgs/{org}/models/{model}/drift/config",
            &["get", "put"],
        ),
        (
            "/v1/orgs/{org}/models/{model}/drift/reference",
            &["get", "put", "post", "delete"],
        ),
    ] {
        for method in methods {
            assert!(paths[path].get(*method).is_some(), "{method} {path}");
        }
    }
}
