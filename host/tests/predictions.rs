//! Real models through the whole path (component → wasi-nn → tract) agree with onnxruntime.

mod common;

use common::*;
use wisp_host::{NamedTensor, RuntimeError, TenantLimits, Tensor, TensorType, inspect_onnx};
use wisp_test_artifacts::{components, fixture, fixtures_dir};

const TOLERANCE: f32 = 1e-5;

async fn check_model_against_references(file: &str) {
    let harness = Harness::new();
    let model = harness.onnx_model("org-a", file);
    let refs = references();
    let entry = &refs[file];
    let prediction = harness
        .runtime
        .predict(&model, &TenantLimits::default(), reference_inputs(entry))
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let expected = entry["outputs"].as_object().unwrap();
    assert_eq!(
        prediction.outputs.len(),
        expected.len(),
        "{file}: output count"
    );
    for (name, want) in expected {
        assert_matches_reference(name, output(&prediction.outputs, name), want, TOLERANCE);
    }
    let usage = &prediction.usage;
    assert!(usage.fuel_consumed > 0, "{file}: fuel is metered");
    assert!(
        !usage.inference_time.is_zero(),
        "{file}: inference time is measured"
    );
    assert!(usage.peak_memory_bytes > 0, "{file}: memory is measured");
    assert!(
        !usage.component_warm && !usage.graph_warm,
        "{file}: first call is cold"
    );
    let input_bytes: usize = reference_inputs(entry)
        .iter()
        .map(|i| i.tensor.data.len())
        .sum();
    assert_eq!(usage.input_bytes, input_bytes as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn logistic_regression_matches_onnxruntime() {
    check_model_against_references("iris_logreg.onnx").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mlp_matches_onnxruntime() {
    check_model_against_references("digits_mlp.onnx").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conv_net_matches_onnxruntime() {
    check_model_against_references("digits_cnn.onnx").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_is_read_from_the_model_file() {
    let harness = Harness::new();
    let refs = references();
    for file in ["iris_logreg.onnx", "digits_mlp.onnx", "digits_cnn.onnx"] {
        let info = inspect_onnx(&fixture(file)).unwrap();
        let want = &refs[file]["signature"];
        let described = harness
            .runtime
            .describe(&harness.onnx_model("org-a", file), &TenantLimits::default())
            .await
            .unwrap();
        assert_eq!(
            described, info.signature,
            "{file}: component describes the graph"
        );
        for (side, specs) in [
            ("inputs", &info.signature.inputs),
            ("outputs", &info.signature.outputs),
        ] {
            let want = want[side].as_array().unwrap();
            assert_eq!(specs.len(), want.len(), "{file} {side}");
            for (spec, w) in specs.iter().zip(want) {
                assert_eq!(spec.name, w["name"].as_str().unwrap());
                let shape: Vec<i64> = w["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_i64().unwrap())
                    .collect();
                assert_eq!(spec.shape, shape, "{file} {}", spec.name);
                let dtype = match spec.ty {
                    TensorType::F32 => "float32",
                    TensorType::I64 => "int64",
                    other => panic!("unexpected {other}"),
                };
                assert_eq!(dtype, w["dtype"].as_str().unwrap());
            }
        }
    }
    let iris = inspect_onnx(&fixture("iris_logreg.onnx")).unwrap();
    assert!(iris.metadata.contains(&(
        "wisp.feature_names".into(),
        "sepal_length,sepal_width,petal_length,petal_width".into()
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn tabular_classifier_takes_named_features() {
    let harness = Harness::new();
    let model = harness.model(
        "org-a",
        "iris",
        components::TABULAR_CLASSIFIER,
        Some("iris_logreg.onnx"),
    );
    let refs = references();
    let entry = &refs["iris_logreg.onnx"];
    let matrix = tensor_from_json(&entry["inputs"]["input"])
        .values::<f32>()
        .unwrap();
    let names = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
    let rows = matrix.len() / 4;
    let inputs = names
        .iter()
        .enumerate()
        .map(|(col, name)| {
            let column: Vec<f32> = (0..rows).map(|r| matrix[r * 4 + col]).collect();
            NamedTensor::new(*name, Tensor::from_values(&[rows as u32], &column))
        })
        .collect();
    let outputs = harness.predict(&model, inputs).await.unwrap();
    assert_matches_reference(
        "probabilities",
        output(&outputs, "probabilities"),
        &entry["outputs"]["probabilities"],
        TOLERANCE,
    );
    assert_matches_reference(
        "label",
        output(&outputs, "label"),
        &entry["outputs"]["label"],
        0.0,
    );

    let missing = harness
        .predict(
            &model,
            vec![NamedTensor::new(
                "sepal_length",
                Tensor::from_values(&[1], &[1.0f32]),
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "invalid_input", "{missing}");
    assert!(missing.to_string().contains("sepal_width"), "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_classifier_decodes_resizes_and_classifies() {
    let harness = Harness::new();
    let model = harness.model(
        "org-a",
        "digits",
        components::IMAGE_CLASSIFIER,
        Some("digits_cnn.onnx"),
    );
    let refs = references();
    for (file, want) in refs["digits_png"].as_object().unwrap() {
        let bytes = std::fs::read(fixtures_dir().join("digits_png").join(file)).unwrap();
        let image = Tensor::from_values(&[bytes.len() as u32], &bytes);
        let outputs = harness
            .predict(&model, vec![NamedTensor::new("image", image)])
            .await
            .unwrap();
        let top = output(&outputs, "top_k_indices").values::<i64>().unwrap();
        assert_eq!(top[0], want["label"].as_i64().unwrap(), "{file}: top-1");
        if let Some(probabilities) = want.get("probabilities") {
            assert_matches_reference(
                file,
                output(&outputs, "probabilities"),
                probabilities,
                TOLERANCE,
            );
        }
    }
    let not_an_image = Tensor::from_values(&[4], &[1u8, 2, 3, 4]);
    let error = harness
        .predict(&model, vec![NamedTensor::new("image", not_an_image)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_input", "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_inputs_get_specific_errors() {
    let harness = Harness::new();
    let model = harness.onnx_model("org-a", "iris_logreg.onnx");
    let row = |shape: &[u32], n: usize| Tensor::from_values(shape, &vec![1.0f32; n]);
    let cases: Vec<(Vec<NamedTensor>, &str)> = vec![
        (
            vec![NamedTensor::new("input", row(&[1, 3], 3))],
            "expected f32 [?, 4], got f32 [1, 3]",
        ),
        (
            vec![NamedTensor::new(
                "input",
                Tensor::from_values(&[1, 4], &[1i64; 4]),
            )],
            "got i64",
        ),
        (
            vec![NamedTensor::new("features", row(&[1, 4], 4))],
            "unknown input `features`",
        ),
        (vec![], "missing input `input`"),
    ];
    for (inputs, message) in cases {
        let error = harness.predict(&model, inputs).await.unwrap_err();
        assert_eq!(error.code(), "invalid_input", "{error}");
        assert!(
            error.to_string().contains(message),
            "`{error}` should mention `{message}`"
        );
    }
    // Data that does not fill its shape is refused before any instance runs.
    let ragged = Tensor {
        ty: TensorType::F32,
        shape: vec![1, 4],
        data: vec![0; 3],
    };
    let error = harness
        .predict(&model, vec![NamedTensor::new("input", ragged)])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        RuntimeError::InvalidInput(
            "input `input`: shape [1, 4] of f32 needs 16 bytes, got 3".into()
        )
    );
    // And the model still serves.
    harness
        .predict(&model, vec![NamedTensor::new("input", row(&[2, 4], 8))])
        .await
        .unwrap();
}

#[test]
fn corrupt_model_files_are_rejected_with_a_reason() {
    let good = fixture("digits_mlp.onnx");
    let jpeg = std::fs::read(fixtures_dir().join("digits_png/digit_24_4_32px.jpg")).unwrap();
    let mut flipped = good.clone();
    for byte in flipped.iter_mut().skip(40).step_by(97) {
        *byte ^= 0x5a;
    }
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("jpeg", jpeg),
        ("flipped bytes", flipped),
        ("text", b"definitely not a model".to_vec()),
    ] {
        let error = inspect_onnx(&bytes).expect_err(what);
        assert_eq!(error.code(), "invalid_model", "{what}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_artifacts_are_model_not_found() {
    let harness = Harness::new();
    let mut model = harness.onnx_model("org-a", "iris_logreg.onnx");
    model.graph = Some(wisp_host::Digest::of(b"never stored"));
    let error = harness.predict(&model, vec![]).await.unwrap_err();
    assert_eq!(error.code(), "model_not_found", "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn components_are_validated() {
    let harness = Harness::new();
    let runtime = &harness.runtime;
    runtime
        .validate_component(wisp_test_artifacts::component(components::ONNX_RUNNER))
        .await
        .unwrap();
    for (what, bytes) in [
        ("random bytes", b"\0asm not really".to_vec()),
        ("a core module", b"\0asm\x01\0\0\0".to_vec()),
        ("an ONNX model", fixture("iris_logreg.onnx")),
    ] {
        let error = runtime.validate_component(bytes).await.expect_err(what);
        assert_eq!(error.code(), "invalid_component", "{what}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_component_describes_itself_without_being_cached() {
    let harness = Harness::new();
    let bytes = wisp_test_artifacts::component(components::IMAGE_CLASSIFIER);
    let signature = harness
        .runtime
        .describe_component(bytes, None, &TenantLimits::default())
        .await
        .unwrap();
    let inputs: Vec<_> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(inputs, ["image"]);
    assert_eq!(signature.inputs[0].ty, wisp_host::TensorType::U8);
    assert_eq!(signature.outputs.len(), 3);
    let stats = harness.runtime.stats();
    assert_eq!(stats.components.entries, 0, "nothing cached: {stats:?}");

    let error = harness
        .runtime
        .describe_component(fixture("iris_logreg.onnx"), None, &TenantLimits::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_component", "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn warming_loads_component_and_graph_ahead_of_the_first_call() {
    let harness = Harness::new();
    let model = harness.onnx_model("org-a", "iris_logreg.onnx");
    let cold = harness.runtime.warm(&model).await.unwrap();
    assert!(!cold.component_warm && !cold.graph_warm);
    let again = harness.runtime.warm(&model).await.unwrap();
    assert!(again.component_warm && again.graph_warm);
    let input = Tensor::from_values(&[1, 4], &[5.1f32, 3.5, 1.4, 0.2]);
    let prediction = harness
        .runtime
        .predict(
            &model,
            &TenantLimits::default(),
            vec![NamedTensor::new("input", input)],
        )
        .await
        .unwrap();
    assert!(prediction.usage.component_warm && prediction.usage.graph_warm);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_component_sees_the_graph_it_comes_with() {
    let harness = Harness::new();
    let bytes = wisp_test_artifacts::component(components::TABULAR_CLASSIFIER);
    let signature = harness
        .runtime
        .describe_component(
            bytes,
            Some(fixture("iris_logreg.onnx")),
            &TenantLimits::default(),
        )
        .await
        .unwrap();
    let inputs: Vec<_> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        inputs,
        ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    );
}
