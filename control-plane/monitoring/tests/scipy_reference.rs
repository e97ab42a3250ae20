//! The drift statistics against scipy: `tests/fixtures/drift/scipy_reference.json`,
//! written by `tests/fixtures/gen_drift_reference.py` (numpy 2.4.6, scipy 1.17.1) from
//! fixed-seed samples with and without drift. (The file's statistics are also what
//! Evidently 0.7.23's stattest functions return on those samples.)

use std::collections::BTreeMap;

use serde::Deserialize;
use wisp_monitoring::drift::{self, DriftConfig, DriftMethod, FeatureSample, KsMethod};

#[derive(Deserialize)]
struct Reference {
    numeric: Vec<NumericCase>,
    categorical: Vec<CategoricalCase>,
    kstwo_sf: Vec<(u64, f64, f64)>,
}

#[derive(Deserialize)]
struct NumericCase {
    name: String,
    reference: Vec<f64>,
    current: Vec<f64>,
    expect_drift: bool,
    ks_statistic: f64,
    ks_pvalue: f64,
    ks_asymp_pvalue: f64,
    wasserstein: f64,
    wasserstein_norm: f64,
    histogram_sturges_reference: Vec<u64>,
    histogram_sturges_current: Vec<u64>,
    jensenshannon: f64,
}

#[derive(Deserialize)]
struct CategoricalCase {
    name: String,
    reference: BTreeMap<String, u64>,
    current: BTreeMap<String, u64>,
    expect_drift: bool,
    chi2_statistic: f64,
    chi2_pvalue: f64,
    jensenshannon: f64,
}

fn load() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/drift/scipy_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

/// Statistics computed the same way: 1e-9 relative.
fn assert_rel(name: &str, what: &str, got: f64, want: f64) {
    let tolerance = 1e-9 * want.abs().max(1e-300);
    assert!(
        (got - want).abs() <= tolerance,
        "{name} {what}: {got} vs scipy {want}"
    );
}

/// p-values: 1e-10 relative (plus 1e-15 absolute for values that underflow to 0). They
/// agree to ~4e-13 relative: the same algorithms, summed in a different order.
fn assert_p(name: &str, what: &str, got: f64, want: f64) {
    let ok = (got - want).abs() <= 1e-10 * want.abs() + 1e-15;
    assert!(
        ok,
        "{name} {what}: {got} vs scipy {want} (diff {:e})",
        got - want
    );
}

#[test]
fn kolmogorov_smirnov_matches_scipy() {
    for case in load().numeric {
        let (ks, method) = drift::ks_2samp(&case.reference, &case.current).unwrap();
        assert_eq!(
            method,
            KsMethod::Exact,
            "{}: both sides ≤ 10 000 rows",
            case.name
        );
        assert_rel(&case.name, "D", ks.statistic, case.ks_statistic);
        assert_p(&case.name, "exact p", ks.p_value, case.ks_pvalue);
        let asymp = drift::ks_2samp_asymptotic(&case.reference, &case.current).unwrap();
        assert_p(
            &case.name,
            "asymptotic p",
            asymp.p_value,
            case.ks_asymp_pvalue,
        );
    }
}

#[test]
fn kstwo_survival_function_matches_scipy_on_every_branch() {
    for (n, x, want) in load().kstwo_sf {
        let got = drift::kstwo_sf(n, x);
        assert_p(&format!("kstwo n={n}"), &format!("sf({x})"), got, want);
    }
}

#[test]
fn distances_match_scipy() {
    for case in load().numeric {
        let w = drift::wasserstein(&case.reference, &case.current).unwrap();
        assert_rel(&case.name, "wasserstein", w, case.wasserstein);
        let wn = drift::wasserstein_normalised(&case.reference, &case.current).unwrap();
        assert_rel(&case.name, "wasserstein / std", wn, case.wasserstein_norm);
        let both = case.reference.iter().chain(&case.current).copied();
        let edges = drift::distance::histogram_edges_sturges(both).unwrap();
        let counts = |v: &[f64]| drift::distance::histogram_counts(v, &edges);
        assert_eq!(
            counts(&case.reference),
            case.histogram_sturges_reference,
            "{}",
            case.name
        );
        assert_eq!(
            counts(&case.current),
            case.histogram_sturges_current,
            "{}",
            case.name
        );
        let js = drift::jensen_shannon_numeric(&case.reference, &case.current).unwrap();
        assert_rel(&case.name, "jensenshannon", js, case.jensenshannon);
    }
    for case in load().categorical {
        let js = drift::jensen_shannon_categorical(&case.reference, &case.current).unwrap();
        assert_rel(&case.name, "jensenshannon", js, case.jensenshannon);
    }
}

#[test]
fn chi_square_matches_scipy() {
    for case in load().categorical {
        let chi = drift::chi_square(&case.reference, &case.current).unwrap();
        assert_rel(&case.name, "chi2", chi.statistic, case.chi2_statistic);
        assert_p(&case.name, "chi2 p", chi.p_value, case.chi2_pvalue);
    }
}

#[test]
fn default_decisions_find_the_planted_drift() {
    let config = DriftConfig::default();
    for case in load().numeric {
        let (r, c) = (
            FeatureSample::Numeric(case.reference.clone()),
            FeatureSample::Numeric(case.current.clone()),
        );
        let verdict = drift::feature_drift(&case.name, &r, &c, &config).unwrap();
        let want = if case.reference.len() <= 1000 {
            DriftMethod::Ks
        } else {
            DriftMethod::Wasserstein
        };
        assert_eq!(verdict.method, want, "{}", case.name);
        assert_eq!(
            verdict.drifted, case.expect_drift,
            "{}: {verdict:?}",
            case.name
        );
    }
    for case in load().categorical {
        let (r, c) = (
            FeatureSample::Categorical(case.reference.clone()),
            FeatureSample::Categorical(case.current.clone()),
        );
        let verdict = drift::feature_drift(&case.name, &r, &c, &config).unwrap();
        let rows: u64 = case.reference.values().sum();
        let want = if rows <= 1000 {
            DriftMethod::ChiSquare
        } else {
            DriftMethod::JensenShannon
        };
        assert_eq!(verdict.method, want, "{}", case.name);
        assert_eq!(
            verdict.drifted, case.expect_drift,
            "{}: {verdict:?}",
            case.name
        );
    }
}
