//! Defining alert rules: validation (each refusal names its field), create, replace,
//! delete, each audited in the caller's transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::invalid_field;
use crate::Acting;
use crate::alerts_rows::rules::CurrentState;
use crate::alerts_rows::rules::{self, RuleSpec, StoredRule};
use crate::alerts_rows::{Comparison, Metric, webhooks};
use crate::db::{self, Reader, Writer};
use crate::error::{Error, ErrorCode, Result};

/// Most webhooks one rule notifies.
pub const MAX_CHANNELS: usize = 10;
/// Longest window (the p99 reads every call in it).
pub const MAX_WINDOW_SECS: i64 = 7 * 86_400;
/// Longest `for` and `cooldown`.
pub const MAX_WAIT_SECS: i64 = 30 * 86_400;

/// A rule as written by a user (the body of create and replace).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// Unique in the organisation; 1–128 printable characters.
    pub name: String,
    /// Only this model's calls; all models if absent.
    pub model: Option<String>,
    /// Only this version of `model`.
    pub version: Option<i64>,
    /// `error_rate`, `latency_p99_ms`, `quota_use`, `cold_load_ms`, `drift_share`,
    /// `feature_drift_score` (with `feature`) or `accuracy`.
    pub metric: String,
    /// The feature of `feature_drift_score`.
    pub feature: Option<String>,
    /// `>`, `>=`, `<` or `<=`: the rule is breached when `value <comparison> threshold`.
    pub comparison: String,
    pub threshold: f64,
    /// The window the metric is computed over: `<n>s`, `<n>m`, `<n>h` or `<n>d`, up to 7 days.
    pub window: String,
    /// How long the breach must last before the rule fires (default `0s`).
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// After a notified firing, re-firings within this time are not notified (default `0s`).
    pub cooldown: Option<String>,
    /// Webhook ids to notify.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub metric: Metric,
    pub feature: Option<String>,
    pub comparison: Comparison,
    pub threshold: f64,
    pub window: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub cooldown: String,
    pub channels: Vec<String>,
    pub enabled: bool,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The rule's current state.
    pub status: CurrentState,
}

impl From<&StoredRule> for AlertRule {
    fn from(rule: &StoredRule) -> Self {
        let spec = &rule.spec;
        Self {
            id: rule.id.clone(),
            name: spec.name.clone(),
            model: spec.model.clone(),
            version: spec.version,
            metric: spec.metric,
            feature: spec.feature.clone(),
            comparison: spec.comparison,
            threshold: spec.threshold,
            window: format_duration(spec.window_secs),
            for_: format_duration(spec.for_secs),
            cooldown: format_duration(spec.cooldown_secs),
            channels: spec.channels.clone(),
            enabled: spec.enabled,
            created_by: rule.created_by.clone(),
            created_at: db::rfc3339(rule.created_at),
            updated_at: db::rfc3339(rule.updated_at),
            status: rule.current(),
        }
    }
}

/// `30s`, `5m`, `2h`, `1d` → seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(unit)
}

/// Seconds in the largest unit that divides them exactly.
pub fn format_duration(secs: i64) -> String {
    for (unit, suffix) in [(86_400, "d"), (3_600, "h"), (60, "m")] {
        if secs != 0 && secs % unit == 0 {
            return format!("{}{suffix}", secs / unit);
        }
    }
    format!("{secs}s")
}

fn duration(field: &str, text: Option<&str>, min: i64, max: i64) -> Result<i64> {
    let Some(text) = text else { return Ok(0) };
    match parse_duration(text) {
        Some(secs) if (min..=max).contains(&secs) => Ok(secs),
        _ => Err(invalid_field(
            field,
            format!(
                "{field} must be a duration like 30s, 5m, 2h or 1d, from {} to {}",
                format_duration(min),
                format_duration(max)
            ),
        )),
    }
}

fn printable(field: &str, text: &str, max: usize) -> Result<()> {
    if text.trim().is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(invalid_field(
            field,
            format!("{field} must be 1-{max} printable characters"),
        ));
    }
    Ok(())
}

/// Checks a request against the rules of rules; the channels must be webhooks of the
/// organisation (another organisation's ids are as unknown as missing ones).
pub async fn validate(conn: &Reader, org_id: &str, request: &RuleRequest) -> Result<RuleSpec> {
    printable("name", &request.name, 128)?;
    if let Some(model) = &request.model {
        printable("model", model, 256)?;
    }
    let metric = Metric::parse(&request.metric).ok_or_else(|| {
        let names: Vec<_> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        invalid_field(
            "metric",
            format!("metric must be one of {}", names.join(", ")),
        )
    })?;
    let comparison = Comparison::parse(&request.comparison)
        .ok_or_else(|| invalid_field("comparison", "comparison must be >, >=, < or <="))?;
    if !request.threshold.is_finite() {
        return Err(invalid_field(
            "threshold",
            "threshold must be a finite number",
        ));
    }
    if request.version.is_some() && request.model.is_none() {
        return Err(invalid_field("version", "a version needs its model"));
    }
    if request.version.is_some_and(|v| v < 1) {
        return Err(invalid_field("version", "versions are numbered from 1"));
    }
    if metric == Metric::QuotaUse && request.model.is_some() {
        return Err(invalid_field(
            "model",
            "quota_use is the organisation's: it takes no model",
        ));
    }
    match (&request.feature, metric) {
        (None, Metric::FeatureDriftScore) => {
            return Err(invalid_field(
                "feature",
                "feature_drift_score needs the feature",
            ));
        }
        (Some(feature), Metric::FeatureDriftScore) => printable("feature", feature, 256)?,
        (Some(_), _) => {
            return Err(invalid_field(
                "feature",
                "only feature_drift_score takes a feature",
            ));
        }
        (None, _) => {}
    }
    let window_secs = duration("window", Some(&request.window), 1, MAX_WINDOW_SECS)?;
    let for_secs = duration("for", request.for_.as_deref(), 0, MAX_WAIT_SECS)?;
    let cooldown_secs = duration("cooldown", request.cooldown.as_deref(), 0, MAX_WAIT_SECS)?;
    let mut channels: Vec<String> = Vec::new();
    for id in &request.channels {
        if !channels.contains(id) {
            channels.push(id.clone());
        }
    }
    if channels.len() > MAX_CHANNELS {
        return Err(invalid_field(
            "channels",
            format!("a rule notifies at most {MAX_CHANNELS} webhooks"),
        ));
    }
    for id in &channels {
        if webhooks::get(conn, org_id, id).await?.is_none() {
            return Err(invalid_field(
                "channels",
                format!("no webhook {id:?} in this organisation"),
            ));
        }
    }
    Ok(RuleSpec {
        name: request.name.trim().to_owned(),
        model: request.model.clone(),
        version: request.version,
        metric,
        feature: request.feature.clone(),
        comparison,
        threshold: request.threshold,
        window_secs,
        for_secs,
        cooldown_secs,
        channels,
        enabled: request.enabled.unwrap_or(true),
    })
}

fn audit_details(spec: &RuleSpec) -> serde_json::Value {
    json!({
        "name": spec.name,
        "model": spec.model,
        "version": spec.version,
        "metric": spec.metric.as_str(),
        "feature": spec.feature,
        "comparison": spec.comparison.as_str(),
        "threshold": spec.threshold,
        "window": format_duration(spec.window_secs),
        "for": format_duration(spec.for_secs),
        "cooldown": format_duration(spec.cooldown_secs),
        "channels": spec.channels,
        "enabled": spec.enabled,
    })
}

fn name_taken(error: crate::db::DbError, name: &str) -> Error {
    if db::is_unique_violation(&error) {
        Error::new(
            ErrorCode::AlreadyExists,
            format!("an alert rule named {name:?} already exists"),
        )
        .with_details(json!({ "field": "name" }))
    } else {
        error.into()
    }
}

/// One rule of the organisation (`not_found` for another organisation's).
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<StoredRule> {
    rules::get(conn, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("alert rule"))
}

/// Creates a rule.
pub async fn create(tx: &Writer, acting: &Acting<'_>, request: &RuleRequest) -> Result<StoredRule> {
    let spec = validate(tx, acting.org_id, request).await?;
    let id = rules::insert(tx, acting.org_id, &spec, &acting.actor)
        .await
        .map_err(|e| name_taken(e, &spec.name))?;
    acting
        .audit(
            tx,
            "alert.rule.created",
            &format!("alert_rule:{id}"),
            audit_details(&spec),
        )
        .await?;
    get(tx, acting.org_id, &id).await
}

/// Replaces a rule's definition. If what it measures changed, its state starts over.
pub async fn replace(
    tx: &Writer,
    acting: &Acting<'_>,
    id: &str,
    request: &RuleRequest,
) -> Result<StoredRule> {
    let old = get(tx, acting.org_id, id).await?;
    let spec = validate(tx, acting.org_id, request).await?;
    let o = &old.spec;
    let reset = (
        o.metric,
        &o.model,
        o.version,
        &o.feature,
        o.comparison,
        o.window_secs,
    ) != (
        spec.metric,
        &spec.model,
        spec.version,
        &spec.feature,
        spec.comparison,
        spec.window_secs,
    ) || o.threshold != spec.threshold;
    rules::update(tx, acting.org_id, id, &spec, reset)
        .await
        .map_err(|e| name_taken(e, &spec.name))?;
    acting
        .audit(
            tx,
            "alert.rule.updated",
            &format!("alert_rule:{id}"),
            audit_details(&spec),
        )
        .await?;
    get(tx, acting.org_id, id).await
}

/// Deletes a rule; its history stays.
pub async fn delete(tx: &Writer, acting: &Acting<'_>, id: &str) -> Result<()> {
    let old = get(tx, acting.org_id, id).await?;
    rules::delete(tx, acting.org_id, id).await?;
    acting
        .audit(
            tx,
            "alert.rule.deleted",
            &format!("alert_rule:{id}"),
            json!({ "name": old.spec.name }),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_in_units() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("2h"), Some(7_200));
        assert_eq!(parse_duration("1d"), Some(86_400));
        for bad in ["", "m", "5", "-5m", "1.5h", "5 m", "5w", "9999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(300), "5m");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(172_800), "2d");
    }
}
