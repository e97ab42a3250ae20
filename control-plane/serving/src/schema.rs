//! JSON Schemas of a model's predict request and response, and an example request, all
//! derived from its signature: the per-model API description behind `…/schema`.

use serde_json::{Map, Value, json};

use super::shape_limits::{MAX_EXAMPLE_ELEMENTS, MAX_NESTED_RANK, check_nesting, element_count};
use crate::inspect::{DType, ModelSignature, TensorSpec};

/// The element schema of a dtype in JSON.
fn element(dtype: DType) -> Value {
    match dtype {
        DType::U8 => json!({"type": "integer", "minimum": 0, "maximum": 255}),
        DType::I32 => json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}),
        DType::I64 | DType::I8 | DType::I16 | DType::U16 | DType::U32 | DType::U64 => {
            json!({"type": "integer"})
        }
        DType::Bool => json!({"type": "boolean"}),
        DType::String => json!({"type": "string"}),
        DType::F16 | DType::F32 | DType::F64 => json!({"type": "number"}),
    }
}

/// Nested arrays following the shape; `-1` dimensions have any length. A shape deeper than
/// [`MAX_NESTED_RANK`] is described as an array of any nesting instead (its schema would
/// be as deep, and deep JSON overflows the stack of whoever reads it).
fn nested(spec: &TensorSpec) -> Value {
    if spec.shape.len() > MAX_NESTED_RANK {
        return json!({"type": "array"});
    }
    spec.shape
        .iter()
        .rev()
        .fold(element(spec.dtype), |items, &dim| {
            let mut array = json!({"type": "array", "items": items});
            if dim >= 0 {
                array["minItems"] = json!(dim);
                array["maxItems"] = json!(dim);
            }
            array
        })
}

fn dtype_name(dtype: DType) -> Value {
    serde_json::to_value(dtype).unwrap_or(Value::Null)
}

fn input_schema(spec: &TensorSpec) -> Value {
    json!({
        "description": format!("{:?} tensor of shape {:?} (-1: any size)", spec.dtype, spec.shape),
        "anyOf": [
            nested(spec),
            {
                "type": "object",
                "properties": {
                    "dtype": {"const": dtype_name(spec.dtype)},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": spec.shape.len(), "maxItems": spec.shape.len()},
                    "data": {"type": "array"},
                    "base64": {"type": "string", "contentEncoding": "base64"}
                },
                "additionalProperties": false
            }
        ]
    })
}

/// An output's schema; a classifier's probabilities say which class each column is, in
/// the description and as `x-class-labels` (the labels in column order).
fn output_schema(spec: &TensorSpec) -> Value {
    let mut schema = json!({
        "type": "object",
        "properties": {
            "dtype": {"const": dtype_name(spec.dtype)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": spec.shape.len(), "maxItems": spec.shape.len()},
            "data": {"type": "array", "items": element(spec.dtype)}
        },
        "required": ["dtype", "shape", "data"]
    });
    if let Some(labels) = &spec.class_labels {
        let labels = labels.to_json();
        schema["description"] = json!(format!(
            "class probabilities: column i of the last dimension is the class labels[i] of {labels}"
        ));
        schema["x-class-labels"] = labels;
    }
    schema
}

fn properties(specs: &[TensorSpec], schema: fn(&TensorSpec) -> Value) -> Value {
    let map: Map<String, Value> = specs
        .iter()
        .map(|spec| (spec.name.clone(), schema(spec)))
        .collect();
    Value::Object(map)
}

/// The JSON Schema of a predict request body.
pub fn request(signature: &ModelSignature) -> Value {
    let names: Vec<_> = signature.inputs.iter().map(|s| s.name.clone()).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "inputs": {
                "type": "object",
                "properties": properties(&signature.inputs, input_schema),
                "required": names,
                "additionalProperties": signature.inputs.is_empty()
            },
            "version": {"type": "integer", "minimum": 1},
            "alias": {"type": "string"}
        },
        "required": ["inputs"],
        "additionalProperties": false
    })
}

/// The JSON Schema of a predict response body.
pub fn response(signature: &ModelSignature) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "outputs": {
                "type": "object",
                "properties": properties(&signature.outputs, output_schema),
            },
            "usage": {"type": "object"}
        },
        "required": ["model", "version", "outputs", "usage"]
    })
}

/// An example request, and why it leaves some inputs out, if it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// A request body that fits the signature, but for the inputs named in `note`.
    pub request: Value,
    /// Which inputs are too large to show, and how they were left out.
    pub note: Option<String>,
}

/// A request that fits the signature: zeros, with one row for every dynamic dimension.
/// An input of more than [`MAX_EXAMPLE_ELEMENTS`] elements (or too deep to nest) is shown
/// as a `{dtype, shape, data: []}` object without its data, and the note says so: the
/// shape of an uploaded model is the uploader's choice, and `[1024, 1024, 1024, 1024]` would
/// be a trillion zeros.
pub fn example(signature: &ModelSignature) -> Example {
    let zero = |dtype: DType| match dtype {
        DType::F16 | DType::F32 | DType::F64 => json!(0.0),
        DType::Bool => json!(false),
        DType::String => json!(""),
        _ => json!(0),
    };
    let mut left_out = Vec::new();
    let inputs: Map<String, Value> = signature
        .inputs
        .iter()
        .map(|spec| {
            // One row for a dynamic dimension; a dimension beyond u32 is too large anyway.
            let dims: Vec<u32> = spec
                .shape
                .iter()
                .map(|&dim| u32::try_from(dim).unwrap_or(if dim < 0 { 1 } else { u32::MAX }))
                .collect();
            let fits = element_count(&dims).is_some_and(|n| n <= MAX_EXAMPLE_ELEMENTS)
                && check_nesting(&dims).is_ok();
            if !fits {
                left_out.push(spec.name.clone());
                // As declared (a dimension beyond u32 too), one row for a dynamic one.
                let shown: Vec<i64> = spec
                    .shape
                    .iter()
                    .map(|&dim| if dim < 0 { 1 } else { dim })
                    .collect();
                let value = json!({"dtype": dtype_name(spec.dtype), "shape": shown, "data": []});
                return (spec.name.clone(), value);
            }
            (spec.name.clone(), zeros(&dims, &zero(spec.dtype)))
        })
        .collect();
    let note = (!left_out.is_empty()).then(|| {
        format!(
            "inputs {left_out:?} hold more than {MAX_EXAMPLE_ELEMENTS} elements: the example gives their dtype and shape, and leaves their `data` empty"
        )
    });
    Example {
        request: json!({ "inputs": inputs }),
        note,
    }
}

/// Nested arrays of `zero` shaped `dims`, built from the outside in: nothing inside a
/// zero-length dimension is built (`[0, 1024, 1024, 1024]` is `[]`, not a billion zeros
/// thrown away). The caller bounds the arrays and the depth with `check_nesting`.
fn zeros(dims: &[u32], zero: &Value) -> Value {
    match dims.split_first() {
        None => zero.clone(),
        Some((0, _)) => Value::Array(Vec::new()),
        Some((&len, inner)) => Value::Array(vec![zeros(inner, zero); len as usize]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> ModelSignature {
        ModelSignature {
            inputs: vec![TensorSpec {
                name: "input".into(),
                dtype: DType::F32,
                shape: vec![-1, 4],
                class_labels: None,
            }],
            outputs: vec![TensorSpec {
                name: "label".into(),
                dtype: DType::I64,
                shape: vec![-1],
                class_labels: None,
            }],
        }
    }

    #[test]
    fn example_has_one_row_per_dynamic_dimension() {
        assert_eq!(
            example(&iris()),
            Example {
                request: json!({"inputs": {"input": [[0.0, 0.0, 0.0, 0.0]]}}),
                note: None
            }
        );
    }

    #[test]
    fn huge_or_deep_inputs_are_left_out_of_the_example() {
        let signature = |shape: Vec<i64>| ModelSignature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                dtype: DType::U8,
                shape,
                class_labels: None,
            }],
            outputs: vec![],
        };
        // Before the cap, this built a trillion zeros and aborted the process.
        let huge = example(&signature(vec![1024, 1024, 1024, 1024]));
        assert_eq!(
            huge.request,
            json!({"inputs": {"x": {"dtype": "u8", "shape": [1024, 1024, 1024, 1024], "data": []}}})
        );
        assert!(huge.note.unwrap().contains("[\"x\"]"));
        let beyond_u32 = example(&signature(vec![i64::MAX, 2]));
        assert!(beyond_u32.note.is_some());
        let deep = signature(vec![1; 10_000]);
        assert!(example(&deep).note.is_some());
        assert_eq!(
            request(&deep)["properties"]["inputs"]["properties"]["x"]["anyOf"][0],
            json!({"type": "array"})
        );
        let empty_batch = example(&signature(vec![0, 1024, 1024, 1024]));
        assert_eq!(empty_batch.request, json!({"inputs": {"x": []}}));
        let largest = example(&signature(vec![-1, 256, 256]));
        assert_eq!(largest.note, None, "64Ki elements are still shown");
    }

    #[test]
    fn schemas_follow_the_shape() {
        let request = request(&iris());
        let nested = &request["properties"]["inputs"]["properties"]["input"]["anyOf"][0];
        assert_eq!(nested["items"]["minItems"], json!(4));
        assert!(nested.get("minItems").is_none(), "the batch is dynamic");
        assert_eq!(
            request["properties"]["inputs"]["required"],
            json!(["input"])
        );
        let response = response(&iris());
        assert_eq!(
            response["properties"]["outputs"]["properties"]["label"]["properties"]["dtype"],
            json!({"const": "i64"})
        );
    }
}
