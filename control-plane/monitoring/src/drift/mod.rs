//! Data drift per feature and per dataset, with Evidently's default tests.
//!
//! Which test [`feature_drift`] runs unless [`DriftConfig`] names one
//! (Evidently's `get_default_stattest`, with `n_unique` counted over both samples):
//!
//! | reference rows | feature | test | drift when |
//! |---|---|---|---|
//! | ≤ 1000 | numeric, > 5 distinct values | Kolmogorov–Smirnov ([`ks_2samp`]) | p < 0.05 |
//! | ≤ 1000 | categorical, or numeric with ≤ 5 distinct values: more than 2 | chi-squared ([`chi_square`]) | p < 0.05 |
//! | ≤ 1000 | the same with ≤ 2 | two-proportion z-test ([`proportions_z_test`]) | p < 0.05 |
//! | > 1000 | numeric, > 5 distinct values | Wasserstein / std(reference) ([`wasserstein_normalised`]) | ≥ 0.1 |
//! | > 1000 | categorical, or numeric with ≤ 5 distinct values | Jensen–Shannon ([`jensen_shannon_categorical`]) | ≥ 0.1 |
//!
//! The dataset drifts when the share of drifted features is ≥ 0.5. This is Evidently
//! 0.7's `evidently/legacy/calculations/stattests` (`registry.py`, `ks_stattest.py`,
//! `chisquare_stattest.py`, `z_stattest.py`, `wasserstein_distance_norm.py`,
//! `jensenshannon.py`), which calls scipy.
//!
//! Statistics from raw samples agree with scipy 1.17 (checked against
//! `tests/fixtures/drift/scipy_reference.json` in `tests/scipy_reference.rs`, whose
//! values also equal Evidently 0.7.23's stattest functions on the same samples); the JS
//! distance uses the natural logarithm, scipy's and Evidently's default.
//!
//! - [`stattests`]: KS, chi-squared, z-test.
//! - [`distance`]: Wasserstein, Jensen–Shannon, numpy-compatible histograms, and the
//!   approximate versions on sketches.
//! - `kolmogorov`: the KS null distributions (exact two-sample, scipy's `kstwo`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub mod distance;
mod kolmogorov;
pub mod stattests;

pub use distance::{
    jensen_shannon, jensen_shannon_categorical, jensen_shannon_frequent, jensen_shannon_histograms,
    jensen_shannon_numeric, wasserstein, wasserstein_normalised, wasserstein_sketches,
};
pub use kolmogorov::one_sample_sf as kstwo_sf;
pub use stattests::{
    KsMethod, TestResult, chi_square, ks_2samp, ks_2samp_asymptotic, proportions_z_test,
};

/// Why a drift statistic could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriftError {
    /// A sample (or every count) was empty.
    #[error("a sample is empty")]
    EmptySample,
    /// A numeric sample held NaN.
    #[error("a numeric sample holds NaN")]
    NotANumber,
    /// Two histograms did not have the same bins.
    #[error("the distributions have different numbers of bins")]
    MismatchedBins,
    /// The reference and the current sample are not the same kind (numeric, categorical).
    #[error("the reference and current samples are of different kinds")]
    KindMismatch,
    /// The method needs numeric values (KS, Wasserstein) but the feature is categorical.
    #[error("{method:?} needs a numeric feature")]
    MethodNotApplicable {
        /// The method asked for.
        method: DriftMethod,
    },
}

/// A drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftMethod {
    /// Two-sample Kolmogorov–Smirnov, p-value (numeric).
    Ks,
    /// Chi-squared against the reference proportions, p-value (categorical).
    ChiSquare,
    /// Two-proportion z-test, p-value (binary categorical).
    ZTest,
    /// Wasserstein distance / reference std (numeric).
    Wasserstein,
    /// Jensen–Shannon distance (categorical, or numeric in Sturges bins).
    JensenShannon,
}

impl DriftMethod {
    /// Whether the score is a p-value (drift below the threshold) rather than a distance
    /// (drift at or above it).
    pub fn is_hypothesis_test(self) -> bool {
        matches!(self, Self::Ks | Self::ChiSquare | Self::ZTest)
    }
}

/// Drift settings of one model. Every field has Evidently's default; unknown keys are
/// refused so a typo does not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    /// A reference with more rows than this uses the distances, else the tests.
    pub small_reference_max_rows: usize,
    /// A numeric feature with at most this many distinct values is tested as categorical.
    pub max_distinct_for_categorical: usize,
    /// Drift when a test's p-value is below this.
    pub p_value_threshold: f64,
    /// Drift when the normalised Wasserstein distance is at or above this.
    pub wasserstein_threshold: f64,
    /// Drift when the Jensen–Shannon distance is at or above this.
    pub jensen_shannon_threshold: f64,
    /// The dataset drifts when this share of its features (or more) drift.
    pub drift_share: f64,
    /// Test for every numeric feature instead of the default choice.
    pub numeric_method: Option<DriftMethod>,
    /// Test for every categorical feature instead of the default choice.
    pub categorical_method: Option<DriftMethod>,
    /// Test for one feature, by name (wins over the two above).
    pub feature_methods: BTreeMap<String, DriftMethod>,
    /// Threshold for one feature, by name (p-value or distance, per its method).
    pub feature_thresholds: BTreeMap<String, f64>,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            small_reference_max_rows: 1000,
            max_distinct_for_categorical: 5,
            p_value_threshold: 0.05,
            wasserstein_threshold: 0.1,
            jensen_shannon_threshold: 0.1,
            drift_share: 0.5,
            numeric_method: None,
            categorical_method: None,
            feature_methods: BTreeMap::new(),
            feature_thresholds: BTreeMap::new(),
        }
    }
}

impl DriftConfig {
    fn threshold(&self, feature: &str, method: DriftMethod) -> f64 {
        self.feature_thresholds
            .get(feature)
            .copied()
            .unwrap_or(match method {
                DriftMethod::Ks | DriftMethod::ChiSquare | DriftMethod::ZTest => {
                    self.p_value_threshold
                }
                DriftMethod::Wasserstein => self.wasserstein_threshold,
                DriftMethod::JensenShannon => self.jensen_shannon_threshold,
            })
    }
}

/// One feature's values in a window (raw values, or counts per category).
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSample {
    /// Raw numeric values.
    Numeric(Vec<f64>),
    /// Occurrences per category.
    Categorical(BTreeMap<String, u64>),
}

/// The drift verdict on one feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// The test that ran.
    pub method: DriftMethod,
    /// The p-value of a test, or the distance.
    pub score: f64,
    /// The test statistic (D, χ², z), or the distance again.
    pub statistic: f64,
    /// The threshold applied.
    pub threshold: f64,
    /// `score < threshold` for a test, `score ≥ threshold` for a distance.
    pub drifted: bool,
}

/// Runs the configured (or default) drift test on one feature. Non-finite numeric values
/// are dropped first, as Evidently drops NaN and ±∞; a sample left empty is an error.
pub fn feature_drift(
    name: &str,
    reference: &FeatureSample,
    current: &FeatureSample,
    config: &DriftConfig,
) -> Result<FeatureDrift, DriftError> {
    // Evidently drops missing and infinite values before testing a column.
    let finite = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .filter(|x| x.is_finite())
            .map(|x| x + 0.0) // -0.0 is 0.0
            .collect()
    };
    let numeric;
    let samples = match (reference, current) {
        (FeatureSample::Numeric(r), FeatureSample::Numeric(c)) => {
            numeric = (finite(r), finite(c));
            Samples::Numeric(&numeric.0, &numeric.1)
        }
        (FeatureSample::Categorical(r), FeatureSample::Categorical(c)) => {
            Samples::Categorical(r, c)
        }
        _ => return Err(DriftError::KindMismatch),
    };
    let (reference_rows, current_rows) = samples.rows();
    if reference_rows == 0 || current_rows == 0 {
        return Err(DriftError::EmptySample);
    }
    let method = match config.feature_methods.get(name) {
        Some(method) => *method,
        None => default_method(samples, config),
    };
    let (statistic, score) = run(method, samples)?;
    let threshold = config.threshold(name, method);
    let drifted = if method.is_hypothesis_test() {
        score < threshold
    } else {
        score >= threshold
    };
    Ok(FeatureDrift {
        method,
        score,
        statistic,
        threshold,
        drifted,
    })
}

/// Evidently's choice (the table in the module docs), or the configured method for the
/// feature's kind. Numeric features with few distinct values count as categorical.
fn default_method(samples: Samples<'_>, config: &DriftConfig) -> DriftMethod {
    let small = samples.rows().0 <= config.small_reference_max_rows as u64;
    let categorical = |distinct: usize| {
        config
            .categorical_method
            .unwrap_or(match (small, distinct) {
                (true, 0..=2) => DriftMethod::ZTest,
                (true, _) => DriftMethod::ChiSquare,
                (false, _) => DriftMethod::JensenShannon,
            })
    };
    match samples {
        Samples::Numeric(r, c) => {
            if let Some(method) = config.numeric_method {
                return method;
            }
            let limit = config.max_distinct_for_categorical;
            match distinct_count(r.iter().chain(c), limit + 1) {
                d if d <= limit => categorical(d),
                _ if small => DriftMethod::Ks,
                _ => DriftMethod::Wasserstein,
            }
        }
        Samples::Categorical(r, c) => {
            categorical(r.keys().chain(c.keys()).collect::<BTreeSet<_>>().len())
        }
    }
}

/// A feature's reference and current samples, borrowed.
#[derive(Clone, Copy)]
enum Samples<'a> {
    Numeric(&'a [f64], &'a [f64]),
    Categorical(&'a BTreeMap<String, u64>, &'a BTreeMap<String, u64>),
}

impl Samples<'_> {
    /// Rows of the reference and of the current sample.
    fn rows(&self) -> (u64, u64) {
        match self {
            Self::Numeric(r, c) => (r.len() as u64, c.len() as u64),
            Self::Categorical(r, c) => (r.values().sum(), c.values().sum()),
        }
    }
}

/// `(statistic, score)` of `method`: a test's statistic and p-value, or the distance twice.
fn run(method: DriftMethod, samples: Samples<'_>) -> Result<(f64, f64), DriftError> {
    use DriftMethod::*;
    let test = |r: TestResult| (r.statistic, r.p_value);
    let distance_score = |d: f64| (d, d);
    Ok(match (method, samples) {
        (Ks, Samples::Numeric(r, c)) => test(ks_2samp(r, c)?.0),
        (Wasserstein, Samples::Numeric(r, c)) => distance_score(wasserstein_normalised(r, c)?),
        (JensenShannon, Samples::Numeric(r, c)) => distance_score(jensen_shannon_numeric(r, c)?),
        // a numeric feature with few values is tested as categories: its values
        (ChiSquare | ZTest, Samples::Numeric(r, c)) => {
            let (r, c) = (distance::value_counts(r), distance::value_counts(c));
            return run(method, Samples::Categorical(&r, &c));
        }
        (ChiSquare, Samples::Categorical(r, c)) => test(chi_square(r, c)?),
        (ZTest, Samples::Categorical(r, c)) => test(proportions_z_test(r, c)?),
        (JensenShannon, Samples::Categorical(r, c)) => {
            distance_score(jensen_shannon_categorical(r, c)?)
        }
        (Ks | Wasserstein, Samples::Categorical(..)) => {
            return Err(DriftError::MethodNotApplicable { method });
        }
    })
}

/// Distinct values, counting no further than `stop`.
fn distinct_count<'a>(values: impl Iterator<Item = &'a f64>, stop: usize) -> usize {
    let mut seen: Vec<u64> = Vec::new();
    for v in values {
        let bits = v.to_bits();
        if !seen.contains(&bits) {
            seen.push(bits);
            if seen.len() >= stop {
                break;
            }
        }
    }
    seen.len()
}

/// The drift verdict on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDrift {
    /// Each feature's verdict, by name.
    pub features: BTreeMap<String, FeatureDrift>,
    /// How many features drifted.
    pub drifted_features: usize,
    /// `drifted_features / features.len()`.
    pub drifted_share: f64,
    /// `drifted_share ≥ config.drift_share`.
    pub drifted: bool,
}

/// Runs [`feature_drift`] on every `(name, reference, current)` and applies the share
/// rule. The first feature that cannot be tested fails the whole call, so a broken
/// feature never silently lowers the share.
pub fn dataset_drift<'a>(
    features: impl IntoIterator<Item = (&'a str, &'a FeatureSample, &'a FeatureSample)>,
    config: &DriftConfig,
) -> Result<DatasetDrift, DriftError> {
    let features = features
        .into_iter()
        .map(|(name, r, c)| Ok((name.to_owned(), feature_drift(name, r, c, config)?)))
        .collect::<Result<BTreeMap<_, _>, DriftError>>()?;
    let drifted_features = features.values().filter(|f| f.drifted).count();
    let drifted_share = if features.is_empty() {
        0.0
    } else {
        drifted_features as f64 / features.len() as f64
    };
    Ok(DatasetDrift {
        drifted: !features.is_empty() && drifted_share >= config.drift_share,
        features,
        drifted_features,
        drifted_share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(pairs: &[(&str, u64)]) -> FeatureSample {
        FeatureSample::Categorical(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    fn numeric(n: usize, f: impl Fn(usize) -> f64) -> FeatureSample {
        FeatureSample::Numeric((0..n).map(f).collect())
    }

    #[test]
    fn default_methods_follow_evidently() {
        let config = DriftConfig::default();
        let method = |r: &FeatureSample, c: &FeatureSample| {
            feature_drift("f", r, c, &config).unwrap().method
        };
        let spread = |n| numeric(n, |i| (i % 97) as f64 * 0.37);
        assert_eq!(method(&spread(500), &spread(300)), DriftMethod::Ks);
        assert_eq!(
            method(&spread(5000), &spread(300)),
            DriftMethod::Wasserstein
        );
        let few = |n| numeric(n, |i| (i % 4) as f64);
        assert_eq!(method(&few(500), &few(300)), DriftMethod::ChiSquare);
        assert_eq!(method(&few(5000), &few(300)), DriftMethod::JensenShannon);
        let two = cats(&[("yes", 40), ("no", 60)]);
        assert_eq!(method(&two, &two), DriftMethod::ZTest);
        let three = cats(&[("a", 4), ("b", 6), ("c", 1)]);
        assert_eq!(method(&three, &three), DriftMethod::ChiSquare);
    }

    #[test]
    fn overrides_and_thresholds_apply() {
        let config: DriftConfig = serde_json::from_str(
            r#"{"numeric_method": "jensen_shannon", "feature_thresholds": {"f": 0.9}}"#,
        )
        .unwrap();
        let r = numeric(500, |i| i as f64);
        let c = numeric(500, |i| i as f64 + 250.0);
        let verdict = feature_drift("f", &r, &c, &config).unwrap();
        assert_eq!(verdict.method, DriftMethod::JensenShannon);
        assert_eq!(verdict.threshold, 0.9);
        assert!(!verdict.drifted);
        assert!(serde_json::from_str::<DriftConfig>(r#"{"treshold": 1}"#).is_err());
        // an override reaches a numeric feature with few values as numbers
        let ks = DriftConfig {
            numeric_method: Some(DriftMethod::Ks),
            ..DriftConfig::default()
        };
        let few = numeric(300, |i| (i % 3) as f64);
        assert_eq!(
            feature_drift("f", &few, &few, &ks).unwrap().method,
            DriftMethod::Ks
        );
        let ks_on_categories = DriftConfig {
            categorical_method: Some(DriftMethod::Ks),
            ..DriftConfig::default()
        };
        let two = cats(&[("a", 1), ("b", 2), ("c", 3)]);
        assert!(matches!(
            feature_drift("g", &two, &two, &ks_on_categories),
            Err(DriftError::MethodNotApplicable { .. })
        ));
    }

    #[test]
    fn non_finite_values_are_dropped_first() {
        let config = DriftConfig::default();
        let mut values: Vec<f64> = (0..100).map(|i| i as f64 * 0.5).collect();
        let clean = FeatureSample::Numeric(values.clone());
        values.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        let dirty = FeatureSample::Numeric(values);
        let verdict = feature_drift("f", &dirty, &clean, &config).unwrap();
        assert_eq!(
            (verdict.method, verdict.statistic, verdict.drifted),
            (DriftMethod::Ks, 0.0, false)
        );
        let only_nan = FeatureSample::Numeric(vec![f64::NAN]);
        assert_eq!(
            feature_drift("f", &only_nan, &clean, &config).unwrap_err(),
            DriftError::EmptySample
        );
        let kinds = feature_drift("f", &clean, &cats(&[("a", 1)]), &config);
        assert_eq!(kinds.unwrap_err(), DriftError::KindMismatch);
    }

    #[test]
    fn dataset_drift_uses_the_share() {
        let config = DriftConfig::default();
        let r = numeric(300, |i| i as f64);
        let same = numeric(300, |i| i as f64 + 0.5);
        let shifted = numeric(300, |i| i as f64 + 150.0);
        let verdict = dataset_drift([("a", &r, &shifted), ("b", &r, &same)], &config).unwrap();
        assert_eq!(verdict.drifted_features, 1);
        assert!(verdict.drifted, "1 of 2 is the default share 0.5");
        let stricter = DriftConfig {
            drift_share: 0.6,
            ..config
        };
        assert!(
            !dataset_drift([("a", &r, &shifted), ("b", &r, &same)], &stricter)
                .unwrap()
                .drifted
        );
    }
}
