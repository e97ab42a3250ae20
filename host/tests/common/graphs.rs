//! Small ONNX graphs built in code for the hostile tests: how much they compute or
//! allocate depends on their inputs' values or shapes, which no committed fixture shows.

use prost::Message;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Value};
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// A dimension: a size, or a name (variable).
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn value(name: &str, elem_type: i32, shape: &[Dim]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
                Dim::Named(s) => dimension::Value::DimParam((*s).into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).into()).collect(),
        output: vec![output.into()],
        name: output.into(),
        op_type: op.into(),
        ..Default::default()
    }
}

fn int64_const(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: INT64,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn float_const(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    input: Vec<ValueInfoProto>,
    output: Vec<ValueInfoProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            name: "hostile".into(),
            initializer,
            input,
            output,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `range = Range(0, n, 1)`: `n` (an int64 scalar) elements of int64.
pub fn range() -> Vec<u8> {
    model(
        vec![node("Range", &["start", "n", "delta"], "range")],
        vec![
            int64_const("start", &[], &[0]),
            int64_const("delta", &[], &[1]),
        ],
        vec![value("n", INT64, &[])],
        vec![value("range", INT64, &[Dim::Named("len")])],
    )
}

/// `depth` matrix products in a row, `x · x · … · x` for a square float input `x`: each
/// node takes time cubic in the input's side, the whole run `depth` times that.
pub fn matmul_chain(depth: usize) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut previous = "x".to_owned();
    for i in 0..depth {
        let output = format!("m{i}");
        nodes.push(node("MatMul", &[&previous, "x"], &output));
        previous = output;
    }
    let square = [Dim::Named("n"), Dim::Named("n")];
    model(
        nodes,
        vec![],
        vec![value("x", FLOAT, &square)],
        vec![value(&previous, FLOAT, &square)],
    )
}

/// `Range(0.0, n, 1.0)` for a float scalar input `n`, then `depth` elementwise sines: how
/// long it runs depends only on the input's value, not its size.
pub fn range_sines(depth: usize) -> Vec<u8> {
    let mut nodes = vec![node("Range", &["start", "n", "delta"], "s0")];
    for i in 0..depth {
        nodes.push(node("Sin", &[&format!("s{i}")], &format!("s{}", i + 1)));
    }
    model(
        nodes,
        vec![
            float_const("start", &[], &[0.0]),
            float_const("delta", &[], &[1.0]),
        ],
        vec![value("n", FLOAT, &[])],
        vec![value(&format!("s{depth}"), FLOAT, &[Dim::Named("len")])],
    )
}
