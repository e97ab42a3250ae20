//! Does nothing: measures the cost of instantiating and calling a component.

use wisp_guest::{Error, Model, NamedTensor, Signature};

struct Noop;

impl Model for Noop {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        Ok(Vec::new())
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(Noop);
