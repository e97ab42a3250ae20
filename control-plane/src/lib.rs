//! The wisp control plane: REST API, storage, authentication and the model registry.
//!
//! Code map:
//! - [`api`]: the HTTP API (`app(state) -> Router`), one module per resource.
//! - [`auth`]: passwords, tokens, the permission table; [`access`]: who is calling.
//! - [`db`]: libSQL (embedded, in-memory, remote, embedded replica) and migrations.
//! - [`blob`]: the content-addressed object store (local filesystem, S3).
//! - [`inspect`]: the validation hook models pass before a version is accepted;
//!   [`onnx_inspector`] the real one, [`sandbox`] the child process it loads uploads in.
//! - [`orgs`], [`users`], [`keys`], [`registry`], [`deployments`], [`plans`], [`audit`]:
//!   storage of each domain; [`invitations`], [`sessions`], [`sign_ins`]: how people
//!   join organisations and sign in; [`lookups`]: the rows every request reads, memoised.
//! - [`batch`]: batch inference jobs: input files, chunked background runs, results.
//! - [`metering`]: one durable usage event per inference call (outbox, rollups), compute
//!   units, quotas, storage GB-months, invoices and exports.
//! - [`mlflow`]: MLflow tracking and registry storage (experiments, runs, metrics, registered
//!   models, logged models, artifact paths) behind the MLflow REST API.
//! - [`serving`]: registry versions as runtime models, JSON tensors, the built-in
//!   `onnx-runner` component.
//! - [`config`], [`cli`], [`serve`]: the `wisp serve` process; [`telemetry`]: its
//!   Prometheus metrics and logger.
//! - [`client`]: the other `wisp` subcommands, a client of a running server.
//! - [`fleet_member`]: this node among the others sharing its database (heartbeats, invalidation
//!   polling, giving back quota blocks and batch leases on a clean stop).
//!
//! Invariants: only this crate touches libSQL; every query is scoped by organisation id
//! taken from [`auth::OrgAccess`], never from the request body; another organisation's
//! resource answers exactly like a missing one.

pub mod alert_delivery;
pub mod api;
pub mod cli;
pub mod client;
pub mod client_ip;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod fleet_member;
pub mod onnx_inspector;
pub mod sandbox;
pub mod serve;
pub mod telemetry;

// The layers below, under the names the edge (and the integration tests) use.
pub use wisp_core::{
    access, audit, auth, dashboard_sessions, deployments, inspect, invitations, keys, lookups,
    onboarding, orgs, plans, registry, sessions, sign_ins, users,
};
pub use wisp_serving::batch;
pub use wisp_storage::{blob, db};
pub use {
    wisp_domain as domain, wisp_metering as metering, wisp_mlflow as mlflow,
    wisp_serving as serving,
};

pub use api::AppState;

/// The complete HTTP application `wisp serve` runs: the API and the dashboard.
pub fn app(state: AppState) -> axum::Router {
    api::app_with(state, dashboard::routes())
}
