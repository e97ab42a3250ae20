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
    pub inspection: InspectionConfig,
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
}

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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_token_ttl_secs: default_access_ttl(),
            refresh_token_ttl_secs: default_refresh_ttl(),
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
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: default_max_upload(),
            result_cache_bytes: default_result_cache(),
        }
    }
}

/// Batch inference jobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Jobs this process runs at once; more wait their turn (`queued`).
    #[serde(default = "default_batch_jobs")]
    pub max_running_jobs: usize,
    /// Rows of one job in flight at once, each a call under the organisation's plan limits.
    #[serde(default = "default_batch_row_concurrency")]
    pub row_concurrency: usize,
    /// Rows per chunk: the unit of progress, of durable results and of redone work after a
    /// restart. Fixed per job when it is created.
    #[serde(default = "default_batch_chunk_rows")]
    pub chunk_rows: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_running_jobs: default_batch_jobs(),
            row_concurrency: default_batch_row_concurrency(),
            chunk_rows: default_batch_chunk_rows(),
        }
    }
}

fn default_batch_jobs() -> usize {
    2
}
fn default_batch_row_concurrency() -> usize {
    4
}
fn default_batch_chunk_rows() -> u32 {
    64
}

/// Usage metering.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
}

/// The child process that loads and compiles uploads before they are accepted (see
/// [`crate::sandbox`]). Counts and sizes of the files are bounded by `runtime.onnx_limits`
/// and `runtime.component_limits`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionConfig {
    /// Address space one inspection may use (`RLIMIT_AS`), the upload itself included.
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
fn default_max_upload() -> u64 {
    512 * 1024 * 1024
}
fn default_result_cache() -> u64 {
    256 * 1024 * 1024
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
            inspection: InspectionConfig::default(),
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
        if self.limits.max_upload_bytes == 0 {
            return invalid("limits.max_upload_bytes must be positive");
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
        Ok(())
    }

    /// Where the database is, resolved against the data directory.
    pub fn db_location(&self) -> DbLocation {
        let token = self.database.auth_token.clone().unwrap_or_default();
        match self.database.url.as_deref() {
            None => DbLocation::File(self.data_dir.join("wisp.db")),
            Some(":memory:") => DbLocation::Memory,
            Some(url) if is_remote_url(url) => match &self.database.replica_path {
                Some(path) => DbLocation::Replica {
                    path: path.clone(),
                    url: url.to_owned(),
                    auth_token: token,
                    sync_interval: self.database.sync_interval_secs.map(Duration::from_secs),
                },
                None => DbLocation::Remote {
                    url: url.to_owned(),
                    auth_token: token,
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
    }
}
