//! KServe V1 predict bodies, pure: `{"instances": [...]}` in, `{"predictions": [...]}` out.
//!
//! V1 has no tensor names or types on the wire. Instances are the rows of the model's
//! (single) input, typed by its signature; predictions are the rows of the outputs: the
//! rows of the only output, or one object per row keyed by output name when there are
//! several.

use serde_json::{Map, Value};
use wisp_host::{NamedTensor, Tensor, TensorType};

use super::shape_limits::check_nesting;
use super::tensors::{json_values, tensor_from_json};

/// Why instances could not be read or outputs written as predictions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum V1Error {
    /// The instances or outputs do not fit the protocol.
    #[error("{0}")]
    Invalid(String),
    /// An output's shape would nest into more JSON than wisp writes (`output_too_large`).
    #[error("{0}")]
    TooLarge(String),
}

impl V1Error {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Invalid(message) | Self::TooLarge(message) => message,
        }
    }
}

/// The input tensor made of `instances`, each a row of element type `ty`.
pub fn instances_tensor(ty: TensorType, instances: &[Value]) -> Result<Tensor, V1Error> {
    if instances.is_empty() {
        return Err(V1Error::Invalid("`instances` is empty".into()));
    }
    tensor_from_json(ty, None, &Value::Array(instances.to_vec()))
        .map_err(|e| V1Error::Invalid(format!("instances: {e}")))
}

/// The predictions: one per row of the outputs.
pub fn predictions(outputs: &[NamedTensor]) -> Result<Vec<Value>, V1Error> {
    let mut columns = outputs
        .iter()
        .map(|output| {
            rows(&output.tensor)
                .map(|rows| (output.name.as_str(), rows))
                .map_err(|e| match e {
                    V1Error::TooLarge(why) => {
                        V1Error::TooLarge(format!("output `{}`: {why}", output.name))
                    }
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match columns.len() {
        0 => Err(V1Error::Invalid("the model returned no outputs".into())),
        1 => Ok(columns.remove(0).1),
        _ => {
            let count = columns[0].1.len();
            if let Some((name, other)) = columns.iter().find(|(_, rows)| rows.len() != count) {
                return Err(V1Error::Invalid(format!(
                    "output `{name}` has {} rows, `{}` has {count}: they cannot be paired into predictions",
                    other.len(),
                    columns[0].0
                )));
            }
            let mut iters: Vec<_> = columns
                .into_iter()
                .map(|(name, rows)| (name, rows.into_iter()))
                .collect();
            Ok((0..count)
                .map(|_| {
                    let row: Map<String, Value> = iters
                        .iter_mut()
                        .map(|(name, rows)| ((*name).to_owned(), rows.next().unwrap_or_default()))
                        .collect();
                    Value::Object(row)
                })
                .collect())
        }
    }
}

/// The rows of a tensor along its first dimension, each nested as its remaining shape.
/// The shape is checked first: a zero-volume output can describe billions of empty rows.
fn rows(tensor: &Tensor) -> Result<Vec<Value>, V1Error> {
    let Some((&count, row_shape)) = tensor.shape.split_first() else {
        return Err(V1Error::Invalid(
            "an output is a scalar, which has no rows to return as predictions".into(),
        ));
    };
    // The nesting follows the shape and the cap counts the shape's elements: both only
    // hold for data that fills the shape.
    tensor.check_layout().map_err(V1Error::Invalid)?;
    check_nesting(&tensor.shape).map_err(V1Error::TooLarge)?;
    // Within u64 and the nesting cap, so within usize on 64-bit targets.
    let row_len = usize::try_from(super::shape_limits::element_count(row_shape).unwrap_or(0))
        .map_err(|_| V1Error::TooLarge("the output is too large".into()))?;
    if count == 0 {
        // `vec![row; 0]` would still build the row, and `[0, 4294967295]` passes the cap.
        return Ok(Vec::new());
    }
    if row_len == 0 {
        return Ok(vec![nest(&[], row_shape); count as usize]);
    }
    let values = json_values(tensor);
    Ok(values
        .chunks(row_len)
        .map(|row| nest(row, row_shape))
        .collect())
}

/// Nests flat row-major `values` as `shape`.
fn nest(values: &[Value], shape: &[u32]) -> Value {
    match shape.split_first() {
        None => values.first().cloned().unwrap_or_default(),
        Some((&len, inner)) => {
            // Checked by `rows` (check_nesting) before any nesting starts.
            let size = inner
                .iter()
                .fold(1usize, |size, &d| size.saturating_mul(d as usize));
            Value::Array(
                (0..len as usize)
                    .map(|i| nest(values.get(i * size..(i + 1) * size).unwrap_or(&[]), inner))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instances_are_rows() {
        let tensor = instances_tensor(
            TensorType::F32,
            &[json!([5.1, 3.5, 1.4, 0.2]), json!([6.0, 2.2, 5.0, 1.5])],
        )
        .unwrap();
        assert_eq!(tensor.shape, vec![2, 4]);
        assert!(instances_tensor(TensorType::F32, &[]).is_err());
        let ragged = instances_tensor(TensorType::F32, &[json!([1.0]), json!([1.0, 2.0])]);
        assert!(ragged.unwrap_err().message().contains("ragged"));
    }

    #[test]
    fn one_output_gives_its_rows_several_give_objects() {
        let label = NamedTensor::new("label", Tensor::from_values(&[2], &[0i64, 2]));
        let probabilities = NamedTensor::new(
            "probabilities",
            Tensor::from_values(&[2, 1, 2], &[0.5f32, 0.5, 0.0, 1.0]),
        );
        assert_eq!(
            predictions(std::slice::from_ref(&label)).unwrap(),
            vec![json!(0), json!(2)]
        );
        assert_eq!(
            predictions(std::slice::from_ref(&probabilities)).unwrap(),
            vec![json!([[0.5, 0.5]]), json!([[0.0, 1.0]])]
        );
        assert_eq!(
            predictions(&[label.clone(), probabilities]).unwrap(),
            vec![
                json!({"label": 0, "probabilities": [[0.5, 0.5]]}),
                json!({"label": 2, "probabilities": [[0.0, 1.0]]}),
            ]
        );
        let other_batch = NamedTensor::new("x", Tensor::from_values(&[3], &[1i64, 2, 3]));
        assert!(predictions(&[label, other_batch]).is_err());
        let scalar = NamedTensor::new("s", Tensor::from_values(&[], &[1.0f32]));
        assert!(predictions(&[scalar]).is_err());
    }

    #[test]
    fn zero_volume_outputs_cannot_amplify_into_billions_of_rows() {
        let empty = |shape: Vec<u32>| Tensor {
            ty: TensorType::F32,
            shape,
            data: Vec::new(),
        };
        // Before the cap, this allocated 4 billion JSON values and aborted the process.
        let bomb = NamedTensor::new("boxes", empty(vec![u32::MAX, 0]));
        let error = predictions(&[bomb]).unwrap_err();
        assert!(matches!(error, V1Error::TooLarge(_)), "{error:?}");
        assert!(error.message().contains("boxes"), "{error}");
        let deep = NamedTensor::new(
            "deep",
            empty(vec![1; 100_000].into_iter().chain([0]).collect()),
        );
        assert!(matches!(predictions(&[deep]), Err(V1Error::TooLarge(_))));
        // A batch of zero detections is still fine.
        let no_rows = NamedTensor::new("boxes", empty(vec![0, u32::MAX]));
        assert_eq!(predictions(&[no_rows]).unwrap(), Vec::<Value>::new());
        let none = NamedTensor::new("boxes", empty(vec![3, 0, 4]));
        assert_eq!(
            predictions(&[none]).unwrap(),
            vec![json!([]), json!([]), json!([])]
        );
    }
}
