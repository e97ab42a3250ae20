//! Command-line interface of the `wisp` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// wisp: serverless, scale-to-zero ML inference.
#[derive(Debug, Parser)]
#[command(name = "wisp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (REST API) with zero configuration by default.
    Serve(ServeArgs),
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
    /// First start only: email of the admin user [default: admin@localhost].
    #[arg(long, env = "WISP_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// First start only: the admin's password [default: generated and printed once].
    #[arg(long, env = "WISP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// First start only: slug of the first organisation [default: default].
    #[arg(long, env = "WISP_ORG")]
    pub org: Option<String>,
}

/// Who to create on first start.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub admin_email: String,
    /// `None`: generate one and print it once.
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
        config.validate()?;
        Ok(config)
    }

    /// The first-start identities.
    pub fn bootstrap(&self) -> Bootstrap {
        Bootstrap {
            admin_email: self
                .admin_email
                .clone()
                .unwrap_or_else(|| "admin@localhost".to_owned()),
            admin_password: self.admin_password.clone(),
            org_slug: self.org.clone().unwrap_or_else(|| "default".to_owned()),
        }
    }
}
