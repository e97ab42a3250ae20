//! tract vs onnxruntime: per-call latency of every coverage fixture (`tests/fixtures/ml`
//! and `tests/fixtures/exporters`) at batch 1 and 64, both backends measured in the same
//! run, natively (the backend's graph called directly) and through wisp (a fresh instance
//! of the `onnx-runner` component per call, the graph through wasi-nn, as the server runs
//! it), with the ratios.
//!
//! ```text
//! ORT_DYLIB_PATH=…/onnxruntime/capi/libonnxruntime.so.1.32.0 \
//!   cargo bench -p wisp-host --features onnxruntime --bench backends [-- FILTER]
//! ```
//!
//! Both backends run one call at a time on one thread (tract's plan; onnxruntime with one
//! intra-op thread), as the runtime's pool runs them. Inputs are the fixture's reference
//! rows repeated up to the batch. Results are recorded in docs/benchmarks.md.

use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wisp_host::{
    InMemoryArtifacts, ModelRef, NamedTensor, OnnxBackend, OnnxGraph, Runtime, RuntimeConfig,
    TenantLimits, Tensor,
};
use wisp_test_artifacts::{component, components, fixture};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time spent measuring one (fixture, backend, batch).
const BUDGET: Duration = Duration::from_millis(150);

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
                    Some(special) => special.parse::<f32>().unwrap(),
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

/// `tensor`'s rows repeated (cycled) to `batch` rows.
fn batched(tensor: &Tensor, batch: u32) -> Tensor {
    let rows = tensor.shape[0] as usize;
    if let Some(strings) = tensor.strings() {
        // Length-prefixed elements: cycle whole rows of elements.
        let per_row = strings.len() / rows;
        let cycled: Vec<&str> = (0..batch as usize)
            .flat_map(|i| &strings[(i % rows) * per_row..(i % rows + 1) * per_row])
            .map(String::as_str)
            .collect();
        let mut shape = tensor.shape.clone();
        shape[0] = batch;
        return Tensor::from_strings(&shape, &cycled);
    }
    let row_bytes = tensor.data.len() / rows;
    let mut shape = tensor.shape.clone();
    shape[0] = batch;
    let data = (0..batch as usize)
        .flat_map(|i| &tensor.data[(i % rows) * row_bytes..(i % rows + 1) * row_bytes])
        .copied()
        .collect();
    Tensor {
        ty: tensor.ty,
        shape,
        data,
    }
}

/// Mean and median per call, or why the graph did not run.
fn measure(graph: &OnnxGraph, inputs: &[NamedTensor]) -> Result<(Duration, Duration), String> {
    for _ in 0..3 {
        graph.run(inputs.to_vec()).map_err(|e| e.to_string())?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < BUDGET || samples.len() < 10 {
        let call = Instant::now();
        let outputs = graph.run(inputs.to_vec()).map_err(|e| e.to_string())?;
        samples.push(call.elapsed());
        std::hint::black_box(outputs);
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Ok((mean, samples[samples.len() / 2]))
}

/// The median per call through the runtime: instantiate, bind, run on `backend`, read back.
async fn measure_wisp(
    runtime: &Runtime,
    model: &ModelRef,
    backend: OnnxBackend,
    inputs: &[NamedTensor],
) -> Result<Duration, String> {
    let limits = TenantLimits {
        deadline: Duration::from_secs(30),
        ..TenantLimits::default()
    };
    for _ in 0..3 {
        runtime
            .predict_on(model, backend, &limits, inputs.to_vec())
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < BUDGET || samples.len() < 10 {
        let inputs = inputs.to_vec();
        let call = Instant::now();
        let outputs = runtime
            .predict_on(model, backend, &limits, inputs)
            .await
            .map_err(|e| e.to_string())?;
        samples.push(call.elapsed());
        std::hint::black_box(outputs);
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

fn us(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e6))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let artifacts = Arc::new(InMemoryArtifacts::new());
    let runtime = Runtime::new(RuntimeConfig::default(), artifacts.clone()).expect("runtime");
    let runner = artifacts.put(component(components::ONNX_RUNNER));
    println!(
        "| fixture | batch | native: tract µs | onnxruntime µs | tract / onnxruntime | wisp: tract µs | onnxruntime µs | tract / onnxruntime |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut ratios = Vec::new();
    let mut wisp_ratios = Vec::new();
    for folder in ["ml", "exporters"] {
        let expected: Value =
            serde_json::from_slice(&fixture(&format!("{folder}/expected.json"))).unwrap();
        for (file, entry) in expected["models"].as_object().unwrap() {
            if filter.as_ref().is_some_and(|f| !file.contains(f.as_str())) {
                continue;
            }
            let bytes = fixture(&format!("{folder}/{file}"));
            let model = ModelRef {
                tenant: "bench".into(),
                model: file.clone(),
                version: "1".into(),
                component: runner.clone(),
                graph: Some(artifacts.put(bytes.clone())),
            };
            let tract = OnnxGraph::load_on(&bytes, OnnxBackend::Tract);
            let ort = OnnxGraph::load_on(&bytes, OnnxBackend::Onnxruntime)
                .unwrap_or_else(|e| panic!("{file}: onnxruntime refuses it: {e}"));
            let reference: Vec<(String, Tensor)> = entry["inputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, value)| (name.clone(), tensor(value)))
                .collect();
            for batch in [1, 64] {
                // Only inputs with a variable first dimension take the batch (a
                // single-operator fixture may also take a fixed index tensor).
                let specs = &ort.info().signature.inputs;
                let variable = |name: &str| {
                    specs
                        .iter()
                        .any(|s| s.name == name && s.shape.first() == Some(&-1))
                };
                if batch > 1 && !reference.iter().any(|(name, _)| variable(name)) {
                    continue;
                }
                let inputs: Vec<NamedTensor> = reference
                    .iter()
                    .map(|(name, t)| {
                        let t = if variable(name) {
                            batched(t, batch)
                        } else {
                            t.clone()
                        };
                        NamedTensor::new(name, t)
                    })
                    .collect();
                let on_tract = tract
                    .as_ref()
                    .ok()
                    .and_then(|graph| measure(graph, &inputs).ok());
                let on_ort = measure(&ort, &inputs)
                    .unwrap_or_else(|e| panic!("{file} at batch {batch} on onnxruntime: {e}"));
                let ratio = on_tract.map(|(_, median)| {
                    let ratio = median.as_secs_f64() / on_ort.1.as_secs_f64();
                    ratios.push((batch, ratio));
                    format!("{ratio:.2}")
                });
                let wisp_tract = match on_tract {
                    Some(_) => measure_wisp(&runtime, &model, OnnxBackend::Tract, &inputs)
                        .await
                        .ok(),
                    None => None,
                };
                let wisp_ort = measure_wisp(&runtime, &model, OnnxBackend::Onnxruntime, &inputs)
                    .await
                    .unwrap_or_else(|e| panic!("{file} at batch {batch} through wisp: {e}"));
                let wisp_ratio = wisp_tract.map(|median| {
                    let ratio = median.as_secs_f64() / wisp_ort.as_secs_f64();
                    wisp_ratios.push((batch, ratio));
                    format!("{ratio:.2}")
                });
                println!(
                    "| {folder}/{file} | {batch} | {} | {} | {} | {} | {} | {} |",
                    us(on_tract.map(|(_, m)| m)),
                    us(Some(on_ort.1)),
                    ratio.unwrap_or_else(|| "tract refuses".into()),
                    us(wisp_tract),
                    us(Some(wisp_ort)),
                    wisp_ratio.unwrap_or_else(|| "tract refuses".into()),
                );
            }
            // Keep memory flat over the fixtures: each graph is measured once.
            runtime.evict_all().await;
        }
    }
    summarise("native", &ratios);
    summarise("through wisp", &wisp_ratios);
}

/// The median, geometric mean and range of the tract / onnxruntime ratios per batch.
fn summarise(path: &str, ratios: &[(u32, f64)]) {
    for batch in [1, 64] {
        let mut at: Vec<f64> = ratios
            .iter()
            .filter(|(b, _)| *b == batch)
            .map(|(_, r)| *r)
            .collect();
        if at.is_empty() {
            continue;
        }
        at.sort_by(f64::total_cmp);
        let geomean = (at.iter().map(|r| r.ln()).sum::<f64>() / at.len() as f64).exp();
        println!(
            "{path}, batch {batch}: tract / onnxruntime median ratio {:.2}, geometric mean {geomean:.2}, range {:.2}–{:.2} over {} fixtures",
            at[at.len() / 2],
            at[0],
            at[at.len() - 1],
            at.len()
        );
    }
}
