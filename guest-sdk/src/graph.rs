//! The component's graph, reached through wasi-nn.

use crate::bindings::wasi::nn::{errors, graph, inference, tensor as nn};
use crate::{Error, NamedTensor, Tensor, TensorType};

/// A graph loaded by the host, ready to compute.
pub struct Graph {
    context: inference::GraphExecutionContext,
    /// The outputs the graph's signature declares as strings: wasi-nn has no string type,
    /// so they come back as `u8` tensors holding length-prefixed strings.
    string_outputs: Vec<String>,
}

impl Graph {
    /// Loads the graph of the model version this instance serves.
    pub fn load_own() -> Result<Self, Error> {
        let info = crate::model_info();
        let name = info
            .graph
            .ok_or_else(|| Error::Internal("this model version has no graph".into()))?;
        let mut graph = Self::load(&name)?;
        graph.string_outputs = info
            .graph_signature
            .map(|signature| signature.outputs)
            .unwrap_or_default()
            .into_iter()
            .filter(|spec| spec.ty == TensorType::String)
            .map(|spec| spec.name)
            .collect();
        Ok(graph)
    }

    /// Loads a graph by name. Names resolve only within the caller's organisation; an
    /// unknown name is an error.
    pub fn load(name: &str) -> Result<Self, Error> {
        let graph = graph::load_by_name(name).map_err(|e| nn_error("loading the graph", &e))?;
        let context = graph
            .init_execution_context()
            .map_err(|e| nn_error("creating an execution context", &e))?;
        Ok(Self {
            context,
            string_outputs: Vec::new(),
        })
    }

    /// Runs the graph on named inputs and returns its named outputs.
    pub fn compute(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let inputs: Vec<(String, nn::Tensor)> = inputs
            .into_iter()
            .map(|input| {
                let t = input.tensor;
                (
                    input.name,
                    nn::Tensor::new(&t.shape, to_nn_type(t.ty), &t.data),
                )
            })
            .collect();
        let outputs = self
            .context
            .compute(inputs)
            .map_err(|e| nn_error("computing", &e))?;
        outputs
            .into_iter()
            .map(|(name, tensor)| {
                let ty = match from_nn_type(tensor.ty()) {
                    Some(TensorType::U8) if self.string_outputs.contains(&name) => {
                        TensorType::String
                    }
                    Some(ty) => ty,
                    None => {
                        return Err(Error::InferenceFailed(format!(
                            "output `{name}` has an unsupported type"
                        )));
                    }
                };
                Ok(NamedTensor::new(
                    name,
                    Tensor {
                        ty,
                        shape: tensor.dimensions(),
                        data: tensor.data(),
                    },
                ))
            })
            .collect()
    }
}

fn nn_error(doing: &str, error: &errors::Error) -> Error {
    let message = format!("{doing}: {}", error.data());
    match error.code() {
        errors::ErrorCode::InvalidArgument => Error::InvalidInput(message),
        errors::ErrorCode::NotFound => Error::Internal(message),
        _ => Error::InferenceFailed(message),
    }
}

fn to_nn_type(ty: TensorType) -> nn::TensorType {
    match ty {
        TensorType::F32 => nn::TensorType::Fp32,
        TensorType::F64 => nn::TensorType::Fp64,
        TensorType::I32 => nn::TensorType::I32,
        TensorType::I64 => nn::TensorType::I64,
        // wasi-nn has no string type: the host reads a `u8` tensor bound to an input the
        // graph declares as a string as length-prefixed strings.
        TensorType::U8 | TensorType::String => nn::TensorType::U8,
    }
}

fn from_nn_type(ty: nn::TensorType) -> Option<TensorType> {
    Some(match ty {
        nn::TensorType::Fp32 => TensorType::F32,
        nn::TensorType::Fp64 => TensorType::F64,
        nn::TensorType::I32 => TensorType::I32,
        nn::TensorType::I64 => TensorType::I64,
        nn::TensorType::U8 => TensorType::U8,
        _ => return None,
    })
}
