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

/// A classifier trained on string labels answers its labels as a string tensor, the ones
/// onnxruntime gives on the same rows (onnxruntime 1.x on this fixture, `label` and
/// `probabilities`), through the length-prefixed layout of `TensorType::String`.
#[test]
fn a_string_label_classifier_answers_onnxruntimes_labels() {
    use wisp_host::{NamedTensor, Tensor, TensorType};
    let bytes = wisp_test_artifacts::fixture("unsupported/iris_string_labels.onnx");
    let graph = wisp_host::OnnxGraph::load(&bytes).expect("served");
    let outputs = &graph.info().signature.outputs;
    assert_eq!(outputs[0].name, "label");
    assert_eq!(outputs[0].ty, TensorType::String);
    let rows = [
        5.1f32, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3, 5.9, 3.0, 4.2, 1.5,
    ];
    let input = NamedTensor::new("input", Tensor::from_values(&[3, 4], &rows));
    let answer = graph.run(vec![input]).expect("runs");
    let label = &answer[0].tensor;
    assert_eq!(label.ty, TensorType::String);
    assert_eq!(label.shape, vec![3]);
    assert_eq!(
        label.strings().unwrap(),
        vec!["setosa", "virginica", "versicolor"]
    );
    let probabilities = answer[1].tensor.values::<f32>().unwrap();
    let expected = [
        0.981_572_9,
        0.018_427_13,
        1.478_114_6e-8,
        5.641_345e-5,
        0.080_677_14,
        0.919_266_5,
        0.015_195_2,
        0.898_523_1,
        0.086_281_74,
    ];
    for (got, want) in probabilities.iter().zip(expected) {
        assert!((got - want).abs() < 1e-5, "{probabilities:?}");
    }
}

/// String tensors are served on onnxruntime too: the same labels as on tract.
#[cfg(feature = "onnxruntime")]
#[test]
fn onnxruntime_serves_a_string_output() {
    use wisp_host::{NamedTensor, Tensor, TensorType};
    let bytes = wisp_test_artifacts::fixture("unsupported/iris_string_labels.onnx");
    let graph = wisp_host::OnnxGraph::load_on(&bytes, OnnxBackend::Onnxruntime).expect("loads");
    assert_eq!(graph.backend(), OnnxBackend::Onnxruntime);
    assert_eq!(graph.info().signature.outputs[0].ty, TensorType::String);
    let rows = [5.1f32, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];
    let input = NamedTensor::new("input", Tensor::from_values(&[2, 4], &rows));
    let answer = graph.run(vec![input]).expect("runs");
    assert_eq!(
        answer[0].tensor.strings().unwrap(),
        vec!["setosa", "virginica"]
    );
}

/// Through the whole path (the `onnx-runner` component, wasi-nn) with the deployment's
/// backend chosen per call: `auto` serves the graphs tract refuses on onnxruntime.
#[cfg(feature = "onnxruntime")]
#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_serves_each_backend_per_call() {
    use common::coverage::{compare, expected, inputs};
    use common::*;
    use wisp_host::TenantLimits;

    let expected = expected("exporters");
    let harness = Harness::new();
    for (file, backend) in [
        ("torch_transformer.onnx", OnnxBackend::Tract),
        ("torch_transformer.onnx", OnnxBackend::Onnxruntime),
        ("lgbm_iris_classifier.onnx", OnnxBackend::Onnxruntime),
        ("keras_gru.onnx", OnnxBackend::Auto),
        ("keras_lstm.onnx", OnnxBackend::Onnxruntime),
    ] {
        let entry = &expected["models"][file];
        let model = harness.graph_model(
            "org-exporters",
            file.trim_end_matches(".onnx"),
            wisp_test_artifacts::fixture(&format!("exporters/{file}")),
        );
        let prediction = harness
            .runtime
            .predict_on(&model, backend, &TenantLimits::default(), inputs(entry))
            .await
            .unwrap_or_else(|e| panic!("{file} on {backend}: {e}"));
        compare(entry, &prediction.outputs).unwrap_or_else(|e| panic!("{file} on {backend}: {e}"));
    }
    // On tract alone the same upload is refused, naming the operator.
    let model = harness.graph_model(
        "org-exporters",
        "keras_gru",
        wisp_test_artifacts::fixture("exporters/keras_gru.onnx"),
    );
    let refused = harness
        .runtime
        .predict_on(&model, OnnxBackend::Tract, &TenantLimits::default(), vec![])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "unsupported_operator");
    assert!(
        refused.to_string().contains("Loop (ai.onnx opset"),
        "{refused}"
    );
}

/// onnxruntime runs are stopped at the call's deadline too (terminated by the watchdog,
/// between two of onnxruntime's nodes).
#[cfg(feature = "onnxruntime")]
#[tokio::test(flavor = "multi_thread")]
async fn an_onnxruntime_run_stops_at_its_deadline() {
    use common::*;
    use std::time::{Duration, Instant};
    use wisp_host::{NamedTensor, TenantLimits, Tensor};

    let harness = Harness::new();
    let chain = harness.graph_model("org-slow", "chain", graphs::matmul_chain(1200));
    let limits = TenantLimits {
        deadline: Duration::from_millis(200),
        ..TenantLimits::default()
    };
    let side = 256u32;
    let x = vec![NamedTensor::new(
        "x",
        Tensor::from_values(&[side, side], &vec![0.5f32; (side * side) as usize]),
    )];
    let started = Instant::now();
    let error = harness
        .runtime
        .predict_on(&chain, OnnxBackend::Onnxruntime, &limits, x)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "deadline_exceeded", "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(harness.runtime.stats().stuck_calls, 0);
}
