//! Gauges and counters read at each scrape from the parts of the server that keep their
//! own counts: the runtime's caches and execution slots, the database connections, the
//! metering outbox, the prediction log's and drift profiling's dropped records.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::db::Db;
use crate::metering::Metering;
use crate::serving::Serving;
use crate::serving::drift::DriftTap;
use crate::serving::prediction_log::PredictionLog;

/// The server's own state, sampled at each scrape.
pub struct ServerCollector {
    pub serving: Serving,
    pub db: Arc<Db>,
    pub metering: Metering,
    pub predictions: PredictionLog,
    pub drift: DriftTap,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCollector").finish_non_exhaustive()
    }
}

/// One metric with a value per `cache` label (`component`, `graph`).
fn per_cache(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    values: [u64; 2],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (cache, value) in ["component", "graph"].into_iter().zip(values) {
        let labels = [("cache", cache)];
        let family = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value).encode(family)?,
            _ => ConstGauge::new(value as i64).encode(family)?,
        }
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value as i64);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.serving.runtime().stats();
        let (components, graphs) = (stats.components, stats.graphs);
        let caches = [
            (
                "wisp_runtime_cache_loads",
                "Cold loads: components compiled (or read precompiled) and graphs loaded",
                MetricType::Counter,
                [components.loads, graphs.loads],
            ),
            (
                "wisp_runtime_cache_hits",
                "Calls that found their component or graph loaded",
                MetricType::Counter,
                [components.hits, graphs.hits],
            ),
            (
                "wisp_runtime_cache_evictions",
                "Components and graphs dropped, idle too long or over the cache budget",
                MetricType::Counter,
                [components.evictions, graphs.evictions],
            ),
            (
                "wisp_runtime_cache_entries",
                "Components and graphs loaded now",
                MetricType::Gauge,
                [components.entries, graphs.entries],
            ),
        ];
        for (name, help, metric_type, values) in caches {
            per_cache(&mut encoder, name, help, metric_type, values)?;
        }
        gauge(
            &mut encoder,
            "wisp_runtime_slots_in_use",
            "Runtime execution slots held by running calls",
            stats.slots_in_use,
        )?;
        gauge(
            &mut encoder,
            "wisp_runtime_slots_capacity",
            "Runtime execution slots in all (runtime.max_concurrent_instances)",
            stats.slots_capacity,
        )?;
        gauge(
            &mut encoder,
            "wisp_runtime_stuck_calls",
            "Calls given up on at their deadline whose threads still run",
            u64::from(stats.stuck_calls),
        )?;
        let (held, capacity) = self.db.connections();
        gauge(
            &mut encoder,
            "wisp_db_connections_in_use",
            "Database connections held by a request or task now",
            held as u64,
        )?;
        gauge(
            &mut encoder,
            "wisp_db_connections_capacity",
            "Database connections in all (the main one and the read-only snapshot)",
            capacity as u64,
        )?;
        gauge(
            &mut encoder,
            "wisp_db_available",
            "1 while the database answers, 0 while it is unreachable (an outage or restart)",
            u64::from(!self.db.health().is_unavailable()),
        )?;
        gauge(
            &mut encoder,
            "wisp_metering_outbox_backlog",
            "Usage events in the outbox not yet written to the database",
            self.metering.backlog() as u64,
        )?;
        counter(
            &mut encoder,
            "wisp_prediction_log_dropped",
            "Prediction records not stored (the writer's queue full, or too many waiting for a failing database): feedback for them answers not_found",
            self.predictions.dropped(),
        )?;
        counter(
            &mut encoder,
            "wisp_drift_dropped_calls",
            "Sampled calls not profiled for drift because the profiling queue was full",
            self.drift.dropped(),
        )
    }
}
