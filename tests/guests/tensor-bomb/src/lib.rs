//! Copies one buffer into host tensors again and again and keeps them all: the tensors
//! live outside its linear memory, so only the host's accounting can stop it. Its `mib`
//! input (an i64) is the buffer's size, `count` how many tensors it makes.

use wisp_guest::bindings::wasi::nn::tensor::{Tensor, TensorType};
use wisp_guest::{Error, Model, NamedTensor, Signature};

struct TensorBomb;

impl Model for TensorBomb {
    fn predict(mut inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let mib = wisp_guest::take_input(&mut inputs, "mib")?.to_vec::<i64>()?[0] as usize;
        let count = wisp_guest::take_input(&mut inputs, "count")?.to_vec::<i64>()?[0] as usize;
        let buffer = vec![1u8; mib << 20];
        let mut kept = Vec::with_capacity(count);
        for _ in 0..count {
            kept.push(Tensor::new(&[buffer.len() as u32], TensorType::U8, &buffer));
        }
        Ok(Vec::new())
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(TensorBomb);
