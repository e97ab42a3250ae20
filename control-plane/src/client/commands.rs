//! What each client subcommand does: one or two API calls, then text or `--json` output.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::analytics;
use super::http::{self, Client};
use super::output;
use super::session::{self, Session};
use crate::cli::{
    AnalyticsArgs, AuditArgs, Command, DeployArgs, FeedbackArgs, GlobalArgs, InvitationsCommand,
    KeysCommand, LoginArgs, LogoutArgs, MembersCommand, MetricsArgs, ModelsCommand, OrgsCommand,
    PasswordCommand, PlatformCommand, PredictArgs, PushArgs, SetPlanArgs,
};

/// Runs a client subcommand.
pub async fn run(global: GlobalArgs, command: Command) -> anyhow::Result<()> {
    let mut cli = Cli {
        client: Client::new(global.server.clone(), global.token.clone())?,
        org: global.org.clone(),
        json: global.json,
    };
    match command {
        Command::Serve(_) => unreachable!("`serve` is not a client command"),
        Command::Login(args) => cli.login(args).await,
        Command::Logout(args) => cli.logout(args).await,
        Command::Password(PasswordCommand::Change { password_stdin }) => {
            cli.change_password(password_stdin).await
        }
        Command::Members(command) => cli.members(command).await,
        Command::Invitations(command) => cli.invitations(command).await,
        Command::Orgs(command) => cli.orgs(command).await,
        Command::Keys(command) => cli.keys(command).await,
        Command::Models(command) => cli.models(command).await,
        Command::Deploy(args) => cli.deploy(args).await,
        Command::Undeploy { model } => cli.undeploy(&model).await,
        Command::Rollback { model, version } => cli.rollback(&model, version).await,
        Command::Deployments => cli.deployments().await,
        Command::Predict(args) => cli.predict(args).await,
        Command::Audit(args) => cli.audit(args).await,
        Command::Platform(command) => cli.platform(command).await,
        Command::Analytics(args) => cli.analytics(args).await,
        Command::Feedback(args) => cli.feedback(args).await,
        Command::Performance(args) => cli.performance(args).await,
        Command::Fairness(args) => cli.fairness(args).await,
        Command::Drift(args) => match args.command {
            Some(command) => cli.drift_command(command).await,
            None => cli.drift(args).await,
        },
        Command::Alerts(command) => cli.alerts(command).await,
    }
}

pub(super) struct Cli {
    pub(super) client: Client,
    org: Option<String>,
    pub(super) json: bool,
}

/// Percent-encodes one path segment (model names are free text).
pub(super) fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Cli {
    /// `/v1/orgs/{org}` of the organisation in use.
    pub(super) fn org_path(&self) -> anyhow::Result<String> {
        let org = self
            .org
            .as_deref()
            .or(self.client.session_org())
            .context("no organisation: pass --org or set WISP_ORG")?;
        Ok(format!("/v1/orgs/{}", segment(org)))
    }

    pub(super) fn model_path(&self, model: &str) -> anyhow::Result<String> {
        Ok(format!("{}/models/{}", self.org_path()?, segment(model)))
    }

    pub(super) async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.client.json(method, path, body).await
    }

    /// Prints `value` as JSON with `--json`, else with `text`.
    pub(super) fn show(&self, value: &Value, text: impl FnOnce(&Value)) {
        if self.json {
            output::json(value);
        } else {
            text(value);
        }
    }

    async fn login(&mut self, args: LoginArgs) -> anyhow::Result<()> {
        let email = match args.email {
            Some(email) => email,
            None => prompt("Email: ")?,
        };
        let password = if args.password_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        } else if let Ok(password) = std::env::var("WISP_PASSWORD") {
            password
        } else {
            rpassword::prompt_password("Password: ").context("cannot read the password")?
        };
        let response = self
            .client
            .request(Method::POST, "/v1/auth/login")
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.client.server))?;
        let tokens = http::decode(http::check(response).await?).await?;
        let access_token = http::string(&tokens, "access_token")?;
        let me = http::decode(
            http::check(
                self.client
                    .request(Method::GET, "/v1/me")
                    .bearer_auth(&access_token)
                    .send()
                    .await?,
            )
            .await?,
        )
        .await?;
        let orgs: Vec<String> = me["orgs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["slug"].as_str().map(str::to_owned))
            .collect();
        let org = match &self.org {
            Some(org) if !orgs.contains(org) => bail!("{email} is not a member of {org:?}"),
            Some(org) => Some(org.clone()),
            None => orgs.first().cloned(),
        };
        session::save(&Session {
            server: self.client.server.clone(),
            access_token,
            refresh_token: http::string(&tokens, "refresh_token")?,
            org: org.clone(),
        })?;
        let must_change = tokens["must_change_password"].as_bool().unwrap_or(false);
        let result = json!({
            "server": self.client.server, "email": email, "org": org, "orgs": orgs,
            "must_change_password": must_change,
        });
        self.show(&result, |_| {
            println!(
                "Logged in to {} as {email}; organisation {}.",
                self.client.server,
                org.as_deref().unwrap_or("(none)")
            );
            if must_change {
                println!(
                    "This password is a one-time one: choose yours with `wisp password change` before anything else."
                );
            }
        });
        Ok(())
    }

    async fn logout(&mut self, args: LogoutArgs) -> anyhow::Result<()> {
        let path = if args.all {
            "/v1/auth/logout-all"
        } else {
            "/v1/auth/logout"
        };
        // The server ends the session first; a session it already ended is forgotten too.
        let ended = if self.client.has_session() {
            match self.call(Method::POST, path, None).await {
                Ok(_) => true,
                Err(error) => match error.downcast_ref::<http::ServerError>() {
                    Some(e) if e.status == reqwest::StatusCode::UNAUTHORIZED => false,
                    _ => return Err(error),
                },
            }
        } else {
            false
        };
        let removed = session::remove()?;
        self.show(&json!({ "logged_out": removed, "all": args.all }), |_| {
            println!(
                "{}",
                match (removed, ended && args.all) {
                    (true, true) => "logged out everywhere",
                    (true, false) => "logged out",
                    (false, _) => "not logged in",
                }
            )
        });
        Ok(())
    }

    async fn change_password(&mut self, password_stdin: bool) -> anyhow::Result<()> {
        let (current, new) = if password_stdin {
            let mut lines = std::io::stdin().lock().lines();
            let mut next = || -> anyhow::Result<String> {
                Ok(lines
                    .next()
                    .context("expected the current and the new password on two lines")??
                    .trim_end_matches('\r')
                    .to_owned())
            };
            (next()?, next()?)
        } else {
            let current = rpassword::prompt_password("Current password: ")
                .context("cannot read the password")?;
            let new = rpassword::prompt_password("New password: ")?;
            if rpassword::prompt_password("New password again: ")? != new {
                bail!("the two new passwords differ");
            }
            (current, new)
        };
        let body = json!({ "current_password": current, "new_password": new });
        let tokens = self
            .call(Method::POST, "/v1/auth/password", Some(body))
            .await?;
        self.client.store_tokens(&tokens)?;
        self.show(&json!({ "changed": true }), |_| {
            println!("Password changed; every other session of the account has ended.")
        });
        Ok(())
    }

    async fn members(&mut self, command: MembersCommand) -> anyhow::Result<()> {
        let path = format!("{}/members", self.org_path()?);
        match command {
            MembersCommand::List => {
                let members = self.call(Method::GET, &path, None).await?;
                self.show(&members, |members| {
                    output::table(
                        members,
                        &[
                            ("user id", "user_id"),
                            ("email", "email"),
                            ("role", "role"),
                            ("joined", "joined_at"),
                        ],
                    );
                });
            }
            MembersCommand::Add { email, role } => {
                let body = json!({ "email": email, "role": role });
                let invitation = self.call(Method::POST, &path, Some(body)).await?;
                let server = self.client.server.clone();
                self.show(&invitation, |i| {
                    println!(
                        "Invited {} as {} (pending until {}).",
                        output::cell(&i["email"]),
                        output::cell(&i["role"]),
                        output::cell(&i["expires_at"])
                    );
                    println!(
                        "Forward this to them (it works once and is shown only now):\n  wisp invitations accept {} --server {server}",
                        output::cell(&i["token"])
                    );
                });
            }
            MembersCommand::Remove { user_id } => {
                self.call(
                    Method::DELETE,
                    &format!("{path}/{}", segment(&user_id)),
                    None,
                )
                .await?;
                self.show(&json!({ "removed": user_id }), |_| {
                    println!("Removed {user_id}.")
                });
            }
        }
        Ok(())
    }

    async fn invitations(&mut self, command: InvitationsCommand) -> anyhow::Result<()> {
        match command {
            InvitationsCommand::Accept {
                invitation,
                password_stdin,
            } => self.accept_invitation(invitation, password_stdin).await,
            InvitationsCommand::List => {
                let path = format!("{}/invitations", self.org_path()?);
                let list = self.call(Method::GET, &path, None).await?;
                self.show(&list, |list| {
                    output::table(
                        list,
                        &[
                            ("id", "id"),
                            ("email", "email"),
                            ("role", "role"),
                            ("by", "invited_by"),
                            ("expires", "expires_at"),
                        ],
                    );
                });
                Ok(())
            }
            InvitationsCommand::Revoke { id } => {
                let path = format!("{}/invitations/{}", self.org_path()?, segment(&id));
                self.call(Method::DELETE, &path, None).await?;
                self.show(&json!({ "revoked": id }), |_| {
                    println!("Revoked invitation {id}.")
                });
                Ok(())
            }
        }
    }

    async fn accept_invitation(
        &mut self,
        token: String,
        password_stdin: bool,
    ) -> anyhow::Result<()> {
        let accepted = if self.client.has_credentials() {
            // Signed in: the account joins.
            self.call(
                Method::POST,
                "/v1/invitations/accept",
                Some(json!({ "token": token })),
            )
            .await?
        } else {
            // Not signed in: a new account, with a password chosen now.
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                let password = rpassword::prompt_password("Choose a password: ")
                    .context("cannot read the password")?;
                if rpassword::prompt_password("Again: ")? != password {
                    bail!("the two passwords differ");
                }
                password
            };
            let response = self
                .client
                .request(Method::POST, "/v1/invitations/accept")
                .json(&json!({ "token": token, "password": password }))
                .send()
                .await
                .with_context(|| format!("cannot reach {}", self.client.server))?;
            let accepted = http::decode(http::check(response).await?).await?;
            let tokens = &accepted["session"];
            session::save(&Session {
                server: self.client.server.clone(),
                access_token: http::string(tokens, "access_token")?,
                refresh_token: http::string(tokens, "refresh_token")?,
                org: accepted["org"]["slug"].as_str().map(str::to_owned),
            })?;
            accepted
        };
        self.show(&accepted, |a| {
            println!(
                "Joined organisation {} as {}.",
                output::cell(&a["org"]["slug"]),
                output::cell(&a["role"])
            );
        });
        Ok(())
    }

    async fn orgs(&mut self, command: OrgsCommand) -> anyhow::Result<()> {
        match command {
            OrgsCommand::List => {
                let orgs = self.call(Method::GET, "/v1/orgs", None).await?;
                self.show(&orgs, |orgs| {
                    output::table(
                        orgs,
                        &[
                            ("slug", "slug"),
                            ("name", "name"),
                            ("role", "role"),
                            ("created", "created_at"),
                        ],
                    );
                });
            }
            OrgsCommand::Create { slug, name } => {
                let body = json!({ "slug": slug, "name": name.unwrap_or_else(|| slug.clone()) });
                let org = self.call(Method::POST, "/v1/orgs", Some(body)).await?;
                self.show(&org, |org| {
                    println!("Created organisation {}.", output::cell(&org["slug"]))
                });
            }
        }
        Ok(())
    }

    async fn keys(&mut self, command: KeysCommand) -> anyhow::Result<()> {
        let path = format!("{}/api-keys", self.org_path()?);
        match command {
            KeysCommand::List => {
                let keys = self.call(Method::GET, &path, None).await?;
                self.show(&keys, |keys| {
                    output::table(
                        keys,
                        &[
                            ("id", "id"),
                            ("name", "name"),
                            ("prefix", "prefix"),
                            ("scopes", "scopes"),
                            ("expires", "expires_at"),
                            ("revoked", "revoked_at"),
                            ("last used", "last_used_at"),
                        ],
                    );
                });
            }
            KeysCommand::Create {
                name,
                scopes,
                expires_at,
            } => {
                let body = json!({ "name": name, "scopes": scopes, "expires_at": expires_at });
                let key = self.call(Method::POST, &path, Some(body)).await?;
                self.show(&key, |key| {
                    println!(
                        "Created API key {} ({}).",
                        output::cell(&key["id"]),
                        output::cell(&key["scopes"])
                    );
                    println!("Secret (shown only now):\n{}", output::cell(&key["secret"]));
                });
            }
            KeysCommand::Revoke { id } => {
                self.call(Method::DELETE, &format!("{path}/{}", segment(&id)), None)
                    .await?;
                self.show(&json!({ "revoked": id }), |_| {
                    println!("Revoked API key {id}.")
                });
            }
        }
        Ok(())
    }

    async fn models(&mut self, command: ModelsCommand) -> anyhow::Result<()> {
        match command {
            ModelsCommand::List => {
                let models = self
                    .call(Method::GET, &format!("{}/models", self.org_path()?), None)
                    .await?;
                self.show(&models, |models| {
                    output::table(
                        models,
                        &[
                            ("name", "name"),
                            ("latest", "latest_version"),
                            ("description", "description"),
                            ("created", "created_at"),
                        ],
                    );
                });
            }
            ModelsCommand::Create { name, description } => {
                let body = json!({ "name": name, "description": description });
                let model = self
                    .call(
                        Method::POST,
                        &format!("{}/models", self.org_path()?),
                        Some(body),
                    )
                    .await?;
                self.show(&model, |model| {
                    println!("Created model {}.", output::cell(&model["name"]))
                });
            }
            ModelsCommand::Versions { model } => {
                let versions = self
                    .call(
                        Method::GET,
                        &format!("{}/versions", self.model_path(&model)?),
                        None,
                    )
                    .await?;
                self.show(&versions, |versions| {
                    output::table(
                        versions,
                        &[
                            ("version", "version"),
                            ("framework", "framework"),
                            ("size", "size_bytes"),
                            ("aliases", "aliases"),
                            ("sha256", "sha256"),
                            ("created", "created_at"),
                        ],
                    );
                });
            }
            ModelsCommand::Push(args) => self.push(args).await?,
        }
        Ok(())
    }

    async fn push(&mut self, args: PushArgs) -> anyhow::Result<()> {
        let model = match &args.model {
            Some(model) => model.clone(),
            None => args
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .context("cannot name the model after the file; pass --model")?
                .to_owned(),
        };
        // Create the model on first push; an existing one is fine.
        let models = format!("{}/models", self.org_path()?);
        if let Err(error) = self
            .call(Method::POST, &models, Some(json!({ "name": model })))
            .await
        {
            match error.downcast_ref::<http::ServerError>() {
                Some(e) if e.code == "already_exists" => {}
                _ => return Err(error),
            }
        }
        let mut parts = vec![("file", args.file.clone())];
        if let Some(graph) = &args.graph {
            parts.push(("graph", graph.clone()));
        }
        let total: u64 = parts
            .iter()
            .map(|(_, path)| std::fs::metadata(path).map(|m| m.len()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("cannot read {}", args.file.display()))?
            .iter()
            .sum();
        let bar = if self.json || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("pushing {model}"));
        let metadata = json!({ "description": args.description.clone().unwrap_or_default() });
        let url = format!("{}/versions", self.model_path(&model)?);
        let response = self
            .client
            .send(|client| {
                let mut form =
                    reqwest::multipart::Form::new().text("metadata", metadata.to_string());
                for (name, path) in &parts {
                    form = form.part(*name, file_part(path, &bar)?);
                }
                Ok(client.request(Method::POST, &url).multipart(form))
            })
            .await;
        bar.finish_and_clear();
        let version = http::decode(response?).await?;
        self.show(&version, |v| {
            println!(
                "Pushed {model} version {} ({}, {} bytes, sha256 {}).",
                output::cell(&v["version"]),
                output::cell(&v["framework"]),
                output::cell(&v["size_bytes"]),
                output::cell(&v["sha256"])
            );
            for (kind, specs) in [
                ("input", &v["signature"]["inputs"]),
                ("output", &v["signature"]["outputs"]),
            ] {
                for spec in specs.as_array().into_iter().flatten() {
                    println!(
                        "  {kind} {} {} {}",
                        output::cell(&spec["name"]),
                        output::cell(&spec["dtype"]),
                        spec["shape"]
                    );
                }
            }
        });
        Ok(())
    }

    async fn deploy(&mut self, args: DeployArgs) -> anyhow::Result<()> {
        let version = match (args.version, &args.alias) {
            (None, None) => {
                let model = self
                    .call(Method::GET, &self.model_path(&args.model)?, None)
                    .await?;
                Some(model["latest_version"].as_i64().with_context(|| {
                    format!("model {} has no versions yet; push one", args.model)
                })?)
            }
            (version, _) => version,
        };
        let body = json!({ "version": version, "alias": args.alias, "wait": !args.no_wait });
        let path = format!("{}/deployment", self.model_path(&args.model)?);
        let deployment = self.call(Method::PUT, &path, Some(body)).await?;
        self.report_deployment(&deployment)
    }

    fn report_deployment(&self, deployment: &Value) -> anyhow::Result<()> {
        self.show(deployment, |d| {
            let following = d["follow_alias"]
                .as_str()
                .map(|a| format!(" (following {a})"))
                .unwrap_or_default();
            println!(
                "{} version {}{following}: {}",
                output::cell(&d["model"]),
                output::cell(&d["version"]),
                output::cell(&d["status"])
            );
            if d["status"] == "failed" {
                println!(
                    "  {}: {}",
                    output::cell(&d["failure"]["code"]),
                    output::cell(&d["failure"]["message"])
                );
            }
        });
        if deployment["status"] == "failed" {
            bail!("the deployment failed");
        }
        Ok(())
    }

    async fn undeploy(&mut self, model: &str) -> anyhow::Result<()> {
        self.call(
            Method::DELETE,
            &format!("{}/deployment", self.model_path(model)?),
            None,
        )
        .await?;
        self.show(&json!({ "undeployed": model }), |_| {
            println!("Undeployed {model}.")
        });
        Ok(())
    }

    async fn rollback(&mut self, model: &str, version: Option<i64>) -> anyhow::Result<()> {
        let path = format!("{}/deployment/rollback", self.model_path(model)?);
        let deployment = self
            .call(
                Method::POST,
                &path,
                Some(json!({ "version": version, "wait": true })),
            )
            .await?;
        self.report_deployment(&deployment)
    }

    async fn drift(&mut self, args: crate::cli::DriftArgs) -> anyhow::Result<()> {
        let mut query = Vec::new();
        if let Some(from) = &args.from {
            query.push(format!("from={}", segment(from)));
        }
        if let Some(to) = &args.to {
            query.push(format!("to={}", segment(to)));
        }
        if let (Some(step), false) = (args.step, args.report) {
            query.push(format!("step={step}"));
        }
        let path = format!(
            "{}/drift{}?{}",
            self.model_path(args.model.as_deref().context("a model name")?)?,
            if args.report { "/report" } else { "" },
            query.join("&")
        );
        let answer = self.call(Method::GET, &path, None).await?;
        let features = [
            ("feature", "feature"),
            ("method", "method"),
            ("score", "score"),
            ("threshold", "threshold"),
            ("drifted", "drifted"),
            ("values", "current_count"),
        ];
        self.show(&answer, |answer| {
            if args.report {
                println!(
                    "{} rows in {} windows; {} of the features drifted (share {}): dataset drift {}; prediction drift {}",
                    output::cell(&answer["rows"]),
                    output::cell(&answer["windows"]),
                    output::cell(&answer["drifted_features"]),
                    output::cell(&answer["drifted_share"]),
                    output::cell(&answer["dataset_drift"]),
                    output::cell(&answer["prediction_drift"]),
                );
                output::table(&answer["features"], &features);
                println!("Prediction:");
                output::table(&answer["prediction"], &features);
            } else {
                output::table(
                    &answer["points"],
                    &[
                        ("start", "start"),
                        ("end", "end"),
                        ("rows", "rows"),
                        ("drifted", "drifted_features"),
                        ("share", "drifted_share"),
                        ("dataset drift", "dataset_drift"),
                        ("prediction drift", "prediction_drift"),
                    ],
                );
            }
        });
        Ok(())
    }

    async fn deployments(&mut self) -> anyhow::Result<()> {
        let list = self
            .call(
                Method::GET,
                &format!("{}/deployments", self.org_path()?),
                None,
            )
            .await?;
        self.show(&list, |list| {
            output::table(
                list,
                &[
                    ("model", "model"),
                    ("version", "version"),
                    ("alias", "follow_alias"),
                    ("status", "status"),
                    ("updated", "updated_at"),
                    ("by", "updated_by"),
                ],
            );
        });
        Ok(())
    }

    async fn predict(&mut self, args: PredictArgs) -> anyhow::Result<()> {
        let text = match args.input.as_str() {
            "-" => std::io::read_to_string(std::io::stdin())?,
            input => match input.strip_prefix('@') {
                Some(file) => {
                    std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
                }
                None => input.to_owned(),
            },
        };
        let inputs: Value = serde_json::from_str(&text).context("--input is not JSON")?;
        let body = json!({ "inputs": inputs, "version": args.version, "alias": args.alias });
        let path = format!("{}/predict", self.model_path(&args.model)?);
        let response = self
            .client
            .send(|client| Ok(client.request(Method::POST, &path).json(&body)))
            .await?;
        let prediction_id = response
            .headers()
            .get("wisp-usage-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let prediction = http::decode(response).await?;
        self.show(&prediction, |p| {
            println!(
                "{} version {}",
                output::cell(&p["model"]),
                output::cell(&p["version"])
            );
            if let Some(id) = &prediction_id {
                println!("  prediction id: {id}");
            }
            for (name, tensor) in p["outputs"].as_object().into_iter().flatten() {
                println!(
                    "  {name} {} {}: {}",
                    output::cell(&tensor["dtype"]),
                    tensor["shape"],
                    tensor["data"]
                );
            }
            let usage = &p["usage"];
            println!(
                "  usage: {} us, {} us inference, fuel {}, warm {}",
                output::cell(&usage["wall_time_us"]),
                output::cell(&usage["inference_time_us"]),
                output::cell(&usage["fuel"]),
                usage["graph_warm"]
            );
        });
        Ok(())
    }

    async fn platform(&mut self, command: PlatformCommand) -> anyhow::Result<()> {
        let org_columns: &[(&str, &str)] = &[
            ("slug", "slug"),
            ("name", "name"),
            ("plan", "plan"),
            ("overrides", "overrides"),
            ("suspended", "suspended_at"),
        ];
        match command {
            PlatformCommand::Orgs => {
                let orgs = self.call(Method::GET, "/v1/platform/orgs", None).await?;
                self.show(&orgs, |orgs| output::table(orgs, org_columns));
            }
            PlatformCommand::SetPlan(args) => {
                let path = format!("/v1/platform/orgs/{}/plan", segment(&args.org));
                let org = self
                    .call(Method::PUT, &path, Some(set_plan_body(&args)))
                    .await?;
                self.show(&org, |org| {
                    println!(
                        "{} is on plan {} (overrides: {}).",
                        output::cell(&org["slug"]),
                        output::cell(&org["plan"]),
                        org["overrides"]
                    )
                });
            }
            PlatformCommand::Suspend { org, reason } => {
                let path = format!("/v1/platform/orgs/{}/suspend", segment(&org));
                let body = json!({ "reason": reason });
                let org = self.call(Method::POST, &path, Some(body)).await?;
                self.show(&org, |org| {
                    println!(
                        "Suspended {}: its calls are refused until reinstated.",
                        output::cell(&org["slug"])
                    )
                });
            }
            PlatformCommand::Reinstate { org } => {
                let path = format!("/v1/platform/orgs/{}/reinstate", segment(&org));
                let org = self.call(Method::POST, &path, None).await?;
                self.show(&org, |org| {
                    println!("Reinstated {}.", output::cell(&org["slug"]))
                });
            }
            PlatformCommand::Usage { period } => {
                let mut path = "/v1/platform/usage".to_owned();
                if let Some(period) = &period {
                    path.push_str(&format!("?period={}", segment(period)));
                }
                let usage = self.call(Method::GET, &path, None).await?;
                self.show(&usage, |usage| {
                    println!("Period {}", output::cell(&usage["period"]));
                    output::table(
                        &usage["orgs"],
                        &[
                            ("slug", "slug"),
                            ("plan", "plan"),
                            ("suspended", "suspended"),
                            ("calls", "calls"),
                            ("billed", "billed_calls"),
                            ("failed", "failed_calls"),
                            ("compute units", "compute_units"),
                        ],
                    );
                });
            }
            PlatformCommand::Audit { limit } => {
                let path = format!("/v1/platform/audit?limit={limit}");
                let page = self.call(Method::GET, &path, None).await?;
                self.show(&page, |page| {
                    output::table(
                        &page["entries"],
                        &[
                            ("at", "at"),
                            ("actor", "actor"),
                            ("action", "action"),
                            ("target", "target"),
                        ],
                    );
                });
            }
        }
        Ok(())
    }

    async fn analytics(&mut self, args: AnalyticsArgs) -> anyhow::Result<()> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        let query = analytics::query_string(&args, i64::try_from(now_ms)?)?;
        let path = format!("{}/analytics?{query}", self.model_path(&args.model)?);
        let report = self.call(Method::GET, &path, None).await?;
        self.show(&report, analytics::print);
        Ok(())
    }

    async fn audit(&mut self, args: AuditArgs) -> anyhow::Result<()> {
        let mut path = format!("{}/audit?limit={}", self.org_path()?, args.limit);
        if let Some(action) = &args.action {
            path.push_str(&format!("&action={}", segment(action)));
        }
        let page = self.call(Method::GET, &path, None).await?;
        self.show(&page, |page| {
            output::table(
                &page["entries"],
                &[
                    ("at", "at"),
                    ("actor", "actor"),
                    ("action", "action"),
                    ("target", "target"),
                    ("ip", "source_ip"),
                ],
            );
        });
        Ok(())
    }
}

impl Cli {
    async fn feedback(&mut self, args: FeedbackArgs) -> anyhow::Result<()> {
        // A number or a JSON string as such; anything else is a label.
        let actual = match serde_json::from_str::<Value>(&args.actual) {
            Ok(value @ (Value::Number(_) | Value::String(_))) => value,
            _ => Value::String(args.actual.clone()),
        };
        let body = json!({ "prediction_id": args.prediction_id, "actual": actual,
                           "segment": args.segment });
        let path = format!("{}/feedback", self.model_path(&args.model)?);
        let answer = self.call(Method::POST, &path, Some(body)).await?;
        self.show(&answer, |a| {
            println!(
                "{}: {}",
                output::cell(&a["prediction_id"]),
                output::cell(&a["result"])
            );
        });
        Ok(())
    }

    fn metrics_path(&self, what: &str, args: &MetricsArgs) -> anyhow::Result<String> {
        let mut query = Vec::new();
        for (name, value) in [
            ("from", args.from),
            ("to", args.to),
            ("step", args.step),
            ("version", args.version),
        ] {
            if let Some(value) = value {
                query.push(format!("{name}={value}"));
            }
        }
        if let Some(label) = &args.positive_label {
            query.push(format!("positive_label={}", segment(label)));
        }
        Ok(format!(
            "{}/{what}?{}",
            self.model_path(&args.model)?,
            query.join("&")
        ))
    }

    async fn performance(&mut self, args: MetricsArgs) -> anyhow::Result<()> {
        let path = self.metrics_path("performance", &args)?;
        let report = self.call(Method::GET, &path, None).await?;
        self.show(&report, |r| {
            let rows = |entries: &Value| -> Value {
                let entries = entries.as_array().map(Vec::as_slice).unwrap_or_default();
                entries
                    .iter()
                    .map(|e| {
                        let c = &e["classification"];
                        let g = &e["regression"];
                        json!({
                            "version": e["version"], "from": e["from"], "to": e["to"],
                            "count": e["count"], "accuracy": c["accuracy"],
                            "macro_f1": c["macro_avg"]["f1"], "positive_f1": c["positive"]["f1"],
                            "mae": g["mae"], "rmse": g["rmse"],
                        })
                    })
                    .collect()
            };
            let columns = &[
                ("version", "version"),
                ("from", "from"),
                ("to", "to"),
                ("count", "count"),
                ("accuracy", "accuracy"),
                ("macro F1", "macro_f1"),
                ("positive F1", "positive_f1"),
                ("MAE", "mae"),
                ("RMSE", "rmse"),
            ];
            println!("overall");
            output::table(&rows(&r["overall"]), columns);
            println!("windows");
            output::table(&rows(&r["windows"]), columns);
        });
        Ok(())
    }

    async fn fairness(&mut self, args: MetricsArgs) -> anyhow::Result<()> {
        let path = self.metrics_path("fairness", &args)?;
        let report = self.call(Method::GET, &path, None).await?;
        self.show(&report, |r| {
            let segments: Value = r["segments"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, s)| {
                    json!({ "segment": name, "rows": s["rows"], "selection_rate": s["selection_rate"],
                            "tpr": s["true_positive_rate"], "fpr": s["false_positive_rate"] })
                })
                .collect();
            println!("positive label: {}", output::cell(&r["positive_label"]));
            output::table(
                &segments,
                &[
                    ("segment", "segment"),
                    ("rows", "rows"),
                    ("selection rate", "selection_rate"),
                    ("TPR", "tpr"),
                    ("FPR", "fpr"),
                ],
            );
            for (name, field) in [
                ("demographic parity difference", "demographic_parity_difference"),
                ("disparate impact ratio", "disparate_impact_ratio"),
                ("equal opportunity difference", "equal_opportunity_difference"),
                ("equalized odds difference", "equalized_odds_difference"),
            ] {
                println!("{name}: {}", output::cell(&r[field]));
            }
        });
        Ok(())
    }
}

/// The body of `PUT /v1/platform/orgs/{org}/plan` for `wisp platform set-plan`.
fn set_plan_body(args: &SetPlanArgs) -> Value {
    let overrides = [
        args.max_models,
        args.calls_per_month,
        args.max_storage_bytes,
        args.compute_units_per_call,
    ];
    let overrides = if args.clear_overrides {
        Some(json!({}))
    } else if overrides.iter().any(Option::is_some) {
        Some(json!({
            "max_models": args.max_models,
            "calls_per_month": args.calls_per_month,
            "max_storage_bytes": args.max_storage_bytes,
            "compute_units_per_call": args.compute_units_per_call,
        }))
    } else {
        None
    };
    json!({ "plan": args.plan, "overrides": overrides })
}

/// A streamed multipart file part that advances `bar` as it is sent.
fn file_part(path: &Path, bar: &ProgressBar) -> anyhow::Result<reqwest::multipart::Part> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_owned();
    let path = path.to_owned();
    let bar = bar.clone();
    let chunks = futures_util::stream::once(async move { tokio::fs::File::open(path).await })
        .map(move |file| {
            let bar = bar.clone();
            futures_util::stream::unfold(Some(file), move |state| {
                let bar = bar.clone();
                async move {
                    use tokio::io::AsyncReadExt;
                    let mut file = match state? {
                        Ok(file) => file,
                        Err(e) => return Some((Err(e), None)),
                    };
                    let mut buf = vec![0u8; 256 << 10];
                    match file.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            bar.inc(n as u64);
                            Some((Ok(buf), Some(Ok(file))))
                        }
                        Err(e) => Some((Err(e), None)),
                    }
                }
            })
        })
        .flatten();
    let body = reqwest::Body::wrap_stream(chunks);
    Ok(reqwest::multipart::Part::stream_with_length(body, len).file_name(name))
}

fn prompt(label: &str) -> anyhow::Result<String> {
    let mut stdout = std::io::stdout();
    write!(stdout, "{label}")?;
    stdout.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
