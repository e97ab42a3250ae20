//! What a rule's metric is worth at a time.
//!
//! A [`MetricSource`] answers for the metrics it measures; [`MetricSources`] holds one per
//! metric. From metering ([`UsageMetrics`]): the error rate, p99 latency and p99 cold-load
//! time of the usage events in the rule's window, and the share of the plan's monthly
//! calls quota used; from ground truth ([`FeedbackMetrics`]): accuracy. Drift lives in the
//! serving layer, which sets its source with [`MetricSources::set`]; until one is set a
//! metric answers [`Observation::NoData`] with a reason ([`NotMeasuredYet`]), never a
//! made-up value.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use wisp_monitoring::QuantileSketch;

use crate::alerts_rows::Metric;
use crate::alerts_rows::rules::StoredRule;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::metering::period::Period;
use crate::metering::store;
use crate::metering::window::{self, WindowFilter};
use crate::plans;

/// A metric's value, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Value(f64),
    NoData(String),
}

impl Observation {
    pub fn value(&self) -> Option<f64> {
        match self {
            Observation::Value(v) => Some(*v),
            Observation::NoData(_) => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Observation::Value(_) => None,
            Observation::NoData(reason) => Some(reason),
        }
    }
}

/// Measures metrics of a rule's scope (organisation, model, version) over its window
/// ending at `at` (Unix seconds, exclusive).
#[async_trait]
pub trait MetricSource: Send + Sync {
    async fn observe(&self, db: &Db, rule: &StoredRule, at: i64) -> Result<Observation>;
}

/// The source of each metric.
#[derive(Clone)]
pub struct MetricSources {
    sources: HashMap<Metric, Arc<dyn MetricSource>>,
}

impl std::fmt::Debug for MetricSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricSources").finish_non_exhaustive()
    }
}

impl Default for MetricSources {
    /// What wisp measures today.
    fn default() -> Self {
        let usage: Arc<dyn MetricSource> = Arc::new(UsageMetrics);
        let mut sources: HashMap<Metric, Arc<dyn MetricSource>> = HashMap::new();
        for metric in [
            Metric::ErrorRate,
            Metric::LatencyP99Ms,
            Metric::QuotaUse,
            Metric::ColdLoadMs,
        ] {
            sources.insert(metric, Arc::clone(&usage));
        }
        let missing = [
            (Metric::DriftShare, "drift is not measured by this process"),
            (
                Metric::FeatureDriftScore,
                "drift is not measured by this process",
            ),
        ];
        sources.insert(Metric::Accuracy, Arc::new(FeedbackMetrics));
        for (metric, reason) in missing {
            sources.insert(metric, Arc::new(NotMeasuredYet(reason)));
        }
        Self { sources }
    }
}

impl MetricSources {
    /// Measures `metric` with `source` from now on.
    pub fn set(&mut self, metric: Metric, source: Arc<dyn MetricSource>) {
        self.sources.insert(metric, source);
    }

    /// The rule's metric at `at`.
    pub async fn observe(&self, db: &Db, rule: &StoredRule, at: i64) -> Result<Observation> {
        match self.sources.get(&rule.spec.metric) {
            Some(source) => source.observe(db, rule, at).await,
            None => Ok(Observation::NoData("not measured".into())),
        }
    }
}

/// `accuracy`: of the model's predictions made in the window that have feedback (of the
/// rule's version, or of every version weighted by their counts), the share whose label
/// was right. A rule without a model, a regressor, or a window without feedback has no
/// data.
#[derive(Debug, Clone, Copy)]
pub struct FeedbackMetrics;

#[async_trait]
impl MetricSource for FeedbackMetrics {
    async fn observe(&self, db: &Db, rule: &StoredRule, at: i64) -> Result<Observation> {
        let spec = &rule.spec;
        let Some(name) = spec.model.as_deref() else {
            return Ok(Observation::NoData("accuracy needs a model".into()));
        };
        let conn = db.read().await;
        let Some(model) = crate::registry::get_model(&conn, &rule.org_id, name).await? else {
            return Ok(Observation::NoData("no such model".into()));
        };
        let (from_ms, to_ms) = (
            at.saturating_sub(spec.window_secs).saturating_mul(1_000),
            at.saturating_mul(1_000),
        );
        let outcomes = crate::ground_truth::rows::outcomes(
            &conn,
            &rule.org_id,
            &model.id,
            from_ms,
            to_ms,
            spec.version,
        )
        .await?;
        drop(conn);
        let windows = crate::ground_truth::report::Windows {
            from_ms,
            to_ms,
            step_ms: (to_ms - from_ms).max(1),
        };
        let performance = crate::ground_truth::report::performance(&outcomes, windows, None);
        let (right, counted) = performance
            .overall
            .iter()
            .filter_map(|v| v.classification.as_ref().map(|c| (c.accuracy, v.count)))
            .fold((0.0, 0u64), |(right, counted), (accuracy, count)| {
                (right + accuracy * count as f64, counted + count)
            });
        Ok(if counted == 0 {
            Observation::NoData("no classified predictions with feedback in the window".into())
        } else {
            Observation::Value(right / counted as f64)
        })
    }
}

/// A metric wisp does not measure yet: always no data, with the reason.
#[derive(Debug, Clone, Copy)]
pub struct NotMeasuredYet(pub &'static str);

#[async_trait]
impl MetricSource for NotMeasuredYet {
    async fn observe(&self, _: &Db, _: &StoredRule, _: i64) -> Result<Observation> {
        Ok(Observation::NoData(self.0.to_owned()))
    }
}

/// Error rate, p99 latency, p99 cold-load time and quota use, from metering.
///
/// The cold-load time is, of the calls in the window that had to load their component or
/// graph, the 99th percentile of the time the load took (milliseconds); a window without
/// a cold start has no data.
///
/// The error rate counts every metered call whose outcome is not `ok`: what failed in or
/// around the model (`fuel_exhausted`, `memory_limit_exceeded`, `deadline_exceeded`,
/// `guest_trap`, `output_too_large`, `inference_failed`, `overloaded`, `internal`, a
/// model's own `invalid_input`) and calls refused by the calls quota (`quota_exceeded`).
/// Requests refused before a model was chosen and run — a malformed body, inputs that do
/// not match the signature, rate limits, an unknown or undeployed model — are not metered,
/// so they count neither as calls nor as errors.
#[derive(Debug, Clone, Copy)]
pub struct UsageMetrics;

#[async_trait]
impl MetricSource for UsageMetrics {
    async fn observe(&self, db: &Db, rule: &StoredRule, at: i64) -> Result<Observation> {
        let spec = &rule.spec;
        let filter = WindowFilter {
            org_id: &rule.org_id,
            model: spec.model.as_deref(),
            version: spec.version,
            from_ms: at.saturating_sub(spec.window_secs).saturating_mul(1_000),
            to_ms: at.saturating_mul(1_000),
        };
        let conn = db.read().await;
        Ok(match spec.metric {
            Metric::ErrorRate => {
                let counts = window::counts(&conn, &filter).await?;
                if counts.calls == 0 {
                    Observation::NoData("no calls in the window".into())
                } else {
                    Observation::Value(counts.failed as f64 / counts.calls as f64)
                }
            }
            Metric::LatencyP99Ms => {
                let mut sketch = QuantileSketch::new();
                window::for_each_wall_us(&conn, &filter, |us| sketch.add(us as f64 / 1_000.0))
                    .await?;
                match sketch.quantile(0.99).map_err(Error::internal)? {
                    Some(p99) => Observation::Value(p99),
                    None => Observation::NoData("no calls in the window".into()),
                }
            }
            Metric::ColdLoadMs => {
                let mut sketch = QuantileSketch::new();
                window::for_each_cold_load_us(&conn, &filter, |us| sketch.add(us as f64 / 1_000.0))
                    .await?;
                match sketch.quantile(0.99).map_err(Error::internal)? {
                    Some(p99) => Observation::Value(p99),
                    None => Observation::NoData("no cold starts in the window".into()),
                }
            }
            Metric::QuotaUse => {
                let plan = plans::of_org(&conn, &rule.org_id).await?;
                match plan.quotas.calls_per_month {
                    None | Some(0) => {
                        Observation::NoData("the plan has no monthly calls quota".into())
                    }
                    Some(limit) => {
                        let period = Period::containing(at);
                        let used = store::totals(&conn, &rule.org_id, period.start, period.end)
                            .await?
                            .billed_calls;
                        Observation::Value(used as f64 / limit as f64)
                    }
                }
            }
            other => Observation::NoData(format!("{} is not measured from usage", other.as_str())),
        })
    }
}
