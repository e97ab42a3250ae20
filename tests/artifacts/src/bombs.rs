//! Hostile uploads built in code, so no large file is committed: ONNX files that amplify
//! in a protobuf decoder or fold into huge constants, and components that are expensive to
//! compile. A small protobuf writer (tags, varints, length-delimited fields) is enough.

/// Protobuf wire type of varints.
const VARINT: u32 = 0;
/// Protobuf wire type of length-delimited fields.
const BYTES: u32 = 2;

/// An ONNX `TensorProto.DataType`.
pub const FLOAT: u64 = 1;
pub const INT64: u64 = 7;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A protobuf message under construction.
#[derive(Debug, Default, Clone)]
pub struct Message(pub Vec<u8>);

impl Message {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, field: u32, wire: u32) {
        varint(&mut self.0, u64::from(field << 3 | wire));
    }

    /// A varint field (int64 and enums; negative values as ten bytes, like protobuf).
    pub fn int(mut self, field: u32, value: i64) -> Self {
        self.key(field, VARINT);
        varint(&mut self.0, value as u64);
        self
    }

    /// A length-delimited field: bytes, a string or a nested message.
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Self {
        self.key(field, BYTES);
        varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    pub fn str(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    pub fn msg(self, field: u32, value: &Message) -> Self {
        self.bytes(field, &value.0)
    }

    /// The same nested message `count` times, written straight into the buffer.
    pub fn repeat(mut self, field: u32, value: &Message, count: usize) -> Self {
        let mut one = Vec::new();
        varint(&mut one, u64::from(field << 3 | BYTES));
        varint(&mut one, value.0.len() as u64);
        one.extend_from_slice(&value.0);
        self.0.reserve(one.len() * count);
        for _ in 0..count {
            self.0.extend_from_slice(&one);
        }
        self
    }
}

/// An int64 tensor (`TensorProto`) named `name` holding `values` as a 1-D tensor.
pub fn int64_tensor(name: &str, values: &[i64]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Message::new()
        .int(1, values.len() as i64)
        .int(2, INT64 as i64)
        .str(8, name)
        .bytes(9, &raw)
}

/// A node (`NodeProto`) with its op type, inputs and outputs.
pub fn node(op_type: &str, inputs: &[&str], outputs: &[&str]) -> Message {
    let mut node = Message::new();
    for input in inputs {
        node = node.str(1, input);
    }
    for output in outputs {
        node = node.str(2, output);
    }
    node.str(4, op_type)
}

/// A graph input or output (`ValueInfoProto`) of the given element type and unknown shape.
pub fn value_info(name: &str, elem_type: u64) -> Message {
    let tensor_type = Message::new().int(1, elem_type as i64);
    Message::new()
        .str(1, name)
        .msg(2, &Message::new().msg(1, &tensor_type))
}

/// A `ModelProto` (IR version 8, default opset 13) around `graph`.
pub fn model(graph: &Message) -> Vec<u8> {
    let opset = Message::new().str(1, "").int(2, 13);
    Message::new()
        .int(1, 8)
        .str(2, "wisp-bombs")
        .msg(7, graph)
        .msg(8, &opset)
        .0
}

/// A model of `count` empty nodes: two bytes each in the file, a few hundred each once a
/// protobuf decoder has built them.
pub fn onnx_empty_nodes(count: usize) -> Vec<u8> {
    let graph = Message::new()
        .repeat(1, &Message::new(), count)
        .str(2, "empty");
    model(&graph)
}

/// `ConstantOfShape(shape)` with `shape` an initializer: the optimiser folds it into a
/// float tensor of that shape.
pub fn onnx_constant_of_shape(shape: &[i64]) -> Vec<u8> {
    let graph = Message::new()
        .msg(1, &node("ConstantOfShape", &["shape"], &["y"]))
        .str(2, "fold")
        .msg(5, &int64_tensor("shape", shape))
        .msg(12, &value_info("y", FLOAT));
    model(&graph)
}

/// The same fold, with the shape computed by a `Concat` of two constants: a pre-check that
/// only follows the plain cases does not see it, the optimiser still folds it.
pub fn onnx_concat_constant_of_shape(rows: i64, columns: i64) -> Vec<u8> {
    let graph = Message::new()
        .msg(
            1,
            &node("Concat", &["rows", "columns"], &["shape"])
                .msg(5, &Message::new().str(1, "axis").int(3, 0).int(20, 2)),
        )
        .msg(1, &node("ConstantOfShape", &["shape"], &["y"]))
        .str(2, "fold")
        .msg(5, &int64_tensor("rows", &[rows]))
        .msg(5, &int64_tensor("columns", &[columns]))
        .msg(12, &value_info("y", FLOAT));
    model(&graph)
}

/// A model whose only node is an `If` nested `depth` times in its `then_branch`.
pub fn onnx_nested_subgraphs(depth: usize) -> Vec<u8> {
    let mut graph = Message::new()
        .msg(1, &node("Identity", &["c"], &["out"]))
        .str(2, "leaf");
    for _ in 0..depth {
        let branch = Message::new()
            .str(1, "then_branch")
            .msg(6, &graph)
            .int(20, 5);
        graph = Message::new()
            .msg(1, &node("If", &["c"], &["out"]).msg(5, &branch))
            .str(2, "nest");
    }
    model(
        &graph
            .msg(11, &value_info("c", 9))
            .msg(12, &value_info("out", 9)),
    )
}

/// A model with an initializer that declares `dims` but holds no data.
pub fn onnx_declared_tensor(dims: &[i64]) -> Vec<u8> {
    let mut tensor = Message::new();
    for &dim in dims {
        tensor = tensor.int(1, dim);
    }
    let graph = Message::new()
        .msg(1, &node("Identity", &["w"], &["y"]))
        .str(2, "declared")
        .msg(5, &tensor.int(2, FLOAT as i64).str(8, "w"))
        .msg(12, &value_info("y", FLOAT));
    model(&graph)
}

fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A core module of `functions` functions `() -> ()`, each a body of `body_bytes` `nop`s.
pub fn core_module_with_functions(functions: usize, body_bytes: usize) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    // One type: (func).
    section(&mut module, 1, &[1, 0x60, 0, 0]);
    let mut funcs = Vec::new();
    varint(&mut funcs, functions as u64);
    funcs.extend(std::iter::repeat_n(0u8, functions));
    section(&mut module, 3, &funcs);
    let mut body = vec![0u8]; // no locals
    body.extend(std::iter::repeat_n(0x01u8, body_bytes)); // nop
    body.push(0x0b); // end
    let mut code = Vec::new();
    varint(&mut code, functions as u64);
    for _ in 0..functions {
        varint(&mut code, body.len() as u64);
        code.extend_from_slice(&body);
    }
    section(&mut module, 10, &code);
    module
}

/// A component holding one such core module (never instantiated: compiling it is the cost).
pub fn component_with_functions(functions: usize, body_bytes: usize) -> Vec<u8> {
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    section(
        &mut component,
        1,
        &core_module_with_functions(functions, body_bytes),
    );
    component
}
