//! The ai.onnx.ml coverage suite: every model of `tests/fixtures/ml` (scikit-learn exports
//! and single-operator graphs, see `gen_ml_models.py`) runs on wisp's tract backend and
//! agrees with onnxruntime (see `common/coverage.rs` for the comparison).

mod common;

use common::coverage::{compare, expected, failures, inputs, run_native};
use common::*;
use wisp_host::{OnnxBackend, TenantLimits, Tensor};
use wisp_test_artifacts::fixture;

#[test]
fn every_fixture_matches_onnxruntime_natively() {
    let (count, failed) = failures("ml", OnnxBackend::Tract);
    assert!(count >= 60, "{count} fixtures");
    assert!(failed.is_empty(), "{} failed: {failed:#?}", failed.len());
}

/// The same fixtures on the onnxruntime backend (`ORT_DYLIB_PATH` names the library).
#[cfg(feature = "onnxruntime")]
#[test]
fn every_fixture_matches_onnxruntime_on_the_onnxruntime_backend() {
    let (count, failed) = failures("ml", OnnxBackend::Onnxruntime);
    assert!(count >= 60, "{count} fixtures");
    assert!(failed.is_empty(), "{} failed: {failed:#?}", failed.len());
}

/// The comparison is not vacuous: a score off by more than the tolerance, or a wrong
/// label, is reported.
#[test]
fn a_wrong_output_is_caught() {
    let expected = expected("ml");
    let entry = &expected["models"]["iris_svc_rbf_proba.onnx"];
    let got = run_native("ml", "iris_svc_rbf_proba.onnx", entry, OnnxBackend::Tract).unwrap();
    compare(entry, &got).unwrap();

    let mut off = got.clone();
    let probabilities = off.iter_mut().find(|o| o.name == "probabilities").unwrap();
    let mut values = probabilities.tensor.values::<f32>().unwrap();
    values[4] += 2e-4;
    probabilities.tensor = Tensor::from_values(&probabilities.tensor.shape, &values);
    assert!(compare(entry, &off).unwrap_err().contains("probabilities"));

    let mut wrong = got;
    let labels = wrong.iter_mut().find(|o| o.name == "label").unwrap();
    let mut values = labels.tensor.values::<i64>().unwrap();
    values[0] = (values[0] + 1) % 3;
    labels.tensor = Tensor::from_values(&labels.tensor.shape, &values);
    assert!(compare(entry, &wrong).unwrap_err().contains("label"));
}

/// Default exports (ZipMap) and the common pipelines through the whole path: upload as a
/// plain ONNX model, served by the `onnx-runner` component through wasi-nn.
#[tokio::test(flavor = "multi_thread")]
async fn default_exports_match_onnxruntime_through_the_runtime() {
    let expected = expected("ml");
    let harness = Harness::new();
    let mut failures = Vec::new();
    for file in [
        "iris_std_logreg_zipmap.onnx",
        "cancer_std_logreg_zipmap.onnx",
        "iris_svc_rbf_proba_zipmap.onnx",
        "iris_svc_rbf.onnx",
        "cancer_gbc_zipmap.onnx",
        "iris_forest_zipmap.onnx",
        "diabetes_gbr.onnx",
        "diabetes_svr_rbf.onnx",
        "int_onehot.onnx",
        "iris_imputer_mean.onnx",
        // String inputs and outputs cross wasi-nn as length-prefixed u8 tensors.
        "weather_onehot_logreg_zipmap.onnx",
        "weather_ordinal_encoder.onnx",
        "op_category_mapper_int_string.onnx",
    ] {
        let entry = &expected["models"][file];
        let name = file.trim_end_matches(".onnx");
        let model = harness.graph_model("org-ml", name, fixture(&format!("ml/{file}")));
        let result = harness
            .runtime
            .predict(&model, &TenantLimits::default(), inputs(entry))
            .await
            .map_err(|e| format!("predict: {e}"))
            .and_then(|prediction| compare(entry, &prediction.outputs));
        match &result {
            Ok(()) => println!("pass  {file} (runtime)"),
            Err(why) => println!("FAIL  {file} (runtime): {why}"),
        }
        if let Err(why) = result {
            failures.push(format!("{file}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
