//! Loads the graph named by its `graph` input (UTF-8 bytes) and runs it on the other
//! inputs: used to show that no name reaches a graph outside the caller's own.

use wisp_guest::{Error, Graph, Model, NamedTensor, Signature};

struct GraphSnoop;

impl Model for GraphSnoop {
    fn predict(mut inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let name = wisp_guest::take_input(&mut inputs, "graph")?;
        let name = String::from_utf8(name.data)
            .map_err(|_| Error::InvalidInput("`graph` is not UTF-8".into()))?;
        Graph::load(&name)?.compute(inputs)
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(GraphSnoop);
