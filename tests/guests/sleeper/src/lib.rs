//! Sleeps for the milliseconds given in its `ms` input (i64): a WASI call that blocks on
//! the host's clock, which a call running on a tokio worker cannot do.

use std::time::Duration;
use wisp_guest::{Error, Model, NamedTensor, Signature};

struct Sleeper;

impl Model for Sleeper {
    fn predict(inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let ms = inputs
            .iter()
            .find(|input| input.name == "ms")
            .ok_or_else(|| Error::InvalidInput("missing input `ms`".into()))?
            .tensor
            .to_vec::<i64>()?;
        let ms = ms.first().copied().unwrap_or(0).max(0) as u64;
        std::thread::sleep(Duration::from_millis(ms));
        Ok(Vec::new())
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(Sleeper);
