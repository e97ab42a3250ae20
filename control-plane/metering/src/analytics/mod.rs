//! Per-version analytics of inference calls: what each model version did, minute by
//! minute, hour by hour and day by day, kept across restarts.
//!
//! The drainer that moves usage events into libSQL ([`crate::store::insert`]) adds the
//! events it actually inserts (a replayed event is not counted twice) to [`Rollups`]: one
//! [`Rollup`] per organisation, model, version, [`Resolution`] and bucket, with calls,
//! errors by code, latency sketches ([`wisp_monitoring::QuantileSketch`]), compute units,
//! cache hits and cold starts. A batch's rollups are merged in memory first, then each is
//! merged into its stored row in the same transaction as the events.
//!
//! - [`rollup`]: the aggregation and its rows.
//! - [`retention`]: minute rows deleted past their retention.
//! - [`series`]: the analytics query: one point per step and version, totals, and the
//!   statistics the API answers ([`Stats`]).

pub mod retention;
pub mod rollup;
pub mod series;

pub use rollup::{Resolution, Rollup, RollupKey, Rollups};
pub use series::{Analytics, AnalyticsQuery, Point, Stats, VersionTotal};
