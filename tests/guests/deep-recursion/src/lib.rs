//! Recurses without end: must trap on the Wasm stack limit, not crash the host.

use std::hint::black_box;
use wisp_guest::{Error, Model, NamedTensor, Signature, Tensor};

#[inline(never)]
fn descend(depth: u64) -> u64 {
    let frame = black_box([depth; 8]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    black_box(descend(depth + 1)).wrapping_add(frame[7])
}

struct DeepRecursion;

impl Model for DeepRecursion {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let depth = descend(0);
        Ok(vec![NamedTensor::new("depth", Tensor::from_values(&[1], &[depth as i64]))])
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(DeepRecursion);
