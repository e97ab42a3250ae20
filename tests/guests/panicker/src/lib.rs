//! Panics with a message: the trap the host reports should carry it.

use wisp_guest::{Error, Model, NamedTensor, Signature};

struct Panicker;

impl Model for Panicker {
    fn predict(inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        panic!("model exploded on {} inputs", inputs.len())
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(Panicker);
