//! `LinearClassifier`, replacing tract-onnx's: onnxruntime's layout of binary models (one
//! weight row and two labels give two score columns) and every post-transform, including
//! `SOFTMAX_ZERO` and `PROBIT`, which tract refuses.

use super::kernel::{
    ClassLabels, Kernel, Output, Shape, as_f32, expansion, floats, rows_and_columns, tensor_of,
};
use super::post_transform::{PostTransform, SecondClass, binary_scores};
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug)]
struct LinearClassifier {
    /// `[rows of weights, features]`, one row per score.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    labels: ClassLabels,
    transform: PostTransform,
}

fn linear_classifier(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = ClassLabels::parse(node, "classlabels_ints")?;
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let intercepts: Vec<f32> = match node.get_attr_opt_vec("intercepts")? {
        Some(intercepts) => intercepts,
        None if labels.ids.len() == 2 && coefficients.len() % 2 == 1 => vec![0.0],
        None => vec![0.0; labels.ids.len()],
    };
    ensure!(
        !intercepts.is_empty() && coefficients.len().is_multiple_of(intercepts.len()),
        "LinearClassifier: {} coefficients for {} intercepts",
        coefficients.len(),
        intercepts.len()
    );
    ensure!(
        intercepts.len() == labels.ids.len() || (intercepts.len() == 1 && labels.ids.len() == 2),
        "LinearClassifier: {} weight rows for {} classes",
        intercepts.len(),
        labels.ids.len()
    );
    let op = LinearClassifier {
        coefficients,
        intercepts,
        labels,
        transform: PostTransform::of(node)?,
    };
    Ok((expansion(op), vec![]))
}

impl LinearClassifier {
    fn score_rows(&self) -> usize {
        self.intercepts.len()
    }

    fn features(&self) -> usize {
        self.coefficients.len() / self.score_rows()
    }

    fn columns(&self) -> usize {
        if self.score_rows() == 1 && self.labels.ids.len() == 2 {
            2
        } else {
            self.score_rows()
        }
    }
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![
            Output::new(self.labels.datum_type(), Shape::Labels),
            Output::new(f32::datum_type(), Shape::Rows(self.columns())),
        ]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = floats(&inputs[0])?;
        let x = as_f32(&input)?;
        let (rows, columns) = rows_and_columns(&input);
        ensure!(
            columns == self.features(),
            "LinearClassifier: rows have {columns} features, the model {}",
            self.features()
        );
        let width = self.columns();
        let mut out = vec![0f32; rows * width];
        let mut labels = Vec::with_capacity(rows);
        for (row, scores) in x.chunks_exact(columns).zip(out.chunks_exact_mut(width)) {
            let weights = self.coefficients.chunks_exact(columns);
            for ((s, w), b) in scores.iter_mut().zip(weights).zip(&self.intercepts) {
                *s = row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + b;
            }
            if self.score_rows() == 1 {
                let (positive, negative) = if self.labels.ids.len() == 2 {
                    (self.labels.ids[1], self.labels.ids[0])
                } else {
                    (1, 0)
                };
                labels.push(if scores[0] > 0.0 { positive } else { negative });
                if width == 2 {
                    let [a, b] = binary_scores(scores[0], self.transform, SecondClass::Complement);
                    scores[0] = a;
                    scores[1] = b;
                } else if self.transform == PostTransform::Probit {
                    self.transform.apply(scores);
                }
            } else {
                let mut best = 0;
                for k in 1..scores.len() {
                    if scores[k] > scores[best] {
                        best = k;
                    }
                }
                labels.push(self.labels.ids[best]);
                self.transform.apply(scores);
            }
        }
        Ok(tvec![
            self.labels.tensor(labels)?,
            tensor_of(&[rows, width], out)?
        ])
    }
}

pub(super) fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("LinearClassifier", linear_classifier);
}
