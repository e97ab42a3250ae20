//! The production [`ModelInspector`]: every uploaded ONNX file is parsed, type-checked and
//! optimised by the runtime's own backend (tract, through `wisp-host`) before a version is
//! accepted, and its signature is read from the graph.
//!
//! Uploads are hostile, so this happens in two steps: a streaming pre-check of counts and
//! sizes in this process ([`wisp_host::check_onnx`], [`wisp_host::check_component`]), which
//! refuses amplification bombs before anything is decoded; then the real load (or compile)
//! in a [`Sandbox`] child under a memory and time budget, which contains what the
//! pre-checks cannot foresee. Without a sandbox (tests, tools) the load runs in-process.

use std::sync::Arc;

use crate::inspect::{
    InspectError, InspectedModel, ModelInspector, OnnxHeaderInspector, load_onnx,
};
use crate::sandbox::{Job, Sandbox};
use wisp_host::{ComponentLimits, OnnxLimits};

/// Loads uploads with the same backend that will serve them.
#[derive(Debug, Clone, Default)]
pub struct OnnxInspector {
    onnx_limits: OnnxLimits,
    component_limits: ComponentLimits,
    sandbox: Option<Arc<Sandbox>>,
}

impl OnnxInspector {
    /// Checks uploads against the runtime's bounds, and loads them in `sandbox` children.
    pub fn new(runtime: &wisp_host::RuntimeConfig, sandbox: Option<Arc<Sandbox>>) -> Self {
        Self {
            onnx_limits: runtime.onnx_limits.clone(),
            component_limits: runtime.component_limits.clone(),
            sandbox,
        }
    }
}

impl ModelInspector for OnnxInspector {
    fn inspect(&self, bytes: &[u8]) -> Result<InspectedModel, InspectError> {
        if bytes.starts_with(b"\0asm") {
            return Err(InspectError::Unsupported(
                "a WebAssembly component is not an ONNX model".into(),
            ));
        }
        // The header check tells "not ONNX at all" (a JPEG, a text file) apart from a
        // broken ONNX file before the full parse.
        OnnxHeaderInspector::default().inspect(bytes)?;
        wisp_host::check_onnx(bytes, &self.onnx_limits)?;
        if let Some(sandbox) = &self.sandbox {
            return sandbox.run(Job::Onnx, bytes)?.ok_or_else(|| {
                InspectError::Invalid("the inspection process answered no signature".into())
            });
        }
        load_onnx(bytes)
    }

    fn inspect_component(&self, bytes: &[u8]) -> Result<(), InspectError> {
        wisp_host::check_component(bytes, &self.component_limits)?;
        if let Some(sandbox) = &self.sandbox {
            sandbox.run(Job::Component, bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{DType, Framework, TensorSpec};
    use wisp_test_artifacts::fixture;

    #[test]
    fn real_models_are_accepted_with_their_signature() {
        let inspected = OnnxInspector::default()
            .inspect(&fixture("iris_logreg.onnx"))
            .unwrap();
        assert_eq!(inspected.framework, Framework::Onnx);
        assert_eq!(
            inspected.signature.inputs,
            vec![TensorSpec {
                name: "input".into(),
                dtype: DType::F32,
                shape: vec![-1, 4],
                class_labels: None,
            }]
        );
        let outputs: Vec<_> = inspected
            .signature
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), o.dtype))
            .collect();
        assert_eq!(
            outputs,
            vec![("label", DType::I64), ("probabilities", DType::F32)]
        );
    }

    #[test]
    fn broken_files_are_told_apart_from_foreign_ones() {
        let model = fixture("digits_mlp.onnx");
        assert!(matches!(
            OnnxInspector::default().inspect(&model[..model.len() / 2]),
            Err(InspectError::Invalid(_))
        ));
        let jpeg = std::fs::read(
            wisp_test_artifacts::fixtures_dir().join("digits_png/digit_24_4_32px.jpg"),
        )
        .unwrap();
        assert!(matches!(
            OnnxInspector::default().inspect(&jpeg),
            Err(InspectError::Unsupported(_))
        ));
        assert!(matches!(
            OnnxInspector::default().inspect(b"\0asm\x0d\0\x01\0"),
            Err(InspectError::Unsupported(_))
        ));
    }

    #[test]
    fn bounds_are_checked_before_the_load() {
        let refused = OnnxInspector::default()
            .inspect(&wisp_test_artifacts::bombs::onnx_empty_nodes(200_000))
            .unwrap_err();
        assert!(
            matches!(&refused, InspectError::Refused { reason, limit: 100_000, .. } if reason == "too_many_nodes"),
            "{refused:?}"
        );
    }
}
