//! Binding a call's named inputs to a graph's signature, the same for every backend:
//! ordered as the graph declares them, each checked against its spec (element type, shape,
//! layout), unknown, repeated or missing names refused with the same messages.

use crate::error::RuntimeError;
use crate::tensor::{NamedTensor, Tensor, TensorSpec, shape_display};

/// `inputs` in the order of `specs`, each checked against its spec.
pub(super) fn bind(
    specs: &[TensorSpec],
    inputs: Vec<NamedTensor>,
) -> Result<Vec<(&TensorSpec, Tensor)>, RuntimeError> {
    let mut slots: Vec<Option<Tensor>> = vec![None; specs.len()];
    for NamedTensor { name, tensor } in inputs {
        let Some(index) = specs.iter().position(|spec| spec.name == name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(RuntimeError::InvalidInput(format!(
                "unknown input `{name}`; the model takes {known:?}"
            )));
        };
        if slots[index].replace(tensor).is_some() {
            return Err(RuntimeError::InvalidInput(format!(
                "input `{name}` given twice"
            )));
        }
    }
    specs
        .iter()
        .zip(slots)
        .map(|(spec, tensor)| {
            let tensor = tensor.ok_or_else(|| {
                RuntimeError::InvalidInput(format!("missing input `{}`", spec.name))
            })?;
            check_against_spec(spec, &tensor)?;
            Ok((spec, tensor))
        })
        .collect()
}

fn check_against_spec(spec: &TensorSpec, tensor: &Tensor) -> Result<(), RuntimeError> {
    if tensor.ty != spec.ty || !spec.accepts_shape(&tensor.shape) {
        return Err(RuntimeError::InvalidInput(format!(
            "input `{}`: expected {} {}, got {} {:?}",
            spec.name,
            spec.ty,
            shape_display(&spec.shape),
            tensor.ty,
            tensor.shape
        )));
    }
    tensor
        .check_layout()
        .map_err(|e| RuntimeError::InvalidInput(format!("input `{}`: {e}", spec.name)))
}
