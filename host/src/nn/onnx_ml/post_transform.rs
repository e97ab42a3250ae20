//! The score transforms ai.onnx.ml classifiers and regressors end with (`post_transform`),
//! and how a binary model's one score becomes two columns: computed as onnxruntime does,
//! in f32, including its approximation of the inverse error function for `PROBIT`, so
//! scores agree with it within float tolerance.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PostTransform {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    /// The node's `post_transform` attribute (`NONE` when absent).
    pub fn of(node: &NodeProto) -> TractResult<Self> {
        Ok(
            match node
                .get_attr_opt::<&str>("post_transform")?
                .unwrap_or("NONE")
            {
                "NONE" => Self::None,
                "SOFTMAX" => Self::Softmax,
                "LOGISTIC" => Self::Logistic,
                "SOFTMAX_ZERO" => Self::SoftmaxZero,
                "PROBIT" => Self::Probit,
                other => bail!("{}: unknown post_transform {other}", node.op_type),
            },
        )
    }

    /// Transforms the scores of one row of two or more scores, in place.
    pub fn apply(self, row: &mut [f32]) {
        match self {
            Self::None => {}
            Self::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            Self::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
            Self::Softmax => softmax(row),
            Self::SoftmaxZero => softmax_zero(row),
        }
    }
}

/// How a binary model's single score `s` fills its two score columns (onnxruntime's
/// `add_second_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SecondClass {
    /// Only `s` is written (the second column stays 0).
    No,
    /// `[1 - s, s]`: `s` is a probability.
    Complement,
    /// `[-s, s]`, or `[σ(-s), σ(s)]` under `LOGISTIC`: `s` is a margin.
    Opposite,
}

/// The two columns of a binary model's score `s`.
pub(super) fn binary_scores(s: f32, transform: PostTransform, second: SecondClass) -> [f32; 2] {
    if transform == PostTransform::Probit {
        return [probit(s), 0.0];
    }
    match second {
        SecondClass::No => [s, 0.0],
        SecondClass::Complement => [1.0 - s, s],
        SecondClass::Opposite if transform == PostTransform::Logistic => {
            [logistic(-s), logistic(s)]
        }
        SecondClass::Opposite => [-s, s],
    }
}

pub(super) fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// `√2 · erfinv(2v - 1)`, with the closed-form approximation of erfinv onnxruntime uses.
pub(super) fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

// 3.14159, not π: the approximation as onnxruntime writes it, so PROBIT scores agree.
#[allow(clippy::approx_constant)]
fn erf_inv(x: f32) -> f32 {
    const A: f32 = 0.147;
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let v = 2.0 / (3.14159_f32 * A) + 0.5 * ln;
    let v2 = ln / A;
    sign * (-v + (v * v - v2).sqrt()).sqrt()
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax over the non-zero scores; zeros stay (almost) zero.
fn softmax_zero(row: &mut [f32]) {
    let max = row.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0;
    for v in row.iter_mut() {
        if v.abs() > 1e-7 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_and_softmax_are_the_usual_ones() {
        assert!((logistic(0.0) - 0.5).abs() < 1e-7);
        assert!((logistic(2.0) + logistic(-2.0) - 1.0).abs() < 1e-6);
        let mut row = [1.0, 2.0, 3.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[2] > row[1] && row[1] > row[0]);
    }

    #[test]
    fn probit_inverts_the_normal_cdf_closely() {
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.959_964).abs() < 5e-3);
    }
}
