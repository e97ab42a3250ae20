//! Ground truth over the router with real models: predictions through wisp's predict and
//! V2 infer, their ids from `wisp-usage-id`, feedback single and bulk, and the performance
//! and fairness they give, checked against figures this test computes on its own from the
//! same predictions and actuals.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use wisp_test_artifacts::fixture;

fn expected(file: &str) -> Value {
    let all: Value = serde_json::from_slice(&fixture("ml/expected.json")).unwrap();
    all["models"][file].clone()
}

/// The rows of a fixture's reference input, one `Vec<f64>` each.
fn rows(file: &str) -> Vec<Vec<f64>> {
    let input = &expected(file)["inputs"]["input"];
    let width = input["shape"][1].as_u64().unwrap() as usize;
    let data: Vec<f64> = input["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    data.chunks(width).map(<[f64]>::to_vec).collect()
}

fn feedback_uri(org: &str, model: &str) -> String {
    format!("/v1/orgs/{org}/models/{model}/feedback")
}

/// Predicts one row with wisp's predict, with a segment header; returns the reply.
async fn predict(app: &TestApp, token: &str, model: &str, row: &[f64], segment: &str) -> Reply {
    let body = json!({ "inputs": { "input": [row] } });
    let request = Request::post(format!("/v1/orgs/{ORG}/models/{model}/predict"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-wisp-segment", segment)
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply
}

fn prediction_id(reply: &Reply) -> String {
    reply.headers["wisp-usage-id"].to_str().unwrap().to_owned()
}

fn close_to(got: &Value, want: f64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {got}"));
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
}

/// Precision, recall and F1 of `label`, computed from the pairs directly.
fn prf(pairs: &[(i64, i64)], label: i64) -> (f64, f64, f64) {
    let tp = pairs
        .iter()
        .filter(|(p, a)| *p == label && *a == label)
        .count() as f64;
    let predicted = pairs.iter().filter(|(p, _)| *p == label).count() as f64;
    let actual = pairs.iter().filter(|(_, a)| *a == label).count() as f64;
    let div = |n: f64, d: f64| if d == 0.0 { 0.0 } else { n / d };
    let (precision, recall) = (div(tp, predicted), div(tp, actual));
    (
        precision,
        recall,
        div(2.0 * precision * recall, precision + recall),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn classifier_feedback_gives_accuracy_f1_and_fairness() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let file = "cancer_std_logreg_zipmap.onnx";
    deployed(&app, &admin, "cancer", &format!("ml/{file}")).await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;

    // Six calls of one row each: segment `a` for the first three, `b` for the rest.
    let segments = ["a", "a", "a", "b", "b", "b"];
    let mut ids = Vec::new();
    let mut predicted = Vec::new();
    for (row, segment) in rows(file).iter().zip(segments) {
        let reply = predict(&app, &key, "cancer", row, segment).await;
        ids.push(prediction_id(&reply));
        predicted.push(
            reply.body["outputs"]["output_label"]["data"][0]
                .as_i64()
                .unwrap(),
        );
    }
    let reference: Vec<i64> = expected(file)["outputs"]["output_label"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(predicted, reference);
    let actual = [0i64, 1, 1, 1, 0, 0];

    // A single feedback, first with a wrong actual, then replaced by the right one.
    let uri = feedback_uri(ORG, "cancer");
    for value in [1 - actual[0], actual[0]] {
        let reply = app
            .post(
                &uri,
                &key,
                json!({ "prediction_id": ids[0], "actual": value }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.body["result"], "accepted");
    }
    // Labels may come as strings too.
    let reply = app
        .post(
            &uri,
            &key,
            json!({ "prediction_id": ids[1], "actual": actual[1].to_string() }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    // The rest in bulk, with an unknown id and an invalid actual among them.
    let mut items: Vec<Value> = (2..6)
        .map(|i| json!({ "prediction_id": ids[i], "actual": actual[i] }))
        .collect();
    items.push(json!({ "prediction_id": "no-such-prediction", "actual": 1 }));
    items.push(json!({ "prediction_id": ids[0], "actual": 0.5 }));
    let bulk = app.post(&uri, &key, json!({ "items": items })).await;
    assert_eq!(bulk.status, StatusCode::OK, "{bulk:?}");
    assert_eq!(bulk.body["accepted"], 4);
    let results: Vec<&str> = bulk.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        [
            "accepted",
            "accepted",
            "accepted",
            "accepted",
            "unknown_prediction",
            "invalid_actual"
        ]
    );

    // Single-form errors: unknown id, invalid actual, malformed body.
    let unknown = app
        .post(&uri, &key, json!({ "prediction_id": "nope", "actual": 1 }))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for bad in [json!(true), json!(0.5), json!(null), json!([1])] {
        let reply = app
            .post(
                &uri,
                &key,
                json!({ "prediction_id": ids[0], "actual": bad }),
            )
            .await;
        let want = if bad.is_null() {
            (StatusCode::BAD_REQUEST, "invalid_request")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_actual")
        };
        assert_eq!((reply.status, reply.code()), want, "{bad}: {reply:?}");
    }
    let both = app
        .post(
            &uri,
            &key,
            json!({ "prediction_id": ids[0], "actual": 1, "items": [] }),
        )
        .await;
    assert_eq!(both.code(), "invalid_request");
    let long_segment = app
        .post(
            &uri,
            &key,
            json!({ "prediction_id": ids[0], "actual": 0, "segment": "x".repeat(129) }),
        )
        .await;
    assert_eq!(long_segment.code(), "invalid_request");

    // A call of several rows has one id: nothing to join its feedback to.
    let mut many = rows(file);
    many.truncate(2);
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/models/cancer/predict"),
            &key,
            json!({ "inputs": { "input": many } }),
        )
        .await;
    let several = app
        .post(
            &uri,
            &key,
            json!({ "prediction_id": prediction_id(&reply), "actual": 1 }),
        )
        .await;
    assert_eq!(several.code(), "not_found");

    // Performance, against figures computed here from the same pairs.
    let pairs: Vec<(i64, i64)> = predicted.iter().copied().zip(actual).collect();
    let accuracy = pairs.iter().filter(|(p, a)| p == a).count() as f64 / pairs.len() as f64;
    let (p1, r1, f1) = prf(&pairs, 1);
    let (_, _, f0) = prf(&pairs, 0);
    let viewer = app
        .user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let performance = app
        .get(
            &format!("/v1/orgs/{ORG}/models/cancer/performance?from=0&to=4000000000"),
            &viewer,
        )
        .await;
    assert_eq!(performance.status, StatusCode::OK, "{performance:?}");
    let overall = &performance.body["overall"][0];
    assert_eq!(overall["version"], 1);
    assert_eq!(overall["count"], 6);
    let classification = &overall["classification"];
    close_to(&classification["accuracy"], accuracy);
    close_to(&classification["positive"]["precision"], p1);
    close_to(&classification["positive"]["recall"], r1);
    close_to(&classification["positive"]["f1"], f1);
    close_to(&classification["per_class"]["1"]["f1"], f1);
    close_to(&classification["macro_avg"]["f1"], (f0 + f1) / 2.0);

    // An alert rule on the model's accuracy reads the same feedback.
    let rule = app
        .post(
            &format!("/v1/orgs/{ORG}/alerts/rules"),
            &admin,
            json!({ "name": "accuracy", "model": "cancer", "metric": "accuracy",
                    "comparison": "<", "threshold": 0.99, "window": "1h" }),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{rule:?}");
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 1;
    app.state.alerts.evaluate_at(at).await.unwrap();
    let states = app.get(&format!("/v1/orgs/{ORG}/alerts"), &admin).await;
    let state = states
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rule_name"] == "accuracy")
        .cloned()
        .unwrap();
    close_to(&state["value"], accuracy);
    // One window here: the predictions all fall in the same hour.
    let hourly = app
        .get(
            &format!("/v1/orgs/{ORG}/models/cancer/performance?step=3600"),
            &viewer,
        )
        .await;
    assert_eq!(hourly.status, StatusCode::OK, "{hourly:?}");
    let windows = hourly.body["windows"].as_array().unwrap();
    let counted: u64 = windows.iter().map(|w| w["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 6, "{windows:?}");
    let other_version = app
        .get(
            &format!("/v1/orgs/{ORG}/models/cancer/performance?version=2"),
            &viewer,
        )
        .await;
    assert_eq!(other_version.body["overall"], json!([]));

    // Fairness: per segment, from the same rows.
    let mut by_segment: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (segment, pair) in segments.iter().zip(&pairs) {
        by_segment.entry(segment).or_default().push(*pair);
    }
    let rate = |rows: &[(i64, i64)], keep: fn(&(i64, i64)) -> bool| {
        let kept: Vec<_> = rows.iter().filter(|r| keep(r)).collect();
        kept.iter().filter(|(p, _)| *p == 1).count() as f64 / kept.len() as f64
    };
    let selection: Vec<f64> = by_segment.values().map(|r| rate(r, |_| true)).collect();
    let tpr: Vec<f64> = by_segment
        .values()
        .map(|r| rate(r, |(_, a)| *a == 1))
        .collect();
    let fairness = app
        .get(&format!("/v1/orgs/{ORG}/models/cancer/fairness"), &viewer)
        .await;
    assert_eq!(fairness.status, StatusCode::OK, "{fairness:?}");
    let body = &fairness.body;
    assert_eq!(body["positive_label"], "1");
    assert_eq!(body["count"], 6);
    close_to(&body["segments"]["a"]["selection_rate"], selection[0]);
    close_to(&body["segments"]["b"]["true_positive_rate"], tpr[1]);
    let (lo, hi) = (
        selection[0].min(selection[1]),
        selection[0].max(selection[1]),
    );
    close_to(&body["demographic_parity_difference"], hi - lo);
    close_to(&body["disparate_impact_ratio"], lo / hi);
    close_to(
        &body["equal_opportunity_difference"],
        (tpr[0] - tpr[1]).abs(),
    );
    // The numbers themselves, for the record: a selects 1/3, b 2/3.
    close_to(&body["demographic_parity_difference"], 1.0 / 3.0);
    close_to(&body["disparate_impact_ratio"], 0.5);
    // The other label as the positive one.
    let flipped = app
        .get(
            &format!("/v1/orgs/{ORG}/models/cancer/fairness?positive_label=0"),
            &viewer,
        )
        .await;
    assert_eq!(flipped.body["positive_label"], "0");
    close_to(
        &flipped.body["segments"]["a"]["selection_rate"],
        1.0 - selection[0],
    );

    // A viewer reads the metrics but does not send feedback.
    let refused = app
        .post(
            &uri,
            &viewer,
            json!({ "prediction_id": ids[0], "actual": 0 }),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // Nor does a read-only key; a member does.
    let (_, read_key) = app.api_key(&admin, ORG, &["read"]).await;
    let refused = app
        .post(
            &uri,
            &read_key,
            json!({ "prediction_id": ids[0], "actual": 0 }),
        )
        .await;
    assert_eq!(refused.code(), "forbidden");
    let member = app
        .user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    let accepted = app
        .post(
            &uri,
            &member,
            json!({ "prediction_id": ids[0], "actual": 0 }),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");

    // Bad ranges.
    for query in [
        "from=10&to=5",
        "step=0",
        "from=0&to=4000000000&step=1",
        "bogus=1",
    ] {
        let reply = app
            .get(
                &format!("/v1/orgs/{ORG}/models/cancer/performance?{query}"),
                &viewer,
            )
            .await;
        assert_eq!(reply.code(), "invalid_request", "{query}: {reply:?}");
    }

    // Feedback is audited, once per request.
    let audit = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=model.feedback.recorded"),
            &admin,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{audit:?}");
    let entries = audit.body["entries"]
        .as_array()
        .or_else(|| audit.body.as_array())
        .expect("audit entries");
    assert_eq!(entries.len(), 5, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn regressor_feedback_gives_mae_and_rmse_through_v2() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let file = "diabetes_linreg.onnx";
    deployed(&app, &admin, "diabetes", &format!("ml/{file}")).await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;

    let actual = [200.0, 250.0, 100.0, 150.0, 181.5, 300.0];
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for (row, truth) in rows(file).iter().zip(actual) {
        let request = json!({
            "id": "client-id",
            "parameters": { "segment": "s" },
            "inputs": [{ "name": "input", "shape": [1, row.len()], "datatype": "FP32", "data": row }],
        });
        let reply = app.post("/v2/models/diabetes/infer", &key, request).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        // V2's `id` is the client's; the prediction id is the header.
        assert_eq!(reply.body["id"], "client-id");
        let value = reply.body["outputs"][0]["data"][0].as_f64().unwrap();
        errors.push(value - truth);
        items.push(json!({ "prediction_id": prediction_id(&reply), "actual": truth }));
    }
    let uri = feedback_uri(ORG, "diabetes");
    let bulk = app.post(&uri, &key, json!({ "items": items })).await;
    assert_eq!(bulk.body["accepted"], 6, "{bulk:?}");

    let wrong = app
        .post(
            &uri,
            &key,
            json!({ "prediction_id": items[0]["prediction_id"], "actual": "high" }),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_actual")
    );
    // A segment that is not a string is refused before the call runs.
    let bad_segment = app
        .post(
            "/v2/models/diabetes/infer",
            &key,
            json!({ "parameters": { "segment": 3 },
                    "inputs": [{ "name": "input", "shape": [1, 10], "datatype": "FP32", "data": vec![0.0; 10] }] }),
        )
        .await;
    assert_eq!(
        bad_segment.status,
        StatusCode::BAD_REQUEST,
        "{bad_segment:?}"
    );

    let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    let performance = app
        .get(
            &format!("/v1/orgs/{ORG}/models/diabetes/performance"),
            &admin,
        )
        .await;
    assert_eq!(performance.status, StatusCode::OK, "{performance:?}");
    let regression = &performance.body["overall"][0]["regression"];
    // The stored predictions are the f32 outputs widened: the same numbers.
    close_to(&regression["mae"], mae);
    close_to(&regression["rmse"], rmse);
    assert!(
        performance.body["overall"][0]
            .get("classification")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organisations_predictions_are_unknown() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let file = "cancer_std_logreg_zipmap.onnx";
    deployed(&app, &admin, "cancer", &format!("ml/{file}")).await;
    let (_, key) = app.api_key(&admin, ORG, &["predict"]).await;
    let row = &rows(file)[0];
    let id = prediction_id(&predict(&app, &key, "cancer", row, "a").await);

    // Another organisation with a model of the same name.
    app.org(&admin, "beta").await;
    app.model(&admin, "beta", "cancer").await;
    let (_, beta_key) = app.api_key(&admin, "beta", &["predict"]).await;
    let theirs = app
        .post(
            &feedback_uri("beta", "cancer"),
            &beta_key,
            json!({ "prediction_id": id, "actual": 0 }),
        )
        .await;
    let unknown = app
        .post(
            &feedback_uri("beta", "cancer"),
            &beta_key,
            json!({ "prediction_id": "x", "actual": 0 }),
        )
        .await;
    assert_eq!(
        (theirs.status, theirs.code()),
        (unknown.status, unknown.code())
    );
    assert_eq!(theirs.code(), "not_found");
    let bulk = app
        .post(
            &feedback_uri("beta", "cancer"),
            &beta_key,
            json!({ "items": [{ "prediction_id": id, "actual": 0 }] }),
        )
        .await;
    assert_eq!(bulk.body["results"][0]["result"], "unknown_prediction");
    // Their key on our organisation's path: the organisation does not exist for it.
    let path = app
        .post(
            &feedback_uri(ORG, "cancer"),
            &beta_key,
            json!({ "prediction_id": id, "actual": 0 }),
        )
        .await;
    assert_eq!(path.status, StatusCode::NOT_FOUND, "{path:?}");
    // Another model of our own organisation does not know it either.
    app.model(&admin, ORG, "other").await;
    let other = app
        .post(
            &feedback_uri(ORG, "other"),
            &key,
            json!({ "prediction_id": id, "actual": 0 }),
        )
        .await;
    assert_eq!(other.code(), "not_found");
    // Nothing of it shows in their metrics.
    let theirs = app
        .get(
            "/v1/orgs/beta/models/cancer/performance?from=0&to=4000000000",
            &admin,
        )
        .await;
    assert_eq!(theirs.body["overall"], json!([]));
    // And ours still takes it.
    let ours = app
        .post(
            &feedback_uri(ORG, "cancer"),
            &key,
            json!({ "prediction_id": id, "actual": 0 }),
        )
        .await;
    assert_eq!(ours.status, StatusCode::OK, "{ours:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_rows_carry_their_prediction_ids() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    let file = "cancer_std_logreg_zipmap.onnx";
    deployed(&app, &admin, "cancer", &format!("ml/{file}")).await;
    let input: String = rows(file)
        .iter()
        .map(|row| format!("{}\n", json!({ "input": row })))
        .collect();
    let jobs = format!("/v1/orgs/{ORG}/batch-jobs");
    let request = Request::post(format!("{jobs}?model=cancer"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(input))
        .unwrap();
    let created = app.send(request).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..6000 {
        status = app.get(&format!("{jobs}/{id}"), &admin).await.body;
        if !matches!(status["status"].as_str(), Some("queued" | "running")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "succeeded", "{status}");
    let results = app.get(&format!("{jobs}/{id}/results"), &admin).await;
    let lines: Vec<Value> = results
        .body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    // Every row's actual is the opposite of its prediction: accuracy 0.
    let items: Vec<Value> = lines
        .iter()
        .map(|line| {
            let label = line["outputs"]["output_label"]["data"][0].as_i64().unwrap();
            json!({ "prediction_id": line["prediction_id"], "actual": 1 - label })
        })
        .collect();
    let bulk = app
        .post(
            &feedback_uri(ORG, "cancer"),
            &admin,
            json!({ "items": items }),
        )
        .await;
    assert_eq!(bulk.body["accepted"], 6, "{bulk:?}");
    let performance = app
        .get(&format!("/v1/orgs/{ORG}/models/cancer/performance"), &admin)
        .await;
    let overall = &performance.body["overall"][0];
    assert_eq!(overall["count"], 6, "{performance:?}");
    close_to(&overall["classification"]["accuracy"], 0.0);
}

fn wisp_cli(server: &str, token: &str, args: &[&str]) -> String {
    common::server::wisp_cli(server, token, "team", args)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_predicts_sends_feedback_and_reads_performance_from_a_real_server() {
    use common::server::{free_port, login, start, with_admin};
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(with_admin(data.path(), port, "team"), port).await;
    let token = login(&server.base).await;
    let base = server.base.clone();
    let cli = move |args: Vec<String>| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                wisp_cli(&base, &token, &args)
            })
            .await
            .unwrap()
        }
    };
    let strings = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let model = wisp_test_artifacts::fixtures_dir().join("ml/cancer_std_logreg_zipmap.onnx");
    cli(strings(&[
        "models",
        "push",
        model.to_str().unwrap(),
        "--model",
        "cancer",
    ]))
    .await;
    cli(strings(&["deploy", "cancer"])).await;

    let file = "cancer_std_logreg_zipmap.onnx";
    let mut correct = 0;
    for (i, row) in rows(file).iter().enumerate() {
        let input = json!({ "input": [row] }).to_string();
        let predicted = cli(strings(&["predict", "cancer", "--input", &input])).await;
        let id = predicted
            .lines()
            .find_map(|l| l.trim().strip_prefix("prediction id: "))
            .unwrap_or_else(|| panic!("no prediction id in {predicted}"))
            .to_owned();
        let label: i64 = expected(file)["outputs"]["output_label"]["data"][i]
            .as_i64()
            .unwrap();
        // The first four right, the last two wrong.
        let actual = if i < 4 { label } else { 1 - label };
        correct += i64::from(actual == label);
        let sent = cli(strings(&["feedback", "cancer", &id, &actual.to_string()])).await;
        assert!(sent.contains("accepted"), "{sent}");
    }
    let performance: Value =
        serde_json::from_str(&cli(strings(&["performance", "cancer", "--json"])).await).unwrap();
    let overall = &performance["overall"][0];
    assert_eq!(overall["count"], 6, "{performance}");
    close_to(&overall["classification"]["accuracy"], correct as f64 / 6.0);
    let text = cli(strings(&["performance", "cancer"])).await;
    assert!(
        text.contains("ACCURACY") && text.contains("0.666"),
        "{text}"
    );
    let fairness = cli(strings(&["fairness", "cancer"])).await;
    assert!(fairness.contains("positive label: 1"), "{fairness}");
    drop(server);
}
