//! The exporter coverage suite: models from PyTorch, Keras/TensorFlow (tf2onnx), XGBoost
//! and LightGBM (onnxmltools) in `tests/fixtures/exporters` (see
//! `gen_exporter_models.py`), compared with onnxruntime's outputs on each backend.

mod common;

use common::coverage::failures;
use wisp_host::OnnxBackend;

/// What tract 0.23 refuses at load, with why (see `docs/models.md`); `auto` serves them on
/// onnxruntime. Listed so a regression elsewhere fails, and so does a fix that forgets to
/// update the list.
const TRACT_REFUSES: &[&str] = &[
    // tf2onnx's Keras GRU is a `Loop` over the time steps: tract has no `Loop`.
    "keras_gru.onnx",
    // The initial LSTM state is `Expand(0, Concat(Shape(x)[:1], [16]))`: tract cannot type
    // an `Expand` whose shape input is computed at run time.
    "keras_lstm.onnx",
];

#[test]
fn every_exporter_fixture_matches_onnxruntime_on_tract() {
    let (count, failed) = failures("exporters", OnnxBackend::Tract);
    assert!(count >= 15, "{count} fixtures");
    let unexpected: Vec<_> = failed
        .iter()
        .filter(|(file, _)| !TRACT_REFUSES.contains(&file.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    let failed_files: Vec<&str> = failed.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(
        failed_files, TRACT_REFUSES,
        "tract now runs a listed fixture"
    );
}

/// The bar: with tract alone, at least 95 % of all coverage fixtures (scikit-learn
/// and the other exporters) match onnxruntime.
#[test]
fn tract_alone_serves_at_least_95_percent_of_all_fixtures() {
    let (ml, ml_failed) = failures("ml", OnnxBackend::Tract);
    let (exporters, exporters_failed) = failures("exporters", OnnxBackend::Tract);
    let total = ml + exporters;
    let passed = total - ml_failed.len() - exporters_failed.len();
    println!("tract: {passed} of {total} fixtures match onnxruntime");
    assert!(passed * 100 >= total * 95, "{passed} of {total}");
}

/// `auto` serves what tract refuses on onnxruntime: every fixture passes.
#[cfg(feature = "onnxruntime")]
#[test]
fn every_exporter_fixture_matches_onnxruntime_on_auto() {
    let (_, failed) = failures("exporters", OnnxBackend::Auto);
    assert!(failed.is_empty(), "{failed:#?}");
}

#[cfg(feature = "onnxruntime")]
#[test]
fn every_exporter_fixture_matches_onnxruntime_on_the_onnxruntime_backend() {
    let (_, failed) = failures("exporters", OnnxBackend::Onnxruntime);
    assert!(failed.is_empty(), "{failed:#?}");
}

/// String tensors are not served yet: a classifier trained on string labels is refused at
/// load, naming the output (the message `docs/models.md` quotes).
#[test]
fn a_string_label_output_is_refused_at_load() {
    let bytes = wisp_test_artifacts::fixture("unsupported/iris_string_labels.onnx");
    let error = wisp_host::OnnxGraph::load(&bytes).err().expect("refused");
    assert_eq!(
        error.to_string(),
        "invalid model: `label` has element type String; supported are f32, f64, i32, i64, u8"
    );
    assert_eq!(error.code(), "invalid_model");
}
