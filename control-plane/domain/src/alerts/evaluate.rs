//! Evaluating rules: what a rule's metric is worth now, its next state, and the history
//! and notifications of a change, stored once.
//!
//! An evaluation is identified by (rule, time): [`evaluate_rule`] stores its outcome only
//! if no evaluation of that rule at that time or later was stored, in one transaction
//! with the history entry and the queued deliveries. Running it twice, or on two nodes,
//! changes nothing the second time. Scale-out then only needs a lease per rule (so the
//! metric is not measured twice), not correctness fixes.

use crate::alerts_rows::rules::{self, StoredRule};
use crate::alerts_rows::{deliveries, history};
use crate::db::{self, Db};
use crate::error::Result;
use wisp_core::orgs;

use super::metrics::MetricSources;
use super::payload::{self, AlertMessage};
use super::state::{self, Step};

/// What evaluating every enabled rule came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluated {
    pub rules: usize,
    pub transitions: usize,
    pub notifications: usize,
}

/// Settings of evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvaluationSettings {
    /// `alerts.public_url`, for the link in notifications.
    pub public_url: Option<String>,
}

/// Evaluates every enabled rule of every organisation at `at` (Unix seconds). A rule
/// that fails to evaluate is logged and skipped; the others still are.
pub async fn evaluate_all(
    db: &Db,
    sources: &MetricSources,
    settings: &EvaluationSettings,
    at: i64,
) -> Result<Evaluated> {
    let enabled = rules::enabled(&*db.read().await).await?;
    let mut done = Evaluated::default();
    for rule in &enabled {
        match evaluate_rule(db, sources, settings, rule, at).await {
            Ok(Some(step)) => {
                done.rules += 1;
                done.transitions += usize::from(step.transition.is_some());
                done.notifications += if step.notify.is_some() {
                    rule.spec.channels.len()
                } else {
                    0
                };
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(
                rule.id = %rule.id,
                error.code = error.code().as_str(),
                error = %error.message(),
                "alert rule evaluation failed"
            ),
        }
    }
    Ok(done)
}

/// Evaluates one rule at `at`: `None` if it was already evaluated at `at` or later.
pub async fn evaluate_rule(
    db: &Db,
    sources: &MetricSources,
    settings: &EvaluationSettings,
    rule: &StoredRule,
    at: i64,
) -> Result<Option<Step>> {
    if rule.status.last_evaluated_at.is_some_and(|last| last >= at) {
        return Ok(None);
    }
    let observation = sources.observe(db, rule, at).await?;
    let step = state::step(&rule.spec, &rule.status, observation.value(), at);
    let reason = observation.reason();
    // Alert rows are not memoised: the write need not make the hot path's memos stale.
    let stored = db
        .write_unmemoised()
        .await
        .transaction(async |tx| -> Result<bool> {
            if !rules::record_evaluation(tx, &rule.id, at, &step.status, reason).await? {
                return Ok(false);
            }
            let Some((from, to)) = step.transition else {
                return Ok(true);
            };
            let notified = step.notify.is_some() && !rule.spec.channels.is_empty();
            history::insert(
                tx,
                &history::Transition {
                    org_id: &rule.org_id,
                    rule_id: &rule.id,
                    rule_name: &rule.spec.name,
                    from,
                    to,
                    value: observation.value(),
                    threshold: rule.spec.threshold,
                    reason,
                    notified,
                    at,
                },
            )
            .await?;
            if let Some(notify) = step.notify {
                let slug = orgs::find_by_id(tx, &rule.org_id)
                    .await?
                    .map(|org| org.slug)
                    .unwrap_or_default();
                let body = payload::alert(&AlertMessage {
                    event_type: notify.event_type(),
                    org_slug: &slug,
                    rule,
                    from,
                    to,
                    value: observation.value(),
                    since: step.status.state_since.unwrap_or(at),
                    at,
                    public_url: settings.public_url.as_deref(),
                })
                .to_string();
                for channel in &rule.spec.channels {
                    let id = format!("msg_{}", db::new_id().replace('-', ""));
                    deliveries::enqueue(
                        tx,
                        &id,
                        &rule.org_id,
                        channel,
                        notify.event_type(),
                        &body,
                        db::now(),
                    )
                    .await?;
                }
            }
            Ok(true)
        })
        .await?;
    Ok(stored.then_some(step))
}
