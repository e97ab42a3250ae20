//! Executes `unreachable`: a trap the host must report and survive.

use wisp_guest::{Error, Model, NamedTensor, Signature};

struct Unreachable;

impl Model for Unreachable {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        core::arch::wasm32::unreachable()
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(Unreachable);
