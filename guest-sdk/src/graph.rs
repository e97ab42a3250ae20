//! The component's graph, reached through wasi-nn.

use crate::bindings::wasi::nn::{errors, graph, inference, tensor as nn};
use crate::{Error, NamedTensor, Tensor, TensorType};

/// A graph loaded by the host, ready to compute.
pub struct Graph {
    context: inference::GraphExecutionContext,
}

impl Graph {
    /// Loads the graph of the model version this instance serves.
    pub fn load_own() -> Result<Self, Error> {
        let name = crate::model_info()
            .graph
            .ok_or_else(|| Error::Internal("this model version has no graph".into()))?;
        Self::load(&name)
    }

    /// Loads a graph by name. Names resolve only within the caller's organisation; an
    /// unknown name is an error.
    pub fn load(name: &str) -> Result<Self, Error> {
        let graph = graph::load_by_name(name).map_err(|e| nn_error("loading the graph", &e))?;
        let context = graph
            .init_execution_context()
            .map_err(|e| nn_error("creating an execution context", &e))?;
        Ok(Self { context })
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
                let ty = from_nn_type(tensor.ty()).ok_or_else(|| {
                    Error::InferenceFailed(format!("output `{name}` has an unsupported type"))
                })?;
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
        TensorType::U8 => nn::TensorType::U8,
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
