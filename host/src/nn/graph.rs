//! A loaded ONNX graph on one of the backends: tract (always), onnxruntime (cargo feature
//! `onnxruntime`). Callers see one type, [`OnnxGraph`], whichever engine runs it.

use super::guard::{RunBounds, Stop};
use super::tract_backend::TractGraph;
use crate::error::RuntimeError;
use crate::tensor::{NamedTensor, Signature};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the host knows of a model file without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    /// Input and output names, types and shapes.
    pub signature: Signature,
    /// The file's free-form metadata (ONNX `metadata_props`), in file order.
    pub metadata: Vec<(String, String)>,
}

/// Which engine runs a model's ONNX graph: a per-deployment choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxBackend {
    /// tract, pure Rust, with wisp's ai.onnx.ml operators; bounded node by node by the
    /// call's deadline and memory.
    #[default]
    Tract,
    /// onnxruntime, loaded at run time (`ORT_DYLIB_PATH`); only in a host built with the
    /// cargo feature `onnxruntime`.
    Onnxruntime,
    /// tract, or onnxruntime for a graph tract refuses (tract alone where onnxruntime is
    /// not built in).
    Auto,
}

impl OnnxBackend {
    /// Whether this host can load graphs on `self` (onnxruntime needs the cargo feature;
    /// whether its library loads is only known when a graph is loaded).
    pub fn is_built_in(self) -> bool {
        self != Self::Onnxruntime || cfg!(feature = "onnxruntime")
    }
}

impl fmt::Display for OnnxBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tract => "tract",
            Self::Onnxruntime => "onnxruntime",
            Self::Auto => "auto",
        })
    }
}

/// A loaded ONNX graph: what model components reach through wasi-nn, and what benchmarks
/// call directly as the native baseline. Shared by concurrent calls.
pub struct OnnxGraph {
    engine: Engine,
}

enum Engine {
    Tract(TractGraph),
    #[cfg(feature = "onnxruntime")]
    Onnxruntime(super::ort_backend::OrtGraph),
}

/// Parses, type-checks and optimises an ONNX model on tract; reports why a file is not usable.
pub fn inspect_onnx(bytes: &[u8]) -> Result<GraphInfo, RuntimeError> {
    inspect_onnx_on(bytes, OnnxBackend::Tract)
}

/// Loads an ONNX model as `backend` would serve it; reports why a file is not usable.
pub fn inspect_onnx_on(bytes: &[u8], backend: OnnxBackend) -> Result<GraphInfo, RuntimeError> {
    OnnxGraph::load_on(bytes, backend).map(|graph| graph.info().clone())
}

/// A graph on tract, chosen for it (not by `auto`): a refusal because of operators is
/// [`RuntimeError::UnsupportedOperator`] naming them, so a deployment on `tract` of a graph
/// only onnxruntime runs says why. (`auto` keeps tract's refusal as it is: the upload's
/// inspection names the operators itself, with advice for the whole wisp.)
fn load_tract(bytes: &[u8]) -> Result<TractGraph, RuntimeError> {
    TractGraph::load(bytes).map_err(|refusal| {
        let operators = super::operators::refused_operators(bytes, &refusal);
        if operators.is_empty() {
            return refusal;
        }
        let names: Vec<String> = operators.iter().map(ToString::to_string).collect();
        let advice = if OnnxBackend::Onnxruntime.is_built_in() {
            "deploy it with backend `onnxruntime` or `auto`"
        } else {
            "deploy it on a wisp built with the onnxruntime backend (cargo feature \
             `onnxruntime`), with backend `onnxruntime` or `auto`"
        };
        let reason = refusal.to_string();
        let reason = reason.strip_prefix("invalid model: ").unwrap_or(&reason);
        RuntimeError::UnsupportedOperator(format!(
            "tract does not run {}; {advice}. tract says: {reason}",
            names.join(", ")
        ))
    })
}

impl OnnxGraph {
    /// Parses, checks and optimises an ONNX file on tract.
    pub fn load(bytes: &[u8]) -> Result<Self, RuntimeError> {
        Self::load_on(bytes, OnnxBackend::Tract)
    }

    /// Loads an ONNX file on `backend`. With [`OnnxBackend::Auto`], a graph tract refuses
    /// (an operator it lacks, a type it cannot infer) goes to onnxruntime; if that refuses
    /// it too, the error is tract's.
    pub fn load_on(bytes: &[u8], backend: OnnxBackend) -> Result<Self, RuntimeError> {
        let engine = match backend {
            OnnxBackend::Tract => Engine::Tract(load_tract(bytes)?),
            OnnxBackend::Onnxruntime => Self::onnxruntime(bytes)?,
            OnnxBackend::Auto => match TractGraph::load(bytes) {
                Ok(graph) => Engine::Tract(graph),
                Err(refused @ RuntimeError::InvalidModel(_)) if cfg!(feature = "onnxruntime") => {
                    match Self::onnxruntime(bytes) {
                        Ok(engine) => {
                            tracing::info!(tract.error = %refused, "tract refused the graph; onnxruntime runs it");
                            engine
                        }
                        Err(_) => return Err(refused),
                    }
                }
                Err(other) => return Err(other),
            },
        };
        Ok(Self { engine })
    }

    #[cfg(feature = "onnxruntime")]
    fn onnxruntime(bytes: &[u8]) -> Result<Engine, RuntimeError> {
        super::ort_backend::OrtGraph::load(bytes).map(Engine::Onnxruntime)
    }

    #[cfg(not(feature = "onnxruntime"))]
    fn onnxruntime(_: &[u8]) -> Result<Engine, RuntimeError> {
        Err(RuntimeError::InvalidModel(
            "the onnxruntime backend is not built into this wisp (cargo feature `onnxruntime`)"
                .into(),
        ))
    }

    /// The engine that runs this graph: [`OnnxBackend::Tract`] or
    /// [`OnnxBackend::Onnxruntime`], never `Auto`.
    pub fn backend(&self) -> OnnxBackend {
        match self.engine {
            Engine::Tract(_) => OnnxBackend::Tract,
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(_) => OnnxBackend::Onnxruntime,
        }
    }

    /// Signature and metadata.
    pub fn info(&self) -> &GraphInfo {
        match &self.engine {
            Engine::Tract(graph) => graph.info(),
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(graph) => graph.info(),
        }
    }

    pub(crate) fn file_bytes(&self) -> usize {
        match &self.engine {
            Engine::Tract(graph) => graph.file_bytes(),
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(graph) => graph.file_bytes(),
        }
    }

    /// Runs the graph on named inputs, checked against the signature first.
    pub fn run(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, RuntimeError> {
        self.run_within(inputs, RunBounds::none())
            .map_err(|error| error.unwrap_or(RuntimeError::Internal))
    }

    /// Runs the graph, stopped (`Err(Err(stop))`) at `bounds.deadline`, at
    /// `bounds.yield_at`, or (tract only) before a node whose outputs would take the
    /// values of the run past `bounds.memory_bytes`.
    pub(crate) fn run_within(
        &self,
        inputs: Vec<NamedTensor>,
        bounds: RunBounds,
    ) -> Result<Vec<NamedTensor>, Result<RuntimeError, Stop>> {
        match &self.engine {
            Engine::Tract(graph) => graph.run_within(inputs, bounds),
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(graph) => graph.run_within(inputs, bounds),
        }
    }
}
