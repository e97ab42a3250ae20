//! Configuration of `wisp serve`: defaults, then an optional TOML file, then environment
//! variables and flags (see [`crate::cli`]).
//!
//! Unknown keys are errors and [`Config::validate`] runs before anything is opened or bound,
//! so a typo fails loudly at start instead of silently running with a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::blob::S3Settings;
use crate::db::DbLocation;

/// Everything `wisp serve` needs to start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the embedded database, local blobs, staging and the JWT secret.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub object_store: ObjectStoreConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The inference runtime: pools, caches, idle TTL (scale-to-zero). Per-call limits come
    /// from each organisation's plan.
    #[serde(default)]
    pub runtime: wisp_host::RuntimeConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub metering: MeteringConfig,
    #[serde(default)]
    pub platform: PlatformConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub inspection: InspectionConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub feedback: FeedbackConfig,
    /// Drift monitoring: the off switch, the profiling queue, flush intervals.
    #[serde(default)]
    pub drift: crate::serving::drift::DriftServerConfig,
    /// Alert rule evaluation and webhook delivery (`[alerts]`).
    #[serde(default)]
    pub alerts: crate::alert_delivery::AlertsConfig,
    /// Several nodes on one database: heartbeats and invalidation polling (`[fleet]`).
    #[serde(default)]
    pub fleet: crate::fleet_member::FleetConfig,
}

/// Where the metrics listener listens unless `metrics.listen` says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Prometheus metrics (`/metrics`; see docs/monitoring.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Record the serving metrics (default `true`). `false` keeps `/metrics` (process and
    /// database series) but records nothing per call.
    pub enabled: bool,
    /// Address of the metrics listener, which serves only `/metrics`, without
    /// authentication: keep it private. `""` disables it. Unset: [`DEFAULT_METRICS_LISTEN`],
    /// loopback; if that port is taken (another wisp on the machine), the server starts
    /// without it and says so, whereas an address set here must be bound.
    pub listen: Option<String>,
    /// A bearer token that also opens `/metrics` on the main port (compared in constant
    /// time). Unset (the default): the main port answers `404` for `/metrics`.
    pub token: Option<String>,
    /// Label per-version series with the organisation's slug. Turn off for deployments
    /// with many organisations: series are then summed over them.
    pub per_org_labels: bool,
    /// At most this many (org, model, version) label sets; calls of further versions are
    /// counted under `model="other"`, `version="other"`.
    pub max_model_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        let serving = crate::serving::metrics::MetricsSettings::default();
        Self {
            enabled: serving.recording,
            listen: None,
            token: None,
            per_org_labels: serving.per_org_labels,
            max_model_series: serving.max_model_series,
        }
    }
}

impl MetricsConfig {
    /// The metrics listener's address; `None` when disabled.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        match self
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_METRICS_LISTEN)
            .trim()
        {
            "" => Ok(None),
            address => address
                .parse()
                .map(Some)
                .map_err(|e| format!("metrics.listen {address:?}: {e}")),
        }
    }

    /// The label settings of the serving metrics.
    pub fn settings(&self) -> crate::serving::metrics::MetricsSettings {
        crate::serving::metrics::MetricsSettings {
            recording: self.enabled,
            per_org_labels: self.per_org_labels,
            max_model_series: self.max_model_series,
        }
    }
}

/// Logging (the level comes from `RUST_LOG`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default) or `json`: one JSON object per line, with the fields of the
    /// request's span (`request_id`, `org`, `model`, `version`).
    pub format: LogFormat,
    /// Log a `finished processing request` line (INFO, with status and latency) per HTTP
    /// request. Default: on with `json`, off with `text`.
    pub requests: Option<bool>,
}

impl LogConfig {
    /// Whether every request gets its own log line.
    pub fn log_requests(&self) -> bool {
        self.requests.unwrap_or(self.format == LogFormat::Json)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How the server sees its network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Proxies (addresses or ranges, e.g. `"172.16.0.0/12"`, `"fdaa::/16"` on Fly) whose
    /// `Fly-Client-IP` / `X-Forwarded-For` headers name the client. Empty (the default):
    /// those headers are ignored and the socket's peer address is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// After SIGTERM, at most this many seconds to finish in-flight requests and store the
    /// usage events still in the outbox; then the process exits anyway, leaving what is
    /// not stored in the outbox for the next start (a database outage must not make a
    /// stop hang). Keep it under the platform's kill timeout (Fly: `kill_timeout`, 5 s by
    /// default).
    #[serde(default = "default_shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: default_shutdown_timeout_secs(),
        }
    }
}

fn default_shutdown_timeout_secs() -> u64 {
    3
}

impl ServerConfig {
    /// The trusted proxy ranges, parsed.
    pub fn trusted_proxy_ranges(&self) -> Result<Vec<crate::client_ip::IpRange>, String> {
        self.trusted_proxies.iter().map(|r| r.parse()).collect()
    }
}

/// The service owner's side: who operates the platform above the organisations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// Emails of the platform operators: signed in, they may change any organisation's
    /// plan and quotas, suspend and reinstate organisations and read platform-wide usage
    /// (`/v1/platform/…`). Not an organisation role: no member, owner included, has it.
    /// Empty (the default): nobody.
    #[serde(default)]
    pub operators: Vec<String>,
}

/// Ground-truth monitoring: how long what each call answered is kept for feedback.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Predictions (and their feedback) older than this many days are deleted (hourly).
    #[serde(default = "default_feedback_retention_days")]
    pub retention_days: u32,
    /// Predictions waiting to be written, at most; beyond it they are dropped (and
    /// counted), never waited for.
    #[serde(default = "default_feedback_queue")]
    pub queue: usize,
}

fn default_feedback_retention_days() -> u32 {
    30
}

fn default_feedback_queue() -> usize {
    10_000
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            retention_days: default_feedback_retention_days(),
            queue: default_feedback_queue(),
        }
    }
}

impl FeedbackConfig {
    /// The prediction log's settings.
    pub fn prediction_log(&self) -> crate::serving::prediction_log::PredictionLogSettings {
        crate::serving::prediction_log::PredictionLogSettings {
            retention: std::time::Duration::from_secs(u64::from(self.retention_days) * 24 * 3600),
            queue: self.queue,
        }
    }
}

/// Where the libSQL database lives.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Absent: `<data_dir>/wisp.db`. A path: that file. `:memory:`: nothing persisted.
    /// `libsql://…`, `https://…`, `http://…`: a remote libSQL server (sqld, Turso).
    pub url: Option<String>,
    /// Token for a remote server.
    pub auth_token: Option<String>,
    /// With a remote `url`: keep an embedded replica in this file (reads stay local, writes
    /// go to the primary).
    pub replica_path: Option<PathBuf>,
    /// With `replica_path`: also sync from the primary in the background this often.
    pub sync_interval_secs: Option<u64>,
    /// With a remote `url`: how long a statement waits for the server's answer before the
    /// connection counts as lost (a network cut drops packets without closing anything).
    /// Default [`DEFAULT_STATEMENT_TIMEOUT_SECS`].
    pub statement_timeout_secs: Option<u64>,
}

/// `database.statement_timeout_secs` when unset: far above any statement wisp runs, far
/// below TCP's own give-up time of minutes.
pub const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 15;

/// Where model files go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// The local filesystem, under `path` (default `<data_dir>/blobs`).
    Local { path: Option<PathBuf> },
    /// An S3-compatible bucket.
    S3(S3Settings),
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        Self::Local { path: None }
    }
}

/// Token settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 signing secret, at least 32 bytes. When absent one is generated on first start
    /// and kept in `<data_dir>/jwt-secret`. Set it when several machines share a database.
    pub jwt_secret: Option<String>,
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_secs: i64,
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_secs: i64,
    /// How long an invitation's token can be accepted.
    #[serde(default = "default_invitation_ttl")]
    pub invitation_ttl_secs: i64,
    /// Password hashes and verifications (argon2id, 19 MiB each) running at once, across
    /// every request; more wait.
    #[serde(default = "default_password_hashes")]
    pub max_concurrent_password_hashes: usize,
    /// How long a login waits for a hashing slot before it is answered `overloaded`.
    #[serde(default = "default_password_hash_wait")]
    pub password_hash_wait_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_token_ttl_secs: default_access_ttl(),
            refresh_token_ttl_secs: default_refresh_ttl(),
            invitation_ttl_secs: default_invitation_ttl(),
            max_concurrent_password_hashes: default_password_hashes(),
            password_hash_wait_ms: default_password_hash_wait(),
        }
    }
}

/// Resource limits of the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest model upload, in bytes.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Memory for cached prediction results, in bytes.
    #[serde(default = "default_result_cache")]
    pub result_cache_bytes: u64,
    /// Largest JSON read on routes that stream large bodies (and so lift the general body
    /// limit): an upload's `metadata` part, a batch job's JSON body. In bytes.
    #[serde(default = "default_max_json_body")]
    pub max_json_body_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: default_max_upload(),
            result_cache_bytes: default_result_cache(),
            max_json_body_bytes: default_max_json_body(),
        }
    }
}

pub use crate::batch::BatchConfig;

/// Usage metering.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeteringConfig {
    /// Also sync the usage outbox (`fdatasync`, shared by concurrent calls) before
    /// answering a call, so that not even a machine crash or power loss can lose a billed
    /// call. Off (the default), every event is written to the outbox before its response
    /// and survives any crash of the process (kill -9, panic, OOM); a machine crash can
    /// lose the events not yet committed to the database (at most 250 ms of them).
    /// Syncing costs one disk flush per response (see docs/benchmarks.md).
    #[serde(default)]
    pub fsync: bool,
    /// How long an `Idempotency-Key` is remembered (its response replayed), in seconds.
    #[serde(default = "default_idempotency_ttl")]
    pub idempotency_ttl_secs: u64,
    /// Largest response stored for replay under an `Idempotency-Key`, in bytes. A bigger
    /// one is answered normally, but a retry gets `409 idempotency_conflict` (reason
    /// `not_replayable`) instead of running and being billed again.
    #[serde(default = "default_idempotency_max_response")]
    pub idempotency_max_response_bytes: u64,
    /// Minute analytics rows are kept this many days (then deleted hourly); hour and day
    /// rows are kept. Queries with `step=minute` must start within it.
    #[serde(default = "default_minute_retention_days")]
    pub analytics_minute_retention_days: u32,
}

fn default_minute_retention_days() -> u32 {
    14
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            fsync: false,
            idempotency_ttl_secs: default_idempotency_ttl(),
            idempotency_max_response_bytes: default_idempotency_max_response(),
            analytics_minute_retention_days: default_minute_retention_days(),
        }
    }
}

impl MeteringConfig {
    /// The idempotency settings of the API.
    pub fn idempotency(&self) -> crate::metering::idempotency::IdempotencySettings {
        crate::metering::idempotency::IdempotencySettings {
            ttl: Duration::from_secs(self.idempotency_ttl_secs),
            max_response_bytes: usize::try_from(self.idempotency_max_response_bytes)
                .unwrap_or(usize::MAX),
        }
    }

    /// How long minute analytics are kept.
    pub fn analytics_minute_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.analytics_minute_retention_days) * 24 * 3600)
    }
}

fn default_idempotency_ttl() -> u64 {
    24 * 3600
}
fn default_idempotency_max_response() -> u64 {
    1 << 20
}

/// The child process that loads and compiles uploads before they are accepted (see
/// [`crate::sandbox`]). Counts and sizes of the files are bounded by `runtime.onnx_limits`
/// and `runtime.component_limits`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionConfig {
    /// Address space one inspection may add to what the child has mapped at its start
    /// (`RLIMIT_AS`), the upload itself included.
    pub memory_bytes: u64,
    /// Wall-clock time one inspection may take before it is killed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Inspections running at once; more uploads wait their turn.
    pub max_concurrent: usize,
}

impl Default for InspectionConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 4 << 30,
            timeout: Duration::from_secs(120),
            max_concurrent: 2,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("wisp-data")
}
fn default_access_ttl() -> i64 {
    15 * 60
}
fn default_refresh_ttl() -> i64 {
    30 * 24 * 3600
}
fn default_invitation_ttl() -> i64 {
    7 * 24 * 3600
}
fn default_password_hashes() -> usize {
    4
}
fn default_password_hash_wait() -> u64 {
    2000
}
fn default_max_upload() -> u64 {
    512 * 1024 * 1024
}
fn default_result_cache() -> u64 {
    256 * 1024 * 1024
}
/// JSON metadata is a few kB; 1 MiB leaves room for generous tags without letting one
/// request buffer unbounded memory.
pub(crate) fn default_max_json_body() -> u64 {
    1024 * 1024
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            database: DatabaseConfig::default(),
            object_store: ObjectStoreConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            runtime: wisp_host::RuntimeConfig::default(),
            batch: BatchConfig::default(),
            metering: MeteringConfig::default(),
            platform: PlatformConfig::default(),
            server: ServerConfig::default(),
            inspection: InspectionConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            feedback: FeedbackConfig::default(),
            drift: Default::default(),
            alerts: Default::default(),
            fleet: Default::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks everything that can be checked without touching the network or the disk.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir must not be empty");
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.len() < 32
        {
            return invalid("auth.jwt_secret must be at least 32 bytes");
        }
        if self.auth.access_token_ttl_secs <= 0 || self.auth.refresh_token_ttl_secs <= 0 {
            return invalid("token lifetimes must be positive");
        }
        if self.metering.idempotency_ttl_secs == 0
            || i64::try_from(self.metering.idempotency_ttl_secs).is_err()
        {
            return invalid("metering.idempotency_ttl_secs must be positive");
        }
        if self.auth.invitation_ttl_secs <= 0 {
            return invalid("auth.invitation_ttl_secs must be positive");
        }
        if self.auth.max_concurrent_password_hashes == 0 {
            return invalid("auth.max_concurrent_password_hashes must be positive");
        }
        if let Err(e) = self.alerts.validate() {
            return Err(ConfigError::Invalid(e));
        }
        if let Err(e) = self.fleet.validate() {
            return Err(ConfigError::Invalid(e));
        }
        if self.batch.lease_ms < 300 {
            return invalid("batch.lease_ms must be at least 300");
        }
        if let Err(e) = self.server.trusted_proxy_ranges() {
            return Err(ConfigError::Invalid(format!("server.trusted_proxies: {e}")));
        }
        if self.metering.analytics_minute_retention_days == 0 {
            return invalid("metering.analytics_minute_retention_days must be positive");
        }
        if self.feedback.retention_days == 0 || self.feedback.queue == 0 {
            return invalid("feedback.retention_days and feedback.queue must be positive");
        }
        if self.limits.max_upload_bytes == 0 {
            return invalid("limits.max_upload_bytes must be positive");
        }
        if self.limits.max_json_body_bytes == 0 {
            return invalid("limits.max_json_body_bytes must be positive");
        }
        if self.runtime.max_concurrent_instances == 0 {
            return invalid("runtime.max_concurrent_instances must be positive");
        }
        if self.inspection.memory_bytes < 256 << 20
            || self.inspection.timeout.is_zero()
            || self.inspection.max_concurrent == 0
        {
            return invalid(
                "inspection.memory_bytes must be at least 256 MiB, timeout and max_concurrent positive",
            );
        }
        if self.batch.max_running_jobs == 0
            || self.batch.row_concurrency == 0
            || self.batch.chunk_rows == 0
        {
            return invalid(
                "batch.max_running_jobs, row_concurrency and chunk_rows must be positive",
            );
        }
        if let ObjectStoreConfig::S3(s3) = &self.object_store
            && s3.bucket.is_empty()
        {
            return invalid("object_store.bucket must not be empty");
        }
        let remote = self.database.url.as_deref().is_some_and(is_remote_url);
        if self.database.replica_path.is_some() && !remote {
            return invalid(
                "database.replica_path needs a remote database.url (libsql://, https://)",
            );
        }
        if self.database.sync_interval_secs.is_some() && self.database.replica_path.is_none() {
            return invalid("database.sync_interval_secs only applies with database.replica_path");
        }
        if self.database.auth_token.is_some() && !remote {
            return invalid("database.auth_token only applies to a remote database.url");
        }
        if let Err(e) = self.metrics.listen_addr() {
            return Err(ConfigError::Invalid(e));
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(|token| token.len() < 16)
        {
            return invalid("metrics.token must be at least 16 bytes");
        }
        if self.metrics.max_model_series == 0 {
            return invalid("metrics.max_model_series must be positive");
        }
        if let Some(bad) = self.platform.operators.iter().find(|email| {
            let email = email.trim();
            !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace)
        }) {
            return Err(ConfigError::Invalid(format!(
                "platform.operators must be email addresses, got {bad:?}"
            )));
        }
        Ok(())
    }

    /// Where the database is, resolved against the data directory.
    pub fn db_location(&self) -> DbLocation {
        let token = self.database.auth_token.clone().unwrap_or_default();
        let statement_timeout = Some(Duration::from_secs(
            self.database
                .statement_timeout_secs
                .unwrap_or(DEFAULT_STATEMENT_TIMEOUT_SECS)
                .max(1),
        ));
        match self.database.url.as_deref() {
            None => DbLocation::File(self.data_dir.join("wisp.db")),
            Some(":memory:") => DbLocation::Memory,
            Some(url) if is_remote_url(url) => match &self.database.replica_path {
                Some(path) => DbLocation::Replica {
                    path: path.clone(),
                    url: url.to_owned(),
                    auth_token: token,
                    sync_interval: self.database.sync_interval_secs.map(Duration::from_secs),
                    statement_timeout,
                },
                None => DbLocation::Remote {
                    url: url.to_owned(),
                    auth_token: token,
                    statement_timeout,
                },
            },
            Some(path) => DbLocation::File(PathBuf::from(path)),
        }
    }
}

fn is_remote_url(url: &str) -> bool {
    ["libsql://", "https://", "http://", "wss://", "ws://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_the_zero_config_default() {
        let config = parse("").expect("parse");
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.db_location(),
            DbLocation::File(PathBuf::from("wisp-data/wisp.db"))
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("listen_addr = \"0.0.0.0:1\"").is_err());
        assert!(parse("[database]\nurl = \"x\"\ntoken = \"y\"").is_err());
        assert!(parse("[object_store]\nkind = \"s3\"\nbucket = \"b\"\nregoin = \"x\"").is_err());
    }

    #[test]
    fn s3_and_remote_database_parse() {
        let config = parse(
            r#"
            listen = "0.0.0.0:9000"
            [database]
            url = "libsql://wisp.turso.io"
            auth_token = "t"
            replica_path = "/data/replica.db"
            sync_interval_secs = 5
            [object_store]
            kind = "s3"
            bucket = "models"
            endpoint = "https://fly.storage.tigris.dev"
            region = "auto"
            force_path_style = true
            "#,
        )
        .expect("parse");
        config.validate().expect("valid");
        assert!(matches!(config.db_location(), DbLocation::Replica { .. }));
        assert!(matches!(config.object_store, ObjectStoreConfig::S3(ref s) if s.force_path_style));
    }

    #[test]
    fn inconsistent_settings_fail_validation() {
        let short_secret = parse("[auth]\njwt_secret = \"short\"").expect("parse");
        assert!(short_secret.validate().is_err());
        let replica_without_remote = parse("[database]\nreplica_path = \"r.db\"").expect("parse");
        assert!(replica_without_remote.validate().is_err());
        let zero_limit = parse("[limits]\nmax_upload_bytes = 0").expect("parse");
        assert!(zero_limit.validate().is_err());
        let not_an_email = parse("[platform]\noperators = [\"ops\"]").expect("parse");
        assert!(not_an_email.validate().is_err());
        let zero_json = parse("[limits]\nmax_json_body_bytes = 0").expect("parse");
        assert!(zero_json.validate().is_err());
        let bad_proxy = parse("[server]\ntrusted_proxies = [\"10.0.0.0/40\"]").expect("parse");
        assert!(bad_proxy.validate().is_err());
        let good_proxy =
            parse("[server]\ntrusted_proxies = [\"fdaa::/16\", \"10.0.0.1\"]").expect("parse");
        good_proxy.validate().expect("valid");
    }

    #[test]
    fn metrics_and_log_settings_parse() {
        let config = parse(
            "[metrics]\nlisten = \"\"\nper_org_labels = false\nmax_model_series = 50\n\
             [log]\nformat = \"json\"",
        )
        .expect("parse");
        config.validate().expect("valid");
        assert_eq!(config.metrics.listen_addr(), Ok(None));
        assert!(!config.metrics.settings().per_org_labels);
        assert_eq!(config.log.format, LogFormat::Json);
        let default = Config::default();
        assert_eq!(
            default.metrics.listen_addr().unwrap().unwrap().to_string(),
            "127.0.0.1:9464"
        );
        assert!(parse("[log]\nformat = \"xml\"").is_err());
        assert!(
            parse("[metrics]\nlisten = \"nowhere\"")
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse("[metrics]\ntoken = \"short\"")
                .unwrap()
                .validate()
                .is_err()
        );
    }

    #[test]
    fn platform_operators_parse() {
        let config = parse("[platform]\noperators = [\"ops@example.com\"]").expect("parse");
        config.validate().expect("valid");
        assert_eq!(config.platform.operators, ["ops@example.com"]);
        assert!(parse("[platform]\noperator = [\"ops@example.com\"]").is_err());
    }
}
