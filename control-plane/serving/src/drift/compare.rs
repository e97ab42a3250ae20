//! A window's profile against the reference: one verdict per feature and per output, with
//! Evidently's default tests (`wisp_monitoring::drift`), and the dataset's verdict.
//!
//! Against a small reference (raw values kept, ≤ 1,000 rows) the tests run on the raw
//! samples: Kolmogorov–Smirnov for numeric features, chi-squared (or the z-test for two
//! categories) for categorical ones and numeric ones with ≤ 5 distinct values; exact when
//! the window's sample holds all of its values (≤ 1,000 sampled rows). Against a large
//! reference (sketches only): the normalised Wasserstein distance from the quantile
//! sketches, or Jensen–Shannon from the category counts.

use serde::Serialize;
use utoipa::ToSchema;
use wisp_monitoring::drift::{
    self, DriftConfig, DriftMethod, FeatureDrift, FeatureSample, jensen_shannon_frequent,
    wasserstein_sketches,
};

use super::profile::{FeatureProfile, Profile};

/// The verdict on one feature (or output column) in a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeatureVerdict {
    pub feature: String,
    /// `ks`, `chi_square`, `z_test`, `wasserstein` or `jensen_shannon`; absent when skipped.
    #[schema(value_type = Option<String>)]
    pub method: Option<DriftMethod>,
    /// The p-value of a test, or the distance: what is compared with `threshold`.
    pub score: Option<f64>,
    /// The p-value, for a test.
    pub p_value: Option<f64>,
    /// The distance, for a distance.
    pub distance: Option<f64>,
    /// The test statistic (KS D, χ², z), or the distance.
    pub statistic: Option<f64>,
    pub threshold: Option<f64>,
    pub drifted: bool,
    /// Values of the feature in the window.
    pub current_count: u64,
    /// Computed on every value of both sides (not a sample, not a sketch).
    pub exact: bool,
    /// Why the feature was not tested (no values in the window, a method that needs the
    /// raw values of a large reference…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl FeatureVerdict {
    fn skipped(feature: &str, current_count: u64, why: impl Into<String>) -> Self {
        Self {
            feature: feature.to_owned(),
            method: None,
            score: None,
            p_value: None,
            distance: None,
            statistic: None,
            threshold: None,
            drifted: false,
            current_count,
            exact: false,
            skipped: Some(why.into()),
        }
    }

    fn tested(feature: &str, current_count: u64, result: FeatureDrift, exact: bool) -> Self {
        let test = result.method.is_hypothesis_test();
        Self {
            feature: feature.to_owned(),
            method: Some(result.method),
            score: Some(result.score),
            p_value: test.then_some(result.score),
            distance: (!test).then_some(result.score),
            statistic: Some(result.statistic),
            threshold: Some(result.threshold),
            drifted: result.drifted,
            current_count,
            exact,
            skipped: None,
        }
    }
}

/// A window (or several merged) against the reference.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comparison {
    /// Rows in the window.
    pub rows: u64,
    /// Input features.
    pub features: Vec<FeatureVerdict>,
    /// Tested features that drifted.
    pub drifted_features: usize,
    /// `drifted_features` over the features tested (0 when none was).
    pub drifted_share: f64,
    /// `drifted_share ≥ drift_share` (0.5 by default).
    pub dataset_drift: bool,
    /// Output columns (the prediction), tested the same way.
    pub prediction: Vec<FeatureVerdict>,
    /// The share rule over the output columns.
    pub prediction_drift: bool,
}

/// Every feature and output of the reference, tested on `current`.
pub fn compare(reference: &Profile, current: &Profile, config: &DriftConfig) -> Comparison {
    let side = |reference: &std::collections::BTreeMap<String, FeatureProfile>,
                current: &std::collections::BTreeMap<String, FeatureProfile>| {
        let verdicts: Vec<FeatureVerdict> = reference
            .iter()
            .map(|(name, r)| match current.get(name) {
                Some(c) => verdict(name, r, c, config),
                None => FeatureVerdict::skipped(name, 0, "no values in the window"),
            })
            .collect();
        let tested = verdicts.iter().filter(|v| v.skipped.is_none()).count();
        let drifted = verdicts.iter().filter(|v| v.drifted).count();
        let share = if tested == 0 {
            0.0
        } else {
            drifted as f64 / tested as f64
        };
        (
            verdicts,
            drifted,
            share,
            tested > 0 && share >= config.drift_share,
        )
    };
    let (features, drifted_features, drifted_share, dataset_drift) =
        side(&reference.features, &current.features);
    let (prediction, _, _, prediction_drift) = side(&reference.outputs, &current.outputs);
    Comparison {
        rows: current.rows,
        features,
        drifted_features,
        drifted_share,
        dataset_drift,
        prediction,
        prediction_drift,
    }
}

/// One feature's verdict (see the module docs for which test runs on what).
pub fn verdict(
    name: &str,
    reference: &FeatureProfile,
    current: &FeatureProfile,
    config: &DriftConfig,
) -> FeatureVerdict {
    let count = current.count();
    if count == 0 {
        return FeatureVerdict::skipped(name, 0, "no values in the window");
    }
    let tested = |r: &FeatureSample, c: &FeatureSample, exact: bool| match drift::feature_drift(
        name, r, c, config,
    ) {
        Ok(result) => FeatureVerdict::tested(name, count, result, exact),
        Err(error) => FeatureVerdict::skipped(name, count, error.to_string()),
    };
    let categories =
        |items: &wisp_monitoring::FrequentItems| FeatureSample::Categorical(items.counts().clone());
    match (reference, current) {
        (
            FeatureProfile::Numeric {
                sample: Some(r), ..
            },
            FeatureProfile::Numeric {
                sample: Some(c), ..
            },
        ) if r.is_complete() => tested(
            &FeatureSample::Numeric(r.values.clone()),
            &FeatureSample::Numeric(c.values.clone()),
            c.is_complete(),
        ),
        (
            FeatureProfile::Numeric {
                sketch: r_sketch,
                values: r_values,
                ..
            },
            FeatureProfile::Numeric {
                sketch: c_sketch,
                values: c_values,
                ..
            },
        ) => {
            let method = config
                .feature_methods
                .get(name)
                .copied()
                .or(config.numeric_method);
            let distinct = r_values
                .counts()
                .keys()
                .chain(c_values.counts().keys())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let few = r_values.is_exact()
                && c_values.is_exact()
                && distinct <= config.max_distinct_for_categorical;
            if few && method.is_none() {
                return tested(&categories(r_values), &categories(c_values), true);
            }
            match method.unwrap_or(DriftMethod::Wasserstein) {
                DriftMethod::Wasserstein => match wasserstein_sketches(r_sketch, c_sketch) {
                    Some(w) => {
                        let threshold = config
                            .feature_thresholds
                            .get(name)
                            .copied()
                            .unwrap_or(config.wasserstein_threshold);
                        let result = FeatureDrift {
                            method: DriftMethod::Wasserstein,
                            score: w.normalised,
                            statistic: w.normalised,
                            threshold,
                            drifted: w.normalised >= threshold,
                        };
                        FeatureVerdict::tested(name, count, result, false)
                    }
                    None => FeatureVerdict::skipped(name, count, "a sketch is empty"),
                },
                other => FeatureVerdict::skipped(
                    name,
                    count,
                    format!(
                        "{other:?} needs the reference's raw values; a reference of more than 1,000 rows is kept as sketches"
                    ),
                ),
            }
        }
        (
            FeatureProfile::Categorical { categories: r },
            FeatureProfile::Categorical { categories: c },
        ) => {
            if r.is_exact() && c.is_exact() {
                return tested(&categories(r), &categories(c), true);
            }
            match jensen_shannon_frequent(r, c) {
                Ok(distance) => {
                    let threshold = config
                        .feature_thresholds
                        .get(name)
                        .copied()
                        .unwrap_or(config.jensen_shannon_threshold);
                    let result = FeatureDrift {
                        method: DriftMethod::JensenShannon,
                        score: distance,
                        statistic: distance,
                        threshold,
                        drifted: distance >= threshold,
                    };
                    FeatureVerdict::tested(name, count, result, false)
                }
                Err(error) => FeatureVerdict::skipped(name, count, error.to_string()),
            }
        }
        _ => FeatureVerdict::skipped(
            name,
            count,
            "numeric in one profile and categorical in the other",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::columns::{Column, Values};

    fn profile(x: Vec<f64>, cats: Vec<&str>) -> Profile {
        let mut rng = rand::thread_rng();
        let mut p = Profile::default();
        let rows = x.len() as u64;
        p.add(
            rows,
            &[
                Column {
                    name: "x".into(),
                    values: Values::Numeric(x),
                },
                Column {
                    name: "c".into(),
                    values: Values::Text(cats.into_iter().map(String::from).collect()),
                },
            ],
            &[],
            &mut rng,
        );
        p
    }

    #[test]
    fn small_references_test_raw_values_and_large_ones_use_sketches() {
        let config = DriftConfig::default();
        // skewed: every other row is "a" (two thirds in all, against a third)
        let cats = |n: usize, skewed: bool| {
            (0..n)
                .map(|i| {
                    if skewed && i % 2 == 0 {
                        "a"
                    } else {
                        ["a", "b", "c"][i % 3]
                    }
                })
                .collect::<Vec<_>>()
        };
        let reference = profile(
            (0..500).map(|i| (i % 97) as f64).collect(),
            cats(500, false),
        );
        let same = profile(
            (0..300).map(|i| (i % 97) as f64).collect(),
            cats(300, false),
        );
        let shifted = profile(
            (0..300).map(|i| (i % 97) as f64 + 40.0).collect(),
            cats(300, true),
        );
        let calm = compare(&reference, &same, &config);
        assert!(!calm.dataset_drift, "{calm:?}");
        assert!(calm.features.iter().all(|f| f.exact));
        let moved = compare(&reference, &shifted, &config);
        assert_eq!(moved.drifted_features, 2, "{moved:?}");
        assert_eq!(moved.features[1].method, Some(DriftMethod::Ks));
        assert_eq!(moved.features[0].method, Some(DriftMethod::ChiSquare));

        let large = profile(
            (0..3000).map(|i| (i % 97) as f64).collect(),
            cats(3000, false),
        )
        .into_reference();
        let moved = compare(&large, &shifted, &config);
        let x = &moved.features[1];
        assert_eq!(
            (x.method, x.drifted, x.exact),
            (Some(DriftMethod::Wasserstein), true, false)
        );
        assert_eq!(moved.features[0].method, Some(DriftMethod::JensenShannon));
    }
}
