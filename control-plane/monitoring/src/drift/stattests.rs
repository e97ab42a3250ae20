//! The hypothesis tests Evidently uses for drift on a small reference: two-sample
//! Kolmogorov–Smirnov (numeric), chi-squared goodness of fit (categorical) and the
//! two-proportion z-test (binary). Each returns its statistic and p-value; drift is
//! `p < threshold`, decided by the caller ([`super::feature_drift`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use super::DriftError;
use super::kolmogorov::{one_sample_sf, two_sample_exact_sf};

/// Above this many rows on either side, `ks_2samp(method='auto')` stops trying the exact
/// distribution (scipy's `MAX_AUTO_N`).
pub const KS_EXACT_MAX_ROWS: usize = 10_000;

/// Which null distribution gave a Kolmogorov–Smirnov p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    /// Exact lattice-path count.
    Exact,
    /// scipy's `'asymp'`: `kstwo.sf(D, round(m n / (m + n)))`.
    Asymptotic,
}

/// A test's statistic and p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// D for Kolmogorov–Smirnov, χ² for chi-squared, z for the z-test.
    pub statistic: f64,
    /// The p-value.
    pub p_value: f64,
}

/// Two-sample two-sided Kolmogorov–Smirnov test, as `scipy.stats.ks_2samp` with its
/// default `method='auto'`: exact when both samples have at most
/// [`KS_EXACT_MAX_ROWS`] values (falling back to the asymptotic p-value if the exact
/// computation fails, as scipy does), asymptotic otherwise. NaNs are not allowed.
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> Result<(TestResult, KsMethod), DriftError> {
    let d = KsStatistic::of(reference, current)?;
    if reference.len().max(current.len()) <= KS_EXACT_MAX_ROWS
        && let Some(p_value) = two_sample_exact_sf(d.n1, d.n2, d.h)
    {
        let statistic = d.h as f64 / d.lcm as f64;
        return Ok((TestResult { statistic, p_value }, KsMethod::Exact));
    }
    Ok((d.asymptotic(), KsMethod::Asymptotic))
}

/// The same test with scipy's `method='asymp'` p-value, for any sample size.
pub fn ks_2samp_asymptotic(reference: &[f64], current: &[f64]) -> Result<TestResult, DriftError> {
    Ok(KsStatistic::of(reference, current)?.asymptotic())
}

/// `D = max |F_ref − F_cur|`, kept as the integer `h = D · lcm(n1, n2)`.
struct KsStatistic {
    n1: u64,
    n2: u64,
    lcm: u64,
    h: u64,
}

impl KsStatistic {
    fn of(reference: &[f64], current: &[f64]) -> Result<Self, DriftError> {
        let a = sorted_finite(reference)?;
        let b = sorted_finite(current)?;
        let (n1, n2) = (a.len() as u64, b.len() as u64);
        let g = gcd(n1, n2);
        let lcm = n1 / g * n2;
        let (step1, step2) = ((lcm / n1) as i128, (lcm / n2) as i128);
        let (mut i, mut j, mut h) = (0usize, 0usize, 0i128);
        while i < a.len() && j < b.len() {
            // advance past every copy of the next value in either sample (ties)
            let x = a[i].min(b[j]);
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
            h = h.max((i as i128 * step1 - j as i128 * step2).abs());
        }
        Ok(Self {
            n1,
            n2,
            lcm,
            h: h as u64,
        })
    }

    fn asymptotic(&self) -> TestResult {
        let statistic = self.h as f64 / self.lcm as f64;
        let (m, n) = (self.n1.max(self.n2) as f64, self.n1.min(self.n2) as f64);
        let en = (m * n / (m + n)).round_ties_even() as u64;
        TestResult {
            statistic,
            p_value: one_sample_sf(en.max(1), statistic),
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn sorted_finite(values: &[f64]) -> Result<Vec<f64>, DriftError> {
    if values.is_empty() {
        return Err(DriftError::EmptySample);
    }
    if values.iter().any(|v| v.is_nan()) {
        return Err(DriftError::NotANumber);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(sorted)
}

/// Chi-squared goodness of fit of the current category counts against the reference
/// *proportions*, as Evidently's `chisquare` stattest: expected = reference count ×
/// (current rows / reference rows) over the union of categories, `scipy.stats.chisquare`,
/// `k − 1` degrees of freedom. A category absent from the reference gives χ² = ∞, p = 0
/// (scipy's answer too). With a single category there is nothing to test: p = 1.
pub fn chi_square(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Result<TestResult, DriftError> {
    let (n_ref, n_cur) = (total(reference)?, total(current)?);
    let categories: BTreeSet<&String> = reference.keys().chain(current.keys()).collect();
    let scale = n_cur as f64 / n_ref as f64;
    let statistic: f64 = categories
        .iter()
        .map(|c| {
            let observed = current.get(*c).copied().unwrap_or(0) as f64;
            let expected = reference.get(*c).copied().unwrap_or(0) as f64 * scale;
            (observed - expected).powi(2) / expected
        })
        .sum();
    let dof = categories.len().saturating_sub(1);
    let p_value = if dof == 0 {
        1.0
    } else if statistic.is_infinite() {
        0.0
    } else {
        ChiSquared::new(dof as f64)
            .expect("positive degrees of freedom")
            .sf(statistic)
    };
    Ok(TestResult { statistic, p_value })
}

/// Two-proportion z-test of a binary feature, as Evidently's `z` stattest: the share of
/// one category (the first in order) in each sample, pooled standard error,
/// `p = 2 (1 − Φ(|z|))`. Identical one-valued samples (no variance) give p = 1.
pub fn proportions_z_test(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Result<TestResult, DriftError> {
    let (n1, n2) = (total(reference)? as f64, total(current)? as f64);
    let Some(key) = reference.keys().chain(current.keys()).min() else {
        return Err(DriftError::EmptySample);
    };
    let p1 = reference.get(key).copied().unwrap_or(0) as f64 / n1;
    let p2 = current.get(key).copied().unwrap_or(0) as f64 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return Ok(TestResult {
            statistic: 0.0,
            p_value: 1.0,
        });
    }
    let z = (p1 - p2) / se;
    let normal = Normal::standard();
    Ok(TestResult {
        statistic: z,
        p_value: 2.0 * (1.0 - normal.cdf(z.abs())),
    })
}

fn total(counts: &BTreeMap<String, u64>) -> Result<u64, DriftError> {
    match counts.values().sum() {
        0 => Err(DriftError::EmptySample),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn ks_handles_ties_and_identical_samples() {
        let (same, method) = ks_2samp(&[1.0, 2.0, 2.0, 3.0], &[3.0, 2.0, 1.0, 2.0]).unwrap();
        assert_eq!(method, KsMethod::Exact);
        assert_eq!(same.statistic, 0.0);
        assert_eq!(same.p_value, 1.0);
        // scipy: ks_2samp([1,2,2,3,3,3], [3,4,4,5]) -> D = 1 - 1/4 = 0.75 (at x = 3)
        let (r, _) = ks_2samp(&[1.0, 2.0, 2.0, 3.0, 3.0, 3.0], &[3.0, 4.0, 4.0, 5.0]).unwrap();
        assert!((r.statistic - 0.75).abs() < 1e-15);
    }

    #[test]
    fn ks_is_asymptotic_above_ten_thousand_rows() {
        let big: Vec<f64> = (0..=KS_EXACT_MAX_ROWS).map(|i| i as f64 / 100.0).collect();
        let small: Vec<f64> = (0..60).map(|i| i as f64 * 1.7).collect();
        let (auto, method) = ks_2samp(&big, &small).unwrap();
        assert_eq!(method, KsMethod::Asymptotic);
        assert_eq!(auto, ks_2samp_asymptotic(&big, &small).unwrap());
        let (_, method) = ks_2samp(&big[1..], &small).unwrap();
        assert_eq!(method, KsMethod::Exact);
    }

    #[test]
    fn ks_refuses_empty_and_nan() {
        assert_eq!(ks_2samp(&[], &[1.0]).unwrap_err(), DriftError::EmptySample);
        assert_eq!(
            ks_2samp(&[f64::NAN], &[1.0]).unwrap_err(),
            DriftError::NotANumber
        );
    }

    #[test]
    fn chi_square_with_a_new_category_is_certain_drift() {
        let r = chi_square(
            &counts(&[("a", 10), ("b", 10)]),
            &counts(&[("a", 5), ("c", 5)]),
        )
        .unwrap();
        assert!(r.statistic.is_infinite());
        assert_eq!(r.p_value, 0.0);
        let single = chi_square(&counts(&[("a", 10)]), &counts(&[("a", 3)])).unwrap();
        assert_eq!(single.p_value, 1.0);
    }

    #[test]
    fn z_test_matches_scipy_normal() {
        // p1 = 0.6 (n 100), p2 = 0.45 (n 80), pooled P = 96/180; scipy:
        // 2 * (1 - norm.cdf(abs(z))) = 0.04502088100253876
        let r = proportions_z_test(
            &counts(&[("a", 60), ("no", 40)]),
            &counts(&[("a", 36), ("no", 44)]),
        )
        .unwrap();
        let pooled: f64 = 96.0 / 180.0;
        let z = 0.15 / (pooled * (1.0 - pooled) * (1.0 / 100.0 + 1.0 / 80.0)).sqrt();
        assert!((r.statistic - z).abs() < 1e-12);
        // statrs' erfc is good to ~1e-12 here
        assert!(
            (r.p_value - 0.045_020_881_002_538_76).abs() < 1e-10,
            "{}",
            r.p_value
        );
    }
}
