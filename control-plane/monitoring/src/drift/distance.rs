//! The distances Evidently uses for drift on a large reference: the 1-D Wasserstein
//! distance normalised by the reference's standard deviation (numeric) and the
//! Jensen–Shannon distance (categorical, or numeric in Sturges bins or per value). Drift is
//! `distance ≥ threshold`, decided by the caller ([`super::feature_drift`]).
//!
//! From raw samples these match scipy (`wasserstein_distance`, `jensenshannon` with its
//! default natural logarithm, so the JS distance lies in `[0, √ln 2 ≈ 0.833]`) and
//! numpy's histogram binning. Shares go into the JS distance as they are: Evidently's
//! `get_binned_data` raises empty bins to 0.0001 only for PSI and KL, not for JS.
//!
//! From sketches ([`wasserstein_sketches`], [`jensen_shannon_frequent`]) they are
//! approximations, documented on each function.

use std::collections::{BTreeMap, BTreeSet};

use super::DriftError;
use crate::frequent::FrequentItems;
use crate::quantiles::QuantileSketch;

/// A numeric reference with more distinct values than this is binned for the JS
/// distance; with fewer, each value is a category (Evidently's `get_binned_data`).
pub const MAX_DISTINCT_FOR_VALUE_SHARES: usize = 20;
/// Evidently's floor on the reference standard deviation in the normalised Wasserstein.
pub const MIN_REFERENCE_STD: f64 = 0.001;

/// 1-D Wasserstein (earth mover's) distance between two empirical distributions,
/// `∫ |F_u − F_v|` (scipy `wasserstein_distance(u, v)`).
pub fn wasserstein(u: &[f64], v: &[f64]) -> Result<f64, DriftError> {
    let u = sorted(u)?;
    let v = sorted(v)?;
    let mut all: Vec<f64> = u.iter().chain(&v).copied().collect();
    all.sort_by(f64::total_cmp);
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j, mut total) = (0usize, 0usize, 0.0);
    for w in all.windows(2) {
        while i < u.len() && u[i] <= w[0] {
            i += 1;
        }
        while j < v.len() && v[j] <= w[0] {
            j += 1;
        }
        total += (i as f64 / nu - j as f64 / nv).abs() * (w[1] - w[0]);
    }
    Ok(total)
}

/// Evidently's `wasserstein` stattest: [`wasserstein`] divided by
/// `max(std(reference), 0.001)` (population standard deviation, numpy's `np.std`).
pub fn wasserstein_normalised(reference: &[f64], current: &[f64]) -> Result<f64, DriftError> {
    Ok(wasserstein(reference, current)? / population_std(reference).max(MIN_REFERENCE_STD))
}

fn population_std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Jensen–Shannon distance between two (not necessarily normalised) distributions over
/// the same bins, natural log: scipy `jensenshannon(p, q)`.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Result<f64, DriftError> {
    if p.len() != q.len() {
        return Err(DriftError::MismatchedBins);
    }
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    if sp <= 0.0 || sq <= 0.0 {
        return Err(DriftError::EmptySample);
    }
    let rel_entr = |x: f64, y: f64| if x > 0.0 { x * (x / y).ln() } else { 0.0 };
    let (mut left, mut right) = (0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    Ok(((left + right) / 2.0).max(0.0).sqrt())
}

fn shares(counts: &[u64], total: u64) -> Vec<f64> {
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// Evidently's numeric `jensenshannon` stattest: if the reference has more than
/// [`MAX_DISTINCT_FOR_VALUE_SHARES`] distinct values, the shares of Sturges' bins over
/// both samples ([`histogram_edges_sturges`]); otherwise the shares of each value.
pub fn jensen_shannon_numeric(reference: &[f64], current: &[f64]) -> Result<f64, DriftError> {
    let mut distinct: Vec<f64> = reference.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() <= MAX_DISTINCT_FOR_VALUE_SHARES {
        return jensen_shannon_categorical(&value_counts(reference), &value_counts(current));
    }
    let edges = histogram_edges_sturges(reference.iter().chain(current).copied())?;
    jensen_shannon_histograms(
        &histogram_counts(reference, &edges),
        &histogram_counts(current, &edges),
    )
}

/// Occurrences of each value, keyed by its decimal text (the same value always gives
/// the same key, which is all the categorical tests need).
pub(crate) fn value_counts(values: &[f64]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry((v + 0.0).to_string()).or_default() += 1; // -0.0 is 0.0
    }
    counts
}

/// The JS distance between two histograms over the same bins (e.g. per-minute counts
/// summed over a window), from the shares of each bin.
pub fn jensen_shannon_histograms(reference: &[u64], current: &[u64]) -> Result<f64, DriftError> {
    let (nr, nc) = (reference.iter().sum::<u64>(), current.iter().sum::<u64>());
    if nr == 0 || nc == 0 {
        return Err(DriftError::EmptySample);
    }
    jensen_shannon(&shares(reference, nr), &shares(current, nc))
}

/// Evidently's categorical `jensenshannon` stattest: shares over the union of
/// categories.
pub fn jensen_shannon_categorical(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Result<f64, DriftError> {
    let categories: BTreeSet<&String> = reference.keys().chain(current.keys()).collect();
    let counts = |m: &BTreeMap<String, u64>| -> Vec<u64> {
        categories
            .iter()
            .map(|c| m.get(*c).copied().unwrap_or(0))
            .collect()
    };
    jensen_shannon_histograms(&counts(reference), &counts(current))
}

/// numpy's `histogram_bin_edges(values, bins="sturges")`: equal-width bins from the
/// minimum to the maximum, as many as `⌈range / (range / (log₂ n + 1))⌉` (one bin, ±0.5,
/// around a single value).
pub fn histogram_edges_sturges(
    values: impl IntoIterator<Item = f64>,
) -> Result<Vec<f64>, DriftError> {
    let values: Vec<f64> = values.into_iter().collect();
    let (lo, hi) = min_max(&values)?;
    let width = (hi - lo) / ((values.len() as f64).log2() + 1.0);
    let bins = if width > 0.0 {
        ((hi - lo) / width).ceil() as usize
    } else {
        1
    };
    histogram_edges(values, bins)
}

fn min_max(values: &[f64]) -> Result<(f64, f64), DriftError> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        if v.is_nan() {
            return Err(DriftError::NotANumber);
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return Err(DriftError::EmptySample);
    }
    Ok((lo, hi))
}

/// numpy's `histogram_bin_edges(values, bins)`: `bins` equal-width bins from the minimum
/// to the maximum (±0.5 around a single value).
pub fn histogram_edges(
    values: impl IntoIterator<Item = f64>,
    bins: usize,
) -> Result<Vec<f64>, DriftError> {
    let values: Vec<f64> = values.into_iter().collect();
    let (mut lo, mut hi) = min_max(&values)?;
    if lo == hi {
        lo -= 0.5;
        hi += 0.5;
    }
    let bins = bins.max(1);
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + lo).collect();
    edges[bins] = hi;
    Ok(edges)
}

/// numpy's `histogram(values, edges)[0]`: bins are `[e_i, e_{i+1})`, the last one closed;
/// values outside the edges are not counted.
pub fn histogram_counts(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let bins = edges.len().saturating_sub(1);
    let mut counts = vec![0u64; bins];
    if bins == 0 {
        return counts;
    }
    for &v in values {
        if !(v >= edges[0] && v <= edges[bins]) {
            continue;
        }
        let upper = edges.partition_point(|e| *e <= v); // edges ≤ v
        counts[(upper - 1).min(bins - 1)] += 1;
    }
    counts
}

/// Quantiles read from each sketch for [`wasserstein_sketches`].
const SKETCH_QUANTILES: usize = 1000;

/// Wasserstein distance from two quantile sketches: `∫₀¹ |F⁻¹(q) − G⁻¹(q)| dq` by the
/// midpoint rule over 1 000 quantiles, normalised like [`wasserstein_normalised`] by a
/// standard deviation estimated from the reference's quantiles.
///
/// Approximate: each quantile is within the sketch's 1 % relative error, so the distance
/// is off by at most ~1 % of the mean absolute value plus the midpoint-rule error (tails
/// beyond the 0.05 % quantiles are represented by one point each). Returns `None` when a
/// sketch is empty.
pub fn wasserstein_sketches(
    reference: &QuantileSketch,
    current: &QuantileSketch,
) -> Option<SketchWasserstein> {
    let grid = |s: &QuantileSketch| -> Option<Vec<f64>> {
        (0..SKETCH_QUANTILES)
            .map(|i| {
                s.quantile((i as f64 + 0.5) / SKETCH_QUANTILES as f64)
                    .ok()
                    .flatten()
            })
            .collect()
    };
    let (r, c) = (grid(reference)?, grid(current)?);
    let distance =
        r.iter().zip(&c).map(|(a, b)| (a - b).abs()).sum::<f64>() / SKETCH_QUANTILES as f64;
    let std = population_std(&r);
    Some(SketchWasserstein {
        distance,
        normalised: distance / std.max(MIN_REFERENCE_STD),
    })
}

/// The result of [`wasserstein_sketches`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SketchWasserstein {
    /// The Wasserstein distance.
    pub distance: f64,
    /// Divided by the reference's estimated standard deviation (floored at 0.001).
    pub normalised: f64,
}

/// JS distance between two categorical sketches, as [`jensen_shannon_categorical`] on
/// their counts. Exact when both sketches are exact ([`FrequentItems::is_exact`]);
/// otherwise the occurrences a sketch could not attribute form one extra "other"
/// category, which understates differences within the tail.
pub fn jensen_shannon_frequent(
    reference: &FrequentItems,
    current: &FrequentItems,
) -> Result<f64, DriftError> {
    if reference.is_exact() && current.is_exact() {
        return jensen_shannon_categorical(reference.counts(), current.counts());
    }
    let categories: BTreeSet<&String> = reference
        .counts()
        .keys()
        .chain(current.counts().keys())
        .collect();
    let counts = |s: &FrequentItems| -> Vec<u64> {
        let mut v: Vec<u64> = categories.iter().map(|c| s.count(c)).collect();
        // (an empty "other" bin on both sides adds nothing to the distance)
        v.push(s.unattributed());
        v
    };
    jensen_shannon_histograms(&counts(reference), &counts(current))
}

fn sorted(values: &[f64]) -> Result<Vec<f64>, DriftError> {
    if values.is_empty() {
        return Err(DriftError::EmptySample);
    }
    if values.iter().any(|v| v.is_nan()) {
        return Err(DriftError::NotANumber);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn wasserstein_of_a_shift_is_the_shift() {
        let u: Vec<f64> = (0..100).map(f64::from).collect();
        let v: Vec<f64> = u.iter().map(|x| x + 2.5).collect();
        assert!((wasserstein(&u, &v).unwrap() - 2.5).abs() < 1e-12);
        // scipy: wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5
        assert!((wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn jensen_shannon_bounds() {
        assert_eq!(jensen_shannon(&[1.0, 2.0], &[2.0, 4.0]).unwrap(), 0.0);
        let disjoint = jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        assert!((disjoint - 2f64.ln().sqrt()).abs() < 1e-12);
        assert_eq!(
            jensen_shannon(&[1.0], &[1.0, 2.0]).unwrap_err(),
            DriftError::MismatchedBins
        );
    }

    #[test]
    fn histogram_matches_numpy_edges_and_closed_last_bin() {
        let edges = histogram_edges([0.0, 1.0, 2.0, 3.0], 3).unwrap();
        assert_eq!(edges, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(
            histogram_counts(&[0.0, 0.5, 1.0, 2.999, 3.0, 3.5], &edges),
            vec![2, 1, 2]
        );
        assert_eq!(histogram_edges([4.0, 4.0], 2).unwrap(), vec![3.5, 4.0, 4.5]);
    }

    #[test]
    fn sketch_wasserstein_is_close_to_the_exact_one() {
        let mut rng = StdRng::seed_from_u64(1);
        let r: Vec<f64> = (0..20_000).map(|_| rng.gen_range(1.0..3.0)).collect();
        let c: Vec<f64> = (0..20_000).map(|_| rng.gen_range(1.3..3.3)).collect();
        let exact = wasserstein_normalised(&r, &c).unwrap();
        let approx = wasserstein_sketches(
            &QuantileSketch::from_values(r),
            &QuantileSketch::from_values(c),
        )
        .unwrap()
        .normalised;
        assert!((approx - exact).abs() < 0.03 * exact, "{approx} vs {exact}");
    }

    #[test]
    fn frequent_sketch_js_is_exact_while_exact() {
        let (mut r, mut c) = (FrequentItems::new(8), FrequentItems::new(8));
        r.add_count("a", 70);
        r.add_count("b", 30);
        c.add_count("a", 40);
        c.add_count("c", 60);
        let want = jensen_shannon_categorical(r.counts(), c.counts()).unwrap();
        assert_eq!(jensen_shannon_frequent(&r, &c).unwrap(), want);
    }
}
