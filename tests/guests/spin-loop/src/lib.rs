//! Never returns: must be stopped by the wall-clock deadline.

use std::hint::black_box;
use wisp_guest::{Error, Model, NamedTensor, Signature};

struct SpinLoop;

impl Model for SpinLoop {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let mut n = 0u64;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(SpinLoop);
