//! The analytics query: a model's calls over a time range, one point per step and
//! version, with per-version totals and a total for the whole range.
//!
//! Every step (`minute`, `hour`, `day`) is a stored resolution, so a point is one stored
//! row, read as it was merged by the drainer: the sketches of a bucket are those of all
//! its calls, not an average of finer quantiles. Totals merge the points' sketches, which
//! is exact for the same reason.

use std::collections::BTreeMap;

use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use super::rollup::{Resolution, Rollup};
use crate::db::{self, DbError, Reader};

/// Most steps one query may cover (e.g. a day of minutes, 62 days of hours).
pub const MAX_POINTS: i64 = 1_500;

/// What to read. Times are Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct AnalyticsQuery<'a> {
    pub org_id: &'a str,
    pub model_id: &'a str,
    /// First second of the range.
    pub from: i64,
    /// End of the range, exclusive.
    pub to: i64,
    pub step: Resolution,
    /// One version only; all by default.
    pub version: Option<i64>,
}

impl AnalyticsQuery<'_> {
    /// The range widened to whole steps: `from` down to its step's start, `to` up to the
    /// end of the step it falls in, so every point is a whole bucket.
    pub fn aligned(self) -> Self {
        let to = self.step.start(self.to - 1) + self.step.seconds();
        Self {
            from: self.step.start(self.from),
            to: to.max(self.step.start(self.from)),
            ..self
        }
    }

    /// How many steps the (aligned) range covers.
    pub fn steps(&self) -> i64 {
        let aligned = self.aligned();
        (aligned.to - aligned.from) / self.step.seconds()
    }
}

/// Latency quantiles, in milliseconds; `None` without calls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// Inference-time quantiles, in milliseconds; `None` when no call ran the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct InferenceMs {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// What the analytics API answers for a set of calls.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    /// Every call, whatever its outcome.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Failed calls by error code (`docs/errors.md`).
    pub errors_by_code: BTreeMap<String, u64>,
    /// `errors / calls`; `None` without calls.
    pub error_rate: Option<f64>,
    /// End-to-end wall time of the calls as metered (1 % relative accuracy).
    pub latency_ms: LatencyMs,
    /// Time in the inference backend of the calls that ran the model.
    pub inference_ms: InferenceMs,
    /// Compute units the calls consumed (failed calls included, cache hits none).
    pub compute_units: u64,
    pub cache_hits: u64,
    /// `cache_hits / calls`; `None` without calls.
    pub cache_hit_rate: Option<f64>,
    /// Calls for which the runtime compiled the component or loaded the graph.
    pub cold_starts: u64,
}

impl From<&Rollup> for Stats {
    fn from(rollup: &Rollup) -> Self {
        let ms = |sketch: &wisp_monitoring::QuantileSketch, q: f64| {
            sketch.quantile(q).ok().flatten().map(|s| s * 1_000.0)
        };
        let rate = |n: u64| (rollup.calls > 0).then(|| n as f64 / rollup.calls as f64);
        let errors = rollup.errors();
        Self {
            calls: rollup.calls,
            errors,
            errors_by_code: rollup.errors_by_code.clone(),
            error_rate: rate(errors),
            latency_ms: LatencyMs {
                p50: ms(&rollup.latency, 0.5),
                p95: ms(&rollup.latency, 0.95),
                p99: ms(&rollup.latency, 0.99),
            },
            inference_ms: InferenceMs {
                p50: ms(&rollup.inference, 0.5),
                p99: ms(&rollup.inference, 0.99),
            },
            compute_units: rollup.compute_units,
            cache_hits: rollup.cache_hits,
            cache_hit_rate: rate(rollup.cache_hits),
            cold_starts: rollup.cold_starts,
        }
    }
}

/// One step of one version (steps without calls have no point).
#[derive(Debug, Clone)]
pub struct Point {
    /// Start of the step, Unix seconds.
    pub start: i64,
    pub version: i64,
    pub rollup: Rollup,
}

/// One version over the whole range.
#[derive(Debug, Clone)]
pub struct VersionTotal {
    pub version: i64,
    pub rollup: Rollup,
}

/// The answer to an [`AnalyticsQuery`].
#[derive(Debug, Clone)]
pub struct Analytics {
    /// The aligned range.
    pub from: i64,
    pub to: i64,
    pub step: Resolution,
    /// By step, then version.
    pub points: Vec<Point>,
    /// By version.
    pub versions: Vec<VersionTotal>,
    /// Every version over the whole range.
    pub total: Rollup,
}

/// Reads a model's analytics: the rows of the step's resolution in the aligned range,
/// scoped by organisation and model.
pub async fn query(conn: &Reader, query: AnalyticsQuery<'_>) -> Result<Analytics, DbError> {
    let query = query.aligned();
    let version_filter = if query.version.is_some() {
        "AND version = ?6"
    } else {
        "AND ?6 IS NULL"
    };
    let rows = conn
        .query(
            &format!(
                "SELECT bucket_start, version, calls, errors_by_code, latency, inference,
                    compute_units, cache_hits, cold_starts
                 FROM model_analytics
                 WHERE org_id = ?1 AND model_id = ?2 AND resolution = ?3
                    AND bucket_start >= ?4 AND bucket_start < ?5 {version_filter}
                 ORDER BY bucket_start, version"
            ),
            params![
                query.org_id,
                query.model_id,
                query.step.as_str(),
                query.from,
                query.to,
                query.version
            ],
        )
        .await?;
    let points = db::collect(rows, |row| {
        Ok(Point {
            start: row.get(0)?,
            version: row.get(1)?,
            rollup: Rollup::from_row(row, 2)?,
        })
    })
    .await?;
    let mut versions: BTreeMap<i64, Rollup> = BTreeMap::new();
    let mut total = Rollup::default();
    for point in &points {
        versions
            .entry(point.version)
            .or_default()
            .merge(&point.rollup);
        total.merge(&point.rollup);
    }
    Ok(Analytics {
        from: query.from,
        to: query.to,
        step: query.step,
        points,
        versions: versions
            .into_iter()
            .map(|(version, rollup)| VersionTotal { version, rollup })
            .collect(),
        total,
    })
}
