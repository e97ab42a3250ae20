//! `wisp drift reference|config` and `wisp alerts …`: setting what drift is measured
//! against, and the alert rules and webhooks, through the same API calls as any client.

use anyhow::{Context, bail};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::commands::{Cli, segment};
use super::http;
use super::output;
use crate::cli::{AlertRuleArgs, AlertsCommand, DriftCommand, ReferenceArgs};

/// Columns of a reference's features.
const FEATURES: &[(&str, &str)] = &[("feature", "name"), ("kind", "kind"), ("values", "count")];

impl Cli {
    pub(super) async fn drift_command(&mut self, command: DriftCommand) -> anyhow::Result<()> {
        match command {
            DriftCommand::Reference(args) => self.reference(args).await,
            DriftCommand::Config { model, set } => {
                let path = format!("{}/drift/config", self.model_path(&model)?);
                let answer = match set {
                    Some(json) => {
                        let settings: Value = serde_json::from_str(&json)
                            .context("--set must be the settings as JSON")?;
                        self.call(Method::PUT, &path, Some(settings)).await?
                    }
                    None => self.call(Method::GET, &path, None).await?,
                };
                // The settings are a small JSON document: shown as such either way.
                output::json(&answer);
                Ok(())
            }
        }
    }

    async fn reference(&mut self, args: ReferenceArgs) -> anyhow::Result<()> {
        let path = format!("{}/drift/reference", self.model_path(&args.model)?);
        if args.delete {
            self.call(Method::DELETE, &path, None).await?;
            if !self.json {
                println!("Deleted the drift reference of {}.", args.model);
            }
            return Ok(());
        }
        let ignore = (!args.ignore_columns.is_empty()).then(|| args.ignore_columns.clone());
        let answer = if let Some(file) = &args.file {
            let name = file.to_string_lossy().to_ascii_lowercase();
            let media = if name.ends_with(".csv") {
                "text/csv"
            } else if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
                "application/x-ndjson"
            } else {
                bail!("--file must be a .csv, .ndjson or .jsonl file");
            };
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let query = ignore
                .as_ref()
                .map(|columns| format!("?ignore_columns={}", segment(&columns.join(","))))
                .unwrap_or_default();
            let target = format!("{path}{query}");
            let response = self
                .client
                .send(|client| {
                    Ok(client
                        .request(Method::PUT, &target)
                        .header(CONTENT_TYPE, media)
                        .body(bytes.clone()))
                })
                .await?;
            http::decode(response).await?
        } else if let Some(run) = &args.mlflow_run {
            let mut source = json!({ "mlflow_run_id": run });
            match (&args.dataset, &args.artifact) {
                (Some(dataset), None) => {
                    source["dataset"] = json!(dataset);
                    if let Some(context) = &args.context {
                        source["context"] = json!(context);
                    }
                }
                (None, Some(artifact)) => source["artifact_path"] = json!(artifact),
                _ => bail!("with --mlflow-run, name a --dataset or an --artifact"),
            }
            if let Some(columns) = ignore {
                source["ignore_columns"] = json!(columns);
            }
            self.call(Method::PUT, &path, Some(source)).await?
        } else if let Some(calls) = args.from_calls {
            self.call(Method::PUT, &path, Some(json!({ "from_calls": calls })))
                .await?
        } else {
            self.call(Method::GET, &path, None).await?
        };
        self.show(&answer, |reference| {
            println!(
                "{}: {} rows ({}, stored as {}) from {}",
                output::cell(&reference["model"]),
                output::cell(&reference["rows"]),
                output::cell(&reference["status"]),
                output::cell(&reference["stored_as"]),
                reference["source"],
            );
            output::table(&reference["features"], FEATURES);
            if reference["outputs"]
                .as_array()
                .is_some_and(|o| !o.is_empty())
            {
                println!("Outputs:");
                output::table(&reference["outputs"], FEATURES);
            }
        });
        Ok(())
    }

    pub(super) async fn alerts(&mut self, command: AlertsCommand) -> anyhow::Result<()> {
        let alerts = format!("{}/alerts", self.org_path()?);
        match command {
            AlertsCommand::List => {
                let rules = self
                    .call(Method::GET, &format!("{alerts}/rules"), None)
                    .await?;
                self.show(&rules, |rules| {
                    let rows: Vec<Value> = rules
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|rule| {
                            let condition = format!(
                                "{} {} {} over {}",
                                output::cell(&rule["metric"]),
                                output::cell(&rule["comparison"]),
                                output::cell(&rule["threshold"]),
                                output::cell(&rule["window"]),
                            );
                            json!({
                                "id": rule["id"], "name": rule["name"], "model": rule["model"],
                                "condition": condition, "enabled": rule["enabled"],
                                "state": rule["status"]["state"], "value": rule["status"]["value"],
                            })
                        })
                        .collect();
                    output::table(
                        &Value::Array(rows),
                        &[
                            ("id", "id"),
                            ("name", "name"),
                            ("model", "model"),
                            ("condition", "condition"),
                            ("enabled", "enabled"),
                            ("state", "state"),
                            ("value", "value"),
                        ],
                    );
                });
            }
            AlertsCommand::Create(args) => {
                let rule = self
                    .call(
                        Method::POST,
                        &format!("{alerts}/rules"),
                        Some(rule_body(&args)),
                    )
                    .await?;
                self.show(&rule, |rule| {
                    println!(
                        "Created rule {} ({}).",
                        output::cell(&rule["name"]),
                        output::cell(&rule["id"])
                    );
                });
            }
            AlertsCommand::Delete { rule } => {
                let path = format!("{alerts}/rules/{}", segment(&rule));
                self.call(Method::DELETE, &path, None).await?;
                if !self.json {
                    println!("Deleted rule {rule}.");
                }
            }
            AlertsCommand::History { rule, limit } => {
                let mut path = format!("{alerts}/history?limit={limit}");
                if let Some(rule) = rule {
                    path.push_str(&format!("&rule={}", segment(&rule)));
                }
                let history = self.call(Method::GET, &path, None).await?;
                self.show(&history, |history| {
                    output::table(
                        history,
                        &[
                            ("at", "at"),
                            ("rule", "rule_name"),
                            ("event", "event"),
                            ("value", "value"),
                            ("threshold", "threshold"),
                            ("notified", "notified"),
                            ("reason", "reason"),
                        ],
                    );
                });
            }
            AlertsCommand::Webhooks => {
                let hooks = self
                    .call(Method::GET, &format!("{alerts}/webhooks"), None)
                    .await?;
                self.show(&hooks, |hooks| {
                    output::table(
                        hooks,
                        &[("id", "id"), ("url", "url"), ("description", "description")],
                    );
                });
            }
            AlertsCommand::AddWebhook { url, description } => {
                let body = json!({ "url": url, "description": description });
                let hook = self
                    .call(Method::POST, &format!("{alerts}/webhooks"), Some(body))
                    .await?;
                self.show(&hook, |hook| {
                    println!("Added webhook {}.", output::cell(&hook["id"]));
                    println!(
                        "Signing secret (shown once; verify each message's webhook-signature with it):"
                    );
                    println!("{}", output::cell(&hook["secret"]));
                });
            }
            AlertsCommand::TestWebhook { webhook } => {
                let path = format!("{alerts}/webhooks/{}/test", segment(&webhook));
                let delivery = self.call(Method::POST, &path, None).await?;
                // A delivery's outcome (status, attempts, error) as the server reports it.
                output::json(&delivery);
            }
            AlertsCommand::DeleteWebhook { webhook } => {
                let path = format!("{alerts}/webhooks/{}", segment(&webhook));
                self.call(Method::DELETE, &path, None).await?;
                if !self.json {
                    println!("Deleted webhook {webhook}.");
                }
            }
        }
        Ok(())
    }
}

/// The API's rule request from the command's flags.
fn rule_body(args: &AlertRuleArgs) -> Value {
    let (comparison, threshold) = match (args.above, args.below) {
        (Some(above), _) => (">", above),
        (None, Some(below)) => ("<", below),
        // clap requires one of them.
        (None, None) => (">", f64::NAN),
    };
    let mut body = json!({
        "name": args.name,
        "metric": args.metric,
        "comparison": comparison,
        "threshold": threshold,
        "window": args.window,
        "channels": args.webhooks,
    });
    for (field, value) in [
        ("model", args.model.as_ref().map(|m| json!(m))),
        ("version", args.version.map(|v| json!(v))),
        ("feature", args.feature.as_ref().map(|f| json!(f))),
        ("for", args.for_.as_ref().map(|f| json!(f))),
        ("cooldown", args.cooldown.as_ref().map(|c| json!(c))),
    ] {
        if let Some(value) = value {
            body[field] = value;
        }
    }
    body
}
