//! KServe V1 predict bodies, pure: `{"instances": [...]}` in, `{"predictions": [...]}` out.
//!
//! V1 has no tensor names or types on the wire. Instances are the rows of the model's
//! (single) input, typed by its signature; predictions are the rows of the outputs: the
//! rows of the only output, or one object per row keyed by output name when there are
//! several.

use serde_json::{Map, Value};
use wisp_host::{NamedTensor, Tensor, TensorType};

use super::tensors::{json_values, tensor_from_json};

/// Why instances could not be read or outputs written as predictions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct V1Error(pub String);

/// The input tensor made of `instances`, each a row of element type `ty`.
pub fn instances_tensor(ty: TensorType, instances: &[Value]) -> Result<Tensor, V1Error> {
    if instances.is_empty() {
        return Err(V1Error("`instances` is empty".into()));
    }
    tensor_from_json(ty, None, &Value::Array(instances.to_vec()))
        .map_err(|e| V1Error(format!("instances: {e}")))
}

/// The predictions: one per row of the outputs.
pub fn predictions(outputs: &[NamedTensor]) -> Result<Vec<Value>, V1Error> {
    let mut columns = outputs
        .iter()
        .map(|output| rows(&output.tensor).map(|rows| (output.name.as_str(), rows)))
        .collect::<Result<Vec<_>, _>>()?;
    match columns.len() {
        0 => Err(V1Error("the model returned no outputs".into())),
        1 => Ok(columns.remove(0).1),
        _ => {
            let count = columns[0].1.len();
            if let Some((name, other)) = columns.iter().find(|(_, rows)| rows.len() != count) {
                return Err(V1Error(format!(
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
fn rows(tensor: &Tensor) -> Result<Vec<Value>, V1Error> {
    let Some((_, row_shape)) = tensor.shape.split_first() else {
        return Err(V1Error(
            "an output is a scalar, which has no rows to return as predictions".into(),
        ));
    };
    let values = json_values(tensor);
    let row_len: usize = row_shape.iter().map(|&d| d as usize).product();
    if row_len == 0 {
        return Ok(vec![nest(&[], row_shape); tensor.shape[0] as usize]);
    }
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
            let size: usize = inner.iter().map(|&d| d as usize).product();
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
        assert!(ragged.unwrap_err().0.contains("ragged"));
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
}
