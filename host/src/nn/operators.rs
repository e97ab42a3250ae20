//! What an ONNX file's nodes say beyond its signature, read from its protobuf: the
//! operators tract cannot run (so a refusal can name them, with their operator set), and
//! the class labels of the `ZipMap` outputs served as probability tensors (so a caller can
//! tell which column is which class).
//!
//! Both are read from a file already within [`OnnxLimits`](super::OnnxLimits) (the
//! inspection checks them first), and neither changes what a backend runs.

use std::collections::BTreeSet;
use std::fmt;

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};
use tract_onnx::prelude::Framework;

use crate::error::RuntimeError;

/// An operator as a graph uses it: its domain, name and the version of its operator set
/// the file imports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OnnxOperator {
    /// `ai.onnx` for the standard operators, `ai.onnx.ml` for the traditional ML ones.
    pub domain: String,
    pub op_type: String,
    /// The file's `opset_import` version of `domain` (0 when it imports none).
    pub opset: i64,
}

impl fmt::Display for OnnxOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} opset {})", self.op_type, self.domain, self.opset)
    }
}

/// The class labels of one output: what each column of a probability tensor stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabels {
    Int64(Vec<i64>),
    Strings(Vec<String>),
}

fn decode(bytes: &[u8]) -> Option<ModelProto> {
    super::onnx_ml::onnx()
        .proto_model_for_read(&mut &*bytes)
        .ok()
}

fn domain_of(node: &NodeProto) -> &str {
    if node.domain.is_empty() {
        "ai.onnx"
    } else {
        &node.domain
    }
}

/// Every node of `graph` and of the subgraphs in its nodes' attributes (`Loop` and `If`
/// bodies), depth first.
fn visit<'a>(graph: &'a GraphProto, out: &mut Vec<&'a NodeProto>) {
    for node in &graph.node {
        out.push(node);
        for attribute in &node.attribute {
            for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                visit(subgraph, out);
            }
        }
    }
}

/// The operators of an ONNX file that tract refused to run, given its refusal: every
/// operator tract has no implementation of, and the operator of the node its error names
/// (`node #N "name"`: tract analysed or translated that node and could not type it, e.g.
/// an `Expand` to a shape of run-time length). Empty when the refusal is about something
/// else (a corrupt file, a string tensor), or when `refusal` is not a load failure.
pub fn refused_operators(bytes: &[u8], refusal: &RuntimeError) -> Vec<OnnxOperator> {
    let RuntimeError::InvalidModel(message) = refusal else {
        return Vec::new();
    };
    let Some(proto) = decode(bytes) else {
        return Vec::new();
    };
    let Some(graph) = &proto.graph else {
        return Vec::new();
    };
    let registry = super::onnx_ml::onnx().op_register;
    let named = named_node(message);
    let mut nodes = Vec::new();
    visit(graph, &mut nodes);
    let opset = |domain: &str| {
        proto
            .opset_import
            .iter()
            .find(|import| {
                import.domain == domain || (domain == "ai.onnx" && import.domain.is_empty())
            })
            .map_or(0, |import| import.version)
    };
    let refused: BTreeSet<OnnxOperator> = nodes
        .into_iter()
        .filter(|node| {
            !registry.0.contains_key(&node.op_type) || named.is_some_and(|name| node.name == name)
        })
        .map(|node| OnnxOperator {
            domain: domain_of(node).to_owned(),
            op_type: node.op_type.clone(),
            opset: opset(domain_of(node)),
        })
        .collect();
    refused.into_iter().collect()
}

/// The node name in tract's `… node #24 "name" …`.
fn named_node(message: &str) -> Option<&str> {
    let after = &message[message.find("node #")? + "node #".len()..];
    let quoted = &after[after.find('"')? + 1..];
    Some(&quoted[..quoted.find('"')?])
}

/// The class labels of each graph output that a `ZipMap` produces (in file order): a
/// `ZipMap` output is served as the probability tensor it wraps, whose columns are these
/// classes in this order.
pub fn zipmap_class_labels(bytes: &[u8]) -> Vec<(String, ClassLabels)> {
    let Some(graph) = decode(bytes).and_then(|proto| proto.graph) else {
        return Vec::new();
    };
    let outputs: BTreeSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    graph
        .node
        .iter()
        .filter(|node| node.op_type == "ZipMap" && domain_of(node) == "ai.onnx.ml")
        .filter_map(|node| {
            let output = node.output.first()?;
            if !outputs.contains(output.as_str()) {
                return None;
            }
            let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
            let labels = match (
                attribute("classlabels_int64s"),
                attribute("classlabels_strings"),
            ) {
                (Some(ints), _) if !ints.ints.is_empty() => ClassLabels::Int64(ints.ints.clone()),
                (_, Some(strings)) => ClassLabels::Strings(
                    strings
                        .strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => return None,
            };
            Some((output.clone(), labels))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_named_in_a_refusal_is_found() {
        assert_eq!(
            named_node(r#"Failed analyse for node #24 "seq/gru/while_loop" Unimplemented(Loop)"#),
            Some("seq/gru/while_loop")
        );
        assert_eq!(named_node("Building node LinearClassifier (x)"), None);
    }
}
