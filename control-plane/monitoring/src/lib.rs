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

pub mod drift;
pub mod fairness;
pub mod frequent;
pub mod performance;
pub mod quantiles;
pub mod webhook;

pub use drift::DriftConfig;
pub use frequent::FrequentItems;
pub use quantiles::QuantileSketch;
