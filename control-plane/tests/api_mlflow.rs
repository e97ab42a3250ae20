//! The MLflow REST API's semantics, through the router without sockets: error codes and
//! statuses, write-once params, log-batch limits, paging tokens, search filters,
//! organisation isolation, artifacts, and the bridge to wisp's registry.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use common::*;
use serde_json::{Value, json};

const API: &str = "/api/2.0/mlflow";

/// An app with an API key (`models:write`) of `acme`.
async fn setup() -> (TestApp, String) {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (_, key) = app.api_key(&admin, ORG, &["models:write"]).await;
    (app, key)
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> Reply {
    app.post(&format!("{API}/{path}"), key, body).await
}

async fn get(app: &TestApp, key: &str, path_and_query: &str) -> Reply {
    app.get(&format!("{API}/{path_and_query}"), key).await
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.body["error_code"], code, "{reply:?}");
    assert!(reply.body["message"].is_string(), "{reply:?}");
}

async fn experiment(app: &TestApp, key: &str, name: &str) -> String {
    let reply = post(app, key, "experiments/create", json!({ "name": name })).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["experiment_id"].as_str().expect("id").to_owned()
}

async fn run(app: &TestApp, key: &str, experiment_id: &str, name: &str) -> String {
    let reply = post(
        app,
        key,
        "runs/create",
        json!({ "experiment_id": experiment_id, "run_name": name, "start_time": 1000 }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned()
}

#[tokio::test]
async fn errors_use_mlflows_codes_and_statuses() {
    let (app, key) = setup().await;
    let missing = get(&app, &key, "experiments/get?experiment_id=42").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let missing = get(&app, &key, "experiments/get-by-name?experiment_name=nope").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");

    experiment(&app, &key, "exp").await;
    let twice = post(&app, &key, "experiments/create", json!({ "name": "exp" })).await;
    assert_error(&twice, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
    let unnamed = post(&app, &key, "experiments/create", json!({})).await;
    assert_error(&unnamed, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let malformed = app
        .send(
            Request::post(format!("{API}/experiments/create"))
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
        )
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "BAD_REQUEST");

    // The client falls back between endpoint versions on ENDPOINT_NOT_FOUND.
    let unknown = get(&app, &key, "no-such/endpoint").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND");

    let anonymous = app
        .call(
            Method::GET,
            &format!("{API}/experiments/get?experiment_id=0"),
            None,
            None,
        )
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let admin = app.admin().await;
    let (_, predict_only) = app.api_key(&admin, ORG, &["predict"]).await;
    let denied = post(
        &app,
        &predict_only,
        "experiments/create",
        json!({ "name": "x" }),
    )
    .await;
    assert_error(&denied, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
}

#[tokio::test]
async fn the_default_experiment_exists_and_runs_go_there() {
    let (app, key) = setup().await;
    let default = get(&app, &key, "experiments/get?experiment_id=0").await;
    assert_eq!(default.status, StatusCode::OK, "{default:?}");
    assert_eq!(default.body["experiment"]["name"], "Default");
    let created = post(&app, &key, "runs/create", json!({ "tags": [] })).await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    let info = &created.body["run"]["info"];
    assert_eq!(info["experiment_id"], "0");
    assert_eq!(info["status"], "RUNNING");
    let run_id = info["run_id"].as_str().unwrap();
    assert_eq!(
        info["artifact_uri"],
        format!("mlflow-artifacts:/0/{run_id}/artifacts")
    );
    // A run without a name gets one, also as the `mlflow.runName` tag.
    let name = info["run_name"].as_str().unwrap();
    assert!(!name.is_empty());
    assert!(
        created.body["run"]["data"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({ "key": "mlflow.runName", "value": name }))
    );
}

#[tokio::test]
async fn params_are_write_once_and_batches_have_limits() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    let run_id = run(&app, &key, &exp, "r").await;
    let param = |value: &str| json!({ "run_id": run_id, "key": "alpha", "value": value });
    assert_eq!(
        post(&app, &key, "runs/log-parameter", param("0.1"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(&app, &key, "runs/log-parameter", param("0.1"))
            .await
            .status,
        StatusCode::OK
    );
    let changed = post(&app, &key, "runs/log-parameter", param("0.2")).await;
    assert_error(&changed, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    // A batch that would change a param writes nothing at all.
    let batch = post(
        &app,
        &key,
        "runs/log-batch",
        json!({
            "run_id": run_id,
            "metrics": [{ "key": "m", "value": 1.0, "timestamp": 1, "step": 0 }],
            "params": [{ "key": "alpha", "value": "0.3" }],
        }),
    )
    .await;
    assert_error(&batch, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let history = get(
        &app,
        &key,
        &format!("metrics/get-history?run_id={run_id}&metric_key=m"),
    )
    .await;
    assert_eq!(history.body["metrics"], json!([]), "{history:?}");

    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({ "key": "m", "value": i, "timestamp": i, "step": i }))
        .collect();
    let too_many = post(
        &app,
        &key,
        "runs/log-batch",
        json!({ "run_id": run_id, "metrics": metrics }),
    )
    .await;
    assert_error(
        &too_many,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let params: Vec<Value> = (0..101)
        .map(|i| json!({ "key": format!("p{i}"), "value": "v" }))
        .collect();
    let too_many = post(
        &app,
        &key,
        "runs/log-batch",
        json!({ "run_id": run_id, "params": params }),
    )
    .await;
    assert_error(
        &too_many,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let ok = post(
        &app,
        &key,
        "runs/log-batch",
        json!({ "run_id": run_id, "metrics": metrics[..1000] }),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");

    // A deleted run takes no more writes; a restored one does.
    assert_eq!(
        post(&app, &key, "runs/delete", json!({ "run_id": run_id }))
            .await
            .status,
        StatusCode::OK
    );
    let deleted = post(
        &app,
        &key,
        "runs/set-tag",
        json!({ "run_id": run_id, "key": "k", "value": "v" }),
    )
    .await;
    assert_error(&deleted, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        post(&app, &key, "runs/restore", json!({ "run_id": run_id }))
            .await
            .status,
        StatusCode::OK
    );
    let restored = post(
        &app,
        &key,
        "runs/set-tag",
        json!({ "run_id": run_id, "key": "k", "value": "v" }),
    )
    .await;
    assert_eq!(restored.status, StatusCode::OK, "{restored:?}");
}

#[tokio::test]
async fn metrics_keep_history_and_the_latest_value() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    let run_id = run(&app, &key, &exp, "r").await;
    for (step, value) in [(2, 0.5), (0, 0.9), (1, 0.7)] {
        let reply = post(
            &app,
            &key,
            "runs/log-metric",
            // int64 fields as strings, as protobuf JSON may send them.
            json!({ "run_id": run_id, "key": "loss", "value": value, "timestamp": "100", "step": step.to_string() }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let nan = post(
        &app,
        &key,
        "runs/log-metric",
        json!({ "run_id": run_id, "key": "odd", "value": "NaN", "timestamp": 1, "step": 0 }),
    )
    .await;
    assert_eq!(nan.status, StatusCode::OK, "{nan:?}");
    let fetched = get(&app, &key, &format!("runs/get?run_id={run_id}")).await;
    let metrics = fetched.body["run"]["data"]["metrics"]
        .as_array()
        .unwrap()
        .clone();
    let loss = metrics.iter().find(|m| m["key"] == "loss").unwrap();
    assert_eq!(
        (loss["step"].clone(), loss["value"].clone()),
        (json!(2), json!(0.5))
    );
    let odd = metrics.iter().find(|m| m["key"] == "odd").unwrap();
    assert_eq!(odd["value"], "NaN");

    let page = get(
        &app,
        &key,
        &format!("metrics/get-history?run_id={run_id}&metric_key=loss&max_results=2"),
    )
    .await;
    let steps: Vec<i64> = page.body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![0, 1]);
    let token = page.body["next_page_token"]
        .as_str()
        .expect("more")
        .to_owned();
    let rest = get(
        &app,
        &key,
        &format!(
            "metrics/get-history?run_id={run_id}&metric_key=loss&max_results=2&page_token={token}"
        ),
    )
    .await;
    assert_eq!(rest.body["metrics"].as_array().unwrap().len(), 1);
    assert!(rest.body.get("next_page_token").is_none(), "{rest:?}");
}

#[tokio::test]
async fn search_filters_orders_and_pages() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let run_id = run(&app, &key, &exp, &format!("run-{i}")).await;
        let reply = post(
            &app,
            &key,
            "runs/log-batch",
            json!({
                "run_id": run_id,
                "metrics": [{ "key": "acc", "value": i as f64 / 10.0, "timestamp": 1, "step": 0 }],
                "params": [{ "key": "model", "value": if i % 2 == 0 { "tree" } else { "linear" } }],
                "tags": [{ "key": "team", "value": "Vision" }],
            }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        ids.push(run_id);
    }
    let search = |filter: &str, order_by: Value, max: Option<i64>, token: Option<String>| {
        let mut body = json!({ "experiment_ids": [exp], "filter": filter, "order_by": order_by });
        if let Some(max) = max {
            body["max_results"] = json!(max);
        }
        if let Some(token) = token {
            body["page_token"] = json!(token);
        }
        body
    };
    let names = |reply: &Reply| -> Vec<String> {
        reply.body["runs"]
            .as_array()
            .map(|runs| {
                runs.iter()
                    .map(|r| r["info"]["run_name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let reply = post(
        &app,
        &key,
        "runs/search",
        search(
            "metrics.acc >= 0.2 and params.model = 'tree'",
            json!(["metrics.acc DESC"]),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(names(&reply), ["run-4", "run-2"], "{reply:?}");
    let reply = post(
        &app,
        &key,
        "runs/search",
        search(
            "params.model LIKE 'lin%' and tags.team ILIKE 'vision'",
            json!(["attributes.run_name"]),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(names(&reply), ["run-1", "run-3"]);
    // LIKE is case-sensitive, as in MLflow.
    let reply = post(
        &app,
        &key,
        "runs/search",
        search("tags.team LIKE 'vision'", json!([]), None, None),
    )
    .await;
    assert_eq!(names(&reply), Vec::<String>::new());
    let reply = post(
        &app,
        &key,
        "runs/search",
        search(
            &format!("attributes.run_id IN ('{}', '{}')", ids[0], ids[3]),
            json!(["metrics.acc"]),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(names(&reply), ["run-0", "run-3"]);
    let reply = post(
        &app,
        &key,
        "runs/search",
        search(
            "attributes.status = 'RUNNING' and tags.\"mlflow.runName\" = 'run-3'",
            json!([]),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(names(&reply), ["run-3"]);

    // Pages of two, in a stable order, until no token comes back.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let reply = post(
            &app,
            &key,
            "runs/search",
            search("", json!(["metrics.acc ASC"]), Some(2), token),
        )
        .await;
        seen.extend(names(&reply));
        match reply.body.get("next_page_token").and_then(Value::as_str) {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["run-0", "run-1", "run-2", "run-3", "run-4"]);

    for bad in [
        "metrics.acc >",
        "metrics.acc = 'high'",
        "foo.bar = 'x'",
        "params.model = 'a' OR params.model = 'b'",
        "attributes.nope = 'x'",
    ] {
        let reply = post(
            &app,
            &key,
            "runs/search",
            search(bad, json!([]), None, None),
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    let reply = post(
        &app,
        &key,
        "runs/search",
        search("", json!([]), None, Some("garbage".into())),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let reply = post(
        &app,
        &key,
        "runs/search",
        search("", json!(["metrics.acc sideways"]), None, None),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    // Experiments: filter and lifecycle.
    experiment(&app, &key, "other").await;
    let reply = post(
        &app,
        &key,
        "experiments/search",
        json!({ "filter": "name LIKE 'ex%'" }),
    )
    .await;
    let found: Vec<&str> = reply.body["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["exp"]);
    assert_eq!(
        post(
            &app,
            &key,
            "experiments/delete",
            json!({ "experiment_id": exp })
        )
        .await
        .status,
        StatusCode::OK
    );
    let reply = post(&app, &key, "runs/search", search("", json!([]), None, None)).await;
    assert_eq!(
        names(&reply),
        Vec::<String>::new(),
        "runs of a deleted experiment are deleted"
    );
    let reply = post(
        &app,
        &key,
        "experiments/search",
        json!({ "view_type": "DELETED_ONLY" }),
    )
    .await;
    assert_eq!(reply.body["experiments"][0]["name"], "exp");
}

#[tokio::test]
async fn another_organisations_ids_do_not_exist() {
    let (app, key) = setup().await;
    let admin = app.admin().await;
    app.org(&admin, "rival").await;
    let (_, rival) = app.api_key(&admin, "rival", &["models:write"]).await;

    let exp = experiment(&app, &key, "secret").await;
    let run_id = run(&app, &key, &exp, "r").await;
    assert_eq!(exp, "1");
    // Experiment ids are per organisation: the rival's first is also 1, and its own.
    let theirs = experiment(&app, &rival, "theirs").await;
    assert_eq!(theirs, "1");
    let seen = get(&app, &rival, "experiments/get?experiment_id=1").await;
    assert_eq!(seen.body["experiment"]["name"], "theirs");
    let by_name = get(
        &app,
        &rival,
        "experiments/get-by-name?experiment_name=secret",
    )
    .await;
    assert_error(&by_name, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let other_run = get(&app, &rival, &format!("runs/get?run_id={run_id}")).await;
    assert_error(&other_run, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let write = post(
        &app,
        &rival,
        "runs/log-parameter",
        json!({ "run_id": run_id, "key": "a", "value": "b" }),
    )
    .await;
    assert_error(&write, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let search = post(
        &app,
        &rival,
        "runs/search",
        json!({ "experiment_ids": [exp] }),
    )
    .await;
    assert_eq!(search.body["runs"], json!([]), "{search:?}");

    // Registry and artifacts too.
    post(
        &app,
        &key,
        "registered-models/create",
        json!({ "name": "m" }),
    )
    .await;
    let model = get(&app, &rival, "registered-models/get?name=m").await;
    assert_error(&model, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    put_artifact(&app, &key, "1/x/artifacts/a.txt", b"mine").await;
    let artifact = app
        .get(
            "/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/a.txt",
            &rival,
        )
        .await;
    assert_error(&artifact, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");

    // A user's call names its organisation with X-Wisp-Org when it has several.
    let reply = app
        .send(
            Request::get(format!("{API}/experiments/get?experiment_id=1"))
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header("x-wisp-org", "rival")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(reply.body["experiment"]["name"], "theirs", "{reply:?}");
}

#[tokio::test]
async fn basic_auth_carries_an_api_key_as_the_password() {
    let (app, key) = setup().await;
    let basic = |user: &str, password: &str| {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Request::get(format!("{API}/experiments/get?experiment_id=0"))
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .body(Body::empty())
            .expect("request")
    };
    let ok = app.send(basic(ORG, &key)).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let ok = app.send(basic("anyone", &key)).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    // An account password is not accepted this way.
    let refused = app.send(basic(ADMIN_EMAIL, ADMIN_PASSWORD)).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}

async fn put_artifact(app: &TestApp, key: &str, path: &str, bytes: &[u8]) -> Reply {
    let reply = app
        .send(
            Request::put(format!("/api/2.0/mlflow-artifacts/artifacts/{path}"))
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .body(Body::from(bytes.to_vec()))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply
}

#[tokio::test]
async fn artifacts_are_stored_listed_served_and_deleted() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    let run_id = run(&app, &key, &exp, "r").await;
    let root = format!("{exp}/{run_id}/artifacts");
    put_artifact(
        &app,
        &key,
        &format!("{root}/model/model.onnx"),
        &onnx_bytes("a"),
    )
    .await;
    put_artifact(&app, &key, &format!("{root}/notes.txt"), b"hello").await;
    let blobs = app.blob_count();

    let list = app
        .get(
            &format!("/api/2.0/mlflow-artifacts/artifacts?path={root}"),
            &key,
        )
        .await;
    assert_eq!(
        list.body["files"],
        json!([
            { "path": "model", "is_dir": true },
            { "path": "notes.txt", "is_dir": false, "file_size": 5 },
        ])
    );
    let file = app
        .get(
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/notes.txt"),
            &key,
        )
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.body, json!("hello"));

    // Overwriting replaces the bytes and collects the old blob.
    put_artifact(&app, &key, &format!("{root}/notes.txt"), b"hello again").await;
    assert_eq!(app.blob_count(), blobs);
    let file = app
        .get(
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/notes.txt"),
            &key,
        )
        .await;
    assert_eq!(file.body, json!("hello again"));

    for bad in ["1/../../etc/passwd", "1/%2e%2e/x"] {
        let reply = app
            .send(
                Request::put(format!("/api/2.0/mlflow-artifacts/artifacts/{bad}"))
                    .header(header::AUTHORIZATION, format!("Bearer {key}"))
                    .body(Body::from("x"))
                    .expect("request"),
            )
            .await;
        assert_ne!(reply.status, StatusCode::OK, "{bad}: {reply:?}");
    }

    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{deleted:?}");
    assert_eq!(app.blob_count(), 0);
    let gone = app
        .get(
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/notes.txt"),
            &key,
        )
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn artifact_deletion_stays_within_a_run_and_is_audited() {
    let (app, key) = setup().await;
    let admin = app.admin().await;
    let exp = experiment(&app, &key, "exp").await;
    let run_id = run(&app, &key, &exp, "r").await;
    let root = format!("{exp}/{run_id}/artifacts");
    put_artifact(&app, &key, &format!("{root}/a.txt"), b"a").await;
    put_artifact(&app, &key, &format!("{root}/dir/b.txt"), b"b").await;
    put_artifact(&app, &key, "elsewhere/c.txt", b"c").await;
    let delete = |path: String| {
        let app = &app;
        let key = key.clone();
        async move {
            app.call(
                Method::DELETE,
                &format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                Some(&key),
                None,
            )
            .await
        }
    };
    // `%2F` decoded to the namespace's root and removed every artifact of the organisation.
    for path in [
        "%2F".to_owned(),
        "%2f".to_owned(),
        "%2F%2F".to_owned(),
        "elsewhere".to_owned(),
        "elsewhere/c.txt".to_owned(),
        exp.clone(),
        format!("{exp}%2F{run_id}%2Fartifacts"),
        format!("{exp}/{run_id}"),
        format!("{root}/%2e%2e/%2e%2e"),
        format!("{root}/../x"),
        format!("{root}%252Fa.txt"),
    ] {
        let reply = delete(path.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    for path in [
        format!("{root}/a.txt"),
        format!("{root}/dir/b.txt"),
        "elsewhere/c.txt".into(),
    ] {
        let still = app
            .get(&format!("/api/2.0/mlflow-artifacts/artifacts/{path}"), &key)
            .await;
        assert_eq!(still.status, StatusCode::OK, "{path}: {still:?}");
    }

    // Within the run's root, files and directories go, each with an audit entry.
    let file = delete(format!("{root}/a.txt")).await;
    assert_eq!(file.status, StatusCode::OK, "{file:?}");
    let dir = delete(format!("{root}/dir")).await;
    assert_eq!(dir.status, StatusCode::OK, "{dir:?}");
    let audit = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=mlflow.artifact.deleted"),
            &admin,
        )
        .await;
    let entries = audit.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{audit:?}");
    let targets: Vec<&str> = entries
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.contains(&format!("artifact:{root}/dir").as_str()),
        "{targets:?}"
    );
    assert!(
        targets.contains(&format!("artifact:{root}/a.txt").as_str()),
        "{targets:?}"
    );
}

#[tokio::test]
async fn searches_and_names_are_bounded() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    run(&app, &key, &exp, "r").await;
    let search_runs = |filter: String| {
        let app = &app;
        let key = key.clone();
        let exp = exp.clone();
        async move {
            post(
                app,
                &key,
                "runs/search",
                json!({ "experiment_ids": [exp], "filter": filter }),
            )
            .await
        }
    };
    let ok = search_runs("tags.team LIKE '%a%b%'".into()).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let too_long = search_runs(format!("tags.team = '{}'", "x".repeat(5000))).await;
    assert_error(
        &too_long,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let clauses = vec!["params.a = '1'"; 40].join(" AND ");
    let many = search_runs(clauses).await;
    assert_error(&many, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let wild = search_runs(format!("tags.team LIKE '{}'", "%a".repeat(20))).await;
    assert_error(&wild, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let long_pattern = search_runs(format!("tags.team LIKE '{}'", "a".repeat(300))).await;
    assert_error(
        &long_pattern,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let experiments = post(
        &app,
        &key,
        "experiments/search",
        json!({ "filter": format!("name ILIKE '{}'", "%_".repeat(50)) }),
    )
    .await;
    assert_error(
        &experiments,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let orders = get(
        &app,
        &key,
        &format!(
            "registered-models/search?{}",
            vec!["order_by=name"; 20].join("&")
        ),
    )
    .await;
    assert_error(&orders, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    // MLflow's length limits on names and values.
    let long_name = post(
        &app,
        &key,
        "experiments/create",
        json!({ "name": "n".repeat(501) }),
    )
    .await;
    assert_error(
        &long_name,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let long_tag = post(
        &app,
        &key,
        "experiments/set-experiment-tag",
        json!({ "experiment_id": exp, "key": "k", "value": "v".repeat(5001) }),
    )
    .await;
    assert_error(
        &long_tag,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    let long_run = post(
        &app,
        &key,
        "runs/create",
        json!({ "experiment_id": exp, "run_name": "r".repeat(8001) }),
    )
    .await;
    assert_error(
        &long_run,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
    post(
        &app,
        &key,
        "registered-models/create",
        json!({ "name": "m" }),
    )
    .await;
    let long_model_tag = post(
        &app,
        &key,
        "registered-models/set-tag",
        json!({ "name": "m", "key": "k", "value": "v".repeat(5001) }),
    )
    .await;
    assert_error(
        &long_model_tag,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );
}

#[tokio::test]
async fn an_onnx_version_is_bridged_and_its_alias_moves_wisps() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    let run_id = run(&app, &key, &exp, "r").await;
    put_artifact(
        &app,
        &key,
        &format!("{exp}/{run_id}/artifacts/model/model.onnx"),
        &onnx_bytes("v1"),
    )
    .await;
    put_artifact(
        &app,
        &key,
        &format!("{exp}/{run_id}/artifacts/model/MLmodel"),
        b"flavors: {}",
    )
    .await;
    put_artifact(
        &app,
        &key,
        &format!("{exp}/{run_id}/artifacts/other/model.onnx"),
        &onnx_bytes("v2"),
    )
    .await;
    put_artifact(
        &app,
        &key,
        &format!("{exp}/{run_id}/artifacts/plain/readme.txt"),
        b"no model",
    )
    .await;
    let blobs = app.blob_count();

    let created = post(
        &app,
        &key,
        "registered-models/create",
        json!({ "name": "iris", "tags": [{ "key": "k", "value": "v" }] }),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    let twice = post(
        &app,
        &key,
        "registered-models/create",
        json!({ "name": "iris" }),
    )
    .await;
    assert_error(&twice, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");

    let version = |source: String| json!({ "name": "iris", "source": source, "run_id": run_id });
    let v1 = post(
        &app,
        &key,
        "model-versions/create",
        version(format!("runs:/{run_id}/model")),
    )
    .await;
    assert_eq!(v1.status, StatusCode::OK, "{v1:?}");
    assert_eq!(v1.body["model_version"]["version"], "1");
    assert_eq!(v1.body["model_version"]["status"], "READY");
    let v2 = post(
        &app,
        &key,
        "model-versions/create",
        version(format!("mlflow-artifacts:/{exp}/{run_id}/artifacts/other")),
    )
    .await;
    assert_eq!(v2.body["model_version"]["version"], "2");
    let v3 = post(
        &app,
        &key,
        "model-versions/create",
        version(format!("runs:/{run_id}/plain")),
    )
    .await;
    assert_eq!(v3.body["model_version"]["version"], "3");
    // The wisp versions share the artifacts' blobs.
    assert_eq!(app.blob_count(), blobs);

    let uri = get(
        &app,
        &key,
        "model-versions/get-download-uri?name=iris&version=1",
    )
    .await;
    assert_eq!(
        uri.body["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{run_id}/artifacts/model")
    );

    // Two of three hold an ONNX model: wisp versions 1 and 2 of the model `iris`.
    let admin = app.admin().await;
    let versions = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/versions"), &admin)
        .await;
    let wisp: Vec<(i64, String)> = versions
        .body
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["run_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(wisp, vec![(2, run_id.clone()), (1, run_id.clone())]);

    let set = |version: &str| json!({ "name": "iris", "alias": "champion", "version": version });
    assert_eq!(
        post(&app, &key, "registered-models/alias", set("1"))
            .await
            .status,
        StatusCode::OK
    );
    let wisp_alias = app
        .get(
            &format!("/v1/orgs/{ORG}/models/iris/aliases/champion"),
            &admin,
        )
        .await;
    assert_eq!(wisp_alias.body["version"], 1, "{wisp_alias:?}");
    let by_alias = get(
        &app,
        &key,
        "registered-models/alias?name=iris&alias=champion",
    )
    .await;
    assert_eq!(by_alias.body["model_version"]["version"], "1");
    assert_eq!(
        by_alias.body["model_version"]["aliases"],
        json!(["champion"])
    );

    // A wisp deployment following the alias moves with it.
    let deployed = app
        .put(
            &format!("/v1/orgs/{ORG}/models/iris/deployment"),
            &admin,
            json!({ "alias": "champion" }),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{deployed:?}");
    assert_eq!(
        post(&app, &key, "registered-models/alias", set("2"))
            .await
            .status,
        StatusCode::OK
    );
    let deployment = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/deployment"), &admin)
        .await;
    assert_eq!(deployment.body["version"], 2, "{deployment:?}");
    assert_eq!(deployment.body["follow_alias"], "champion");

    // The alias of a version that is not served moves in MLflow only.
    assert_eq!(
        post(&app, &key, "registered-models/alias", set("3"))
            .await
            .status,
        StatusCode::OK
    );
    let wisp_alias = app
        .get(
            &format!("/v1/orgs/{ORG}/models/iris/aliases/champion"),
            &admin,
        )
        .await;
    assert_eq!(wisp_alias.body["version"], 2);

    let audit = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=model.alias.moved"),
            &admin,
        )
        .await;
    let entries = audit.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "{audit:?}");
    assert_eq!(entries[1]["details"]["source"], "mlflow");
    assert_eq!(entries[1]["details"]["wisp_version"], 2);
    assert_eq!(entries[1]["details"]["redeployed"], true);

    // Deleting an alias a deployment follows is refused, as in wisp.
    let refused = app
        .call(
            Method::DELETE,
            &format!("{API}/registered-models/alias"),
            Some(&key),
            Some(json!({ "name": "iris", "alias": "champion" })),
        )
        .await;
    assert_error(&refused, StatusCode::INTERNAL_SERVER_ERROR, "INVALID_STATE");

    // Registry reads: latest versions, search, stages, tags.
    let latest = post(
        &app,
        &key,
        "registered-models/get-latest-versions",
        json!({ "name": "iris" }),
    )
    .await;
    assert_eq!(latest.body["model_versions"][0]["version"], "3");
    let staged = post(&app, &key, "model-versions/transition-stage", json!({ "name": "iris", "version": "2", "stage": "production", "archive_existing_versions": "true" })).await;
    assert_eq!(
        staged.body["model_version"]["current_stage"], "Production",
        "{staged:?}"
    );
    let found = get(&app, &key, "model-versions/search?filter=name%3D%27iris%27%20and%20version_number%20%3E%3D%202&max_results=1").await;
    assert_eq!(found.body["model_versions"][0]["version"], "3", "{found:?}");
    assert!(found.body["next_page_token"].is_string());
    let models = get(
        &app,
        &key,
        "registered-models/search?filter=tags.k%20%3D%20%27v%27",
    )
    .await;
    assert_eq!(
        models.body["registered_models"][0]["name"], "iris",
        "{models:?}"
    );
    let bad = get(
        &app,
        &key,
        "registered-models/search?filter=name%20~%20%27x%27",
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn logged_models_are_created_finalized_searched_and_tagged() {
    let (app, key) = setup().await;
    let exp = experiment(&app, &key, "exp").await;
    let run_id = run(&app, &key, &exp, "r").await;
    let created = post(
        &app,
        &key,
        "logged-models",
        json!({ "experiment_id": exp, "name": "model", "source_run_id": run_id, "params": [{ "key": "C", "value": "1" }] }),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    let info = &created.body["model"]["info"];
    let id = info["model_id"].as_str().unwrap().to_owned();
    assert_eq!(info["status"], "LOGGED_MODEL_PENDING");
    assert_eq!(
        info["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );

    let finalized = app
        .call(
            Method::PATCH,
            &format!("{API}/logged-models/{id}"),
            Some(&key),
            Some(json!({ "model_id": id, "status": "LOGGED_MODEL_READY" })),
        )
        .await;
    assert_eq!(
        finalized.body["model"]["info"]["status"], "LOGGED_MODEL_READY",
        "{finalized:?}"
    );
    let tagged = app
        .call(
            Method::PATCH,
            &format!("{API}/logged-models/{id}/tags"),
            Some(&key),
            Some(json!({ "tags": [{ "key": "flavor", "value": "onnx" }] })),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::OK, "{tagged:?}");
    let found = post(
        &app,
        &key,
        "logged-models/search",
        json!({ "experiment_ids": [exp], "filter": "tags.flavor = 'onnx' and params.C = '1'" }),
    )
    .await;
    assert_eq!(
        found.body["models"][0]["info"]["model_id"],
        id.as_str(),
        "{found:?}"
    );
    let untag = app
        .call(
            Method::DELETE,
            &format!("{API}/logged-models/{id}/tags/flavor"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(untag.status, StatusCode::OK, "{untag:?}");
    let found = post(
        &app,
        &key,
        "logged-models/search",
        json!({ "experiment_ids": [exp], "filter": "tags.flavor = 'onnx'" }),
    )
    .await;
    assert_eq!(found.body["models"], json!([]));
    let missing = get(&app, &key, "logged-models/m-nope").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn rate_limits_answer_request_limit_exceeded_with_retry_after() {
    let (app, key) = setup().await;
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE plans SET key_requests_per_second = 1 WHERE id = 'enterprise'",
            (),
        )
        .await
        .unwrap();
    }
    // One inference request per second is ten tracking requests: of thirty in a row, at
    // least one is refused.
    let mut refused = None;
    for _ in 0..30 {
        let reply = get(&app, &key, "experiments/get?experiment_id=0").await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let refused = refused.expect("the key's rate limit applies to the tracking API");
    assert_error(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "REQUEST_LIMIT_EXCEEDED",
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
}

/// Reads never make memoised rows stale: an MLflow call reads its plan from the memo (it
/// once went through the write connection, so every MLflow request made every tenant's
/// memoised rows stale), and a user's list of organisations is a read.
#[tokio::test]
async fn reads_leave_memoised_rows_fresh() {
    let (app, key) = setup().await;
    let experiment_id = experiment(&app, &key, "memo").await;
    let admin = app.admin().await;
    let before = app.state.db.generation();
    let read = get(
        &app,
        &key,
        &format!("experiments/get?experiment_id={experiment_id}"),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let search = post(
        &app,
        &key,
        "experiments/search",
        json!({ "max_results": 10 }),
    )
    .await;
    assert_eq!(search.status, StatusCode::OK, "{search:?}");
    let orgs = app.get("/v1/orgs", &admin).await;
    assert_eq!(orgs.status, StatusCode::OK, "{orgs:?}");
    let versions = app.get(&format!("/v1/orgs/{ORG}/models"), &admin).await;
    assert_eq!(versions.status, StatusCode::OK, "{versions:?}");
    assert_eq!(
        app.state.db.generation(),
        before,
        "a read made memoised rows stale"
    );
    // A write does.
    experiment(&app, &key, "another").await;
    assert!(app.state.db.generation() > before);
}
