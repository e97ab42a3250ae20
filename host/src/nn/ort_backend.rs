//! The ONNX backend on onnxruntime (cargo feature `onnxruntime`): the library is loaded at
//! run time from `ORT_DYLIB_PATH` (the one the `onnxruntime` PyPI wheel ships works), so
//! nothing is downloaded or linked at build time and a host without it still runs tract.
//!
//! What a call is held to, next to tract's node-by-node guard (`guard.rs`):
//! - the deadline and the yield point of a call in place: a process-wide watchdog thread
//!   terminates the run (`RunOptions::terminate`), which onnxruntime checks between nodes;
//! - memory: the inputs must fit in what the call has left before the run, the outputs
//!   after it. What onnxruntime allocates in between (intermediate values, its arena) is
//!   **not** bounded or charged per call: it has no per-run allocation limit.
//!
//! A session runs one call at a time (`ort`'s `Session::run` takes `&mut self`): concurrent
//! calls on one graph wait for each other; each session uses one intra-op thread, as tract
//! does, so calls on different graphs run side by side on the runtime's pool.
//!
//! A `ZipMap` is served as the probability tensor it wraps, as on tract: the node becomes an
//! `Identity` before onnxruntime sees the graph.

use super::graph::GraphInfo;
use super::guard::{RunBounds, Stop};
use crate::error::RuntimeError;
use crate::tensor::{NamedTensor, Signature, Tensor, TensorSpec, TensorType};
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};
use prost::Message;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

/// A graph loaded into an onnxruntime session.
pub(crate) struct OrtGraph {
    session: Mutex<Session>,
    info: GraphInfo,
    file_bytes: usize,
}

/// The process's onnxruntime environment, loaded once; the reason it did not load, if not.
fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os("ORT_DYLIB_PATH")
                .filter(|p| !p.is_empty())
                .ok_or("ORT_DYLIB_PATH is not set (the path of libonnxruntime.so)")?;
            ort::init_from(&path)
                .map_err(|e| format!("cannot load {}: {e}", path.to_string_lossy()))?
                .with_name("wisp")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("cannot start onnxruntime: {e}"))
        })
        .as_ref()
        .map_err(|why| {
            RuntimeError::InvalidModel(format!("the onnxruntime backend is unavailable: {why}"))
        })
}

impl OrtGraph {
    pub(crate) fn load(bytes: &[u8]) -> Result<Self, RuntimeError> {
        if bytes.is_empty() {
            return Err(RuntimeError::InvalidModel("the model file is empty".into()));
        }
        let environment = environment()?;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| {
                RuntimeError::InvalidModel(format!(
                    "not an ONNX model (protobuf decoding failed: {e})"
                ))
            })?;
        let metadata = proto
            .metadata_props
            .iter()
            .map(|entry| (entry.key.clone(), entry.value.clone()))
            .collect();
        let rewritten = zip_maps_as_tensors(proto);
        let model_bytes = rewritten.as_deref().unwrap_or(bytes);
        let refused = |e: ort::Error| RuntimeError::InvalidModel(format!("onnxruntime: {e}"));
        let session = Session::builder(environment)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|b| b.with_parallel_execution(false).map_err(Into::into))
            .map_err(refused)?
            .commit_from_memory(model_bytes)
            .map_err(refused)?;
        let signature = Signature {
            inputs: specs(session.inputs())?,
            outputs: specs(session.outputs())?,
        };
        Ok(Self {
            session: Mutex::new(session),
            info: GraphInfo {
                signature,
                metadata,
            },
            file_bytes: bytes.len(),
        })
    }

    pub(crate) fn info(&self) -> &GraphInfo {
        &self.info
    }

    pub(crate) fn file_bytes(&self) -> usize {
        self.file_bytes
    }

    pub(crate) fn run_within(
        &self,
        inputs: Vec<NamedTensor>,
        bounds: RunBounds,
    ) -> Result<Vec<NamedTensor>, Result<RuntimeError, Stop>> {
        let input_bytes: usize = inputs.iter().map(|i| i.tensor.data.len()).sum();
        if input_bytes > bounds.memory_bytes {
            return Err(Err(Stop::Memory));
        }
        let inputs = self.bind_inputs(inputs).map_err(Ok)?;
        let options = Arc::new(
            RunOptions::new()
                .map_err(|e| Ok(RuntimeError::internal("onnxruntime run options", e)))?,
        );
        let stop_at = bounds
            .yield_at
            .map_or(bounds.deadline, |at| at.min(bounds.deadline));
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Checked once the session is ours: a call may have waited for it.
        if let Some(stop) = stopped(&bounds, Instant::now()) {
            return Err(Err(stop));
        }
        let _watched = watchdog().watch(stop_at, &options);
        let mut outputs = match session.run_with_options(inputs, &*options) {
            Ok(outputs) => outputs,
            Err(e) => {
                return Err(match stopped(&bounds, Instant::now()) {
                    Some(stop) => Err(stop),
                    None => Ok(RuntimeError::InferenceFailed(format!("onnxruntime: {e}"))),
                });
            }
        };
        let mut named = Vec::with_capacity(self.info.signature.outputs.len());
        for spec in &self.info.signature.outputs {
            let value = outputs.remove(spec.name.as_str()).ok_or_else(|| {
                Ok(RuntimeError::InferenceFailed(format!(
                    "onnxruntime returned no output `{}`",
                    spec.name
                )))
            })?;
            named.push(NamedTensor::new(&spec.name, from_ort(&value).map_err(Ok)?));
        }
        let output_bytes: usize = named.iter().map(|o| o.tensor.data.len()).sum();
        if input_bytes + output_bytes > bounds.memory_bytes {
            return Err(Err(Stop::Memory));
        }
        Ok(named)
    }

    /// Orders the inputs as the session wants them, rejecting unknown, missing or mistyped
    /// ones with the messages tract's backend gives.
    /// Orders the inputs as the session wants them, rejecting unknown, missing or mistyped
    /// ones as every backend does ([`super::inputs::bind`]).
    fn bind_inputs(
        &self,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<(String, SessionInputValue<'static>)>, RuntimeError> {
        super::inputs::bind(&self.info.signature.inputs, inputs)?
            .into_iter()
            .map(|(spec, tensor)| Ok((spec.name.clone(), to_ort(&tensor)?)))
            .collect()
    }
}

/// Which bound a run that stopped (or is about to start) at `now` ran into.
fn stopped(bounds: &RunBounds, now: Instant) -> Option<Stop> {
    if now >= bounds.deadline {
        Some(Stop::Deadline)
    } else if bounds.yield_at.is_some_and(|at| now >= at) {
        Some(Stop::Yield)
    } else {
        None
    }
}

/// The graph with every top-level `ZipMap` turned into an `Identity` of the probability
/// tensor it wraps, its output typed as a float tensor; `None` when it has none (the file
/// is then given to onnxruntime as it is).
fn zip_maps_as_tensors(mut proto: pb::ModelProto) -> Option<Vec<u8>> {
    let graph = proto.graph.as_mut()?;
    let mut rewritten = Vec::new();
    for node in graph.node.iter_mut().filter(|n| n.op_type == "ZipMap") {
        node.op_type = "Identity".into();
        node.domain.clear();
        node.attribute.clear();
        rewritten.extend(node.output.iter().cloned());
    }
    if rewritten.is_empty() {
        return None;
    }
    for value in graph
        .output
        .iter_mut()
        .chain(graph.value_info.iter_mut())
        .filter(|v| rewritten.contains(&v.name))
    {
        value.r#type = Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: None,
            })),
        });
    }
    if !proto.opset_import.iter().any(|o| o.domain.is_empty()) {
        proto.opset_import.push(pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        });
    }
    Some(proto.encode_to_vec())
}

fn specs(outlets: &[ort::value::Outlet]) -> Result<Vec<TensorSpec>, RuntimeError> {
    outlets
        .iter()
        .map(|outlet| {
            let name = outlet.name().to_owned();
            let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
                return Err(RuntimeError::InvalidModel(format!(
                    "`{name}` is a {}; supported are tensors of f32, f64, i32, i64, u8, string",
                    outlet.dtype()
                )));
            };
            let ty = tensor_type_of(*ty).ok_or_else(|| {
                RuntimeError::InvalidModel(format!(
                    "`{name}` has element type {ty:?}; supported are f32, f64, i32, i64, u8, string"
                ))
            })?;
            let shape = shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect();
            Ok(TensorSpec { name, ty, shape })
        })
        .collect()
}

/// The wisp type of an onnxruntime element type; booleans are bytes, as on tract.
fn tensor_type_of(ty: TensorElementType) -> Option<TensorType> {
    Some(match ty {
        TensorElementType::Float32 => TensorType::F32,
        TensorElementType::Float64 => TensorType::F64,
        TensorElementType::Int32 => TensorType::I32,
        TensorElementType::Int64 => TensorType::I64,
        TensorElementType::Uint8 | TensorElementType::Bool => TensorType::U8,
        TensorElementType::String => TensorType::String,
        _ => return None,
    })
}

fn to_ort(tensor: &Tensor) -> Result<SessionInputValue<'static>, RuntimeError> {
    let shape: Vec<i64> = tensor.shape.iter().map(|&d| i64::from(d)).collect();
    let invalid = |e: ort::Error| RuntimeError::InvalidInput(format!("{e}"));
    // `values` cannot fail: the type is the tensor's own.
    Ok(match tensor.ty {
        TensorType::F32 => {
            ort::value::Tensor::from_array((shape, tensor.values::<f32>().unwrap_or_default()))
                .map_err(invalid)?
                .into()
        }
        TensorType::F64 => {
            ort::value::Tensor::from_array((shape, tensor.values::<f64>().unwrap_or_default()))
                .map_err(invalid)?
                .into()
        }
        TensorType::I32 => {
            ort::value::Tensor::from_array((shape, tensor.values::<i32>().unwrap_or_default()))
                .map_err(invalid)?
                .into()
        }
        TensorType::I64 => {
            ort::value::Tensor::from_array((shape, tensor.values::<i64>().unwrap_or_default()))
                .map_err(invalid)?
                .into()
        }
        TensorType::U8 => ort::value::Tensor::from_array((shape, tensor.data.clone()))
            .map_err(invalid)?
            .into(),
        // `inputs::bind` checked the layout: the elements decode and fill the shape.
        TensorType::String => {
            let strings =
                crate::tensor::decode_strings(&tensor.data).map_err(RuntimeError::InvalidInput)?;
            ort::value::Tensor::from_string_array((shape, strings.as_slice()))
                .map_err(invalid)?
                .into()
        }
    })
}

fn from_ort(value: &DynValue) -> Result<Tensor, RuntimeError> {
    fn tensor<T: ort::value::PrimitiveTensorElementType + crate::tensor::Element>(
        value: &DynValue,
    ) -> Result<Tensor, RuntimeError> {
        let (shape, data) = value
            .try_extract_tensor::<T>()
            .map_err(|e| RuntimeError::InferenceFailed(format!("onnxruntime output: {e}")))?;
        Ok(Tensor::from_values(&dims(shape)?, data))
    }
    fn dims(shape: &ort::value::Shape) -> Result<Vec<u32>, RuntimeError> {
        shape
            .iter()
            .map(|&d| u32::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| RuntimeError::InferenceFailed("output dimension exceeds u32".into()))
    }
    match value.dtype() {
        ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float32 => tensor::<f32>(value),
            TensorElementType::Float64 => tensor::<f64>(value),
            TensorElementType::Int32 => tensor::<i32>(value),
            TensorElementType::Int64 => tensor::<i64>(value),
            TensorElementType::Uint8 => tensor::<u8>(value),
            TensorElementType::Bool => {
                let (shape, data) = value.try_extract_tensor::<bool>().map_err(|e| {
                    RuntimeError::InferenceFailed(format!("onnxruntime output: {e}"))
                })?;
                let bytes: Vec<u8> = data.iter().map(|&b| u8::from(b)).collect();
                Ok(Tensor::from_values(&dims(shape)?, &bytes))
            }
            TensorElementType::String => {
                let (shape, strings) = value.try_extract_strings().map_err(|e| {
                    RuntimeError::InferenceFailed(format!("onnxruntime output: {e}"))
                })?;
                Ok(Tensor::from_strings(&dims(shape)?, &strings))
            }
            other => Err(RuntimeError::InferenceFailed(format!(
                "unsupported output type {other:?}"
            ))),
        },
        other => Err(RuntimeError::InferenceFailed(format!(
            "unsupported output type {other}"
        ))),
    }
}

/// Terminates runs at their stop time: one thread for the process, asleep until the
/// earliest.
struct Watchdog {
    runs: Mutex<Vec<(Instant, Weak<RunOptions>)>>,
    wake: Condvar,
}

/// A run being watched; dropping it (the run ended) lets the watchdog forget it.
struct Watched(#[allow(dead_code)] Arc<RunOptions>);

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let watchdog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            runs: Mutex::default(),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("wisp-ort-watchdog".into())
            .spawn(|| watchdog.patrol())
            .expect("the onnxruntime watchdog thread starts");
        watchdog
    })
}

impl Watchdog {
    fn watch(&self, stop_at: Instant, options: &Arc<RunOptions>) -> Watched {
        // A run with no bound in sight (benchmarks, inspection) is not watched.
        if stop_at < Instant::now() + Duration::from_secs(24 * 3600) {
            self.lock().push((stop_at, Arc::downgrade(options)));
            self.wake.notify_one();
        }
        Watched(Arc::clone(options))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Weak<RunOptions>)>> {
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn patrol(&self) {
        let mut runs = self.lock();
        loop {
            let now = Instant::now();
            runs.retain(|(stop_at, options)| {
                let Some(options) = options.upgrade() else {
                    return false;
                };
                if *stop_at > now {
                    return true;
                }
                if let Err(error) = options.terminate() {
                    tracing::warn!(%error, "could not stop an onnxruntime run");
                }
                false
            });
            let next = runs.iter().map(|(stop_at, _)| *stop_at).min();
            runs = match next {
                Some(at) => {
                    // Woken by a new run or at the earliest stop; forgotten runs are
                    // swept then too.
                    let wait = at
                        .saturating_duration_since(now)
                        .min(Duration::from_secs(1));
                    self.wake
                        .wait_timeout(runs, wait)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
                None => self
                    .wake
                    .wait(runs)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }
}
