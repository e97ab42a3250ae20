//! A classifier over named numeric features.
//!
//! Each feature arrives as its own input tensor of shape `[n]` (any numeric type), named as
//! in the model file's `wisp.feature_names` metadata (comma-separated, in column order).
//! The component stacks them into the `[n, features]` f32 matrix the graph takes and returns
//! `probabilities` (`[n, classes]`, f32) and `label` (`[n]`, i64: the index of the most
//! likely class; the class names are in `wisp.class_labels`).

use wisp_guest::ops::argmax;
use wisp_guest::{Error, Graph, Model, NamedTensor, Signature, Tensor, TensorSpec, TensorType};

struct TabularClassifier;

fn feature_names() -> Result<Vec<String>, Error> {
    let info = wisp_guest::model_info();
    let names = wisp_guest::metadata(&info, "wisp.feature_names")
        .ok_or_else(|| Error::Internal("the model file has no `wisp.feature_names` metadata".into()))?;
    Ok(names.split(',').map(|n| n.trim().to_owned()).collect())
}

impl Model for TabularClassifier {
    fn predict(mut inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let features = feature_names()?;
        let mut columns = Vec::with_capacity(features.len());
        for name in &features {
            let column = wisp_guest::take_input(&mut inputs, name)?;
            if column.shape.len() != 1 {
                return Err(Error::InvalidInput(format!(
                    "feature `{name}`: expected shape [n], got {:?}",
                    column.shape
                )));
            }
            columns.push(column.to_f32_lossy());
        }
        if let Some(extra) = inputs.first() {
            return Err(Error::InvalidInput(format!(
                "unknown feature `{}`; the model takes {features:?}",
                extra.name
            )));
        }
        let rows = columns.first().map_or(0, Vec::len);
        if columns.iter().any(|c| c.len() != rows) {
            return Err(Error::InvalidInput("every feature needs the same number of rows".into()));
        }
        let matrix: Vec<f32> = (0..rows)
            .flat_map(|row| columns.iter().map(move |column| column[row]))
            .collect();
        let info = wisp_guest::model_info();
        let input_name = info
            .graph_signature
            .as_ref()
            .and_then(|s| s.inputs.first())
            .map(|spec| spec.name.clone())
            .ok_or_else(|| Error::Internal("the graph declares no input".into()))?;
        let shape = [rows as u32, features.len() as u32];
        let outputs = Graph::load_own()?.compute(vec![NamedTensor::new(
            input_name,
            Tensor::from_values(&shape, &matrix),
        )])?;
        let probabilities = outputs
            .into_iter()
            .find(|o| o.tensor.ty == TensorType::F32 && o.tensor.shape.len() == 2)
            .ok_or_else(|| Error::InferenceFailed("the graph returned no [n, classes] f32 output".into()))?
            .tensor;
        let classes = probabilities.shape[1] as usize;
        let values = probabilities.to_vec::<f32>()?;
        let labels: Vec<i64> = values
            .chunks(classes.max(1))
            .map(|row| argmax(row).map_or(-1, |i| i as i64))
            .collect();
        Ok(vec![
            NamedTensor::new("probabilities", probabilities),
            NamedTensor::new("label", Tensor::from_values(&[rows as u32], &labels)),
        ])
    }

    fn signature() -> Signature {
        let spec = |name: &str, ty, shape: Vec<i64>| TensorSpec {
            name: name.to_owned(),
            ty,
            shape,
        };
        let classes = wisp_guest::model_info()
            .graph_signature
            .and_then(|s| s.outputs.into_iter().find(|o| o.shape.len() == 2))
            .map_or(-1, |o| o.shape[1]);
        Signature {
            inputs: feature_names()
                .unwrap_or_default()
                .iter()
                .map(|name| spec(name, TensorType::F32, vec![-1]))
                .collect(),
            outputs: vec![
                spec("probabilities", TensorType::F32, vec![-1, classes]),
                spec("label", TensorType::I64, vec![-1]),
            ],
        }
    }
}

wisp_guest::export_model!(TabularClassifier);
