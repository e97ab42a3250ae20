//! Shared set-up for the runtime tests: a runtime over an in-memory artifact store, the
//! fixture models and their onnxruntime references.

#![allow(dead_code)]

pub mod coverage;
pub mod graphs;

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use wisp_host::{
    Digest, InMemoryArtifacts, ModelRef, NamedTensor, Runtime, RuntimeConfig, RuntimeError,
    TenantLimits, Tensor, TensorType,
};
use wisp_test_artifacts::{component, components, fixture};

pub struct Harness {
    pub runtime: Runtime,
    pub artifacts: Arc<InMemoryArtifacts>,
}

/// A runtime sized for tests (small pools, so many can exist in one process).
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        max_concurrent_instances: 16,
        max_memory_bytes_per_instance: 256 << 20,
        ..RuntimeConfig::default()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(test_config())
    }

    pub fn with_config(config: RuntimeConfig) -> Self {
        let artifacts = Arc::new(InMemoryArtifacts::new());
        let runtime = Runtime::new(config, artifacts.clone()).expect("runtime starts");
        Self { runtime, artifacts }
    }

    /// Registers a model version of `tenant` served by the component at `component_path`,
    /// with the fixture `onnx` as its graph.
    pub fn model(
        &self,
        tenant: &str,
        name: &str,
        component_path: &str,
        onnx: Option<&str>,
    ) -> ModelRef {
        let component = self.artifacts.put(component(component_path));
        let graph = onnx.map(|file| self.artifacts.put(fixture(file)));
        ModelRef {
            tenant: tenant.into(),
            model: name.into(),
            version: "1".into(),
            component,
            graph,
        }
    }

    /// A plain ONNX upload: the fixture served by the `onnx-runner` template.
    pub fn onnx_model(&self, tenant: &str, onnx: &str) -> ModelRef {
        self.model(
            tenant,
            onnx.trim_end_matches(".onnx"),
            components::ONNX_RUNNER,
            Some(onnx),
        )
    }

    /// A plain ONNX upload of `graph` (bytes built in the test) served by `onnx-runner`.
    pub fn graph_model(&self, tenant: &str, name: &str, graph: Vec<u8>) -> ModelRef {
        ModelRef {
            tenant: tenant.into(),
            model: name.into(),
            version: "1".into(),
            component: self.artifacts.put(component(components::ONNX_RUNNER)),
            graph: Some(self.artifacts.put(graph)),
        }
    }

    pub async fn predict(
        &self,
        model: &ModelRef,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        self.runtime
            .predict(model, &TenantLimits::default(), inputs)
            .await
            .map(|p| p.outputs)
    }

    pub fn put(&self, bytes: Vec<u8>) -> Digest {
        self.artifacts.put(bytes)
    }
}

/// Limits that stop hostile guests quickly. The deadline is generous so a loaded machine never
/// turns another failure into `deadline_exceeded`; the deadline test sets its own.
pub fn tight_limits() -> TenantLimits {
    TenantLimits {
        fuel: 200_000_000,
        max_memory_bytes: 32 << 20,
        deadline: Duration::from_secs(20),
        max_output_bytes: 1 << 20,
        max_resources: 200,
        ..TenantLimits::default()
    }
}

pub fn references() -> Value {
    serde_json::from_slice(&fixture("references.json")).expect("references.json parses")
}

fn tensor_type(dtype: &str) -> TensorType {
    match dtype {
        "float32" => TensorType::F32,
        "float64" => TensorType::F64,
        "int32" => TensorType::I32,
        "int64" => TensorType::I64,
        "uint8" => TensorType::U8,
        other => panic!("unexpected dtype {other}"),
    }
}

/// A tensor from a reference entry `{"dtype", "shape", "data"}`.
pub fn tensor_from_json(value: &Value) -> Tensor {
    let shape: Vec<u32> = value["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as u32)
        .collect();
    let data = value["data"].as_array().unwrap();
    match tensor_type(value["dtype"].as_str().unwrap()) {
        TensorType::F32 => {
            let v: Vec<f32> = data.iter().map(|x| x.as_f64().unwrap() as f32).collect();
            Tensor::from_values(&shape, &v)
        }
        TensorType::I64 => {
            let v: Vec<i64> = data.iter().map(|x| x.as_i64().unwrap()).collect();
            Tensor::from_values(&shape, &v)
        }
        other => panic!("no reference tensors of {other}"),
    }
}

/// The named inputs of a reference model entry.
pub fn reference_inputs(entry: &Value) -> Vec<NamedTensor> {
    entry["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| NamedTensor::new(name, tensor_from_json(value)))
        .collect()
}

/// Asserts that `got` equals the reference tensor: same type and shape, floats within
/// `tolerance`, integers exactly.
pub fn assert_matches_reference(name: &str, got: &Tensor, want: &Value, tolerance: f32) {
    let want = tensor_from_json(want);
    assert_eq!(got.ty, want.ty, "{name}: dtype");
    assert_eq!(got.shape, want.shape, "{name}: shape");
    match got.ty {
        TensorType::F32 => {
            let (g, w) = (got.values::<f32>().unwrap(), want.values::<f32>().unwrap());
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                assert!(
                    (a - b).abs() <= tolerance,
                    "{name}[{i}]: got {a}, want {b} (±{tolerance})"
                );
            }
        }
        _ => assert_eq!(got.data, want.data, "{name}: values"),
    }
}

pub fn output<'a>(outputs: &'a [NamedTensor], name: &str) -> &'a Tensor {
    &outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output `{name}` in {outputs:?}"))
        .tensor
}
