//! The statistics behind model monitoring: per-version analytics, data drift,
//! ground-truth performance, fairness and signed alert webhooks.
//!
//! Pure data structures and functions: nothing here does I/O, reads the clock or knows a
//! database. The types that are stored (sketches, accumulators, configuration) are serde
//! values; every accumulator merges, so per-minute rows combine into any window.
//!
//! - [`quantiles`]: [`QuantileSketch`], a mergeable DDSketch (1 % relative error) for
//!   latencies and numeric features: quantiles, count, sum, mean.
//! - [`frequent`]: [`FrequentItems`], a mergeable Misra–Gries sketch of a categorical
//!   value: top-k with error bounds, exact while the distinct values fit.
//! - [`drift`]: Evidently's per-feature drift tests and their defaults (Kolmogorov–Smirnov,
//!   chi-squared, normalised Wasserstein, Jensen–Shannon), checked against scipy; the
//!   dataset-drift share; [`DriftConfig`] per model; versions of the distances that work
//!   on sketches and histograms.
//! - [`performance`]: classification (accuracy, precision/recall/F1 per class, macro and
//!   binary) and regression (MAE, RMSE) metrics from mergeable accumulators.
//! - [`fairness`]: per-segment selection and true-positive rates and the gaps between
//!   segments (demographic parity, equal opportunity, disparate impact), as fairlearn
//!   defines them.
//! - [`webhook`]: Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature`): sign, verify with a timestamp tolerance, generate secrets.
//!
//! ```
//! use wisp_monitoring::drift::{self, DriftConfig, FeatureSample};
//! use wisp_monitoring::webhook::{self, WebhookSecret};
//! use wisp_monitoring::QuantileSketch;
//!
//! // Per-minute latency sketches, merged into an hour, stored as JSON.
//! let mut hour = QuantileSketch::new();
//! for minute in [[0.012, 0.015, 0.210], [0.011, 0.013, 0.019]] {
//!     hour.merge(&QuantileSketch::from_values(minute)).unwrap();
//! }
//! let median = hour.quantile(0.5).unwrap().unwrap(); // rank ⌊0.5 · 5⌋ of 6: 0.013
//! assert!((median - 0.013).abs() <= 0.01 * 0.013);
//! assert_eq!(hour.max(), Some(0.210));
//! let stored = serde_json::to_string(&hour).unwrap();
//! assert_eq!(serde_json::from_str::<QuantileSketch>(&stored).unwrap().count(), 6);
//!
//! // Drift of one feature with Evidently's defaults (KS on a small reference).
//! let reference = FeatureSample::Numeric((0..500).map(|i| (i % 50) as f64).collect());
//! let current = FeatureSample::Numeric((0..400).map(|i| (i % 50) as f64 + 10.0).collect());
//! let verdict = drift::feature_drift("age", &reference, &current, &DriftConfig::default()).unwrap();
//! assert!(verdict.drifted);
//!
//! // A signed alert.
//! let secret = WebhookSecret::generate();
//! let body = br#"{"type":"drift.detected"}"#;
//! let [(_, id), (_, timestamp), (_, signature)] =
//!     webhook::signed_headers(&secret, "msg_1", 1_764_892_800, body);
//! webhook::verify(&secret, &id, &timestamp, &signature, body, 1_764_892_830, 300).unwrap();
//! ```

pub mod drift;
pub mod fairness;
pub mod frequent;
pub mod performance;
pub mod quantiles;
pub mod webhook;

pub use drift::DriftConfig;
pub use frequent::FrequentItems;
pub use quantiles::QuantileSketch;
