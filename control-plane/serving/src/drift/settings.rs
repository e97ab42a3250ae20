//! Drift settings: per model (window length, sampling rate, the tests' configuration) and
//! for the whole server (the off switch, the queue, how often windows are flushed).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wisp_monitoring::DriftConfig;

/// A model's drift settings (`PUT …/models/{model}/drift/config`). Unknown keys are
/// refused, so a typo does not silently leave a default in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSettings {
    /// Length of a live window, in seconds (60 to 604800; default 3600).
    pub window_secs: u64,
    /// Share of calls profiled, in (0, 1] (default 1.0: every call of a watched model).
    pub sample_rate: f64,
    /// The tests (`wisp_monitoring::DriftConfig`): Evidently's defaults, overridable:
    /// `small_reference_max_rows` (1000), `max_distinct_for_categorical` (5),
    /// `p_value_threshold` (0.05), `wasserstein_threshold` (0.1),
    /// `jensen_shannon_threshold` (0.1), `drift_share` (0.5), `numeric_method`,
    /// `categorical_method`, `feature_methods`, `feature_thresholds`.
    #[schema(value_type = Object)]
    pub tests: DriftConfig,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            window_secs: 3600,
            sample_rate: 1.0,
            tests: DriftConfig::default(),
        }
    }
}

impl DriftSettings {
    /// Why these settings cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(60..=7 * 86_400).contains(&self.window_secs) {
            return Err("window_secs must be between 60 and 604800".into());
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err("sample_rate must be in (0, 1]".into());
        }
        let t = &self.tests;
        let unit = |name: &str, v: f64| {
            (v > 0.0 && v <= 1.0)
                .then_some(())
                .ok_or(format!("tests.{name} must be in (0, 1]"))
        };
        unit("p_value_threshold", t.p_value_threshold)?;
        unit("jensen_shannon_threshold", t.jensen_shannon_threshold)?;
        unit("drift_share", t.drift_share)?;
        if !(t.wasserstein_threshold > 0.0 && t.wasserstein_threshold.is_finite()) {
            return Err("tests.wasserstein_threshold must be positive".into());
        }
        if let Some((name, _)) = t
            .feature_thresholds
            .iter()
            .find(|(_, v)| !(**v > 0.0 && v.is_finite()))
        {
            return Err(format!("tests.feature_thresholds.{name} must be positive"));
        }
        Ok(())
    }
}

/// The server's drift monitoring (`[drift]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftServerConfig {
    /// Off: no call is profiled and nothing is queued (the API still answers from what
    /// is stored).
    pub enabled: bool,
    /// Calls waiting to be profiled; when full, calls are dropped from profiling (and
    /// counted), never slowed down.
    pub queue: usize,
    /// How often windows are written to the database (and at shutdown).
    pub flush_interval_secs: u64,
    /// How often the watched models and their settings are read again (changes made
    /// through this process apply at once).
    pub refresh_interval_secs: u64,
    /// At most this many calls of one model are profiled per second by this process
    /// (after `sample_rate`), spread evenly; 0: no cap. Drift statistics need a few
    /// thousand rows per window, not every call of a busy model: the cap bounds
    /// profiling's CPU cost when the traffic is high, and a quiet model is still profiled
    /// call by call.
    pub max_calls_per_sec: u32,
}

impl Default for DriftServerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: 1024,
            flush_interval_secs: 60,
            refresh_interval_secs: 30,
            max_calls_per_sec: 50,
        }
    }
}
