//! The ai.onnx.ml coverage suite: every model of `tests/fixtures/ml` (scikit-learn exports
//! and single-operator graphs, see `gen_ml_models.py`) runs on wisp's tract backend and
//! agrees with onnxruntime: labels and other integers exactly, scores within
//! [`RELATIVE`] + [`ABSOLUTE`]. A `ZipMap` output is compared as the probability tensor it
//! wraps (columns in the order of its class labels), which is what wisp serves.

mod common;

use common::*;
use serde_json::Value;
use wisp_host::{NamedTensor, OnnxGraph, OnnxLimits, TenantLimits, Tensor, TensorType, check_onnx};
use wisp_test_artifacts::fixture;

const RELATIVE: f64 = 1e-4;
const ABSOLUTE: f64 = 1e-5;

fn expected() -> Value {
    serde_json::from_slice(&fixture("ml/expected.json")).expect("ml/expected.json parses")
}

/// A tensor from `{"dtype", "shape", "data"}`, where a float JSON has no number for is a
/// string: "NaN", "Infinity" or "-Infinity".
fn tensor(value: &Value) -> Tensor {
    let shape: Vec<u32> = value["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as u32)
        .collect();
    let data = value["data"].as_array().unwrap();
    match value["dtype"].as_str().unwrap() {
        "float32" => {
            let v: Vec<f32> = data
                .iter()
                .map(|x| match x.as_str() {
                    Some(special) => special.parse::<f32>().expect("NaN or ±Infinity"),
                    None => x.as_f64().unwrap() as f32,
                })
                .collect();
            Tensor::from_values(&shape, &v)
        }
        "int64" => {
            let v: Vec<i64> = data.iter().map(|x| x.as_i64().unwrap()).collect();
            Tensor::from_values(&shape, &v)
        }
        other => panic!("unexpected dtype {other}"),
    }
}

fn inputs(entry: &Value) -> Vec<NamedTensor> {
    entry["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| NamedTensor::new(name, tensor(value)))
        .collect()
}

/// Compares `got` with onnxruntime's outputs in `entry`; the first difference, if any.
fn compare(entry: &Value, got: &[NamedTensor]) -> Result<(), String> {
    let want = entry["outputs"].as_object().unwrap();
    let names: Vec<&str> = got.iter().map(|o| o.name.as_str()).collect();
    if got.len() != want.len() {
        return Err(format!(
            "outputs {names:?}, onnxruntime has {:?}",
            want.keys().collect::<Vec<_>>()
        ));
    }
    for (name, want) in want {
        let got = &got
            .iter()
            .find(|o| &o.name == name)
            .ok_or_else(|| format!("no output `{name}` (got {names:?})"))?
            .tensor;
        let want = tensor(want);
        if got.shape != want.shape {
            return Err(format!(
                "`{name}`: shape {:?}, onnxruntime {:?}",
                got.shape, want.shape
            ));
        }
        match want.ty {
            TensorType::F32 => {
                let got: Vec<f64> = match got.ty {
                    TensorType::F32 => got
                        .values::<f32>()
                        .unwrap()
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                    other => return Err(format!("`{name}`: {other}, onnxruntime f32")),
                };
                let want = want.values::<f32>().unwrap();
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    let w = f64::from(w);
                    let close = (g - w).abs() <= ABSOLUTE + RELATIVE * w.abs();
                    if !close && g != w && !(g.is_nan() && w.is_nan()) {
                        return Err(format!("`{name}`[{i}]: {g}, onnxruntime {w}"));
                    }
                }
            }
            _ => {
                if got.ty != want.ty || got.data != want.data {
                    let got = match got.ty {
                        TensorType::I64 => format!("{:?}", got.values::<i64>().unwrap()),
                        other => format!("{other}"),
                    };
                    return Err(format!(
                        "`{name}`: {got}, onnxruntime {:?}",
                        want.values::<i64>().unwrap()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Loads a fixture the way the runtime does (bounds first, then tract) and runs it.
fn run_native(file: &str, entry: &Value) -> Result<Vec<NamedTensor>, String> {
    let bytes = fixture(&format!("ml/{file}"));
    check_onnx(&bytes, &OnnxLimits::default()).map_err(|e| format!("refused: {e}"))?;
    let graph = OnnxGraph::load(&bytes).map_err(|e| format!("load: {e}"))?;
    graph.run(inputs(entry)).map_err(|e| format!("run: {e}"))
}

#[test]
fn every_fixture_matches_onnxruntime_natively() {
    let expected = expected();
    let models = expected["models"].as_object().unwrap();
    assert!(models.len() >= 60, "{} fixtures", models.len());
    let mut failures = Vec::new();
    for (file, entry) in models {
        let result = run_native(file, entry).and_then(|got| compare(entry, &got));
        match &result {
            Ok(()) => println!("pass  {file}"),
            Err(why) => println!("FAIL  {file}: {why}"),
        }
        if let Err(why) = result {
            failures.push(format!("{file}: {why}"));
        }
    }
    println!(
        "{} of {} fixtures match onnxruntime",
        models.len() - failures.len(),
        models.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The comparison is not vacuous: a score off by more than the tolerance, or a wrong
/// label, is reported.
#[test]
fn a_wrong_output_is_caught() {
    let expected = expected();
    let entry = &expected["models"]["iris_svc_rbf_proba.onnx"];
    let got = run_native("iris_svc_rbf_proba.onnx", entry).unwrap();
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
    let expected = expected();
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
