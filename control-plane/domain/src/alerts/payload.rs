//! The JSON body of a webhook message.
//!
//! ```json
//! {
//!   "type": "alert.firing",
//!   "timestamp": "2026-12-05T01:00:00Z",
//!   "data": {
//!     "org": "acme",
//!     "rule": { "id": "…", "name": "errors", "metric": "error_rate", "comparison": ">",
//!               "threshold": 0.5, "window": "5m", "feature": null },
//!     "state": "firing", "previous_state": "pending",
//!     "value": 0.83, "threshold": 0.5, "model": "iris", "version": null,
//!     "since": "2026-12-05T00:59:00Z", "evaluated_at": "2026-12-05T01:00:00Z",
//!     "link": "https://wisp.example.com/v1/orgs/acme/alerts/history?rule=…"
//!   }
//! }
//! ```
//!
//! `type` is `alert.firing`, `alert.resolved` or `alert.test`. `link` is relative
//! (`/v1/…`) unless the operator set `alerts.public_url`.

use serde_json::{Value, json};

use super::rules::format_duration;
use crate::alerts_rows::AlertState;
use crate::alerts_rows::rules::StoredRule;
use crate::db::rfc3339;

/// The message for a rule's transition.
#[derive(Debug, Clone, Copy)]
pub struct AlertMessage<'a> {
    pub event_type: &'a str,
    pub org_slug: &'a str,
    pub rule: &'a StoredRule,
    pub from: AlertState,
    pub to: AlertState,
    pub value: Option<f64>,
    pub since: i64,
    pub at: i64,
    /// `alerts.public_url`, without a trailing slash.
    pub public_url: Option<&'a str>,
}

/// The body of a rule's notification.
pub fn alert(message: &AlertMessage<'_>) -> Value {
    let rule = message.rule;
    let spec = &rule.spec;
    let link = format!(
        "{}/v1/orgs/{}/alerts/history?rule={}",
        message.public_url.unwrap_or(""),
        message.org_slug,
        rule.id
    );
    json!({
        "type": message.event_type,
        "timestamp": rfc3339(message.at),
        "data": {
            "org": message.org_slug,
            "rule": {
                "id": rule.id,
                "name": spec.name,
                "metric": spec.metric.as_str(),
                "comparison": spec.comparison.as_str(),
                "threshold": spec.threshold,
                "window": format_duration(spec.window_secs),
                "feature": spec.feature,
            },
            "state": message.to.as_str(),
            "previous_state": message.from.as_str(),
            "value": message.value,
            "threshold": spec.threshold,
            "model": spec.model,
            "version": spec.version,
            "since": rfc3339(message.since),
            "evaluated_at": rfc3339(message.at),
            "link": link,
        }
    })
}

/// The body of a test message to a webhook.
pub fn test(org_slug: &str, webhook_id: &str, at: i64) -> Value {
    json!({
        "type": "alert.test",
        "timestamp": rfc3339(at),
        "data": {
            "org": org_slug,
            "webhook_id": webhook_id,
            "message": "a test of this endpoint from wisp",
        }
    })
}
