//! Allocates without end: must be stopped by the memory cap.

use std::hint::black_box;
use wisp_guest::{Error, Model, NamedTensor, Signature};

struct AllocBomb;

impl Model for AllocBomb {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(black_box(vec![1u8; 1 << 20]));
        }
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(AllocBomb);
