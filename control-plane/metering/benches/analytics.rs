//! The analytics query over 30 days of one busy model: 10,000,000 calls (about 3.9 a
//! second), 90 % on version 1 and 10 % on version 2, in an embedded libSQL file.
//!
//! The rows are made by the drainer's own aggregation: the events of each hour are
//! generated (deterministic pseudo-random latencies, 1 % errors under two codes, 5 % cache
//! hits, 0.1 % cold starts), added to one `Rollups`, and merged into the stored minute,
//! hour and day rows in one transaction (`Rollups::store`, the read-merge-write of every
//! drained batch). The events themselves are not inserted into `usage_events`: the query
//! never reads them, and 10 M of them would take far longer to write than the rows that
//! matter. Then the 30 days are queried at `day` and `hour` steps (and the last day at
//! `minute` steps), each many times; wall-clock p50 and max, and the p50 of the thread's
//! CPU time, are printed with the time the rows took.
//!
//! cargo bench -p wisp-metering --bench analytics            # 10,000,000 calls
//! cargo bench -p wisp-metering --bench analytics -- --quick # 1,000,000

use std::time::{Duration, Instant};

use wisp_metering::analytics::series::{self, AnalyticsQuery, Stats};
use wisp_metering::analytics::{Resolution, Rollups};
use wisp_metering::{Caller, UsageEvent, Variant};
use wisp_storage::db::{Db, DbError, DbLocation};

const DAYS: i64 = 30;
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200;

/// xorshift64*: reproducible numbers without a dependency.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn event(numbers: &mut Numbers, i: u64, at_ms: i64) -> UsageEvent {
    let u = numbers.unit();
    // A long tail: mostly 2–10 ms, sometimes up to a second.
    let wall_us = 2_000 + (u * u * u * u * 1_000_000.0) as u64 + numbers.next() % 8_000;
    let roll = numbers.next() % 1_000;
    let cache_hit = (10..60).contains(&roll);
    let outcome = match roll {
        0..7 => "internal",
        7..10 => "deadline_exceeded",
        _ => "ok",
    };
    UsageEvent {
        id: format!("bench-{i}"),
        org_id: "org-bench".into(),
        caller: Caller::ApiKey("key-bench".into()),
        model_id: "model-bench".into(),
        model_name: "busy".into(),
        version: if numbers.next().is_multiple_of(10) {
            2
        } else {
            1
        },
        variant: Variant::Primary,
        outcome: outcome.into(),
        cache_hit,
        compute_units: if cache_hit { 0 } else { 12 },
        fuel: if cache_hit { 0 } else { 40_000 },
        wall_us,
        inference_us: if cache_hit { 0 } else { wall_us * 3 / 4 },
        peak_memory_bytes: 1 << 20,
        bytes_in: 64,
        bytes_out: 16,
        at_ms,
        cold_start: numbers.next().is_multiple_of(1_000),
        cold_load_us: 0,
    }
}

/// Writes the rollups of `calls` calls spread evenly over [`DAYS`] days, an hour per
/// transaction; the time it took.
async fn fill(db: &Db, calls: u64) -> Result<Duration, DbError> {
    let started = Instant::now();
    let hours = DAYS * 24;
    let per_hour = calls / hours as u64;
    let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
    let mut i = 0;
    for hour in 0..hours {
        let mut rollups = Rollups::default();
        for n in 0..per_hour {
            let at_ms = (START + hour * 3_600) * 1_000 + (n * 3_600_000 / per_hour) as i64;
            rollups.add(&event(&mut numbers, i, at_ms));
            i += 1;
        }
        db.transaction(async |tx| rollups.store(tx).await).await?;
    }
    Ok(started.elapsed())
}

/// CPU time of this thread so far (Linux schedstat, nanoseconds): on a machine shared
/// with other work, what a query costs rather than how long it waited for a core. The
/// runtime is single-threaded and libSQL's embedded engine runs on the calling thread.
/// The kernel updates it at scheduler ticks and switches: meaningful for queries of tens
/// of milliseconds, not for one of a millisecond.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn p50(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], *times.last().unwrap())
}

async fn time_query(
    db: &Db,
    label: &str,
    step: Resolution,
    from: i64,
    to: i64,
    runs: usize,
) -> Duration {
    let mut times = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let cpu_started = thread_cpu();
        let analytics = series::query(
            &*db.read().await,
            AnalyticsQuery {
                org_id: "org-bench",
                model_id: "model-bench",
                from,
                to,
                step,
                version: None,
            },
        )
        .await
        .expect("query");
        // What the API does with the rows: quantiles of every point, version and total.
        let stats: Vec<Stats> = analytics
            .points
            .iter()
            .map(|p| Stats::from(&p.rollup))
            .chain(analytics.versions.iter().map(|v| Stats::from(&v.rollup)))
            .chain([Stats::from(&analytics.total)])
            .collect();
        times.push(started.elapsed());
        if let (Some(before), Some(after)) = (cpu_started, thread_cpu()) {
            cpu.push(after.saturating_sub(before));
        }
        last = Some((
            analytics.points.len(),
            stats.last().cloned().expect("total"),
        ));
    }
    let (median, max) = p50(times);
    let cpu = (cpu.len() == runs).then(|| p50(cpu).0);
    let (points, total) = last.expect("runs");
    println!(
        "{label:<20} {points:>5} points  wall p50 {:>8.2} ms  max {:>8.2} ms  CPU p50 {}  ({} calls, p99 {:.1} ms)",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        cpu.map_or("-".to_owned(), |c| format!(
            "{:.2} ms",
            c.as_secs_f64() * 1e3
        )),
        total.calls,
        total.latency_ms.p99.unwrap_or_default(),
    );
    median
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let calls: u64 = if quick { 1_000_000 } else { 10_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("analytics.db");
    let db = Db::open(&DbLocation::File(path.clone()))
        .await
        .expect("database");
    let cpu_started = thread_cpu();
    let filled = fill(&db, calls).await.expect("rollups");
    if let (Some(before), Some(after)) = (cpu_started, thread_cpu()) {
        println!(
            "filling took {:.1} s of CPU",
            after.saturating_sub(before).as_secs_f64()
        );
    }
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
    println!(
        "rollups of {calls} calls over {DAYS} days: {:.1} s ({:.0} calls/s through Rollups::add + store), {:.1} MB on disk",
        filled.as_secs_f64(),
        calls as f64 / filled.as_secs_f64(),
        bytes as f64 / 1e6
    );
    let to = START + DAYS * 86_400;
    let day = time_query(&db, "30 days by day", Resolution::Day, START, to, 50).await;
    let hour = time_query(&db, "30 days by hour", Resolution::Hour, START, to, 20).await;
    time_query(
        &db,
        "last day by minute",
        Resolution::Minute,
        to - 86_400,
        to,
        10,
    )
    .await;
    println!(
        "hour steps cost {:.1}x day steps (wall p50; target: both under 200 ms)",
        hour.as_secs_f64() / day.as_secs_f64()
    );
}
