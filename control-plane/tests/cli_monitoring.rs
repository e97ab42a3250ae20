//! The monitoring CLI against the real `wisp serve`: `wisp drift reference|config` sets
//! what drift is measured against, `wisp alerts …` manages rules and webhooks, and a test
//! message reaches a receiver signed.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use common::server::{deploy_iris_with_predict_key, free_port, login, start, wisp_cli, with_admin};
use serde_json::{Value, json};

const ORG: &str = "team";

fn cli(base: &str, token: &str, args: &[&str]) -> String {
    wisp_cli(base, token, ORG, args)
}

fn cli_json(base: &str, token: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let stdout = cli(base, token, &args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// A webhook receiver answering `204` to one request; sends the request's head.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Headers and a small JSON body: read until the body's length is in.
        loop {
            let n = stream.read(&mut buffer).expect("read");
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    let _ =
                        stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
                    let _ = sender.send(head.to_owned());
                    return;
                }
            }
            if n == 0 {
                return;
            }
        }
    });
    (url, received)
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_references_alert_rules_and_webhooks_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("wisp.toml");
    // The test's receiver is on loopback, which webhooks may not target by default.
    std::fs::write(&config, "[alerts]\nallow_private_targets = true\n").unwrap();
    let port = free_port();
    let mut command = with_admin(&data.path().join("node"), port, ORG);
    command.env("WISP_CONFIG", &config);
    let server = start(command, port).await;
    let base = server.base.clone();
    let token = login(&base).await;
    deploy_iris_with_predict_key(&base, &token, ORG).await;

    // A training set with its label column, left out.
    let train = data.path().join("train.csv");
    std::fs::write(
        &train,
        "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n6.2,2.9,4.3,1.3,versicolor\n7.7,3.0,6.1,2.3,virginica\n",
    )
    .unwrap();
    let train = train.to_str().unwrap();
    let text = cli(
        &base,
        &token,
        &[
            "drift",
            "reference",
            "iris",
            "--file",
            train,
            "--ignore-columns",
            "species",
        ],
    );
    assert!(text.contains("iris: 3 rows (ready"), "{text}");
    assert!(text.contains("sepal_length"), "{text}");
    let shown = cli_json(&base, &token, &["drift", "reference", "iris"]);
    assert_eq!(shown["rows"], 3, "{shown}");
    assert_eq!(shown["source"]["ignore_columns"], json!(["species"]));
    let settings = cli_json(
        &base,
        &token,
        &[
            "drift",
            "config",
            "iris",
            "--set",
            r#"{"sample_rate": 0.5}"#,
        ],
    );
    assert_eq!(settings["sample_rate"], 0.5, "{settings}");
    let collecting = cli_json(
        &base,
        &token,
        &["drift", "reference", "iris", "--from-calls", "10"],
    );
    assert_eq!(collecting["status"], "collecting", "{collecting}");
    let deleted = cli(&base, &token, &["drift", "reference", "iris", "--delete"]);
    assert!(deleted.contains("Deleted"), "{deleted}");
    // The reading command is unchanged: a model name, no subcommand.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(["drift", "iris", "--report"])
        .args(["--server", &base, "--token", &token, "--org", ORG])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not_found"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Alerts: a webhook, a rule notifying it, a signed test message.
    let (url, received) = receiver();
    let hook = cli_json(
        &base,
        &token,
        &["alerts", "add-webhook", &url, "--description", "on call"],
    );
    let hook_id = hook["id"].as_str().expect("webhook id").to_owned();
    assert!(
        hook["secret"].as_str().unwrap().starts_with("whsec_"),
        "{hook}"
    );
    let rule = cli_json(
        &base,
        &token,
        &[
            "alerts",
            "create",
            "--name",
            "errors",
            "--model",
            "iris",
            "--metric",
            "error_rate",
            "--above",
            "0.05",
            "--window",
            "5m",
            "--cooldown",
            "10m",
            "--webhook",
            &hook_id,
        ],
    );
    let rule_id = rule["id"].as_str().expect("rule id").to_owned();
    assert_eq!(rule["comparison"], ">", "{rule}");
    assert_eq!(rule["channels"], json!([hook_id]));
    let listed = cli(&base, &token, &["alerts", "list"]);
    assert!(
        listed.contains("errors") && listed.contains("error_rate > 0.05 over 5m"),
        "{listed}"
    );
    // `test-webhook` prints the delivery as JSON with or without `--json`.
    let delivery: Value =
        serde_json::from_str(&cli(&base, &token, &["alerts", "test-webhook", &hook_id]))
            .expect("the delivery as JSON");
    let head = received
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the test message arrives");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("webhook-id:") && head.contains("webhook-signature: v1,"),
        "{head}"
    );
    assert_eq!(delivery["webhook_id"], json!(hook_id), "{delivery}");
    assert_eq!(delivery["event_type"], "alert.test", "{delivery}");
    assert_eq!(delivery["response_code"], 204, "{delivery}");
    // The delivery's id is the message's `webhook-id`.
    let message_id = delivery["id"]
        .as_str()
        .expect("delivery id")
        .to_ascii_lowercase();
    assert!(
        head.contains(&format!("webhook-id: {message_id}")),
        "{head}"
    );
    let history = cli_json(&base, &token, &["alerts", "history", "--rule", &rule_id]);
    assert!(history.is_array(), "{history}");
    cli(&base, &token, &["alerts", "delete", &rule_id]);
    cli(&base, &token, &["alerts", "delete-webhook", &hook_id]);
    assert_eq!(cli_json(&base, &token, &["alerts", "list"]), json!([]));
    assert!(cli(&base, &token, &["alerts", "webhooks"]).contains("(none)"));
}
