//! The coverage suites' machinery (`onnx_ml.rs`, `exporters.rs`): a folder of fixtures with
//! onnxruntime's outputs in its `expected.json` (see `tests/fixtures/README.md`), run on a
//! backend and compared: labels (integers or strings) and other integers exactly, scores
//! within [`RELATIVE`] + [`ABSOLUTE`]. A `ZipMap` output is compared as the probability
//! tensor it wraps (columns in the order of its class labels), which is what wisp serves.

use serde_json::Value;
use wisp_host::{NamedTensor, OnnxBackend, OnnxGraph, OnnxLimits, Tensor, TensorType, check_onnx};
use wisp_test_artifacts::fixture;

pub const RELATIVE: f64 = 1e-4;
pub const ABSOLUTE: f64 = 1e-5;

/// `<folder>/expected.json`.
pub fn expected(folder: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("{folder}/expected.json")))
        .unwrap_or_else(|e| panic!("{folder}/expected.json parses: {e}"))
}

/// A tensor from `{"dtype", "shape", "data"}`, where a float JSON has no number for is a
/// string: "NaN", "Infinity" or "-Infinity".
pub fn tensor(value: &Value) -> Tensor {
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
        "string" => {
            let v: Vec<&str> = data.iter().map(|x| x.as_str().unwrap()).collect();
            Tensor::from_strings(&shape, &v)
        }
        other => panic!("unexpected dtype {other}"),
    }
}

pub fn inputs(entry: &Value) -> Vec<NamedTensor> {
    entry["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| NamedTensor::new(name, tensor(value)))
        .collect()
}

/// Compares `got` with onnxruntime's outputs in `entry`; the first difference, if any.
pub fn compare(entry: &Value, got: &[NamedTensor]) -> Result<(), String> {
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
                    let show = |t: &Tensor| match t.ty {
                        TensorType::I64 => format!("{:?}", t.values::<i64>().unwrap()),
                        TensorType::String => format!("{:?}", t.strings().unwrap()),
                        other => format!("{other}"),
                    };
                    return Err(format!(
                        "`{name}`: {}, onnxruntime {}",
                        show(got),
                        show(&want)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Loads `<folder>/<file>` the way the runtime does (bounds first, then the backend) and
/// runs it on the entry's inputs.
pub fn run_native(
    folder: &str,
    file: &str,
    entry: &Value,
    backend: OnnxBackend,
) -> Result<Vec<NamedTensor>, String> {
    let bytes = fixture(&format!("{folder}/{file}"));
    check_onnx(&bytes, &OnnxLimits::default()).map_err(|e| format!("refused: {e}"))?;
    let graph = OnnxGraph::load_on(&bytes, backend).map_err(|e| format!("load: {e}"))?;
    graph.run(inputs(entry)).map_err(|e| format!("run: {e}"))
}

/// Runs every fixture of `folder` on `backend`, printing one line each; the failures.
pub fn failures(folder: &str, backend: OnnxBackend) -> (usize, Vec<(String, String)>) {
    let expected = expected(folder);
    let models = expected["models"].as_object().unwrap();
    let mut failures = Vec::new();
    for (file, entry) in models {
        let result = run_native(folder, file, entry, backend).and_then(|got| compare(entry, &got));
        match result {
            Ok(()) => println!("pass  {file} ({backend})"),
            Err(why) => {
                println!("FAIL  {file} ({backend}): {why}");
                failures.push((file.clone(), why));
            }
        }
    }
    println!(
        "{} of {} {folder} fixtures match onnxruntime on {backend}",
        models.len() - failures.len(),
        models.len()
    );
    (models.len(), failures)
}
