//! Returns an output as large as its `bytes` input asks (an i64 scalar).

use wisp_guest::{Error, Model, NamedTensor, Signature, Tensor, TensorType};

struct GiantOutput;

impl Model for GiantOutput {
    fn predict(mut inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let size = wisp_guest::take_input(&mut inputs, "bytes")?.to_vec::<i64>()?[0] as u32;
        let tensor = Tensor {
            ty: TensorType::U8,
            shape: vec![size],
            data: vec![7u8; size as usize],
        };
        Ok(vec![NamedTensor::new("blob", tensor)])
    }

    fn signature() -> Signature {
        Signature::default()
    }
}

wisp_guest::export_model!(GiantOutput);
