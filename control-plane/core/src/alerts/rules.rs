//! Alert rule rows: the definition a user writes and the state the evaluator keeps.

use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use super::{AlertState, Comparison, Metric, rfc3339};
use crate::db::{self, DbError, Reader, Writer};

/// A rule as defined (validated by the domain operation that stores it).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    /// `None`: every model of the organisation.
    pub model: Option<String>,
    /// `None`: every version (of `model`).
    pub version: Option<i64>,
    pub metric: Metric,
    /// The feature of `feature_drift_score`.
    pub feature: Option<String>,
    pub comparison: Comparison,
    pub threshold: f64,
    pub window_secs: i64,
    pub for_secs: i64,
    pub cooldown_secs: i64,
    /// Webhook ids.
    pub channels: Vec<String>,
    pub enabled: bool,
}

/// The evaluator's memory of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RuleStatus {
    pub state: Option<AlertState>,
    pub state_since: Option<i64>,
    pub pending_since: Option<i64>,
    pub last_value: Option<f64>,
    pub last_evaluated_at: Option<i64>,
    pub last_fired_at: Option<i64>,
    /// Whether the current firing episode was notified (its resolution is then too).
    pub episode_notified: bool,
}

impl RuleStatus {
    pub fn state(&self) -> AlertState {
        self.state.unwrap_or(AlertState::Ok)
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub id: String,
    pub org_id: String,
    pub spec: RuleSpec,
    pub status: RuleStatus,
    pub last_reason: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A rule's current state as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrentState {
    pub state: AlertState,
    /// RFC 3339: when the rule entered this state.
    pub since: Option<String>,
    /// The last evaluated value (`null` without data).
    pub value: Option<f64>,
    /// Why there is no value, for `no_data`.
    pub reason: Option<String>,
    /// RFC 3339.
    pub last_evaluated_at: Option<String>,
}

impl StoredRule {
    pub fn current(&self) -> CurrentState {
        CurrentState {
            state: self.status.state(),
            since: rfc3339(self.status.state_since),
            value: self.status.last_value,
            reason: self.last_reason.clone(),
            last_evaluated_at: rfc3339(self.status.last_evaluated_at),
        }
    }
}

const COLUMNS: &str = "id, org_id, name, model, version, metric, feature, comparison, threshold,
    window_secs, for_secs, cooldown_secs, channels, enabled, created_by, created_at, updated_at,
    state, state_since, pending_since, last_value, last_reason, last_evaluated_at, last_fired_at,
    episode_notified";

fn from_row(row: &libsql::Row) -> Result<StoredRule, DbError> {
    let text = |i| row.get::<String>(i);
    let corrupt = |what: &str| DbError::Corrupt(format!("alert rule {what}"));
    let metric = Metric::parse(&text(5)?).ok_or_else(|| corrupt("metric"))?;
    let comparison = Comparison::parse(&text(7)?).ok_or_else(|| corrupt("comparison"))?;
    let channels: Vec<String> =
        serde_json::from_str(&text(12)?).map_err(|_| corrupt("channels"))?;
    Ok(StoredRule {
        id: text(0)?,
        org_id: text(1)?,
        spec: RuleSpec {
            name: text(2)?,
            model: row.get(3)?,
            version: row.get(4)?,
            metric,
            feature: row.get(6)?,
            comparison,
            threshold: row.get(8)?,
            window_secs: row.get(9)?,
            for_secs: row.get(10)?,
            cooldown_secs: row.get(11)?,
            channels,
            enabled: row.get::<i64>(13)? != 0,
        },
        created_by: text(14)?,
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
        status: RuleStatus {
            state: AlertState::parse(&text(17)?),
            state_since: row.get(18)?,
            pending_since: row.get(19)?,
            last_value: row.get(20)?,
            last_evaluated_at: row.get(22)?,
            last_fired_at: row.get(23)?,
            episode_notified: row.get::<i64>(24)? != 0,
        },
        last_reason: row.get(21)?,
    })
}

fn channels_json(spec: &RuleSpec) -> String {
    serde_json::Value::from(spec.channels.clone()).to_string()
}

/// Stores a new rule (state `ok`, never evaluated). A duplicate name is a unique violation.
pub async fn insert(
    conn: &Writer,
    org_id: &str,
    spec: &RuleSpec,
    created_by: &str,
) -> Result<String, DbError> {
    let id = db::new_id();
    let now = db::now();
    conn.execute(
        &format!(
            "INSERT INTO alert_rules ({COLUMNS}) VALUES
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16,
              'ok', NULL, NULL, NULL, NULL, NULL, NULL, 0)"
        ),
        params![
            id.as_str(),
            org_id,
            spec.name.as_str(),
            spec.model.as_deref(),
            spec.version,
            spec.metric.as_str(),
            spec.feature.as_deref(),
            spec.comparison.as_str(),
            spec.threshold,
            spec.window_secs,
            spec.for_secs,
            spec.cooldown_secs,
            channels_json(spec),
            i64::from(spec.enabled),
            created_by,
            now
        ],
    )
    .await?;
    Ok(id)
}

/// Replaces a rule's definition. Its state is kept unless what it measures changed
/// (metric, scope, comparison, threshold, window): then it starts again from `ok`.
pub async fn update(
    conn: &Writer,
    org_id: &str,
    id: &str,
    spec: &RuleSpec,
    reset_state: bool,
) -> Result<bool, DbError> {
    let reset = if reset_state {
        ", state = 'ok', state_since = NULL, pending_since = NULL, last_value = NULL,
           last_reason = NULL, episode_notified = 0"
    } else {
        ""
    };
    let changed = conn
        .execute(
            &format!(
                "UPDATE alert_rules SET name = ?3, model = ?4, version = ?5, metric = ?6,
                    feature = ?7, comparison = ?8, threshold = ?9, window_secs = ?10,
                    for_secs = ?11, cooldown_secs = ?12, channels = ?13, enabled = ?14,
                    updated_at = ?15 {reset}
                 WHERE org_id = ?1 AND id = ?2"
            ),
            params![
                org_id,
                id,
                spec.name.as_str(),
                spec.model.as_deref(),
                spec.version,
                spec.metric.as_str(),
                spec.feature.as_deref(),
                spec.comparison.as_str(),
                spec.threshold,
                spec.window_secs,
                spec.for_secs,
                spec.cooldown_secs,
                channels_json(spec),
                i64::from(spec.enabled),
                db::now()
            ],
        )
        .await?;
    Ok(changed > 0)
}

/// Deletes a rule (its history stays).
pub async fn delete(conn: &Writer, org_id: &str, id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "DELETE FROM alert_rules WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
        )
        .await?;
    Ok(changed > 0)
}

/// One rule of an organisation.
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<Option<StoredRule>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM alert_rules WHERE org_id = ?1 AND id = ?2"),
            params![org_id, id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The rules of an organisation, by name.
pub async fn list(conn: &Reader, org_id: &str) -> Result<Vec<StoredRule>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM alert_rules WHERE org_id = ?1 ORDER BY name"),
            params![org_id],
        )
        .await?;
    db::collect(rows, from_row).await
}

/// Every enabled rule of every organisation: what the evaluator evaluates.
pub async fn enabled(conn: &Reader) -> Result<Vec<StoredRule>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM alert_rules WHERE enabled = 1 ORDER BY org_id, id"),
            (),
        )
        .await?;
    db::collect(rows, from_row).await
}

/// Names of the organisation's rules that notify `webhook_id`.
pub async fn using_webhook(
    conn: &Reader,
    org_id: &str,
    webhook_id: &str,
) -> Result<Vec<String>, DbError> {
    let rows = conn
        .query(
            "SELECT name FROM alert_rules, json_each(alert_rules.channels)
             WHERE org_id = ?1 AND json_each.value = ?2 ORDER BY name",
            params![org_id, webhook_id],
        )
        .await?;
    db::collect(rows, |row| row.get::<String>(0).map_err(DbError::from)).await
}

/// Stores the outcome of evaluating `rule` at `at`, only if no evaluation at `at` or later
/// was stored (by this process or another node): `false` if one was, and then nothing
/// changed. This guard makes an evaluation idempotent per (rule, time).
pub async fn record_evaluation(
    conn: &Writer,
    rule_id: &str,
    at: i64,
    status: &RuleStatus,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE alert_rules SET state = ?2, state_since = ?3, pending_since = ?4,
                last_value = ?5, last_reason = ?6, last_evaluated_at = ?7, last_fired_at = ?8,
                episode_notified = ?9
             WHERE id = ?1 AND (last_evaluated_at IS NULL OR last_evaluated_at < ?7)",
            params![
                rule_id,
                status.state().as_str(),
                status.state_since,
                status.pending_since,
                status.last_value,
                reason,
                at,
                status.last_fired_at,
                i64::from(status.episode_notified)
            ],
        )
        .await?;
    Ok(changed > 0)
}
