//! End-to-end monitoring of the real `wisp serve`: its JSON log lines carry the request's
//! id, organisation, model and version; every metric the Grafana dashboard
//! (`deploy/grafana/wisp.json`) queries is in its exposition; a real Prometheus scrapes its
//! metrics listener and answers queries on the request counter and latency histogram; and
//! `promtool check metrics` passes on the exposition. Without `prometheus`/`promtool` (Debian's
//! `prometheus`, installed by scripts/test-env.sh) the Prometheus test fails under `CI=true`
//! and is skipped otherwise.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ORG: &str = "team";
const CALLS: usize = 5;

/// A `wisp serve` with JSON logs and a metrics listener, serving `iris` in [`ORG`].
struct Monitored {
    server: Server,
    metrics: String,
    key: String,
    /// Lines of its stderr so far.
    logs: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
}

async fn monitored() -> Monitored {
    let data = tempfile::tempdir().expect("tempdir");
    let (port, metrics_port) = (free_port(), free_port());
    let mut command = with_admin(data.path(), port, ORG);
    command
        .env("RUST_LOG", "info")
        .env("WISP_LOG_FORMAT", "json")
        .env("WISP_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"));
    let server = start(command, port).await;
    let logs = Arc::clone(&server.logs);
    let base = server.base.clone();
    let token = login(&base).await;
    let key = deploy_iris_with_predict_key(&base, &token, ORG).await;
    Monitored {
        server,
        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
        key,
        logs,
        _data: data,
    }
}

impl Monitored {
    /// One predict call with `request_id`; its status.
    async fn predict(&self, request_id: &str, input: Value) -> StatusCode {
        reqwest::Client::new()
            .post(format!(
                "{}/v1/orgs/{ORG}/models/iris/predict",
                self.server.base
            ))
            .bearer_auth(&self.key)
            .header("x-request-id", request_id)
            .json(&json!({ "inputs": { "input": input } }))
            .send()
            .await
            .expect("predict")
            .status()
    }

    /// The exposition from the metrics listener, in the Prometheus text format.
    async fn scrape(&self) -> String {
        let response = reqwest::get(&self.metrics).await.expect("scrape");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("text")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_request_and_the_dashboard_queries_only_exposed_metrics() {
    let wisp = monitored().await;
    assert_eq!(
        wisp.predict("req-ok-1", json!([[5.1, 3.5, 1.4, 0.2]]))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        wisp.predict("req-bad-1", json!([[1.0]])).await,
        StatusCode::BAD_REQUEST
    );

    // The request's own line (the one logged when it finished), with its span's fields.
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let found = wisp.logs.lock().unwrap().iter().find_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            (value["span"]["request_id"] == "req-ok-1").then_some(value)
        });
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON log line of req-ok-1: {:?}",
            wisp.logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(line["span"]["org"], ORG, "{line}");
    assert_eq!(line["span"]["model"], "iris", "{line}");
    assert_eq!(line["span"]["version"], 1, "{line}");
    assert_eq!(line["status"], 200, "{line}");
    for line in wisp
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with('{'))
    {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }

    let exposition = wisp.scrape().await;
    let exposed = declared_metrics(&exposition);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/wisp.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no metric in {query}");
        used.extend(names);
    }
    let missing: Vec<_> = used.iter().filter(|n| !exposed.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which wisp does not expose:\n{exposition}"
    );
    for wanted in [
        "wisp_requests_total",
        "wisp_request_duration_seconds_bucket",
        "wisp_metering_outbox_backlog",
        "process_resident_memory_bytes",
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_wisp_and_promtool_accepts_its_exposition() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let tools = ["prometheus", "promtool"].map(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if tools.contains(&false) {
        assert!(
            !ci,
            "prometheus and promtool are needed (scripts/test-env.sh installs them)"
        );
        eprintln!("skipped: prometheus or promtool is not installed (scripts/test-env.sh)");
        return;
    }
    let wisp = monitored().await;
    for n in 0..CALLS {
        let id = format!("req-{n}");
        assert_eq!(
            wisp.predict(&id, json!([[5.1, 3.5, 1.4, 0.2]])).await,
            StatusCode::OK
        );
    }

    // promtool lints the Prometheus text format.
    let exposition = wisp.scrape().await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .expect("write");
    let checked = promtool.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success(),
        "promtool check metrics: {said}\n{exposition}"
    );
    assert!(said.trim().is_empty(), "promtool check metrics: {said}");

    // A real Prometheus scrapes the metrics listener (OpenMetrics, as it asks).
    let dir = tempfile::tempdir().expect("tempdir");
    let target = wisp
        .metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: wisp\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let api = format!("http://127.0.0.1:{port}/api/v1/query");
    let labels = format!(r#"org="{ORG}",model="iris",version="1",protocol="predict""#);
    let calls = format!(r#"wisp_requests_total{{{labels},outcome="ok",job="wisp"}}"#);
    let value = until_query(&api, &calls, CALLS as f64, &prometheus).await;
    assert_eq!(value, CALLS as f64);
    let observed = format!(r#"wisp_request_duration_seconds_bucket{{{labels},le="+Inf"}}"#);
    assert_eq!(
        until_query(&api, &observed, CALLS as f64, &prometheus).await,
        CALLS as f64
    );
    let count = format!(r#"wisp_request_duration_seconds_count{{{labels}}}"#);
    assert_eq!(
        until_query(&api, &count, CALLS as f64, &prometheus).await,
        CALLS as f64
    );
    assert_eq!(
        until_query(&api, r#"up{job="wisp"}"#, 1.0, &prometheus).await,
        1.0
    );
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls an instant query until its single result reaches `want` (at most 60 s); the
/// value it last had.
async fn until_query(api: &str, query: &str, want: f64, prometheus: &Killed) -> f64 {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    loop {
        if let Ok(answer) = http.get(api).query(&[("query", query)]).send().await
            && let Ok(body) = answer.json::<Value>().await
        {
            if let Some(value) = body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                && value >= want
            {
                return value;
            }
            last = body;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus (pid {}) never answered {query} with {want}: {last}",
            prometheus.0.id()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The names an exposition declares (`# TYPE`), with a histogram's series names.
fn declared_metrics(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Every PromQL query of a dashboard: panel targets' `expr` and query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query" {
            let definition = variable["definition"].as_str().expect("definition");
            queries.push(label_values_selector(definition).to_owned());
        }
    }
    queries
}

/// The series selector of Grafana's `label_values(selector, label)` (the label is not a
/// metric); any other query as it is.
fn label_values_selector(query: &str) -> &str {
    match query
        .strip_prefix("label_values(")
        .and_then(|inner| inner.rsplit_once(','))
    {
        Some((selector, _label)) => selector.trim(),
        None => query,
    }
}

/// The metric names a PromQL expression selects: identifiers outside label matchers,
/// grouping clauses, ranges and strings, that are not functions, keywords or aggregations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    if c == '{' && chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if after_grouping => {
                // `by (a, b)`: label names.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                after_grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next] == ' ' {
                    next += 1;
                }
                let call = chars.get(next) == Some(&'(');
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    after_grouping = true;
                } else if !call && !WORDS.contains(&word.as_str()) && !word.starts_with('$') {
                    names.insert(word);
                }
            }
            '$' => {
                // A Grafana variable (`$__rate_interval`).
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, queue) (rate(wisp_queue_wait_seconds_bucket{org=~"$org"}[$__rate_interval])))"#
        ),
        ["wisp_queue_wait_seconds_bucket"]
    );
    assert_eq!(
        names("time() - process_start_time_seconds{job=~\"$job\"}"),
        ["process_start_time_seconds"]
    );
    assert_eq!(
        names(label_values_selector(
            "label_values(wisp_requests_total{org=~\"$org\"}, model)"
        )),
        ["wisp_requests_total"]
    );
}
