//! Rollups: the sums and sketches of the calls of one model version in one time bucket,
//! aggregated from usage events and merged into their stored rows.

use std::collections::BTreeMap;

use libsql::params;
use wisp_monitoring::QuantileSketch;

use crate::db::{DbError, Writer};
use crate::event::{OK, UsageEvent};

/// The length of a rollup's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    /// `minute`, `hour` or `day`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Seconds in one bucket.
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// Start of the bucket containing `at` (Unix seconds; days are UTC days).
    pub fn start(self, at: i64) -> i64 {
        at - at.rem_euclid(self.seconds())
    }
}

/// What a rollup row is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupKey {
    pub org_id: String,
    pub model_id: String,
    pub resolution: Resolution,
    /// Unix seconds.
    pub bucket_start: i64,
    pub version: i64,
}

/// The calls of one model version in one bucket (or any merge of such).
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    /// Every call, whatever its outcome (shadow copies of the version included).
    pub calls: u64,
    /// Failed calls by error code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// End-to-end wall time of every call as metered, in seconds.
    pub latency: QuantileSketch,
    /// Time in the inference backend of the calls that ran the model, in seconds.
    pub inference: QuantileSketch,
    /// Compute units the calls consumed (cache hits none).
    pub compute_units: u64,
    pub cache_hits: u64,
    /// Calls for which the runtime compiled the component or loaded the graph.
    pub cold_starts: u64,
}

const MICROS: f64 = 1e6;

impl Rollup {
    /// Counts one call.
    pub fn add(&mut self, event: &UsageEvent) {
        self.calls += 1;
        if event.outcome != OK {
            *self
                .errors_by_code
                .entry(event.outcome.clone())
                .or_default() += 1;
        }
        self.latency.add(event.wall_us as f64 / MICROS);
        // Only a call that ran the model has an inference time; every run of Wasm code
        // burns fuel, a cache hit or a call refused before the runtime none.
        if !event.cache_hit && event.fuel > 0 {
            self.inference.add(event.inference_us as f64 / MICROS);
        }
        self.compute_units += event.compute_units;
        self.cache_hits += u64::from(event.cache_hit);
        self.cold_starts += u64::from(event.cold_start);
    }

    /// Adds every call of `other`. Sketches of this crate all share one accuracy, so the
    /// merge is exact: the merged sketch is the sketch of all the calls.
    pub fn merge(&mut self, other: &Rollup) {
        self.calls += other.calls;
        for (code, count) in &other.errors_by_code {
            *self.errors_by_code.entry(code.clone()).or_default() += count;
        }
        merge_sketch(&mut self.latency, &other.latency);
        merge_sketch(&mut self.inference, &other.inference);
        self.compute_units += other.compute_units;
        self.cache_hits += other.cache_hits;
        self.cold_starts += other.cold_starts;
    }

    /// Failed calls.
    pub fn errors(&self) -> u64 {
        self.errors_by_code.values().sum()
    }

    /// A stored row's rollup, from the columns `calls, errors_by_code, latency, inference,
    /// compute_units, cache_hits, cold_starts` starting at `first`.
    pub(crate) fn from_row(row: &libsql::Row, first: i32) -> Result<Self, DbError> {
        let count = |i: i32| -> Result<u64, DbError> {
            Ok(u64::try_from(row.get::<i64>(first + i)?).unwrap_or(0))
        };
        let json = |i: i32| row.get::<String>(first + i);
        let corrupt = |what: &str, e: serde_json::Error| {
            DbError::Corrupt(format!("model_analytics.{what}: {e}"))
        };
        Ok(Self {
            calls: count(0)?,
            errors_by_code: serde_json::from_str(&json(1)?)
                .map_err(|e| corrupt("errors_by_code", e))?,
            latency: serde_json::from_str(&json(2)?).map_err(|e| corrupt("latency", e))?,
            inference: serde_json::from_str(&json(3)?).map_err(|e| corrupt("inference", e))?,
            compute_units: count(4)?,
            cache_hits: count(5)?,
            cold_starts: count(6)?,
        })
    }
}

fn merge_sketch(into: &mut QuantileSketch, other: &QuantileSketch) {
    if other.is_empty() {
        return;
    }
    // Every sketch here is `QuantileSketch::new()`'s (stored ones round-trip with their
    // parameters), so this cannot fail; if it ever did, the counts stay right and only
    // that bucket's quantiles miss the other's values.
    if let Err(error) = into.merge(other) {
        tracing::error!(%error, "failed to merge analytics sketches");
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("analytics values serialise")
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The rollups of a batch of events, merged in memory before they touch the database.
#[derive(Debug, Default)]
pub struct Rollups {
    rows: BTreeMap<RollupKey, Rollup>,
}

impl Rollups {
    /// Counts `event` in its minute, hour and day.
    pub fn add(&mut self, event: &UsageEvent) {
        let at = event.at_ms.div_euclid(1_000);
        for resolution in Resolution::ALL {
            self.rows
                .entry(RollupKey {
                    org_id: event.org_id.clone(),
                    model_id: event.model_id.clone(),
                    resolution,
                    bucket_start: resolution.start(at),
                    version: event.version,
                })
                .or_default()
                .add(event);
        }
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rollups by key.
    pub fn rows(&self) -> &BTreeMap<RollupKey, Rollup> {
        &self.rows
    }

    /// Merges every rollup into its stored row (read, merge, write), within the caller's
    /// transaction: the drainer's, so that rows count exactly the events it inserted.
    pub async fn store(&self, tx: &Writer) -> Result<(), DbError> {
        let read = tx
            .prepare(
                "SELECT calls, errors_by_code, latency, inference, compute_units, cache_hits,
                    cold_starts
                 FROM model_analytics WHERE org_id = ?1 AND model_id = ?2 AND resolution = ?3
                    AND bucket_start = ?4 AND version = ?5",
            )
            .await?;
        let write = tx
            .prepare(
                "INSERT OR REPLACE INTO model_analytics (org_id, model_id, resolution,
                    bucket_start, version, calls, errors, errors_by_code, latency, inference,
                    compute_units, cache_hits, cold_starts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .await?;
        for (key, rollup) in &self.rows {
            let mut rows = read
                .query(params![
                    key.org_id.as_str(),
                    key.model_id.as_str(),
                    key.resolution.as_str(),
                    key.bucket_start,
                    key.version
                ])
                .await?;
            let stored = match rows.next().await? {
                Some(row) => match Rollup::from_row(&row, 0) {
                    Ok(stored) => Some(stored),
                    // The drainer retries a failed batch forever and the bill waits behind
                    // it: an unreadable row is started again rather than blocking billing.
                    Err(error) => {
                        tracing::error!(%error, model_id = key.model_id, "replacing an unreadable analytics row");
                        None
                    }
                },
                None => None,
            };
            drop(rows);
            read.reset();
            let merged = match stored {
                Some(mut stored) => {
                    stored.merge(rollup);
                    stored
                }
                None => rollup.clone(),
            };
            write
                .execute(params![
                    key.org_id.as_str(),
                    key.model_id.as_str(),
                    key.resolution.as_str(),
                    key.bucket_start,
                    key.version,
                    signed(merged.calls),
                    signed(merged.errors()),
                    to_json(&merged.errors_by_code),
                    to_json(&merged.latency),
                    to_json(&merged.inference),
                    signed(merged.compute_units),
                    signed(merged.cache_hits),
                    signed(merged.cold_starts)
                ])
                .await?;
            write.reset();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::series::{self, AnalyticsQuery};
    use crate::db::Db;
    use crate::event::sample;
    use crate::store;

    // 2026-11-27T13:00:00Z.
    const HOUR: i64 = 1_795_784_400;

    /// 300 calls over the first 50 minutes of [`HOUR`], latencies spread over two decades,
    /// every 7th failing, every 11th a cache hit, every 13th a cold start.
    fn events() -> Vec<UsageEvent> {
        (0..300)
            .map(|i| {
                let mut event = sample(&format!("e{i}"), (HOUR + i * 10) * 1_000);
                event.wall_us = 1_000 + (i as u64 * 7_919) % 100_000;
                event.inference_us = event.wall_us / 2;
                if i % 7 == 0 {
                    event.outcome = if i % 2 == 0 {
                        "fuel_exhausted"
                    } else {
                        "internal"
                    }
                    .into();
                }
                if i % 11 == 0 {
                    event.cache_hit = true;
                    event.fuel = 0;
                    event.compute_units = 0;
                }
                event.cold_start = i % 13 == 0;
                event
            })
            .collect()
    }

    async fn stored(db: &Db, step: Resolution) -> series::Analytics {
        series::query(
            &*db.read().await,
            AnalyticsQuery {
                org_id: "org-1",
                model_id: "model-1",
                from: HOUR,
                to: HOUR + 3_600,
                step,
                version: None,
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn replayed_events_are_counted_once() {
        let db = Db::memory().await.unwrap();
        let events = events();
        // In batches, so that rows are read, merged and written again.
        for batch in events.chunks(64) {
            store::insert(&*db.write().await, batch).await.unwrap();
        }
        let once = stored(&db, Resolution::Hour).await;
        // The outbox replayed at a restart: nothing is new.
        for batch in events.chunks(100) {
            assert_eq!(store::insert(&*db.write().await, batch).await.unwrap(), 0);
        }
        let twice = stored(&db, Resolution::Hour).await;
        assert_eq!(twice.total.calls, 300);
        assert_eq!(twice.total.errors(), once.total.errors());
        assert_eq!(twice.total.latency.count(), 300);
        assert_eq!(
            twice.total.errors_by_code,
            BTreeMap::from([
                ("fuel_exhausted".to_owned(), 22),
                ("internal".to_owned(), 21)
            ])
        );
        assert_eq!(twice.total.cache_hits, 28);
        assert_eq!(twice.total.cold_starts, 24);
        assert_eq!(twice.total.inference.count(), 300 - 28);
        assert_eq!(twice.total.compute_units, 10 * (300 - 28));
    }

    #[tokio::test]
    async fn an_hour_is_exactly_the_merge_of_its_minutes() {
        let db = Db::memory().await.unwrap();
        let events = events();
        for batch in events.chunks(37) {
            store::insert(&*db.write().await, batch).await.unwrap();
        }
        let minutes = stored(&db, Resolution::Minute).await;
        assert_eq!(minutes.points.len(), 50);
        let hour = stored(&db, Resolution::Hour).await;
        assert_eq!(hour.points.len(), 1);
        let hour = &hour.points[0].rollup;
        let mut merged = Rollup::default();
        minutes.points.iter().for_each(|p| merged.merge(&p.rollup));
        let whole = QuantileSketch::from_values(events.iter().map(|e| e.wall_us as f64 / 1e6));
        assert_eq!(merged.calls, hour.calls);
        assert_eq!(merged.errors_by_code, hour.errors_by_code);
        for i in 0..=100 {
            let q = f64::from(i) / 100.0;
            let want = whole.quantile(q).unwrap();
            assert_eq!(hour.latency.quantile(q).unwrap(), want, "q={q}");
            assert_eq!(merged.latency.quantile(q).unwrap(), want, "q={q}");
            assert_eq!(
                merged.inference.quantile(q).unwrap(),
                hour.inference.quantile(q).unwrap()
            );
        }
        // And the day holds the same calls.
        let day = stored(&db, Resolution::Day).await;
        assert_eq!(day.total.calls, 300);
        assert_eq!(day.from, Resolution::Day.start(HOUR));
    }

    #[tokio::test]
    async fn quantiles_are_within_one_percent_of_the_exact_ones() {
        let db = Db::memory().await.unwrap();
        let events = events();
        store::insert(&*db.write().await, &events).await.unwrap();
        let stats = series::Stats::from(&stored(&db, Resolution::Hour).await.total);
        let mut exact: Vec<f64> = events.iter().map(|e| e.wall_us as f64 / 1e3).collect();
        exact.sort_by(f64::total_cmp);
        for (q, got) in [
            (0.5, stats.latency_ms.p50),
            (0.95, stats.latency_ms.p95),
            (0.99, stats.latency_ms.p99),
        ] {
            let want = exact[(q * (exact.len() - 1) as f64).floor() as usize];
            let got = got.unwrap();
            assert!((got - want).abs() <= 0.01 * want, "q={q}: {got} vs {want}");
        }
        assert_eq!(stats.error_rate, Some(43.0 / 300.0));
    }

    #[test]
    fn ranges_are_widened_to_whole_steps() {
        let query = AnalyticsQuery {
            org_id: "o",
            model_id: "m",
            from: HOUR + 90,
            to: HOUR + 3_601,
            step: Resolution::Hour,
            version: None,
        };
        let aligned = query.aligned();
        assert_eq!((aligned.from, aligned.to), (HOUR, HOUR + 7_200));
        assert_eq!(query.steps(), 2);
        let exact = AnalyticsQuery {
            from: HOUR,
            to: HOUR + 3_600,
            ..query
        };
        assert_eq!(exact.steps(), 1);
        assert_eq!(Resolution::parse("minute"), Some(Resolution::Minute));
        assert_eq!(Resolution::parse("week"), None);
    }
}
