//! Telemetry of the `wisp serve` process: the Prometheus registry behind `/metrics` (the
//! serving metrics, the server's gauges, the process's own), its exposition in either
//! text format, and the logger (text or JSON).
//!
//! The HTTP side (routes, the bearer token on the main port, the metrics listener) is in
//! `api::metrics`; see docs/monitoring.md for the series and the settings.

pub mod collectors;
pub mod logging;
pub mod process;

use std::sync::Arc;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use crate::config::MetricsConfig;
use crate::serving::metrics::ServingMetrics;

/// `Content-Type` of the OpenMetrics 1.0.0 text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of the Prometheus 0.0.4 text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The process's metrics and who may read them on the main port.
pub struct Telemetry {
    registry: Registry,
    serving: Arc<ServingMetrics>,
    token: Option<String>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// An exposition: its `Content-Type` and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposition {
    pub content_type: &'static str,
    pub body: String,
}

impl Telemetry {
    /// The registry of a server: serving metrics with `config`'s label settings, what
    /// `server` samples at each scrape (runtime, database, metering, prediction log,
    /// drift), the process's metrics.
    pub fn new(config: &MetricsConfig, server: collectors::ServerCollector) -> Self {
        let mut registry = Registry::default();
        let metrics = Arc::new(ServingMetrics::new(config.settings(), &mut registry));
        registry.register_collector(Box::new(server));
        registry.register_collector(Box::new(process::ProcessCollector));
        Self {
            registry,
            serving: metrics,
            token: config.token.clone(),
        }
    }

    /// The serving metrics the pipeline records into.
    pub fn serving(&self) -> &Arc<ServingMetrics> {
        &self.serving
    }

    /// Whether `/metrics` is served on the main port at all.
    pub fn on_main_port(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `presented` is the metrics token (compared in constant time).
    pub fn token_matches(&self, presented: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|token| bool::from(token.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Everything, in OpenMetrics 1.0.0 (ending in `# EOF`) if `openmetrics`, else in the
    /// Prometheus 0.0.4 text format.
    pub fn expose(&self, openmetrics: bool) -> Exposition {
        let mut body = String::with_capacity(16 << 10);
        // Writing to a String cannot fail, and the encoders fail only on the writer's error.
        if openmetrics {
            let _ = text::encode(&mut body, &self.registry);
            Exposition {
                content_type: OPENMETRICS_CONTENT_TYPE,
                body,
            }
        } else {
            let _ = prometheus_text::encode(&mut body, &self.registry);
            Exposition {
                content_type: PROMETHEUS_CONTENT_TYPE,
                body,
            }
        }
    }
}

/// Whether an `Accept` header prefers OpenMetrics text over the Prometheus text format:
/// it names `application/openmetrics-text` with a quality above zero and at least that of
/// `text/plain` (Prometheus itself asks for OpenMetrics first).
pub fn wants_openmetrics(accept: &str) -> bool {
    let mut openmetrics = 0.0f32;
    let mut plain = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
            "text/plain" => plain = plain.max(quality),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_prometheus_asks() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(wants_openmetrics("application/openmetrics-text"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics(
            "text/plain;version=0.0.4,application/openmetrics-text;q=0.5"
        ));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
    }
}
