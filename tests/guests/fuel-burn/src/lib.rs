//! Does a great deal of arithmetic: must be stopped by the fuel budget.

use std::hint::black_box;
use wisp_guest::{Error, Model, NamedTensor, Signature, Tensor};

struct FuelBurn;

impl Model for FuelBurn {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let mut acc = 0u64;
        for i in 0..black_box(50_000_000_000u64) {
            acc = black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
        Ok(vec![NamedTensor::new("acc", Tensor::from_values(&[1], &[acc as i64]))])
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(FuelBurn);
