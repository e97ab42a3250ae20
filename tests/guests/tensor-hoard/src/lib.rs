//! Creates host tensors and never drops them: must hit the resource-table cap.

use wisp_guest::bindings::wasi::nn::tensor::{Tensor, TensorType};
use wisp_guest::{Error, Model, NamedTensor, Signature};

struct TensorHoard;

impl Model for TensorHoard {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        loop {
            std::mem::forget(Tensor::new(&[1], TensorType::U8, &[0]));
        }
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(TensorHoard);
