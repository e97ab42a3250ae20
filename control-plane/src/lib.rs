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
//! - [`config`], [`cli`], [`serve`]: the `wisp serve` process.
//! - [`client`]: the other `wisp` subcommands, a client of a running server.
//!
//! Invariants: only this crate touches libSQL; every query is scoped by organisation id
//! taken from [`auth::OrgAccess`], never from the request body; another organisation's
//! resource answers exactly like a missing one.

pub mod access;
pub mod api;
pub use wisp_storage::{blob, db};
pub mod audit;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod client;
pub mod client_ip;
pub mod config;
pub mod deployments;
pub mod domain;
pub mod error;
pub mod inspect;
pub mod invitations;
pub mod keys;
pub mod lookups;
pub mod metering;
pub mod mlflow;
pub mod onnx_inspector;
pub mod orgs;
pub mod plans;
pub mod registry;
pub mod sandbox;
pub mod serve;
pub mod serving;
pub mod sessions;
pub mod sign_ins;
pub mod users;

pub use api::{AppState, app};
