//! The `wisp` command-line client: every subcommand except `serve` talks to a running
//! server over its REST API, with the session `wisp login` stored.

mod analytics;
mod commands;
mod http;
mod monitoring;
mod output;
pub mod session;

pub use commands::run;
pub use http::ServerError;
