//! Drift for alert rules: `drift_share` and `feature_drift_score` measured from the
//! model's drift windows against its reference, as the drift report computes them.
//!
//! A rule's window `[at − window, at)` takes the drift windows that start in it, merged
//! (the last one may still be filling). The model's reference and settings are per model,
//! so a rule's `version` does not narrow drift. Without a model, a ready reference, or
//! sampled calls in the window, the metric has no data.

use async_trait::async_trait;

use crate::alerts_rows::Metric;
use crate::alerts_rows::rules::StoredRule;
use crate::db::Db;
use crate::domain::alerts::{MetricSource, MetricSources, Observation};
use crate::error::Result;

use super::{store, timeline};

/// The drift metrics' source.
#[derive(Debug, Clone, Copy)]
pub struct DriftMetrics;

impl DriftMetrics {
    /// `sources` with the drift metrics measured.
    pub fn install(sources: &mut MetricSources) {
        let source = std::sync::Arc::new(Self);
        sources.set(Metric::DriftShare, source.clone());
        sources.set(Metric::FeatureDriftScore, source);
    }
}

#[async_trait]
impl MetricSource for DriftMetrics {
    async fn observe(&self, db: &Db, rule: &StoredRule, at: i64) -> Result<Observation> {
        let spec = &rule.spec;
        let Some(name) = spec.model.as_deref() else {
            return Ok(Observation::NoData("drift needs a model".into()));
        };
        let conn = db.read().await;
        let Some(model) = crate::registry::get_model(&conn, &rule.org_id, name).await? else {
            return Ok(Observation::NoData("no such model".into()));
        };
        let reference = match store::reference(&conn, &rule.org_id, &model.id).await? {
            Some(reference) if reference.status == "ready" => reference,
            Some(_) => {
                return Ok(Observation::NoData(
                    "the reference is still collecting".into(),
                ));
            }
            None => {
                return Ok(Observation::NoData(
                    "the model has no drift reference".into(),
                ));
            }
        };
        let settings = store::settings(&conn, &rule.org_id, &model.id).await?;
        let from = at.saturating_sub(spec.window_secs);
        let windows = store::windows(&conn, &rule.org_id, &model.id, from, at).await?;
        drop(conn);
        let comparison = timeline::report(&reference.profile, &windows, &settings.tests);
        if comparison.rows == 0 {
            return Ok(Observation::NoData("no sampled calls in the window".into()));
        }
        Ok(match spec.metric {
            Metric::DriftShare => {
                if comparison.features.iter().all(|f| f.skipped.is_some()) {
                    Observation::NoData("no feature could be tested in the window".into())
                } else {
                    Observation::Value(comparison.drifted_share)
                }
            }
            Metric::FeatureDriftScore => {
                let Some(feature) = spec.feature.as_deref() else {
                    return Ok(Observation::NoData("the rule names no feature".into()));
                };
                let verdict = comparison
                    .features
                    .iter()
                    .chain(&comparison.prediction)
                    .find(|v| v.feature == feature);
                match verdict {
                    None => {
                        Observation::NoData(format!("the reference has no feature {feature:?}"))
                    }
                    Some(v) => match (v.score, &v.skipped) {
                        (Some(score), _) => Observation::Value(score),
                        (None, Some(why)) => Observation::NoData(why.clone()),
                        (None, None) => Observation::NoData("not tested".into()),
                    },
                }
            }
            other => Observation::NoData(format!("{} is not measured from drift", other.as_str())),
        })
    }
}
