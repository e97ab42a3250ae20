//! The validation hook every uploaded model passes before a version is accepted.
//!
//! The registry only knows the [`ModelInspector`] trait. The real inspector (parsing and
//! loading the model with the runtime's backend, extracting its signature) lives in
//! `wisp-host` and is plugged into [`AppState`](crate::api::AppState) by the binary.
//! [`OnnxHeaderInspector`] only checks the first bytes: the real inspector's format sniff,
//! and a fast test double in the API tests. [`load_onnx`] is the load the real inspector
//! runs (in-process, or in the sandbox child): with every backend built in, class labels
//! read, and a refusal because of operators told apart (`unsupported_operator`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    String,
}

/// A named input or output of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    /// Dimensions; `-1` is a dynamic dimension (e.g. the batch size).
    pub shape: Vec<i64>,
    /// For a classifier's probabilities (an ONNX `ZipMap` output, served as the tensor it
    /// wraps): the class of each column of the last dimension, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_labels: Option<ClassLabels>,
}

/// The classes a probability tensor's columns stand for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ClassLabels {
    Int64(Vec<i64>),
    Strings(Vec<String>),
}

impl From<wisp_host::ClassLabels> for ClassLabels {
    fn from(labels: wisp_host::ClassLabels) -> Self {
        match labels {
            wisp_host::ClassLabels::Int64(labels) => Self::Int64(labels),
            wisp_host::ClassLabels::Strings(labels) => Self::Strings(labels),
        }
    }
}

impl ClassLabels {
    /// The labels as JSON values, for schemas and metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The inputs and outputs of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelSignature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl From<wisp_host::TensorType> for DType {
    fn from(ty: wisp_host::TensorType) -> Self {
        match ty {
            wisp_host::TensorType::F32 => DType::F32,
            wisp_host::TensorType::F64 => DType::F64,
            wisp_host::TensorType::I32 => DType::I32,
            wisp_host::TensorType::I64 => DType::I64,
            wisp_host::TensorType::U8 => DType::U8,
            wisp_host::TensorType::String => DType::String,
        }
    }
}

impl From<wisp_host::Signature> for ModelSignature {
    fn from(signature: wisp_host::Signature) -> Self {
        let specs = |specs: Vec<wisp_host::TensorSpec>| {
            specs
                .into_iter()
                .map(|spec| TensorSpec {
                    name: spec.name,
                    dtype: spec.ty.into(),
                    shape: spec.shape,
                    class_labels: None,
                })
                .collect()
        };
        Self {
            inputs: specs(signature.inputs),
            outputs: specs(signature.outputs),
        }
    }
}

/// What kind of artifact a version is, as recognised by the inspector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    /// A raw ONNX model, run by the `onnx-runner` component.
    Onnx,
    /// A custom component built with the guest SDK (the `wisp:model` world).
    WasmComponent,
}

impl Framework {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Onnx => "onnx",
            Framework::WasmComponent => "wasm-component",
        }
    }
}

/// The result of a successful inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectedModel {
    pub framework: Framework,
    pub signature: ModelSignature,
}

/// Why a file was refused. Each variant is its own API error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// Not a format wisp runs (a JPEG renamed `.onnx`, a text file…): `unsupported_model_format`.
    #[error("unsupported model format: {0}")]
    Unsupported(String),
    /// The right format but corrupt, truncated or not loadable: `invalid_model`.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// Over one of the bounds on uploads (counts, sizes, inspection memory or time):
    /// `invalid_model` (or `invalid_component`) with `details.reason` and `details.limit`.
    #[error("invalid model: {message} ({reason})")]
    Refused {
        /// Stable name of the bound, e.g. `too_many_nodes`.
        reason: String,
        /// The bound (a count, bytes or seconds, as the reason says).
        limit: u64,
        /// What the file has, in words.
        message: String,
    },
    /// A graph no backend built into this wisp can run, because of these operators:
    /// `unsupported_operator`. The message names them, their operator set, the backend's
    /// reason and what to do.
    #[error("unsupported_operator: {message}")]
    UnsupportedOperator {
        operators: Vec<OperatorRef>,
        message: String,
    },
}

/// An operator a graph uses, as a refusal names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorRef {
    /// `ai.onnx` or `ai.onnx.ml`.
    pub domain: String,
    pub op_type: String,
    /// The version of `domain`'s operator set the file imports.
    pub opset: i64,
}

impl From<wisp_host::OnnxOperator> for OperatorRef {
    fn from(operator: wisp_host::OnnxOperator) -> Self {
        Self {
            domain: operator.domain,
            op_type: operator.op_type,
            opset: operator.opset,
        }
    }
}

impl From<wisp_host::LimitExceeded> for InspectError {
    fn from(exceeded: wisp_host::LimitExceeded) -> Self {
        Self::Refused {
            reason: exceeded.reason.to_owned(),
            limit: exceeded.limit,
            message: exceeded.message,
        }
    }
}

/// Loads an ONNX file as a deployment may serve it: on tract, or on onnxruntime where
/// tract refuses it and onnxruntime is built in (`auto`, so an upload is accepted when
/// any enabled backend runs it). The signature carries the class labels of `ZipMap`
/// outputs; a refusal because of operators names them.
pub fn load_onnx(bytes: &[u8]) -> Result<InspectedModel, InspectError> {
    match wisp_host::inspect_onnx_on(bytes, wisp_host::OnnxBackend::Auto) {
        Ok(info) => {
            let mut signature = ModelSignature::from(info.signature);
            for (output, labels) in wisp_host::zipmap_class_labels(bytes) {
                if let Some(spec) = signature.outputs.iter_mut().find(|o| o.name == output) {
                    spec.class_labels = Some(labels.into());
                }
            }
            Ok(InspectedModel {
                framework: Framework::Onnx,
                signature,
            })
        }
        Err(refusal) => {
            let operators: Vec<OperatorRef> = wisp_host::refused_operators(bytes, &refusal)
                .into_iter()
                .map(OperatorRef::from)
                .collect();
            if operators.is_empty() {
                return Err(InspectError::Invalid(refusal.to_string()));
            }
            Err(unsupported_operators(operators, &refusal.to_string()))
        }
    }
}

/// The refusal of a graph because of `operators`, with `reason` (the backend's words) and
/// what to do, which depends on whether this wisp has the onnxruntime backend.
fn unsupported_operators(operators: Vec<OperatorRef>, reason: &str) -> InspectError {
    let names: Vec<String> = operators
        .iter()
        .map(|o| format!("{} ({} opset {})", o.op_type, o.domain, o.opset))
        .collect();
    let reason = reason.strip_prefix("invalid model: ").unwrap_or(reason);
    let advice = if wisp_host::OnnxBackend::Onnxruntime.is_built_in() {
        "neither tract nor onnxruntime runs it: export the model with other options \
         (another opset, or a converter option that avoids the operator)"
    } else {
        "this wisp runs ONNX on tract only: deploy it on a wisp built with the onnxruntime \
         backend (cargo feature `onnxruntime`, deployment `backend` `onnxruntime` or `auto`), \
         or export the model with other options (another opset, or a converter option that \
         avoids the operator)"
    };
    InspectError::UnsupportedOperator {
        message: format!(
            "no enabled backend runs {}; {advice}. tract says: {reason}",
            names.join(", ")
        ),
        operators,
    }
}

/// Parses and loads an uploaded file and extracts its signature.
///
/// Called on a blocking thread with the whole file; it may take as long as loading the
/// model takes. Implementations must not keep the bytes.
pub trait ModelInspector: Send + Sync + 'static {
    fn inspect(&self, bytes: &[u8]) -> Result<InspectedModel, InspectError>;

    /// Checks that a WebAssembly component upload is within the bounds on components and
    /// compiles within the inspection budget, before the runtime compiles it in-process.
    /// Called on a blocking thread. The default accepts everything (test doubles).
    fn inspect_component(&self, _bytes: &[u8]) -> Result<(), InspectError> {
        Ok(())
    }
}

/// **Test double.** Accepts anything that starts like an ONNX `ModelProto` (field 1,
/// `ir_version`, as a varint between 1 and 100) and answers a fixed signature. It does not
/// parse the graph: a truncated model whose first bytes are intact passes. Production
/// wiring replaces it with the `wisp-host` inspector.
#[derive(Debug, Clone, Default)]
pub struct OnnxHeaderInspector {
    /// What every accepted file is reported to have.
    pub signature: ModelSignature,
}

impl ModelInspector for OnnxHeaderInspector {
    fn inspect(&self, bytes: &[u8]) -> Result<InspectedModel, InspectError> {
        // Protobuf tag of field 1 with wire type 0 (varint).
        if bytes.first() != Some(&0x08) {
            return Err(InspectError::Unsupported(
                "not an ONNX model (no ir_version field at the start)".into(),
            ));
        }
        let ir_version = bytes
            .get(1)
            .copied()
            .filter(|b| b & 0x80 == 0)
            .ok_or_else(|| InspectError::Invalid("truncated ONNX header".into()))?;
        if !(1..=100).contains(&ir_version) {
            return Err(InspectError::Invalid(format!(
                "implausible ONNX ir_version {ir_version}"
            )));
        }
        Ok(InspectedModel {
            framework: Framework::Onnx,
            signature: self.signature.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_inspector_tells_formats_apart() {
        let inspector = OnnxHeaderInspector::default();
        assert!(inspector.inspect(&[0x08, 0x07, 0x12, 0x00]).is_ok());
        assert!(matches!(
            inspector.inspect(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Err(InspectError::Unsupported(_))
        ));
        assert!(matches!(
            inspector.inspect(&[0x08]),
            Err(InspectError::Invalid(_))
        ));
        assert!(matches!(
            inspector.inspect(&[0x08, 0x00]),
            Err(InspectError::Invalid(_))
        ));
    }
}
