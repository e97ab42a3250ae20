//! Tensors as JSON at the API edge.
//!
//! An input is one of:
//! - nested arrays of numbers (or of strings, for a `string` input), shape taken from the
//!   nesting: `[[5.1, 3.5, 1.4, 0.2]]`, `[["red"], ["blue"]]`;
//! - `{"shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}` with `data` flat or nested, and an
//!   optional `"dtype"`;
//! - `{"base64": "…", "shape": [n]}`: the tensor's raw little-endian bytes (a PNG for a
//!   `u8` image input, say); the shape defaults to one dimension. Not for strings.
//!
//! The element type comes from the version's signature; `dtype` may repeat it, and must when
//! the signature does not name the input. Outputs are written as `{dtype, shape, data}`
//! with `data` flat and row-major: numbers, or JSON strings for a `string` output.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use wisp_host::{Element, NamedTensor, Tensor, TensorType};

use super::shape_limits::element_count;
use crate::inspect::{DType, ModelSignature};

/// Why an input could not be read. Answered as `invalid_input`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("input `{name}`: {message}")]
pub struct InputError {
    pub name: String,
    pub message: String,
}

/// An output tensor as answered to the caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JsonTensor {
    /// Element type: `f32`, `f64`, `i32`, `i64`, `u8` or `string`.
    pub dtype: String,
    pub shape: Vec<u32>,
    /// The elements, flat and row-major.
    #[schema(value_type = Vec<f64>)]
    pub data: Vec<Value>,
}

/// The runtime element type of a signature dtype, if the runtime supports it.
pub fn tensor_type(dtype: DType) -> Option<TensorType> {
    match dtype {
        DType::F32 => Some(TensorType::F32),
        DType::F64 => Some(TensorType::F64),
        DType::I32 => Some(TensorType::I32),
        DType::I64 => Some(TensorType::I64),
        DType::U8 => Some(TensorType::U8),
        DType::String => Some(TensorType::String),
        _ => None,
    }
}

fn parse_dtype(text: &str) -> Option<TensorType> {
    match text {
        "f32" | "float32" | "FP32" => Some(TensorType::F32),
        "f64" | "float64" | "FP64" => Some(TensorType::F64),
        "i32" | "int32" | "INT32" => Some(TensorType::I32),
        "i64" | "int64" | "INT64" => Some(TensorType::I64),
        "u8" | "uint8" | "UINT8" => Some(TensorType::U8),
        "string" | "str" | "BYTES" => Some(TensorType::String),
        _ => None,
    }
}

/// Reads the named inputs of a request against the version's signature.
pub fn parse_inputs(
    inputs: &BTreeMap<String, Value>,
    signature: &ModelSignature,
) -> Result<Vec<NamedTensor>, InputError> {
    if !signature.inputs.is_empty() {
        if let Some(unknown) = inputs
            .keys()
            .find(|name| !signature.inputs.iter().any(|s| &s.name == *name))
        {
            let expected: Vec<_> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(InputError {
                name: unknown.clone(),
                message: format!("the model has no such input; its inputs are {expected:?}"),
            });
        }
        if let Some(missing) = signature
            .inputs
            .iter()
            .find(|s| !inputs.contains_key(&s.name))
        {
            return Err(InputError {
                name: missing.name.clone(),
                message: "missing; every input of the signature is required".into(),
            });
        }
    }
    inputs
        .iter()
        .map(|(name, value)| {
            let declared = signature
                .inputs
                .iter()
                .find(|s| &s.name == name)
                .map(|s| s.dtype);
            parse_input(name, value, declared)
                .map(|tensor| NamedTensor::new(name.clone(), tensor))
                .map_err(|message| InputError {
                    name: name.clone(),
                    message,
                })
        })
        .collect()
}

fn parse_input(name: &str, value: &Value, declared: Option<DType>) -> Result<Tensor, String> {
    let declared = match declared {
        Some(dtype) => Some(tensor_type(dtype).ok_or_else(|| {
            format!("the model declares dtype {dtype:?}, which wisp cannot pass to a model")
        })?),
        None => None,
    };
    let Value::Object(fields) = value else {
        let ty = declared.ok_or_else(|| {
            format!("the signature does not name `{name}`; send {{\"dtype\", \"shape\", \"data\"}}")
        })?;
        let (shape, leaves) = flatten(value)?;
        return build(ty, shape, &leaves);
    };
    if let Some(key) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data" | "base64"))
    {
        return Err(format!(
            "unknown field `{key}`; a tensor object has `dtype`, `shape` and `data` or `base64`"
        ));
    }
    let given = match fields.get("dtype") {
        None => None,
        Some(Value::String(text)) => {
            Some(parse_dtype(text).ok_or_else(|| format!("unknown dtype {text:?}"))?)
        }
        Some(other) => return Err(format!("dtype must be a string, got {other}")),
    };
    let ty = match (declared, given) {
        (Some(declared), Some(given)) if declared != given => {
            return Err(format!("expected dtype {declared}, got {given}"));
        }
        (Some(ty), _) | (None, Some(ty)) => ty,
        (None, None) => {
            return Err("the signature does not name this input: give its `dtype`".into());
        }
    };
    let shape = match fields.get("shape") {
        None => None,
        Some(Value::Array(dims)) => Some(
            dims.iter()
                .map(|d| {
                    d.as_u64()
                        .and_then(|d| u32::try_from(d).ok())
                        .ok_or_else(|| format!("shape must be non-negative integers, got {d}"))
                })
                .collect::<Result<Vec<u32>, _>>()?,
        ),
        Some(other) => return Err(format!("shape must be an array, got {other}")),
    };
    match (fields.get("data"), fields.get("base64")) {
        (Some(_), Some(_)) => Err("give `data` or `base64`, not both".into()),
        (None, None) => Err("a tensor object needs `data` or `base64`".into()),
        (None, Some(encoded)) => {
            let text = encoded
                .as_str()
                .ok_or_else(|| "base64 must be a string".to_owned())?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("invalid base64: {e}"))?;
            if ty == TensorType::String {
                return Err(
                    "a string tensor is given as `data` (JSON strings), not `base64`".into(),
                );
            }
            if bytes.len() % ty.size_of() != 0 {
                return Err(format!(
                    "{} bytes is not a whole number of {ty} elements",
                    bytes.len()
                ));
            }
            let count = u32::try_from(bytes.len() / ty.size_of())
                .map_err(|_| "the tensor is too large".to_owned())?;
            let tensor = Tensor {
                ty,
                shape: shape.unwrap_or_else(|| vec![count]),
                data: bytes,
            };
            tensor.check_layout()?;
            Ok(tensor)
        }
        (Some(data), None) => tensor_from_json(ty, shape, data),
    }
}

/// A tensor of element type `ty` from JSON numbers, `data` flat or nested. The shape is
/// `shape` if given (it must hold as many elements as `data`), else the nesting of `data`.
pub fn tensor_from_json(
    ty: TensorType,
    shape: Option<Vec<u32>>,
    data: &Value,
) -> Result<Tensor, String> {
    let (nested_shape, leaves) = flatten(data)?;
    let shape = match shape {
        Some(shape) => {
            // Checked: an overflowing product must not wrap around to the data's length.
            let count = element_count(&shape)
                .ok_or_else(|| format!("shape {shape:?} holds more elements than wisp counts"))?;
            if count != leaves.len() as u64 {
                return Err(format!(
                    "shape {shape:?} holds {count} elements, data has {}",
                    leaves.len()
                ));
            }
            shape
        }
        None => nested_shape,
    };
    build(ty, shape, &leaves)
}

/// The shape of nested arrays and their numbers in row-major order. Ragged arrays are
/// refused.
fn flatten(value: &Value) -> Result<(Vec<u32>, Vec<&Value>), String> {
    let mut shape = Vec::new();
    let mut probe = value;
    while let Value::Array(items) = probe {
        shape.push(u32::try_from(items.len()).map_err(|_| "array too long".to_owned())?);
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut leaves = Vec::new();
    collect(value, &shape, 0, &mut leaves)?;
    Ok((shape, leaves))
}

fn collect<'a>(
    value: &'a Value,
    shape: &[u32],
    depth: usize,
    out: &mut Vec<&'a Value>,
) -> Result<(), String> {
    match (value, shape.get(depth)) {
        (Value::Array(items), Some(&len)) => {
            if items.len() != len as usize {
                return Err(format!(
                    "ragged array: expected {len} elements at depth {depth}, found {}",
                    items.len()
                ));
            }
            items
                .iter()
                .try_for_each(|item| collect(item, shape, depth + 1, out))
        }
        (Value::Array(_), None) => Err(format!("ragged array: too deep at depth {depth}")),
        (_, Some(_)) => Err(format!("ragged array: expected an array at depth {depth}")),
        (leaf, None) => {
            out.push(leaf);
            Ok(())
        }
    }
}

fn build(ty: TensorType, shape: Vec<u32>, leaves: &[&Value]) -> Result<Tensor, String> {
    fn typed<T: Element>(
        shape: &[u32],
        leaves: &[&Value],
        read: impl Fn(&Value) -> Option<T>,
        what: &str,
    ) -> Result<Tensor, String> {
        let values = leaves
            .iter()
            .enumerate()
            .map(|(i, v)| read(v).ok_or_else(|| format!("element {i} ({v}) is not {what}")))
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Tensor::from_values(shape, &values))
    }
    let int = |v: &Value| v.as_i64();
    match ty {
        TensorType::F32 => typed(&shape, leaves, |v| v.as_f64().map(|x| x as f32), "a number"),
        TensorType::F64 => typed(&shape, leaves, Value::as_f64, "a number"),
        TensorType::I32 => typed(
            &shape,
            leaves,
            |v| int(v).and_then(|x| i32::try_from(x).ok()),
            "a 32-bit integer",
        ),
        TensorType::I64 => typed(&shape, leaves, int, "a 64-bit integer"),
        TensorType::U8 => typed(
            &shape,
            leaves,
            |v| int(v).and_then(|x| u8::try_from(x).ok()),
            "an integer from 0 to 255",
        ),
        TensorType::String => {
            let strings = leaves
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .ok_or_else(|| format!("element {i} ({v}) is not a string"))
                })
                .collect::<Result<Vec<&str>, _>>()?;
            Ok(Tensor::from_strings(&shape, &strings))
        }
    }
}

/// Writes outputs as `{name: {dtype, shape, data}}`.
pub fn format_outputs(outputs: &[NamedTensor]) -> BTreeMap<String, JsonTensor> {
    outputs
        .iter()
        .map(|output| (output.name.clone(), format_tensor(&output.tensor)))
        .collect()
}

fn format_tensor(tensor: &Tensor) -> JsonTensor {
    JsonTensor {
        dtype: tensor.ty.name().to_owned(),
        shape: tensor.shape.clone(),
        data: json_values(tensor),
    }
}

/// The elements of a tensor as JSON numbers (strings for `string`), flat and row-major.
pub fn json_values(tensor: &Tensor) -> Vec<Value> {
    fn values<T: Element + Into<Value>>(tensor: &Tensor) -> Vec<Value> {
        tensor
            .values::<T>()
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect()
    }
    match tensor.ty {
        TensorType::F32 => values::<f32>(tensor),
        TensorType::F64 => values::<f64>(tensor),
        TensorType::I32 => values::<i32>(tensor),
        TensorType::I64 => values::<i64>(tensor),
        TensorType::U8 => values::<u8>(tensor),
        TensorType::String => tensor
            .strings()
            .unwrap_or_default()
            .into_iter()
            .map(Value::String)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::TensorSpec;
    use serde_json::json;

    fn iris() -> ModelSignature {
        ModelSignature {
            inputs: vec![TensorSpec {
                name: "input".into(),
                dtype: DType::F32,
                shape: vec![-1, 4],
                class_labels: None,
            }],
            outputs: vec![],
        }
    }

    fn parse(inputs: Value) -> Result<Vec<NamedTensor>, InputError> {
        let inputs: BTreeMap<String, Value> = serde_json::from_value(inputs).unwrap();
        parse_inputs(&inputs, &iris())
    }

    #[test]
    fn nested_flat_and_base64_forms_agree() {
        let nested = parse(json!({"input": [[5.1, 3.5, 1.4, 0.2]]})).unwrap();
        let flat =
            parse(json!({"input": {"shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}})).unwrap();
        let bytes: Vec<u8> = [5.1f32, 3.5, 1.4, 0.2]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        let raw = parse(json!({"input": {"shape": [1, 4], "base64": encoded}})).unwrap();
        assert_eq!(nested, flat);
        assert_eq!(nested, raw);
        assert_eq!(nested[0].tensor.shape, vec![1, 4]);
    }

    #[test]
    fn mistakes_are_named() {
        let message = |v: Value| parse(v).unwrap_err().to_string();
        assert!(message(json!({"input": [[1, 2], [3]]})).contains("ragged"));
        assert!(message(json!({"input": [["a", 1, 2, 3]]})).contains("is not a number"));
        assert!(
            message(json!({"input": {"dtype": "i64", "data": [1]}}))
                .contains("expected dtype f32, got i64")
        );
        assert!(
            message(json!({"input": {"shape": [2, 4], "data": [1, 2]}}))
                .contains("holds 8 elements")
        );
        assert!(message(json!({"wrong": [1]})).contains("no such input"));
        // 65536^4 wraps to 0 in u64: it must not pass for the empty data.
        assert!(
            message(json!({"input": {"shape": [65536, 65536, 65536, 65536], "data": []}}))
                .contains("more elements than wisp counts")
        );
        assert!(message(json!({})).contains("missing"));
    }

    #[test]
    fn outputs_are_flat_with_their_shape() {
        let tensor = Tensor::from_values(&[2, 2], &[1i64, 2, 3, 4]);
        let out = format_outputs(&[NamedTensor::new("label", tensor)]);
        assert_eq!(
            serde_json::to_value(&out["label"]).unwrap(),
            json!({"dtype": "i64", "shape": [2, 2], "data": [1, 2, 3, 4]})
        );
    }
}
