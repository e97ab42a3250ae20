//! The ONNX backend on tract: load and optimise a graph once, run it from many threads.
//!
//! A loaded [`TractGraph`] holds tract's optimised plan behind an `Arc`; every `run` spawns its
//! own execution state, so concurrent calls on one graph never wait on a lock. A call's run
//! goes node by node through the guard (`guard.rs`), which stops it at the call's deadline
//! or before a node that would take more memory than the call has left.

use super::graph::GraphInfo;
use super::guard::{GraphCosts, Guard, RunBounds, Stop};
use crate::error::RuntimeError;
use crate::tensor::{NamedTensor, Signature, Tensor, TensorSpec, TensorType};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// A loaded, optimised ONNX graph on tract.
pub(crate) struct TractGraph {
    plan: Arc<TypedRunnableModel>,
    /// What the guard needs to know of each node.
    costs: GraphCosts,
    info: GraphInfo,
    /// Bytes of the model file: what the graph cache weighs entries by.
    file_bytes: usize,
}

impl TractGraph {
    /// Parses, checks and optimises an ONNX file.
    pub(crate) fn load(bytes: &[u8]) -> Result<Self, RuntimeError> {
        if bytes.is_empty() {
            return Err(RuntimeError::InvalidModel("the model file is empty".into()));
        }
        let onnx = super::onnx_ml::onnx();
        let proto = onnx.proto_model_for_read(&mut &*bytes).map_err(|e| {
            RuntimeError::InvalidModel(format!("not an ONNX model (protobuf decoding failed: {e})"))
        })?;
        if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
            return Err(RuntimeError::InvalidModel(
                "not an ONNX model (no graph nodes)".into(),
            ));
        }
        let metadata = proto
            .metadata_props
            .iter()
            .map(|entry| (entry.key.clone(), entry.value.clone()))
            .collect();
        let typed = |batch| {
            onnx.model_for_proto_model(&proto)
                .and_then(|model| name_unknown_dimensions(model, batch))
                .and_then(|model| model.into_optimized())
        };
        let model = typed(Batch::PerInput)
            .or_else(|refusal| {
                // Converters leave every input's batch dimension unnamed; a graph that
                // joins two inputs (skl2onnx's `ColumnTransformer`: a `Concat` of a string
                // column's encoding and the numeric columns) only types with them equal.
                typed(Batch::Shared).map_err(|_| refusal)
            })
            .map_err(|e| RuntimeError::InvalidModel(format!("unsupported ONNX graph: {e:#}")))?;
        let signature = signature_of(&model)?;
        let plan = model
            .into_runnable()
            .map_err(|e| RuntimeError::InvalidModel(format!("cannot plan ONNX graph: {e:#}")))?;
        Ok(Self {
            costs: GraphCosts::of(&plan),
            plan,
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

    /// Runs the graph, stopped by its guard between two nodes (`Err(Err(stop))`) at
    /// `bounds.deadline`, at `bounds.yield_at`, or before a node whose outputs would take
    /// the values of the run past `bounds.memory_bytes`.
    pub(crate) fn run_within(
        &self,
        inputs: Vec<NamedTensor>,
        bounds: RunBounds,
    ) -> Result<Vec<NamedTensor>, Result<RuntimeError, Stop>> {
        let inputs = self.bind_inputs(inputs).map_err(Ok)?;
        let mut guard = Guard::new(&self.costs, bounds);
        let outputs = self
            .plan
            .spawn()
            .and_then(|mut state| {
                state.run_plan_with_eval(inputs, |context, op_state, node, inputs| {
                    guard.eval(context, op_state, node, inputs)
                })
            })
            .map_err(|e| match guard.take_stop() {
                Some(stop) => Err(stop),
                None => Ok(RuntimeError::InferenceFailed(format!("{e:#}"))),
            })?;
        outputs
            .into_iter()
            .zip(&self.info.signature.outputs)
            .map(|(value, spec)| Ok(NamedTensor::new(&spec.name, from_tract(&value)?)))
            .collect::<Result<_, RuntimeError>>()
            .map_err(Ok)
    }

    /// Orders the inputs as the plan wants them, rejecting unknown, missing or mistyped ones.
    /// Orders the inputs as the plan wants them, rejecting unknown, missing or mistyped ones.
    fn bind_inputs(&self, inputs: Vec<NamedTensor>) -> Result<TVec<TValue>, RuntimeError> {
        super::inputs::bind(&self.info.signature.inputs, inputs)?
            .into_iter()
            .map(|(_, tensor)| to_tract(&tensor).map(IntoTValue::into_tvalue))
            .collect()
    }
}

/// What an unnamed first dimension of the inputs stands for.
#[derive(Clone, Copy)]
enum Batch {
    /// A size of its own in each input (what the file says).
    PerInput,
    /// One size for all inputs: the batch.
    Shared,
}

/// Gives every input dimension the file leaves unnamed (converters often write neither a
/// size nor a name for the batch) a symbol of its own, so tract can type the graph and the
/// signature reports it as variable; with [`Batch::Shared`], the first one of every input
/// the same symbol.
fn name_unknown_dimensions(mut model: InferenceModel, batch: Batch) -> TractResult<InferenceModel> {
    let shared: TDim = model.symbols.new_with_prefix("batch").into();
    for input in 0..model.input_outlets()?.len() {
        let fact = model.input_fact(input)?.clone();
        let Some(datum_type) = fact.datum_type.concretize() else {
            continue;
        };
        if fact.shape.is_open() {
            continue;
        }
        let dims: TVec<TDim> = fact
            .shape
            .dims()
            .enumerate()
            .map(|(axis, dim)| {
                dim.concretize().unwrap_or_else(|| match batch {
                    Batch::Shared if axis == 0 => shared.clone(),
                    _ => model.symbols.new_with_prefix("dim").into(),
                })
            })
            .collect();
        model.set_input_fact(input, InferenceFact::dt_shape(datum_type, dims))?;
    }
    Ok(model)
}

fn signature_of(model: &TypedModel) -> Result<Signature, RuntimeError> {
    let spec = |outlet: OutletId, name: String| -> Result<TensorSpec, RuntimeError> {
        let fact = model
            .outlet_fact(outlet)
            .map_err(|e| RuntimeError::InvalidModel(format!("{e:#}")))?;
        let ty = tensor_type_of(fact.datum_type).ok_or_else(|| {
            RuntimeError::InvalidModel(format!(
                "`{name}` has element type {:?}; supported are f32, f64, i32, i64, u8, string",
                fact.datum_type
            ))
        })?;
        let shape = fact
            .shape
            .iter()
            .map(|d| d.to_i64().unwrap_or(-1))
            .collect();
        Ok(TensorSpec { name, ty, shape })
    };
    let inputs = model
        .input_outlets()
        .map_err(|e| RuntimeError::InvalidModel(format!("{e:#}")))?
        .iter()
        .map(|&outlet| spec(outlet, model.node(outlet.node).name.clone()))
        .collect::<Result<_, _>>()?;
    let outputs = model
        .output_outlets()
        .map_err(|e| RuntimeError::InvalidModel(format!("{e:#}")))?
        .iter()
        .map(|&outlet| {
            let name = model
                .outlet_label(outlet)
                .map(str::to_owned)
                .unwrap_or_else(|| model.node(outlet.node).name.clone());
            spec(outlet, name)
        })
        .collect::<Result<_, _>>()?;
    Ok(Signature { inputs, outputs })
}

/// The wisp type of a tract element type. Symbolic dimensions (`TDim`, as sklearn's
/// label outputs come out of tract) are integers to callers; booleans are bytes.
fn tensor_type_of(dt: DatumType) -> Option<TensorType> {
    Some(match dt {
        DatumType::F32 => TensorType::F32,
        DatumType::F64 => TensorType::F64,
        DatumType::I32 => TensorType::I32,
        DatumType::I64 | DatumType::TDim => TensorType::I64,
        DatumType::U8 | DatumType::Bool => TensorType::U8,
        DatumType::String => TensorType::String,
        _ => return None,
    })
}

fn datum_type_of(ty: TensorType) -> DatumType {
    match ty {
        TensorType::F32 => DatumType::F32,
        TensorType::F64 => DatumType::F64,
        TensorType::I32 => DatumType::I32,
        TensorType::I64 => DatumType::I64,
        TensorType::U8 => DatumType::U8,
        TensorType::String => DatumType::String,
    }
}

fn to_tract(tensor: &Tensor) -> Result<tract_onnx::prelude::Tensor, RuntimeError> {
    let shape: Vec<usize> = tensor.shape.iter().map(|&d| d as usize).collect();
    if tensor.ty == TensorType::String {
        // `inputs::bind` checked the layout: the elements decode and fill the shape.
        let strings =
            crate::tensor::decode_strings(&tensor.data).map_err(RuntimeError::InvalidInput)?;
        return tract_ndarray::ArrayD::from_shape_vec(shape, strings)
            .map(IntoTensor::into_tensor)
            .map_err(|e| RuntimeError::InvalidInput(format!("{e:#}")));
    }
    // SAFETY: every other `TensorType` maps to a plain numeric datum type, for which any byte
    // pattern is a valid value; `from_raw_dt` checks the length against the shape and copies.
    unsafe {
        tract_onnx::prelude::Tensor::from_raw_dt(datum_type_of(tensor.ty), &shape, &tensor.data)
    }
    .map_err(|e| RuntimeError::InvalidInput(format!("{e:#}")))
}

fn from_tract(value: &tract_onnx::prelude::Tensor) -> Result<Tensor, RuntimeError> {
    let ty = tensor_type_of(value.datum_type()).ok_or_else(|| {
        RuntimeError::InferenceFailed(format!("unsupported output type {:?}", value.datum_type()))
    })?;
    let value = value
        .cast_to_dt(datum_type_of(ty))
        .map_err(|e| RuntimeError::InferenceFailed(format!("{e:#}")))?;
    let shape: Vec<u32> = value
        .shape()
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| RuntimeError::InferenceFailed("output dimension exceeds u32".into()))?;
    if ty == TensorType::String {
        let view = value
            .to_plain_array_view::<String>()
            .map_err(|e| RuntimeError::InferenceFailed(format!("{e:#}")))?;
        let strings: Vec<&String> = view.iter().collect();
        return Ok(Tensor::from_strings(&shape, &strings));
    }
    Ok(Tensor {
        ty,
        shape,
        data: value.as_bytes().to_vec(),
    })
}
