//! The production [`ModelInspector`]: every uploaded ONNX file is parsed, type-checked and
//! optimised by the runtime's own backend (tract, through `wisp-host`) before a version is
//! accepted, and its signature is read from the graph.

use crate::inspect::{
    Framework, InspectError, InspectedModel, ModelInspector, ModelSignature, OnnxHeaderInspector,
};

/// Loads uploads with the same backend that will serve them.
#[derive(Debug, Clone, Default)]
pub struct OnnxInspector;

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
        let info =
            wisp_host::inspect_onnx(bytes).map_err(|e| InspectError::Invalid(e.to_string()))?;
        Ok(InspectedModel {
            framework: Framework::Onnx,
            signature: ModelSignature::from(info.signature),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{DType, TensorSpec};
    use wisp_test_artifacts::fixture;

    #[test]
    fn real_models_are_accepted_with_their_signature() {
        let inspected = OnnxInspector.inspect(&fixture("iris_logreg.onnx")).unwrap();
        assert_eq!(inspected.framework, Framework::Onnx);
        assert_eq!(
            inspected.signature.inputs,
            vec![TensorSpec {
                name: "input".into(),
                dtype: DType::F32,
                shape: vec![-1, 4],
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
            OnnxInspector.inspect(&model[..model.len() / 2]),
            Err(InspectError::Invalid(_))
        ));
        let jpeg = std::fs::read(
            wisp_test_artifacts::fixtures_dir().join("digits_png/digit_24_4_32px.jpg"),
        )
        .unwrap();
        assert!(matches!(
            OnnxInspector.inspect(&jpeg),
            Err(InspectError::Unsupported(_))
        ));
        assert!(matches!(
            OnnxInspector.inspect(b"\0asm\x0d\0\x01\0"),
            Err(InspectError::Unsupported(_))
        ));
    }
}
