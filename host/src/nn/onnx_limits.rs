//! Bounds on an ONNX file, checked by one streaming walk over its protobuf before tract
//! decodes it.
//!
//! Protobuf amplifies: an empty `NodeProto` is two bytes in the file and a few hundred once
//! decoded, so a 500 MB upload of empty nodes becomes tens of gigabytes inside prost before
//! tract sees a single node. The walk below reads the wire format in place (nothing it
//! allocates grows with the file) and refuses, with a stable `reason`, files over the
//! [`OnnxLimits`]: counts of nodes, initializers, graph inputs and outputs, node edges,
//! attributes and their elements, opset imports, subgraph nesting, tensor ranks and declared
//! tensor sizes, and the total of decoded messages and strings.
//!
//! It also refuses the plain constant-folding bombs: `ConstantOfShape`, `Expand`, `Tile`
//! and `Range` whose inputs are constants, and whose folded output (which tract's optimiser
//! computes at load) would exceed [`OnnxLimits::max_constant_bytes`]. Folding that this
//! cannot see through (a shape computed by other operators) is bounded by the memory
//! budget of the sandboxed inspection in the control plane.

use super::proto_wire::{Fields, Malformed, Wire, ints, packed_varints};
use crate::inspect_limits::LimitExceeded;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Bounds on an uploaded ONNX model. The defaults leave room for real models (the largest
/// exported transformers have tens of thousands of nodes) and refuse amplification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxLimits {
    /// Nodes over the main graph, its subgraphs and functions.
    pub max_nodes: u64,
    /// Initializers (dense and sparse) over all graphs.
    pub max_initializers: u64,
    /// Inputs of one graph.
    pub max_graph_inputs: u64,
    /// Outputs of one graph.
    pub max_graph_outputs: u64,
    /// Inputs plus outputs of one node.
    pub max_node_edges: u64,
    /// Attributes of one node.
    pub max_attributes: u64,
    /// Elements of one attribute's lists (`ints`, `floats`, `strings`, `tensors`, `graphs`).
    pub max_attribute_elements: u64,
    /// Opset imports of the model and its functions.
    pub max_opset_imports: u64,
    /// Nesting of subgraphs (the bodies of `If`, `Loop`, `Scan`).
    pub max_subgraph_depth: u64,
    /// Dimensions of one tensor or declared shape.
    pub max_tensor_rank: u64,
    /// Bytes one tensor of the file declares (its shape times its element size) or holds.
    pub max_tensor_bytes: u64,
    /// Messages and strings in the whole file: what protobuf decoding allocates one by one.
    pub max_protobuf_items: u64,
    /// Bytes a constant computed at load by folding may take.
    pub max_constant_bytes: u64,
}

impl Default for OnnxLimits {
    fn default() -> Self {
        Self {
            max_nodes: 100_000,
            max_initializers: 100_000,
            max_graph_inputs: 10_000,
            max_graph_outputs: 10_000,
            max_node_edges: 10_000,
            max_attributes: 1_000,
            max_attribute_elements: 1_000_000,
            max_opset_imports: 256,
            max_subgraph_depth: 8,
            max_tensor_rank: 64,
            max_tensor_bytes: 1 << 30,
            max_protobuf_items: 5_000_000,
            max_constant_bytes: 256 << 20,
        }
    }
}

/// Walks `bytes` as an ONNX `ModelProto` and refuses it if it exceeds `limits`. A file that
/// is not valid protobuf passes: tract's decoder refuses it with its own message, after
/// allocating no more than the walk counted up to the broken byte.
pub fn check_onnx(bytes: &[u8], limits: &OnnxLimits) -> Result<(), LimitExceeded> {
    let mut walk = Walk {
        limits,
        nodes: 0,
        initializers: 0,
        opsets: 0,
        items: 0,
    };
    match walk.model(bytes) {
        Ok(()) | Err(Stop::Malformed) => Ok(()),
        Err(Stop::Limit(exceeded)) => Err(exceeded),
    }
}

enum Stop {
    Malformed,
    Limit(LimitExceeded),
}

impl From<Malformed> for Stop {
    fn from(_: Malformed) -> Self {
        Stop::Malformed
    }
}

impl From<LimitExceeded> for Stop {
    fn from(exceeded: LimitExceeded) -> Self {
        Stop::Limit(exceeded)
    }
}

type Walked<T = ()> = Result<T, Stop>;

/// Counters over the whole file.
struct Walk<'l> {
    limits: &'l OnnxLimits,
    nodes: u64,
    initializers: u64,
    opsets: u64,
    items: u64,
}

/// A tensor whose shape the walk knows: an initializer, a `Constant`, or the folded output
/// of a shape-producing node.
#[derive(Debug, Clone)]
struct Known {
    dims: Vec<u64>,
    /// Its values, when it is a small integer tensor (a shape, repeats, a scalar).
    ints: Option<Vec<i64>>,
    element_bytes: u64,
}

/// What the walk keeps of a tensor.
struct TensorInfo<'a> {
    name: &'a [u8],
    known: Option<Known>,
}

/// Shape-producing operators tract folds when their inputs are constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoldOp {
    Constant,
    ConstantOfShape,
    Expand,
    Tile,
    Range,
}

impl FoldOp {
    fn of(op_type: &[u8]) -> Option<Self> {
        Some(match op_type {
            b"Constant" => Self::Constant,
            b"ConstantOfShape" => Self::ConstantOfShape,
            b"Expand" => Self::Expand,
            b"Tile" => Self::Tile,
            b"Range" => Self::Range,
            _ => return None,
        })
    }
}

/// A node of one of the [`FoldOp`] kinds, as far as folding needs it.
struct FoldNode<'a> {
    op: FoldOp,
    inputs: [Option<&'a [u8]>; 3],
    output: Option<&'a [u8]>,
    /// `Constant`: its value; `ConstantOfShape`: the fill value (for its element size).
    value: Option<Known>,
}

/// What one graph defines, for the folding check at its end.
#[derive(Default)]
struct GraphFolds<'a> {
    constants: HashMap<&'a [u8], Known>,
    nodes: Vec<FoldNode<'a>>,
}

/// Small integer tensors are kept with their values (shapes, repeats, range bounds).
const SMALL_INTS: usize = 64;
/// Initializers of more dimensions than this are not kept for folding.
const KEPT_RANK: usize = 8;
/// ONNX `TensorProto.DataType` of INT32 and INT64.
const INT32: i64 = 6;
const INT64: i64 = 7;

fn element_bytes(data_type: i64) -> u64 {
    match data_type {
        2 | 3 | 9 => 1,
        4 | 5 | 10 | 16 => 2,
        1 | 6 | 12 => 4,
        7 | 11 | 13 | 14 => 8,
        15 => 16,
        // Strings are at least a pointer, a length and a capacity once decoded.
        8 => 24,
        _ => 1,
    }
}

impl Walk<'_> {
    /// One more decoded message or string.
    fn item(&mut self) -> Walked {
        self.items += 1;
        LimitExceeded::check(
            "too_many_protobuf_items",
            self.items,
            self.limits.max_protobuf_items,
            "protobuf messages and strings",
        )?;
        Ok(())
    }

    /// A message of strings and scalars only: each length-delimited field is one string.
    fn flat(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((_, wire)) = fields.next_field()? {
            if let Wire::Bytes(_) = wire {
                self.item()?;
            }
        }
        Ok(())
    }

    fn model(&mut self, message: &[u8]) -> Walked {
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                7 => self.graph(bytes, 0)?,
                8 => self.opset_import(bytes)?,
                14 => self.flat(bytes)?,
                20 => self.training_info(bytes)?,
                25 => self.function(bytes)?,
                2 | 3 | 4 | 6 => self.item()?,
                _ => {}
            }
        }
        Ok(())
    }

    fn opset_import(&mut self, message: &[u8]) -> Walked {
        self.opsets += 1;
        LimitExceeded::check(
            "too_many_opset_imports",
            self.opsets,
            self.limits.max_opset_imports,
            "opset imports",
        )?;
        self.flat(message)
    }

    fn training_info(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                1 | 2 => self.graph(bytes, 0)?,
                3 | 4 => self.flat(bytes)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn function(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut folds = GraphFolds::default();
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                7 => self.node(bytes, 0, &mut folds)?,
                9 => self.opset_import(bytes)?,
                1 | 4 | 5 | 6 | 8 | 10 => self.item()?,
                _ => {}
            }
        }
        folds.check(self.limits.max_constant_bytes)?;
        Ok(())
    }

    fn graph(&mut self, message: &[u8], depth: u64) -> Walked {
        LimitExceeded::check(
            "subgraphs_too_deep",
            depth,
            self.limits.max_subgraph_depth,
            "nesting of subgraphs",
        )?;
        self.item()?;
        let (mut inputs, mut outputs) = (0u64, 0u64);
        let mut folds = GraphFolds::default();
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                1 => self.node(bytes, depth, &mut folds)?,
                5 => {
                    self.initializer()?;
                    let tensor = self.tensor(bytes)?;
                    if let Some(known) = tensor.known {
                        folds.constants.insert(tensor.name, known);
                    }
                }
                15 => {
                    self.initializer()?;
                    self.sparse_tensor(bytes)?;
                }
                11 => {
                    inputs += 1;
                    LimitExceeded::check(
                        "too_many_graph_inputs",
                        inputs,
                        self.limits.max_graph_inputs,
                        "inputs of a graph",
                    )?;
                    self.value_info(bytes)?;
                }
                12 => {
                    outputs += 1;
                    LimitExceeded::check(
                        "too_many_graph_outputs",
                        outputs,
                        self.limits.max_graph_outputs,
                        "outputs of a graph",
                    )?;
                    self.value_info(bytes)?;
                }
                13 => self.value_info(bytes)?,
                14 => self.tensor_annotation(bytes)?,
                2 | 10 => self.item()?,
                _ => {}
            }
        }
        folds.check(self.limits.max_constant_bytes)?;
        Ok(())
    }

    fn initializer(&mut self) -> Walked {
        self.initializers += 1;
        LimitExceeded::check(
            "too_many_initializers",
            self.initializers,
            self.limits.max_initializers,
            "initializers",
        )?;
        Ok(())
    }

    fn tensor_annotation(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                1 => self.item()?,
                2 => self.flat(bytes)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn node<'a>(&mut self, message: &'a [u8], depth: u64, folds: &mut GraphFolds<'a>) -> Walked {
        self.nodes += 1;
        LimitExceeded::check("too_many_nodes", self.nodes, self.limits.max_nodes, "nodes")?;
        self.item()?;
        let (mut edges, mut attributes) = (0u64, 0u64);
        let mut inputs: [Option<&'a [u8]>; 3] = [None; 3];
        let (mut input_count, mut output, mut op_type) = (0usize, None, &b""[..]);
        let mut value = None;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                1 | 2 => {
                    edges += 1;
                    LimitExceeded::check(
                        "too_many_node_edges",
                        edges,
                        self.limits.max_node_edges,
                        "inputs and outputs of a node",
                    )?;
                    self.item()?;
                    if field == 1 {
                        if let Some(slot) = inputs.get_mut(input_count) {
                            *slot = Some(bytes);
                        }
                        input_count += 1;
                    } else if output.is_none() {
                        output = Some(bytes);
                    }
                }
                4 => {
                    op_type = bytes;
                    self.item()?;
                }
                3 | 6 | 7 => self.item()?,
                5 => {
                    attributes += 1;
                    LimitExceeded::check(
                        "too_many_attributes",
                        attributes,
                        self.limits.max_attributes,
                        "attributes of a node",
                    )?;
                    if let Some(known) = self.attribute(bytes, depth)? {
                        value = Some(known);
                    }
                }
                _ => {}
            }
        }
        if let Some(op) = FoldOp::of(op_type) {
            folds.nodes.push(FoldNode {
                op,
                inputs,
                output,
                value,
            });
        }
        Ok(())
    }

    /// Walks an attribute; answers the constant it holds if it is a `value*` attribute.
    fn attribute(&mut self, message: &[u8], depth: u64) -> Walked<Option<Known>> {
        self.item()?;
        let limit = self.limits.max_attribute_elements;
        let mut elements = 0u64;
        let count = |elements: &mut u64, n: u64| {
            *elements += n;
            LimitExceeded::check(
                "attribute_too_large",
                *elements,
                limit,
                "elements of an attribute",
            )
        };
        let mut name = &b""[..];
        let (mut tensor, mut int, mut list) = (None, None, Some(Vec::new()));
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            match (field, wire) {
                (1, Wire::Bytes(bytes)) => {
                    name = bytes;
                    self.item()?;
                }
                (3, Wire::Varint(value)) => int = Some(value as i64),
                (7, Wire::Bytes(packed)) => count(&mut elements, packed.len() as u64 / 4)?,
                (7, _) => count(&mut elements, 1)?,
                (8, wire) => {
                    match wire {
                        Wire::Bytes(packed) => count(&mut elements, packed_varints(packed))?,
                        _ => count(&mut elements, 1)?,
                    }
                    if elements as usize > SMALL_INTS {
                        list = None;
                    } else if let Some(values) = &mut list {
                        ints(wire, |v| values.push(v))?;
                    }
                }
                (5, Wire::Bytes(bytes)) => tensor = self.tensor(bytes)?.known,
                (6, Wire::Bytes(bytes)) => self.graph(bytes, depth + 1)?,
                (22, Wire::Bytes(bytes)) => self.sparse_tensor(bytes)?,
                (9, Wire::Bytes(_)) => {
                    count(&mut elements, 1)?;
                    self.item()?;
                }
                (10, Wire::Bytes(bytes)) => {
                    count(&mut elements, 1)?;
                    self.tensor(bytes)?;
                }
                (11, Wire::Bytes(bytes)) => {
                    count(&mut elements, 1)?;
                    self.graph(bytes, depth + 1)?;
                }
                (23, Wire::Bytes(bytes)) => {
                    count(&mut elements, 1)?;
                    self.sparse_tensor(bytes)?;
                }
                (15, Wire::Bytes(bytes)) => {
                    count(&mut elements, 1)?;
                    self.type_proto(bytes)?;
                }
                (4 | 13 | 21, Wire::Bytes(_)) => self.item()?,
                _ => {}
            }
        }
        Ok(match name {
            b"value" => tensor,
            b"value_int" => int.map(|v| Known {
                dims: Vec::new(),
                ints: Some(vec![v]),
                element_bytes: 8,
            }),
            b"value_ints" => list.map(|values| Known {
                dims: vec![values.len() as u64],
                ints: Some(values),
                element_bytes: 8,
            }),
            _ => None,
        })
    }

    fn tensor<'a>(&mut self, message: &'a [u8]) -> Walked<TensorInfo<'a>> {
        self.item()?;
        let max_rank = self.limits.max_tensor_rank;
        let mut dims = Vec::new();
        let mut rank = 0u64;
        let mut volume = 1u128;
        let mut data_type = 0i64;
        let (mut elements, mut raw) = (0u64, &b""[..]);
        let mut values = Some(Vec::new());
        let mut name = &b""[..];
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            match (field, wire) {
                (1, wire) => {
                    let mut too_deep = false;
                    ints(wire, |d| {
                        rank += 1;
                        too_deep |= rank > max_rank;
                        volume = volume.saturating_mul(u128::try_from(d).unwrap_or(0));
                        if dims.len() < KEPT_RANK {
                            dims.push(u64::try_from(d).unwrap_or(0));
                        }
                    })?;
                    if too_deep {
                        LimitExceeded::check(
                            "tensor_rank_too_large",
                            rank,
                            max_rank,
                            "dimensions of a tensor",
                        )?;
                    }
                }
                (2, Wire::Varint(value)) => data_type = value as i64,
                (9, Wire::Bytes(bytes)) => raw = bytes,
                // float_data, double_data: fixed width, packed or not.
                (4, Wire::Bytes(packed)) => elements += packed.len() as u64 / 4,
                (10, Wire::Bytes(packed)) => elements += packed.len() as u64 / 8,
                (4 | 10, _) => elements += 1,
                // int32_data, int64_data, uint64_data: varints.
                (5 | 7 | 11, wire) => {
                    match wire {
                        Wire::Bytes(packed) => elements += packed_varints(packed),
                        _ => elements += 1,
                    }
                    if field == 11 || elements as usize > SMALL_INTS {
                        values = None;
                    } else if let Some(values) = &mut values {
                        ints(wire, |v| values.push(v))?;
                    }
                }
                (6, Wire::Bytes(_)) => {
                    elements += 1;
                    self.item()?;
                }
                (8, Wire::Bytes(bytes)) => {
                    name = bytes;
                    self.item()?;
                }
                (12, Wire::Bytes(_)) => self.item()?,
                (3 | 13, Wire::Bytes(bytes)) => self.flat(bytes)?,
                _ => {}
            }
        }
        let element = element_bytes(data_type);
        let declared = volume.saturating_mul(u128::from(element));
        let held =
            u128::from(elements.max(raw.len() as u64 / element.max(1))) * u128::from(element);
        let bytes = u64::try_from(declared.max(held)).unwrap_or(u64::MAX);
        LimitExceeded::check(
            "tensor_too_large",
            bytes,
            self.limits.max_tensor_bytes,
            "bytes of one tensor",
        )?;
        let known = (rank as usize <= KEPT_RANK).then(|| {
            let ints = match data_type {
                INT64 | INT32 if volume <= SMALL_INTS as u128 => {
                    if raw.is_empty() {
                        values
                    } else {
                        let width = element as usize;
                        Some(
                            raw.chunks_exact(width)
                                .map(|chunk| match width {
                                    8 => i64::from_le_bytes(chunk.try_into().unwrap_or_default()),
                                    _ => i64::from(i32::from_le_bytes(
                                        chunk.try_into().unwrap_or_default(),
                                    )),
                                })
                                .collect(),
                        )
                    }
                }
                _ => None,
            };
            Known {
                dims,
                ints,
                element_bytes: element,
            }
        });
        Ok(TensorInfo { name, known })
    }

    fn sparse_tensor(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            match (field, wire) {
                (1 | 2, Wire::Bytes(bytes)) => {
                    self.tensor(bytes)?;
                }
                (3, wire) => {
                    let mut rank = 0u64;
                    ints(wire, |_| rank += 1)?;
                    LimitExceeded::check(
                        "tensor_rank_too_large",
                        rank,
                        self.limits.max_tensor_rank,
                        "dimensions of a tensor",
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn value_info(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                2 => self.type_proto(bytes)?,
                1 | 3 => self.item()?,
                _ => {}
            }
        }
        Ok(())
    }

    /// `TypeProto` as tract decodes it: only `tensor_type` (and a denotation); sequences,
    /// maps and optionals are unknown fields its decoder skips without allocating.
    fn type_proto(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            let Wire::Bytes(bytes) = wire else { continue };
            match field {
                1 => self.tensor_type(bytes)?,
                6 => self.item()?,
                _ => {}
            }
        }
        Ok(())
    }

    fn tensor_type(&mut self, message: &[u8]) -> Walked {
        self.item()?;
        let mut fields = Fields::new(message);
        while let Some((field, wire)) = fields.next_field()? {
            if let (2, Wire::Bytes(shape)) = (field, wire) {
                self.item()?;
                let mut rank = 0u64;
                let mut dims = Fields::new(shape);
                while let Some((field, wire)) = dims.next_field()? {
                    if let (1, Wire::Bytes(dim)) = (field, wire) {
                        rank += 1;
                        LimitExceeded::check(
                            "tensor_rank_too_large",
                            rank,
                            self.limits.max_tensor_rank,
                            "dimensions of a declared shape",
                        )?;
                        self.flat(dim)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl<'a> GraphFolds<'a> {
    /// Follows the graph's shape-producing nodes in file order (ONNX graphs are sorted),
    /// and refuses one whose folded output would be over `max_bytes`.
    fn check(mut self, max_bytes: u64) -> Result<(), LimitExceeded> {
        let nodes = std::mem::take(&mut self.nodes);
        for node in nodes {
            let Some(output) = node.output else { continue };
            let folded = match node.op {
                FoldOp::Constant => node.value,
                _ => self.fold(&node),
            };
            let Some(folded) = folded else { continue };
            let volume = folded
                .dims
                .iter()
                .fold(1u128, |v, &d| v.saturating_mul(u128::from(d)));
            let bytes = volume.saturating_mul(u128::from(folded.element_bytes));
            if bytes > u128::from(max_bytes) {
                return Err(LimitExceeded::new(
                    "constant_too_large",
                    max_bytes,
                    format!(
                        "a {:?} node folds to a constant of shape {:?} ({bytes} bytes), at most {max_bytes} allowed",
                        node.op, folded.dims
                    ),
                ));
            }
            self.constants.insert(output, folded);
        }
        Ok(())
    }

    fn input(&self, node: &FoldNode<'a>, index: usize) -> Option<&Known> {
        node.inputs[index].and_then(|name| self.constants.get(name))
    }

    fn ints(&self, node: &FoldNode<'a>, index: usize) -> Option<Vec<u64>> {
        self.input(node, index)?
            .ints
            .as_ref()?
            .iter()
            .map(|&v| u64::try_from(v).ok())
            .collect()
    }

    /// The shape of the node's output if all its inputs are known constants.
    fn fold(&self, node: &FoldNode<'a>) -> Option<Known> {
        let (dims, element_bytes) = match node.op {
            FoldOp::Constant => return None,
            FoldOp::ConstantOfShape => (
                self.ints(node, 0)?,
                node.value.as_ref().map_or(4, |v| v.element_bytes),
            ),
            FoldOp::Expand => {
                let data = self.input(node, 0)?;
                let shape = self.ints(node, 1)?;
                let rank = data.dims.len().max(shape.len());
                let at = |dims: &[u64], i: usize| {
                    (i + dims.len()).checked_sub(rank).map_or(1, |i| dims[i])
                };
                let dims = (0..rank)
                    .map(|i| at(&data.dims, i).max(at(&shape, i)))
                    .collect();
                (dims, data.element_bytes)
            }
            FoldOp::Tile => {
                let data = self.input(node, 0)?;
                let repeats = self.ints(node, 1)?;
                let dims = data
                    .dims
                    .iter()
                    .zip(repeats.iter().chain(std::iter::repeat(&1)))
                    .map(|(d, r)| d.saturating_mul(*r))
                    .collect();
                (dims, data.element_bytes)
            }
            FoldOp::Range => {
                let scalar = |i| {
                    let known = self.input(node, i)?;
                    match known.ints.as_deref() {
                        Some(&[v]) => Some(i128::from(v)),
                        _ => None,
                    }
                };
                let (start, limit, delta) = (scalar(0)?, scalar(1)?, scalar(2)?);
                if delta == 0 {
                    return None;
                }
                let count = ((limit - start) + delta - delta.signum()) / delta;
                (vec![u64::try_from(count.max(0)).unwrap_or(u64::MAX)], 8)
            }
        };
        Some(Known {
            dims,
            ints: None,
            element_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wisp_test_artifacts::{bombs, fixture};

    #[test]
    fn real_models_pass() {
        for name in ["iris_logreg.onnx", "digits_mlp.onnx"] {
            check_onnx(&fixture(name), &OnnxLimits::default()).unwrap();
        }
    }

    #[test]
    fn each_bound_has_its_reason() {
        let limits = OnnxLimits::default();
        let reason = |bytes: Vec<u8>| check_onnx(&bytes, &limits).unwrap_err().reason;
        assert_eq!(reason(bombs::onnx_empty_nodes(100_001)), "too_many_nodes");
        assert_eq!(
            reason(bombs::onnx_constant_of_shape(&[100_000, 100_000])),
            "constant_too_large"
        );
        assert_eq!(
            reason(bombs::onnx_nested_subgraphs(9)),
            "subgraphs_too_deep"
        );
        assert_eq!(
            reason(bombs::onnx_declared_tensor(&[1 << 20, 1 << 20])),
            "tensor_too_large"
        );
        let few = OnnxLimits {
            max_protobuf_items: 1_000,
            ..OnnxLimits::default()
        };
        assert_eq!(
            check_onnx(&bombs::onnx_empty_nodes(2_000), &few)
                .unwrap_err()
                .reason,
            "too_many_protobuf_items"
        );
    }

    fn mutated(
        mut bytes: Vec<u8>,
        edits: &[(prop::sample::Index, u8)],
        cut: prop::sample::Index,
    ) -> Vec<u8> {
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = *value;
        }
        bytes.truncate(cut.index(bytes.len()) + 1);
        bytes
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_get_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = check_onnx(&bytes, &OnnxLimits::default());
        }

        /// Edits of real and hostile models reach every branch of the walk: an answer or a
        /// refusal, never a panic, also under tiny limits.
        #[test]
        fn mutated_models_get_an_answer(
            which in 0..4usize,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            tiny in any::<bool>(),
        ) {
            let model = match which {
                0 => fixture("iris_logreg.onnx"),
                1 => bombs::onnx_constant_of_shape(&[3, 4]),
                2 => bombs::onnx_nested_subgraphs(3),
                _ => bombs::onnx_concat_constant_of_shape(2, 3),
            };
            let limits = if tiny {
                OnnxLimits {
                    max_nodes: 2,
                    max_protobuf_items: 20,
                    max_tensor_bytes: 16,
                    max_constant_bytes: 16,
                    max_subgraph_depth: 1,
                    ..OnnxLimits::default()
                }
            } else {
                OnnxLimits::default()
            };
            let _ = check_onnx(&mutated(model, &edits, cut), &limits);
        }
    }

    #[test]
    fn bounded_bombs_pass_the_walk() {
        let limits = OnnxLimits::default();
        check_onnx(&bombs::onnx_empty_nodes(1_000), &limits).unwrap();
        check_onnx(&bombs::onnx_constant_of_shape(&[1_000, 1_000]), &limits).unwrap();
        check_onnx(&bombs::onnx_nested_subgraphs(3), &limits).unwrap();
    }
}
