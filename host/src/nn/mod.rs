//! wasi-nn for model components: the ONNX backend, and the per-request view of the graphs
//! a component may name.
//!
//! Graphs are loaded once per (tenant, model file) into the runtime's graph cache. For each
//! request the runtime builds a [`RequestGraphs`] registry holding only the graph of the
//! model version being served, under the name the component is told in `model-info`. A
//! guest can form any name it likes; nothing outside that registry is reachable from it,
//! so another tenant's graphs do not exist for it. Guests cannot load graphs from bytes:
//! the per-request context has no backends, so `graph.load` fails with `invalid-encoding`.

mod graph;
mod guard;
mod inputs;
mod onnx_limits;
mod onnx_ml;
mod operators;
#[cfg(feature = "onnxruntime")]
mod ort_backend;
mod proto_wire;
pub(crate) mod tensors;
mod tract_backend;

pub use graph::{GraphInfo, OnnxBackend, OnnxGraph, inspect_onnx, inspect_onnx_on};
pub use onnx_limits::{OnnxLimits, check_onnx};
pub use operators::{ClassLabels, OnnxOperator, refused_operators, zipmap_class_labels};

/// Checks `bytes` against `limits`, then loads it on `backend`: the one way the runtime
/// loads a graph, so a file that bypassed inspection (a version stored before a bound
/// existed) is held to the same bounds at load.
pub(crate) fn load_graph(
    bytes: &[u8],
    limits: &OnnxLimits,
    backend: OnnxBackend,
) -> Result<OnnxGraph, RuntimeError> {
    check_onnx(bytes, limits).map_err(|e| RuntimeError::InvalidModel(e.to_string()))?;
    OnnxGraph::load_on(bytes, backend)
}

use crate::error::RuntimeError;
use crate::limits::CallMemory;
use crate::tensor::{NamedTensor, Tensor, TensorType};
use guard::{RunBounds, Stop};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor as NnNamedTensor,
};
use wasmtime_wasi_nn::wit::TensorType as NnTensorType;
use wasmtime_wasi_nn::wit::WasiNnCtx;
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Registry};

/// What one request's inference did, shared between its execution contexts and the runtime.
#[derive(Debug)]
pub(crate) struct InferenceMeter {
    deadline: Instant,
    /// For a call in place: when it must give its executor thread back.
    yield_at: Option<Instant>,
    /// The call's memory account: a run may hold only what is left of it, and its outputs
    /// stay charged (as host tensors the guest may read) until the call ends.
    memory: Arc<CallMemory>,
    state: Mutex<MeterState>,
}

#[derive(Debug, Default)]
struct MeterState {
    time_in_backend: Duration,
    /// The typed reason of the last backend failure: wasi-nn only carries a string to the
    /// guest, so the runtime keeps the classification here.
    last_error: Option<RuntimeError>,
    /// A run stopped at `yield_at`: the call must run again on the pool.
    yielded: bool,
}

impl InferenceMeter {
    pub(crate) fn new(
        deadline: Instant,
        yield_at: Option<Instant>,
        memory: Arc<CallMemory>,
    ) -> Arc<Self> {
        Arc::new(Self {
            deadline,
            yield_at,
            memory,
            state: Mutex::default(),
        })
    }

    pub(crate) fn time_in_backend(&self) -> Duration {
        self.lock().time_in_backend
    }

    pub(crate) fn take_last_error(&self) -> Option<RuntimeError> {
        self.lock().last_error.take()
    }

    /// Whether a run stopped because the call in place ran too long.
    pub(crate) fn yielded(&self) -> bool {
        self.lock().yielded
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Builds the wasi-nn context of one request: no backends, one named graph at most.
pub(crate) fn request_context(
    graph: Option<(String, Arc<OnnxGraph>)>,
    meter: &Arc<InferenceMeter>,
) -> WasiNnCtx {
    let graph = graph.map(|(name, graph)| {
        let metered: Box<dyn BackendGraph> = Box::new(MeteredGraph {
            graph,
            meter: Arc::clone(meter),
        });
        (name, Graph::from(metered))
    });
    WasiNnCtx::new([], Registry::from(RequestGraphs { graph }))
}

/// The registry a guest sees: exactly the graph of the model version it serves.
struct RequestGraphs {
    graph: Option<(String, Graph)>,
}

impl GraphRegistry for RequestGraphs {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.graph
            .as_ref()
            .filter(|(own, _)| own == name)
            .map(|(_, graph)| graph)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.graph
            .as_mut()
            .filter(|(own, _)| own == name)
            .map(|(_, graph)| graph)
    }
}

/// A shared graph seen through one request's meter.
struct MeteredGraph {
    graph: Arc<OnnxGraph>,
    meter: Arc<InferenceMeter>,
}

impl BackendGraph for MeteredGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = Box::new(MeteredGraph {
            graph: Arc::clone(&self.graph),
            meter: Arc::clone(&self.meter),
        });
        Ok(ExecutionContext::from(context))
    }
}

impl BackendExecutionContext for MeteredGraph {
    fn set_input(&mut self, _: Id, _: &wasmtime_wasi_nn::Tensor) -> Result<(), BackendError> {
        Err(unsupported("set-input (pass inputs to compute)"))
    }

    fn get_output(&mut self, _: Id) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
        Err(unsupported("get-output (compute returns the outputs)"))
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NnNamedTensor>>,
    ) -> Result<Option<Vec<NnNamedTensor>>, BackendError> {
        let result = self.run(inputs.unwrap_or_default());
        match result {
            Ok(outputs) => Ok(Some(outputs)),
            Err(error) => {
                let message = error.to_string();
                self.meter.lock().last_error = Some(error);
                Err(BackendError::BackendAccess(wasmtime::format_err!(
                    "{message}"
                )))
            }
        }
    }
}

impl MeteredGraph {
    fn run(&self, inputs: Vec<NnNamedTensor>) -> Result<Vec<NnNamedTensor>, RuntimeError> {
        if Instant::now() >= self.meter.deadline {
            // The guard checks before each node; this also spares converting the inputs.
            return Err(RuntimeError::DeadlineExceeded {
                deadline: Duration::ZERO,
            });
        }
        let specs = &self.graph.info().signature.inputs;
        let inputs = inputs
            .into_iter()
            .map(|t| {
                let is_string = specs
                    .iter()
                    .any(|spec| spec.name == t.name && spec.ty == TensorType::String);
                Ok(NamedTensor::new(t.name, from_nn(t.tensor, is_string)?))
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let started = Instant::now();
        let bounds = RunBounds {
            deadline: self.meter.deadline,
            yield_at: self.meter.yield_at,
            memory_bytes: self.meter.memory.available(),
        };
        let outputs = self.graph.run_within(inputs, bounds);
        let mut state = self.meter.lock();
        state.time_in_backend += started.elapsed();
        let outputs = outputs.map_err(|error| match error {
            Ok(error) => error,
            Err(Stop::Deadline) => RuntimeError::DeadlineExceeded {
                deadline: Duration::ZERO,
            },
            Err(Stop::Memory) => RuntimeError::MemoryLimitExceeded { limit_bytes: 0 },
            Err(Stop::Yield) => {
                state.yielded = true;
                RuntimeError::Overloaded("the call ran too long to stay in place".into())
            }
        })?;
        drop(state);
        // The outputs become tensors in the guest's resource table: charged to the call
        // from now on (never released before it ends; a guest that computes again and
        // again on large outputs runs into its limit).
        let output_bytes = outputs.iter().map(|o| o.tensor.data.len()).sum();
        if !self.meter.memory.try_add_host(output_bytes) {
            return Err(RuntimeError::MemoryLimitExceeded { limit_bytes: 0 });
        }
        Ok(outputs
            .into_iter()
            .map(|t| NnNamedTensor {
                name: t.name,
                tensor: to_nn(t.tensor),
            })
            .collect())
    }
}

fn unsupported(what: &str) -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!("unsupported: {what}"))
}

/// A wasi-nn tensor as the host's. wasi-nn has no string type: a `u8` tensor bound to an
/// input the graph declares as `string` carries length-prefixed strings (the layout of
/// [`TensorType::String`]), and is read as such.
fn from_nn(tensor: wasmtime_wasi_nn::Tensor, is_string: bool) -> Result<Tensor, RuntimeError> {
    let ty = match tensor.ty {
        NnTensorType::U8 if is_string => TensorType::String,
        NnTensorType::Fp32 => TensorType::F32,
        NnTensorType::Fp64 => TensorType::F64,
        NnTensorType::I32 => TensorType::I32,
        NnTensorType::I64 => TensorType::I64,
        NnTensorType::U8 => TensorType::U8,
        other => {
            return Err(RuntimeError::InvalidInput(format!(
                "tensor type {other:?} is not supported"
            )));
        }
    };
    Ok(Tensor {
        ty,
        shape: tensor.dimensions,
        data: tensor.data,
    })
}

fn to_nn(tensor: Tensor) -> wasmtime_wasi_nn::Tensor {
    let ty = match tensor.ty {
        TensorType::F32 => NnTensorType::Fp32,
        TensorType::F64 => NnTensorType::Fp64,
        TensorType::I32 => NnTensorType::I32,
        TensorType::I64 => NnTensorType::I64,
        // The guest knows a string output by the graph's signature (see `from_nn`).
        TensorType::U8 | TensorType::String => NnTensorType::U8,
    };
    wasmtime_wasi_nn::Tensor::new(tensor.shape, ty, tensor.data)
}
