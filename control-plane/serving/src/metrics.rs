//! Prometheus metrics of the serving path: requests, latencies, errors, cold loads,
//! result-cache lookups, fuel and compute units, refusals and batch rows.
//!
//! The families live in a `prometheus_client` [`Registry`] the edge serves at `/metrics`.
//! Recording is cheap and allocation-free on the hot path: the series of one model
//! version (org, model, version) are resolved once, on that version's first call, and
//! kept as handles (atomic counters, histograms under a short lock); later calls find them
//! by model id and version number under a read lock.
//!
//! Label cardinality is bounded: [`MetricsSettings::per_org_labels`] off drops the `org`
//! label, and at most [`MetricsSettings::max_model_series`] (org, model, version) label
//! sets are created; calls of the versions beyond share one `model="other"` series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error::ErrorCode;

/// Label cardinality settings (the edge's `metrics` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Record the serving metrics (on by default). Off, `/metrics` still serves the
    /// process and database series, and the serving families stay at zero: the baseline of
    /// the metrics' overhead benchmark, and a switch for deployments that scrape nothing.
    pub recording: bool,
    /// Label per-version series with the organisation (`org`). Off for deployments with
    /// many organisations: series are then summed over organisations.
    pub per_org_labels: bool,
    /// At most this many distinct (org, model, version) label sets; calls of further
    /// versions are counted under `model="other", version="other"`.
    pub max_model_series: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            recording: true,
            per_org_labels: true,
            max_model_series: 1000,
        }
    }
}

/// The inference protocol that carried a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// wisp's own `…/models/{model}/predict`.
    Predict,
    /// Open Inference Protocol V2.
    V2,
    /// KServe V1.
    V1,
}

impl Protocol {
    /// The `protocol` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Predict => "predict",
            Protocol::V2 => "v2",
            Protocol::V1 => "v1",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which wait a queue-wait observation measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The organisation's fair-share concurrency slot.
    Org,
    /// One of the runtime's execution slots.
    Runtime,
}

/// Labels of a series of one model version (or of the `other` / unresolved buckets).
type Labels = Vec<(&'static str, String)>;
type StaticLabels = [(&'static str, &'static str); 1];
type ErrorLabels = [(&'static str, &'static str); 2];

/// Seconds, for request and inference latencies: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds, for cold loads (compile, pre-instantiate, load a graph): 5 ms to 2 min.
const LOAD_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 120.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The metric families, cheap to clone (each is shared).
#[derive(Clone)]
struct Families {
    requests: Family<Labels, Counter>,
    request_duration: Family<Labels, Histogram>,
    inference_duration: Family<Labels, Histogram>,
    fuel: Family<Labels, Counter>,
    compute_units: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

/// The serving metrics of the process.
pub struct ServingMetrics {
    settings: MetricsSettings,
    families: Families,
    /// Series per model id, then version number.
    versions: RwLock<HashMap<String, HashMap<i64, Arc<VersionSeries>>>>,
    /// Per org (or one, without org labels): the `other` series and the series of calls
    /// that failed before a model version was resolved.
    shared: RwLock<HashMap<String, OrgSeries>>,
    created: AtomicUsize,
    cache_hit: Counter,
    cache_miss: Counter,
    org_wait: Histogram,
    runtime_wait: Histogram,
    cold_loads: Histogram,
    batch_ok: Counter,
    batch_failed: Counter,
}

impl std::fmt::Debug for ServingMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingMetrics")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// An organisation's series that are not of one version.
#[derive(Clone)]
struct OrgSeries {
    /// Versions past the cap.
    other: Arc<VersionSeries>,
    /// Calls that failed before a version was resolved.
    unresolved: Arc<VersionSeries>,
}

/// The series of one model version: resolved once, recorded on every call.
pub struct VersionSeries {
    labels: Labels,
    families: Families,
    protocols: [OnceLock<ProtocolSeries>; 3],
    inference: Histogram,
    fuel: Counter,
    compute_units: Counter,
}

struct ProtocolSeries {
    ok: Counter,
    error: Counter,
    duration: Histogram,
}

impl VersionSeries {
    fn new(families: &Families, labels: Labels) -> Self {
        Self {
            inference: families.inference_duration.get_or_create_owned(&labels),
            fuel: families.fuel.get_or_create_owned(&labels),
            compute_units: families.compute_units.get_or_create_owned(&labels),
            protocols: Default::default(),
            families: families.clone(),
            labels,
        }
    }

    /// A call of `protocol` ended after `elapsed`, successfully or not.
    pub fn record_call(&self, protocol: Protocol, ok: bool, elapsed: Duration) {
        let series = self.protocols[protocol.index()].get_or_init(|| {
            let mut labels = self.labels.clone();
            labels.push(("protocol", protocol.as_str().to_owned()));
            let duration = self.families.request_duration.get_or_create_owned(&labels);
            let outcome = |value: &str| {
                let mut labels = labels.clone();
                labels.push(("outcome", value.to_owned()));
                self.families.requests.get_or_create_owned(&labels)
            };
            ProtocolSeries {
                ok: outcome("ok"),
                error: outcome("error"),
                duration,
            }
        });
        if ok { &series.ok } else { &series.error }.inc();
        series.duration.observe(elapsed.as_secs_f64());
    }

    /// The model ran: its time in the runtime once it held a slot and was loaded, its fuel
    /// and compute units.
    pub fn record_run(&self, inference: Duration, fuel: u64, compute_units: u64) {
        self.inference.observe(inference.as_secs_f64());
        self.fuel.inc_by(fuel);
        self.compute_units.inc_by(compute_units);
    }
}

/// What a refusal refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A key's or organisation's rate limit (`rate_limited`).
    RateLimit,
    /// The plan's calls quota (`quota_exceeded`).
    Quota,
}

impl ServingMetrics {
    /// Registers the serving families in `registry`.
    pub fn new(settings: MetricsSettings, registry: &mut Registry) -> Self {
        let families = Families {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            inference_duration: Family::new_with_constructor(latency_histogram),
            fuel: Family::default(),
            compute_units: Family::default(),
            refusals: Family::default(),
            errors: Family::default(),
        };
        registry.register(
            "wisp_requests",
            "Inference calls that passed rate limiting, by org, model, version, protocol and outcome (ok, error)",
            families.requests.clone(),
        );
        registry.register_with_unit(
            "wisp_request_duration",
            "Inference calls from admission to encoded response",
            Unit::Seconds,
            families.request_duration.clone(),
        );
        registry.register_with_unit(
            "wisp_inference_duration",
            "Model runs in the runtime once loaded and holding an execution slot",
            Unit::Seconds,
            families.inference_duration.clone(),
        );
        registry.register(
            "wisp_fuel_consumed",
            "Wasm fuel consumed by model runs",
            families.fuel.clone(),
        );
        registry.register(
            "wisp_compute_units",
            "Compute units (the billing unit of fuel and backend time) used by model runs",
            families.compute_units.clone(),
        );
        registry.register(
            "wisp_refusals",
            "Calls refused by a rate limit (reason rate_limit) or the calls quota (reason quota)",
            families.refusals.clone(),
        );
        registry.register(
            "wisp_errors",
            "Failed inference calls by protocol and error code",
            families.errors.clone(),
        );
        let cache: Family<StaticLabels, Counter> = Family::default();
        registry.register(
            "wisp_result_cache_lookups",
            "Result-cache lookups of deployments with a cache TTL, by result (hit, miss)",
            cache.clone(),
        );
        let waits: Family<StaticLabels, Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "wisp_queue_wait",
            "Waits for a slot: the organisation's fair share (queue org) or a runtime execution slot (queue runtime)",
            Unit::Seconds,
            waits.clone(),
        );
        let cold_loads = Histogram::new(LOAD_BUCKETS);
        registry.register_with_unit(
            "wisp_cold_load_duration",
            "Calls that had to load their component or graph: the loading time",
            Unit::Seconds,
            cold_loads.clone(),
        );
        let batch: Family<StaticLabels, Counter> = Family::default();
        registry.register(
            "wisp_batch_rows",
            "Batch job rows processed, by outcome (ok, error)",
            batch.clone(),
        );
        Self {
            settings,
            families,
            versions: RwLock::default(),
            shared: RwLock::default(),
            created: AtomicUsize::new(0),
            cache_hit: cache.get_or_create_owned(&[("result", "hit")]),
            cache_miss: cache.get_or_create_owned(&[("result", "miss")]),
            org_wait: waits.get_or_create_owned(&[("queue", "org")]),
            runtime_wait: waits.get_or_create_owned(&[("queue", "runtime")]),
            cold_loads,
            batch_ok: batch.get_or_create_owned(&[("outcome", "ok")]),
            batch_failed: batch.get_or_create_owned(&[("outcome", "error")]),
        }
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> Self {
        Self::new(MetricsSettings::default(), &mut Registry::default())
    }

    /// The settings.
    pub fn settings(&self) -> MetricsSettings {
        self.settings
    }

    /// Whether calls are recorded (`metrics.enabled`).
    pub fn recording(&self) -> bool {
        self.settings.recording
    }

    /// The series of a version already seen, without allocating.
    pub fn cached(&self, model_id: &str, version: i64) -> Option<Arc<VersionSeries>> {
        let versions = self.versions.read().unwrap_or_else(|p| p.into_inner());
        versions.get(model_id)?.get(&version).cloned()
    }

    /// The series of `version` of model `model_id` (named `model`) of organisation `org`
    /// (its slug), created on first use; past the cap, the organisation's `other` series.
    pub fn version(
        &self,
        org: &str,
        model_id: &str,
        model: &str,
        version: i64,
    ) -> Arc<VersionSeries> {
        if let Some(series) = self.cached(model_id, version) {
            return series;
        }
        let mut versions = self.versions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = versions.get(model_id).and_then(|v| v.get(&version)) {
            return Arc::clone(series);
        }
        if self.created.load(Ordering::Relaxed) >= self.settings.max_model_series {
            drop(versions);
            return self.shared(org).other;
        }
        self.created.fetch_add(1, Ordering::Relaxed);
        let series = Arc::new(VersionSeries::new(
            &self.families,
            self.labels(org, model, &version.to_string()),
        ));
        versions
            .entry(model_id.to_owned())
            .or_default()
            .insert(version, Arc::clone(&series));
        series
    }

    /// The series of an organisation's calls that failed before a version was resolved
    /// (unknown model, bad body): `model=""`, `version=""`.
    pub fn unresolved(&self, org: &str) -> Arc<VersionSeries> {
        self.shared(org).unresolved
    }

    fn shared(&self, org: &str) -> OrgSeries {
        let org = if self.settings.per_org_labels {
            org
        } else {
            ""
        };
        if let Some(found) = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(org)
        {
            return found.clone();
        }
        let mut shared = self.shared.write().unwrap_or_else(|p| p.into_inner());
        shared
            .entry(org.to_owned())
            .or_insert_with(|| {
                let other = self.labels(org, "other", "other");
                let unresolved = self.labels(org, "", "");
                OrgSeries {
                    other: Arc::new(VersionSeries::new(&self.families, other)),
                    unresolved: Arc::new(VersionSeries::new(&self.families, unresolved)),
                }
            })
            .clone()
    }

    fn labels(&self, org: &str, model: &str, version: &str) -> Labels {
        let mut labels = Vec::with_capacity(5);
        if self.settings.per_org_labels {
            labels.push(("org", org.to_owned()));
        }
        labels.push(("model", model.to_owned()));
        labels.push(("version", version.to_owned()));
        labels
    }

    /// A failed call of `protocol` with `code`; a refusal is also counted as one.
    pub fn record_error(&self, org: &str, protocol: Option<Protocol>, code: ErrorCode) {
        if !self.settings.recording {
            return;
        }
        let protocol = protocol.map_or("none", Protocol::as_str);
        self.families
            .errors
            .get_or_create(&[("protocol", protocol), ("code", code.as_str())])
            .inc();
        let refusal = match code {
            ErrorCode::RateLimited => Refusal::RateLimit,
            ErrorCode::QuotaExceeded => Refusal::Quota,
            _ => return,
        };
        let reason = match refusal {
            Refusal::RateLimit => "rate_limit",
            Refusal::Quota => "quota",
        };
        let mut labels = Vec::with_capacity(2);
        if self.settings.per_org_labels {
            labels.push(("org", org.to_owned()));
        }
        labels.push(("reason", reason.to_owned()));
        self.families.refusals.get_or_create(&labels).inc();
    }

    /// A result-cache lookup: `hit` or a miss.
    pub fn record_cache(&self, hit: bool) {
        if !self.settings.recording {
            return;
        }
        if hit {
            &self.cache_hit
        } else {
            &self.cache_miss
        }
        .inc();
    }

    /// A wait for a slot.
    pub fn record_wait(&self, queue: Queue, waited: Duration) {
        if !self.settings.recording {
            return;
        }
        match queue {
            Queue::Org => &self.org_wait,
            Queue::Runtime => &self.runtime_wait,
        }
        .observe(waited.as_secs_f64());
    }

    /// A call that loaded its component or graph, and how long loading took.
    pub fn record_cold_load(&self, took: Duration) {
        if !self.settings.recording {
            return;
        }
        self.cold_loads.observe(took.as_secs_f64());
    }

    /// A batch row done, with a result or an error.
    pub fn record_batch_row(&self, ok: bool) {
        if !self.settings.recording {
            return;
        }
        if ok {
            &self.batch_ok
        } else {
            &self.batch_failed
        }
        .inc();
    }
}
