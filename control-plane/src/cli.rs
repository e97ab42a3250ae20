//! Command-line interface of the `wisp` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// wisp: serverless, scale-to-zero ML inference.
#[derive(Debug, Parser)]
#[command(name = "wisp", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The organisation to work in [default: the one chosen at `wisp login`]. For `serve`,
    /// the slug of the organisation created on first start [default: default].
    #[arg(long, env = "WISP_ORG", global = true)]
    pub org: Option<String>,
    /// The wisp server [default: the one logged in to, else http://127.0.0.1:8080].
    #[arg(long, env = "WISP_SERVER", global = true)]
    pub server: Option<String>,
    /// An API key (or access token) to use instead of the stored login.
    #[arg(long, env = "WISP_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform (REST API and inference) with zero configuration by default.
    Serve(ServeArgs),
    /// Sign in to a server and remember the session.
    Login(LoginArgs),
    /// End the stored session on the server and forget it.
    Logout(LogoutArgs),
    /// Your password.
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Members of the organisation, and inviting new ones.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Invitations: accept one you were sent, or list and revoke the organisation's.
    #[command(subcommand)]
    Invitations(InvitationsCommand),
    /// Organisations.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// API keys of the organisation.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Models and their versions.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Deploy a version of a model (by default its latest), or follow an alias.
    Deploy(DeployArgs),
    /// Stop serving a model.
    Undeploy {
        /// Model name.
        model: String,
    },
    /// Go back to the version deployed before (or to `--version`).
    Rollback {
        /// Model name.
        model: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// The organisation's deployments.
    Deployments,
    /// Run a prediction.
    Predict(PredictArgs),
    /// Read the organisation's audit log, newest first.
    Audit(AuditArgs),
    /// Platform operators only: every organisation, plans, suspension, usage.
    #[command(subcommand)]
    Platform(PlatformCommand),
    /// Per-version analytics of a model: calls, errors, latency, cache hits, cold starts.
    Analytics(AnalyticsArgs),
    /// Send the actual outcome of a prediction (its id is the `wisp-usage-id` of the call,
    /// printed by `wisp predict`).
    Feedback(FeedbackArgs),
    /// Accuracy, precision/recall/F1 (classifiers) or MAE/RMSE (regressors) from feedback,
    /// per version and window.
    Performance(MetricsArgs),
    /// Selection and true/false positive rates per segment, and the gaps between them.
    Fairness(MetricsArgs),
    /// Data drift of a model against its reference: per window, or one report; `wisp drift
    /// reference` and `wisp drift config` set what it is measured against and how.
    Drift(DriftArgs),
    /// Alert rules, their state and history, and the webhooks they notify.
    #[command(subcommand)]
    Alerts(AlertsCommand),
}

/// Flags of `wisp feedback`.
#[derive(Debug, Args)]
pub struct FeedbackArgs {
    /// Model name.
    pub model: String,
    /// The call's prediction id.
    pub prediction_id: String,
    /// What actually happened: a label or a number (`1`, `2.5`, `yes`); a JSON string
    /// (`'"1"'`) keeps a numeric-looking label a string.
    pub actual: String,
    /// The segment attribute, replacing the one sent with the call.
    #[arg(long)]
    pub segment: Option<String>,
}

/// Flags of `wisp performance` and `wisp fairness`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Model name.
    pub model: String,
    /// Start, Unix seconds [default: a day before `--to`].
    #[arg(long)]
    pub from: Option<i64>,
    /// End, Unix seconds [default: now].
    #[arg(long)]
    pub to: Option<i64>,
    /// Window length in seconds (performance only) [default: the whole range].
    #[arg(long)]
    pub step: Option<i64>,
    /// Only this version.
    #[arg(long)]
    pub version: Option<i64>,
    /// The positive label of a binary classifier.
    #[arg(long)]
    pub positive_label: Option<String>,
}

/// `wisp platform …` (for the emails listed in the server's `platform.operators`).
#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// Every organisation with its plan, overrides and suspension.
    Orgs,
    /// Move an organisation to another plan and/or replace its quota overrides.
    SetPlan(SetPlanArgs),
    /// Suspend an organisation: its calls, keys and inference are refused.
    Suspend {
        /// Organisation slug.
        org: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reinstate a suspended organisation.
    Reinstate {
        /// Organisation slug.
        org: String,
    },
    /// Every organisation's usage of a billing period.
    Usage {
        /// `YYYY-MM` [default: the current month].
        #[arg(long)]
        period: Option<String>,
    },
    /// Every platform operator's action, newest first.
    Audit {
        /// At most this many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Flags of `wisp platform set-plan`. Any override flag replaces all overrides: the ones
/// not given go back to the plan's values.
#[derive(Debug, Args)]
pub struct SetPlanArgs {
    /// Organisation slug.
    pub org: String,
    /// `free`, `pro` or `enterprise` [default: keep the current plan].
    #[arg(long)]
    pub plan: Option<String>,
    #[arg(long)]
    pub max_models: Option<u64>,
    #[arg(long)]
    pub calls_per_month: Option<u64>,
    #[arg(long)]
    pub max_storage_bytes: Option<u64>,
    #[arg(long)]
    pub compute_units_per_call: Option<u64>,
    /// Remove every override.
    #[arg(long, conflicts_with_all = ["max_models", "calls_per_month", "max_storage_bytes", "compute_units_per_call"])]
    pub clear_overrides: bool,
}

/// Flags of `wisp login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Email address [default: asked].
    #[arg(long, env = "WISP_EMAIL")]
    pub email: Option<String>,
    /// Read the password from the first line of standard input instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Flags of `wisp logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Sign out everywhere: end every session of the account, on every device.
    #[arg(long)]
    pub all: bool,
}

/// `wisp password …`
#[derive(Debug, Subcommand)]
pub enum PasswordCommand {
    /// Change your password; every other session of the account ends.
    Change {
        /// Read the current password, then the new one, from the first two lines of
        /// standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `wisp members …`
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Members of the organisation.
    List,
    /// Invite an email address; prints a single-use invitation to forward to them.
    Add {
        email: String,
        /// `owner`, `admin`, `member` or `viewer`.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove a member (by user id, see `wisp members list`).
    Remove { user_id: String },
}

/// `wisp invitations …`
#[derive(Debug, Subcommand)]
pub enum InvitationsCommand {
    /// Accept an invitation you were sent. Signed in, your account joins; otherwise a new
    /// account is created with the password you choose, and you are signed in.
    Accept {
        /// The `wispinv_…` token (named apart from the global `--token`, a credential).
        #[arg(value_name = "TOKEN")]
        invitation: String,
        /// Read the new account's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Pending invitations of the organisation.
    List,
    /// Revoke a pending invitation.
    Revoke { id: String },
}

/// `wisp orgs …`
#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Organisations you belong to.
    List,
    /// Create an organisation you own.
    Create {
        /// URL name: lowercase letters, digits and dashes.
        slug: String,
        /// Display name [default: the slug].
        #[arg(long)]
        name: Option<String>,
    },
}

/// `wisp keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// API keys of the organisation.
    List,
    /// Create an API key; its secret is printed once.
    Create {
        /// What the key is for.
        name: String,
        /// `predict`, `models:write`, `read` or `admin`; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// RFC 3339 time after which the key stops working.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a key, with immediate effect.
    Revoke {
        /// The key's id (see `wisp keys list`).
        id: String,
    },
}

/// `wisp models …`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Models of the organisation.
    List,
    /// Create a model without versions.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Versions of a model, newest first.
    Versions { model: String },
    /// Upload a file (`.onnx`, or a `.wasm` component) as the model's next version,
    /// creating the model if needed.
    Push(PushArgs),
}

/// Flags of `wisp models push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The `.onnx` model or `.wasm` component.
    pub file: PathBuf,
    /// Model name [default: the file name without extension].
    #[arg(long)]
    pub model: Option<String>,
    /// With a component: the ONNX graph it runs.
    #[arg(long)]
    pub graph: Option<PathBuf>,
    #[arg(long)]
    pub description: Option<String>,
}

/// Flags of `wisp deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Model name.
    pub model: String,
    /// The version [default: the latest].
    #[arg(long, conflicts_with = "alias")]
    pub version: Option<i64>,
    /// Follow this alias instead of pinning a version.
    #[arg(long)]
    pub alias: Option<String>,
    /// Return at once instead of waiting until the deployment is ready or failed.
    #[arg(long)]
    pub no_wait: bool,
}

/// Flags of `wisp predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model name.
    pub model: String,
    /// The inputs as JSON, e.g. '{"input": [[5.1, 3.5, 1.4, 0.2]]}', or @file.json, or -
    /// for standard input.
    #[arg(long, short)]
    pub input: String,
    #[arg(long, conflicts_with = "alias")]
    pub version: Option<i64>,
    #[arg(long)]
    pub alias: Option<String>,
}

/// Flags of `wisp audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this action, e.g. `model.deployed`.
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// Flags of `wisp analytics`.
#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    /// Model name.
    pub model: String,
    /// How far back from now: a number and `s`, `m`, `h` or `d` (`90m`, `24h`, `7d`)
    /// [default: a day; an hour with `--step minute`, 30 days with `--step day`].
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Start: RFC 3339 (`2026-12-01T00:00:00Z`) or Unix milliseconds.
    #[arg(long)]
    pub from: Option<String>,
    /// End (exclusive), like `--from` [default: now].
    #[arg(long)]
    pub to: Option<String>,
    /// `minute`, `hour` or `day`.
    #[arg(long, default_value = "hour")]
    pub step: String,
    /// Only this version [default: every version].
    #[arg(long)]
    pub version: Option<i64>,
}

/// Flags of `wisp drift`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DriftArgs {
    #[command(subcommand)]
    pub command: Option<DriftCommand>,
    /// Model name.
    #[arg(required = true)]
    pub model: Option<String>,
    /// One report over the range (every window merged) instead of a timeline.
    #[arg(long)]
    pub report: bool,
    /// Start: Unix seconds or RFC 3339 [default: 24 hours before `--to`].
    #[arg(long)]
    pub from: Option<String>,
    /// End (exclusive) [default: now].
    #[arg(long)]
    pub to: Option<String>,
    /// Seconds per point of the timeline [default: the model's window].
    #[arg(long)]
    pub step: Option<i64>,
}

/// `wisp drift reference|config`.
#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Show a model's reference data set, or set (replace) or delete it. Exactly one
    /// source sets it: `--file`, `--mlflow-run` with `--dataset` or `--artifact`, or
    /// `--from-calls`.
    Reference(ReferenceArgs),
    /// Show a model's drift settings, or replace them (`--set '{"sample_rate": 0.5}'`).
    Config {
        /// Model name.
        model: String,
        /// The settings as JSON (see docs/monitoring.md): window_secs, sample_rate, tests.
        #[arg(long)]
        set: Option<String>,
    },
}

/// Flags of `wisp drift reference`.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// Model name.
    pub model: String,
    /// A CSV (`.csv`) or NDJSON (`.ndjson`, `.jsonl`) data set, columns named after the
    /// model's features.
    #[arg(long, conflicts_with_all = ["mlflow_run", "from_calls", "delete"])]
    pub file: Option<PathBuf>,
    /// A run of the organisation's MLflow tracking, with `--dataset` or `--artifact`.
    #[arg(long, conflicts_with_all = ["from_calls", "delete"])]
    pub mlflow_run: Option<String>,
    /// The name of a data set logged on `--mlflow-run` (`mlflow.log_input`).
    #[arg(long, requires = "mlflow_run", conflicts_with = "artifact")]
    pub dataset: Option<String>,
    /// With `--dataset`: its context (`training`, …).
    #[arg(long, requires = "dataset")]
    pub context: Option<String>,
    /// The path of a `.csv`/`.ndjson` artifact of `--mlflow-run`.
    #[arg(long, requires = "mlflow_run")]
    pub artifact: Option<String>,
    /// Profile the next N rows the model serves.
    #[arg(long, conflicts_with = "delete")]
    pub from_calls: Option<u64>,
    /// Columns of the file to leave out (a label, an id), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ignore_columns: Vec<String>,
    /// Delete the reference (its windows stay).
    #[arg(long)]
    pub delete: bool,
}

/// `wisp alerts …`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Every rule with its current state (`ok`, `pending`, `firing`, `no_data`).
    List,
    /// Create a rule, e.g. `--name errors --model iris --metric error_rate --above 0.05
    /// --window 5m`.
    Create(AlertRuleArgs),
    /// Delete a rule.
    Delete {
        /// The rule's id.
        rule: String,
    },
    /// State changes, newest first.
    History {
        /// Only this rule's.
        #[arg(long)]
        rule: Option<String>,
        /// At most this many (up to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// The webhook endpoints rules notify.
    Webhooks,
    /// Add a webhook endpoint; prints its signing secret once.
    AddWebhook {
        /// `https://…` where wisp POSTs signed JSON (Standard Webhooks).
        url: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Send a test message to a webhook now and print the delivery.
    TestWebhook {
        /// The webhook's id.
        webhook: String,
    },
    /// Delete a webhook endpoint.
    DeleteWebhook {
        /// The webhook's id.
        webhook: String,
    },
}

/// Flags of `wisp alerts create`.
#[derive(Debug, Args)]
pub struct AlertRuleArgs {
    /// Unique in the organisation.
    #[arg(long)]
    pub name: String,
    /// `error_rate`, `latency_p99_ms`, `quota_use`, `cold_load_ms`, `drift_share`,
    /// `feature_drift_score` (with `--feature`) or `accuracy`.
    #[arg(long)]
    pub metric: String,
    /// Fires when the value is above this…
    #[arg(long, conflicts_with = "below", required_unless_present = "below")]
    pub above: Option<f64>,
    /// …or below this.
    #[arg(long)]
    pub below: Option<f64>,
    /// The window the metric is computed over: `30s`, `5m`, `1h`, `1d` (up to 7 days).
    #[arg(long)]
    pub window: String,
    /// Only this model's calls [default: every model].
    #[arg(long)]
    pub model: Option<String>,
    /// Only this version of `--model`.
    #[arg(long, requires = "model")]
    pub version: Option<i64>,
    /// The feature of `feature_drift_score`.
    #[arg(long)]
    pub feature: Option<String>,
    /// How long the breach must last before the rule fires [default: 0s].
    #[arg(long = "for")]
    pub for_: Option<String>,
    /// Re-firings within this time of a notified one are not notified [default: 0s].
    #[arg(long)]
    pub cooldown: Option<String>,
    /// A webhook id to notify (repeat for several).
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
}

/// Flags of `wisp serve`. Each overrides the config file; each has an environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (unknown keys are errors).
    #[arg(long, env = "WISP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WISP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./wisp-data].
    #[arg(long = "data-dir", env = "WISP_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Database: a file path, `:memory:`, or a remote `libsql://…` URL.
    #[arg(long, env = "WISP_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Auth token for a remote database.
    #[arg(long, env = "WISP_DATABASE_AUTH_TOKEN", hide_env_values = true)]
    pub database_auth_token: Option<String>,
    /// JWT signing secret (at least 32 bytes); generated and stored in the data dir if absent.
    #[arg(long, env = "WISP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Proxies whose `Fly-Client-IP` / `X-Forwarded-For` name the client (addresses or
    /// ranges, comma-separated) [default: none: those headers are ignored].
    #[arg(long, env = "WISP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// First start only: email of the admin user [default: admin@localhost].
    #[arg(long, env = "WISP_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// First start only: the admin's password [default: generated into
    /// `<data_dir>/admin-password`, and to be changed at the first sign-in].
    #[arg(long, env = "WISP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Emails of the platform operators, comma-separated; replaces `platform.operators`.
    #[arg(long, env = "WISP_PLATFORM_OPERATORS", value_delimiter = ',')]
    pub platform_operators: Option<Vec<String>>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "WISP_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::config::LogFormat>,
    /// Address of the `/metrics` listener; empty disables it [default: 127.0.0.1:9464].
    #[arg(long, env = "WISP_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Bearer token that also opens `/metrics` on the main port.
    #[arg(long, env = "WISP_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// Who to create on first start.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub admin_email: String,
    /// `None`: generate one into `<data_dir>/admin-password`, to be changed at first use.
    pub admin_password: Option<String>,
    pub org_slug: String,
}

impl ServeArgs {
    /// The configuration: defaults, then the file, then flags and environment variables.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database.url = Some(url.clone());
        }
        if let Some(token) = &self.database_auth_token {
            config.database.auth_token = Some(token.clone());
        }
        if let Some(secret) = &self.jwt_secret {
            config.auth.jwt_secret = Some(secret.clone());
        }
        if let Some(operators) = &self.platform_operators {
            config.platform.operators = operators.clone();
        }
        if let Some(proxies) = &self.trusted_proxies {
            config.server.trusted_proxies = proxies.clone();
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(listen) = &self.metrics_listen {
            config.metrics.listen = Some(listen.clone());
        }
        if let Some(token) = &self.metrics_token {
            config.metrics.token = Some(token.clone());
        }
        config.validate()?;
        Ok(config)
    }

    /// The first-start identities; `org` is the global `--org`.
    pub fn bootstrap(&self, org: Option<&str>) -> Bootstrap {
        Bootstrap {
            admin_email: self
                .admin_email
                .clone()
                .unwrap_or_else(|| "admin@localhost".to_owned()),
            admin_password: self.admin_password.clone(),
            org_slug: org.unwrap_or("default").to_owned(),
        }
    }
}
