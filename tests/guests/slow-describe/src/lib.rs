//! Sleeps in `describe` for the seconds a real upload inspection would never wait: what an
//! upload does to keep the execution slot that inspects it.

use std::time::Duration;
use wisp_guest::{Error, Model, NamedTensor, Signature};

struct SlowDescribe;

impl Model for SlowDescribe {
    fn predict(_: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        Ok(Vec::new())
    }

    fn signature() -> Signature {
        std::thread::sleep(Duration::from_secs(30));
        Signature::default()
    }
}

wisp_guest::export_model!(SlowDescribe);
