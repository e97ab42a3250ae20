//! The component wisp wraps a plain ONNX upload in: it runs the graph the host prepared for
//! this model version, passing named tensors straight through.

use wisp_guest::{Error, Graph, Model, NamedTensor, Signature};

struct OnnxRunner;

impl Model for OnnxRunner {
    fn predict(inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        Graph::load_own()?.compute(inputs)
    }

    fn signature() -> Signature {
        wisp_guest::model_info().graph_signature.unwrap_or_default()
    }
}

wisp_guest::export_model!(OnnxRunner);
