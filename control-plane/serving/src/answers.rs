//! What a model answered, read from one call's outputs for the prediction log: a
//! classifier's label (its label output, or the argmax of its probabilities with the
//! signature's class labels) with the probability of that label, or a regressor's value
//! (its first output's scalar). Only single-row answers are read: a call with several rows
//! has one prediction id, which could not tell their feedback apart.

use wisp_host::{NamedTensor, Tensor, TensorType};

use crate::domain::ground_truth::Answer;
use crate::inspect::{ClassLabels, ModelSignature};

/// The answer of a single-row call and, for a classifier with probabilities, the
/// probability of its label; `None` if the outputs are not one row of a classifier or a
/// regressor.
pub fn answer_of(
    signature: &ModelSignature,
    outputs: &[NamedTensor],
) -> Option<(Answer, Option<f64>)> {
    let labels_of = |o: &NamedTensor| {
        signature
            .outputs
            .iter()
            .find(|s| s.name == o.name)
            .and_then(|s| s.class_labels.as_ref())
    };
    let label_output = outputs.iter().find(|o| {
        matches!(
            o.tensor.ty,
            TensorType::I64 | TensorType::I32 | TensorType::String
        )
    });
    let probabilities = outputs
        .iter()
        .find(|o| labels_of(o).is_some())
        .or_else(|| {
            label_output?;
            outputs
                .iter()
                .find(|o| is_float(&o.tensor) && o.tensor.shape.len() == 2)
        })
        .and_then(|o| Some((floats(&o.tensor)?, labels_of(o))))
        .filter(|(p, _)| p.len() >= 2 && p.iter().all(|v| v.is_finite()));
    if let Some(output) = label_output {
        let label = single_label(&output.tensor)?;
        let score = probabilities.and_then(|(p, classes)| match classes {
            Some(classes) => position(classes, &label).and_then(|i| p.get(i).copied()),
            None => p.iter().copied().reduce(f64::max),
        });
        return Some((Answer::Label(label), score));
    }
    if let Some((p, Some(classes))) = probabilities {
        let (index, best) = p
            .iter()
            .copied()
            .enumerate()
            .reduce(|a, b| if b.1 > a.1 { b } else { a })?;
        let label = match classes {
            ClassLabels::Int64(l) => l.get(index)?.to_string(),
            ClassLabels::Strings(l) => l.get(index)?.clone(),
        };
        return Some((Answer::Label(label), Some(best)));
    }
    let first = outputs.first()?;
    match floats(&first.tensor)?.as_slice() {
        [value] if value.is_finite() => Some((Answer::Value(*value), None)),
        _ => None,
    }
}

fn is_float(t: &Tensor) -> bool {
    matches!(t.ty, TensorType::F32 | TensorType::F64)
}

fn floats(t: &Tensor) -> Option<Vec<f64>> {
    match t.ty {
        TensorType::F32 => Some(t.values::<f32>()?.into_iter().map(f64::from).collect()),
        TensorType::F64 => t.values::<f64>(),
        _ => None,
    }
}

fn single_label(t: &Tensor) -> Option<String> {
    let labels: Vec<String> = match t.ty {
        TensorType::I64 => t.values::<i64>()?.iter().map(i64::to_string).collect(),
        TensorType::I32 => t.values::<i32>()?.iter().map(i32::to_string).collect(),
        TensorType::String => t.strings()?,
        _ => return None,
    };
    match <[String; 1]>::try_from(labels) {
        Ok([label]) => Some(label),
        Err(_) => None,
    }
}

fn position(classes: &ClassLabels, label: &str) -> Option<usize> {
    match classes {
        ClassLabels::Int64(l) => l.iter().position(|c| c.to_string() == label),
        ClassLabels::Strings(l) => l.iter().position(|c| c == label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{DType, TensorSpec};

    fn spec(name: &str, class_labels: Option<ClassLabels>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![-1, 2],
            class_labels,
        }
    }

    fn out(name: &str, tensor: Tensor) -> NamedTensor {
        NamedTensor::new(name, tensor)
    }

    #[test]
    fn a_label_output_with_probabilities() {
        let signature = ModelSignature {
            inputs: vec![],
            outputs: vec![spec("label", None), spec("probabilities", None)],
        };
        let outputs = [
            out("label", Tensor::from_values(&[1], &[2i64])),
            out(
                "probabilities",
                Tensor::from_values(&[1, 3], &[0.1f32, 0.2, 0.7]),
            ),
        ];
        let (answer, score) = answer_of(&signature, &outputs).unwrap();
        assert_eq!(answer, Answer::Label("2".into()));
        assert!((score.unwrap() - 0.7).abs() < 1e-6);
    }

    #[test]
    fn argmax_of_probabilities_with_class_labels() {
        let classes = ClassLabels::Strings(vec!["no".into(), "yes".into()]);
        let signature = ModelSignature {
            inputs: vec![],
            outputs: vec![spec("p", Some(classes))],
        };
        let outputs = [out("p", Tensor::from_values(&[1, 2], &[0.3f32, 0.7]))];
        let (answer, score) = answer_of(&signature, &outputs).unwrap();
        assert_eq!(answer, Answer::Label("yes".into()));
        assert!((score.unwrap() - 0.7).abs() < 1e-6);
    }

    #[test]
    fn a_regressor_scalar_and_multi_row_calls() {
        let signature = ModelSignature::default();
        let one = [out("variable", Tensor::from_values(&[1, 1], &[151.5f32]))];
        assert_eq!(
            answer_of(&signature, &one).unwrap(),
            (Answer::Value(151.5), None)
        );
        let two = [out(
            "variable",
            Tensor::from_values(&[2, 1], &[1.0f32, 2.0]),
        )];
        assert_eq!(answer_of(&signature, &two), None);
        let labels = [out("label", Tensor::from_values(&[2], &[0i64, 1]))];
        assert_eq!(answer_of(&signature, &labels), None);
    }
}
