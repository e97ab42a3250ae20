//! Alerting: rules on a model's health, evaluated in the background, notifying signed
//! webhooks.
//!
//! - [`rules`]: defining rules (validated, audited); [`webhooks`]: webhook endpoints
//!   (secret generated here and shown once, rotation; audited).
//! - [`targets`]: which URLs wisp may send to (http(s) only; no loopback, private or
//!   link-local address unless the operator allows them).
//! - [`metrics`]: [`MetricSource`], what a rule's metric is worth at a time: error rate,
//!   p99 latency and quota use from metering; the metrics other parts will measure
//!   answer "no data" until then.
//! - [`state`]: the pure state machine (`ok → pending → firing → ok`, `for`, cooldown).
//! - [`evaluate`]: one evaluation of a rule at a time, stored once (idempotent per rule
//!   and time, so a lease per rule is all scale-out needs), queueing the notifications in
//!   the same transaction; [`payload`]: the JSON they carry.
//!
//! Sending (HTTP) is the edge's job: it claims due deliveries from
//! `wisp_core::alerts::deliveries` and records each attempt.

pub mod evaluate;
pub mod metrics;
pub mod payload;
pub mod rules;
pub mod state;
pub mod targets;
pub mod webhooks;

pub use metrics::{MetricSource, MetricSources, Observation};

use crate::error::Error;

/// An `invalid_request` naming the field at fault in `details.field`.
fn invalid_field(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(message).with_details(serde_json::json!({ "field": field }))
}
