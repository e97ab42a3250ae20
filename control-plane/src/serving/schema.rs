//! JSON Schemas of a model's predict request and response, and an example request, all
//! derived from its signature: the per-model API description behind `…/schema`.

use serde_json::{Map, Value, json};

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

/// Nested arrays following the shape; `-1` dimensions have any length.
fn nested(spec: &TensorSpec) -> Value {
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

fn output_schema(spec: &TensorSpec) -> Value {
    json!({
        "type": "object",
        "properties": {
            "dtype": {"const": dtype_name(spec.dtype)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": spec.shape.len(), "maxItems": spec.shape.len()},
            "data": {"type": "array", "items": element(spec.dtype)}
        },
        "required": ["dtype", "shape", "data"]
    })
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

/// A request that fits the signature: zeros, with one row for every dynamic dimension.
pub fn example(signature: &ModelSignature) -> Value {
    let zero = |dtype: DType| match dtype {
        DType::F16 | DType::F32 | DType::F64 => json!(0.0),
        DType::Bool => json!(false),
        DType::String => json!(""),
        _ => json!(0),
    };
    let inputs: Map<String, Value> = signature
        .inputs
        .iter()
        .map(|spec| {
            let value = spec
                .shape
                .iter()
                .rev()
                .fold(zero(spec.dtype), |inner, &dim| {
                    let len = usize::try_from(dim).unwrap_or(1).min(1024);
                    Value::Array(vec![inner; len])
                });
            (spec.name.clone(), value)
        })
        .collect();
    json!({ "inputs": inputs })
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
            }],
            outputs: vec![TensorSpec {
                name: "label".into(),
                dtype: DType::I64,
                shape: vec![-1],
            }],
        }
    }

    #[test]
    fn example_has_one_row_per_dynamic_dimension() {
        assert_eq!(
            example(&iris()),
            json!({"inputs": {"input": [[0.0, 0.0, 0.0, 0.0]]}})
        );
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
