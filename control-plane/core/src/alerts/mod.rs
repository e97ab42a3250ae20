//! Alerting's rows: rules with their current state ([`rules`]), webhook endpoints
//! ([`webhooks`]), the history of state changes ([`history`]) and the durable queue of
//! webhook deliveries ([`deliveries`]). Every query is scoped by organisation, except the
//! background evaluator's and sender's scans, which read each row's organisation from it.
//!
//! The rules (validation, auditing, evaluation) are domain operations in
//! `wisp_domain::alerts`; this module only stores.

pub mod deliveries;
pub mod history;
pub mod rules;
pub mod webhooks;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of the window's metered calls whose outcome is not `ok` (0–1).
    ErrorRate,
    /// 99th percentile of the window's call wall times, in milliseconds.
    LatencyP99Ms,
    /// Share of the plan's monthly calls quota used this month (0–1, organisation-wide).
    QuotaUse,
    /// Time of the window's cold loads, in milliseconds.
    ColdLoadMs,
    /// Share of a model's features that drifted.
    DriftShare,
    /// Drift score of one feature (`feature`).
    FeatureDriftScore,
    /// Accuracy against ground truth.
    Accuracy,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::ErrorRate,
        Metric::LatencyP99Ms,
        Metric::QuotaUse,
        Metric::ColdLoadMs,
        Metric::DriftShare,
        Metric::FeatureDriftScore,
        Metric::Accuracy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ErrorRate => "error_rate",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::QuotaUse => "quota_use",
            Metric::ColdLoadMs => "cold_load_ms",
            Metric::DriftShare => "drift_share",
            Metric::FeatureDriftScore => "feature_drift_score",
            Metric::Accuracy => "accuracy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// How a value is compared with the threshold: the rule is breached when
/// `value <comparison> threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Comparison {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Above, Self::AtLeast, Self::Below, Self::AtMost]
            .into_iter()
            .find(|c| c.as_str() == text)
    }

    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }
}

/// A rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Evaluated, not breached (also: never evaluated yet).
    Ok,
    /// Breached, for less than the rule's `for`.
    Pending,
    /// Breached for at least `for`.
    Firing,
    /// The metric has no value: no calls in the window, no quota on the plan, or a metric
    /// wisp does not measure yet.
    NoData,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::NoData => "no_data",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Ok, Self::Pending, Self::Firing, Self::NoData]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

fn rfc3339(at: Option<i64>) -> Option<String> {
    at.map(crate::db::rfc3339)
}
