//! Data drift per model: a reference profile of the inputs and outputs, live profiles per
//! time window filled from calls off the request path, and Evidently's default tests
//! between them (`wisp_monitoring::drift`). See `docs/monitoring.md`.
//!
//! - [`alerts`]: `drift_share` and `feature_drift_score` for alert rules.
//! - [`columns`]: which feature each element of a call's tensors is.
//! - [`profile`]: the mergeable profile of some rows (sketches, exact samples ≤ 1,000).
//! - [`reference`]: a CSV or NDJSON data set read into a reference profile.
//! - [`tap`]: the bounded queue from the pipeline and the task that flushes windows.
//! - [`compare`], [`timeline`]: verdicts per feature, per window and over a range.
//! - [`settings`], [`store`]: per-model and server settings; the rows.

pub mod alerts;
pub mod columns;
pub mod compare;
pub mod profile;
pub mod reference;
pub mod settings;
pub mod store;
pub mod tap;
pub mod timeline;

pub use settings::{DriftServerConfig, DriftSettings};
pub use tap::DriftTap;
