//! `SVMClassifier` and `SVMRegressor`: libsvm models (support vectors, one-vs-one pairwise
//! decisions, Platt probabilities) and liblinear models (one weight row per class), computed
//! as onnxruntime does, including its two-output classifier form and its coupling of
//! pairwise probabilities.

use super::kernel::{
    ClassLabels, Kernel, Output, Shape, as_f32, expansion, floats, rows_and_columns, tensor_of,
};
use super::post_transform::{PostTransform, SecondClass, binary_scores, logistic};
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum KernelFn {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl KernelFn {
    fn of(node: &NodeProto) -> TractResult<Self> {
        let params: Vec<f32> = node.get_attr_opt_vec("kernel_params")?.unwrap_or_default();
        let p = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (p(0), p(1), p(2));
        Ok(
            match node
                .get_attr_opt::<&str>("kernel_type")?
                .unwrap_or("LINEAR")
            {
                "LINEAR" => Self::Linear,
                "POLY" => Self::Poly {
                    gamma,
                    coef0,
                    degree,
                },
                "RBF" => Self::Rbf { gamma },
                "SIGMOID" => Self::Sigmoid { gamma, coef0 },
                other => bail!("{}: unknown kernel_type {other}", node.op_type),
            },
        )
    }

    #[inline]
    fn apply(self, x: &[f32], v: &[f32]) -> f32 {
        let dot = || x.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        match self {
            Self::Linear => dot(),
            Self::Poly {
                gamma,
                coef0,
                degree,
            } => {
                let base = gamma * dot() + coef0;
                match degree {
                    2.0 => base * base,
                    3.0 => base * base * base,
                    _ => base.powf(degree),
                }
            }
            Self::Rbf { gamma } => {
                let d: f32 = x.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
                (-gamma * d).exp()
            }
            Self::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

/// One-vs-one libsvm model, or one weight row per class (liblinear).
#[derive(Debug)]
enum Mode {
    Svc {
        support_vectors: Vec<f32>,
        /// First support vector of each class, and how many it has.
        class_vectors: Vec<(usize, usize)>,
        vectors: usize,
    },
    Linear,
}

#[derive(Debug)]
struct SvmClassifier {
    kernel: KernelFn,
    mode: Mode,
    features: usize,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    labels: ClassLabels,
    transform: PostTransform,
    weights_all_positive: bool,
}

fn svm_classifier(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = ClassLabels::parse(node, "classlabels_ints")?;
    let classes = labels.ids.len();
    let per_class: Vec<i64> = node
        .get_attr_opt_vec("vectors_per_class")?
        .unwrap_or_default();
    let support_vectors: Vec<f32> = node
        .get_attr_opt_vec("support_vectors")?
        .unwrap_or_default();
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    let prob_a: Vec<f32> = node.get_attr_opt_vec("prob_a")?.unwrap_or_default();
    let prob_b: Vec<f32> = node.get_attr_opt_vec("prob_b")?.unwrap_or_default();
    ensure!(
        prob_a.len() == prob_b.len(),
        "SVMClassifier: prob_a and prob_b differ in length"
    );
    ensure!(
        !coefficients.is_empty() && !rho.is_empty(),
        "SVMClassifier: no coefficients"
    );
    let vectors: usize = per_class.iter().map(|&n| n.max(0) as usize).sum();
    let pairs = classes * classes.saturating_sub(1) / 2;
    let (mode, features, kernel) = if vectors > 0 {
        ensure!(
            per_class.len() == classes,
            "SVMClassifier: vectors_per_class per class"
        );
        ensure!(
            support_vectors.len().is_multiple_of(vectors),
            "SVMClassifier: support_vectors is not vectors × features"
        );
        ensure!(
            coefficients.len() >= (classes - 1) * vectors && rho.len() >= pairs,
            "SVMClassifier: too few coefficients or rho"
        );
        ensure!(
            prob_a.is_empty() || prob_a.len() >= pairs,
            "SVMClassifier: too few prob_a"
        );
        let mut start = 0;
        let class_vectors = per_class
            .iter()
            .map(|&n| {
                let range = (start, n as usize);
                start += n as usize;
                range
            })
            .collect();
        let features = support_vectors.len() / vectors;
        let mode = Mode::Svc {
            support_vectors,
            class_vectors,
            vectors,
        };
        (mode, features, KernelFn::of(node)?)
    } else {
        ensure!(
            classes > 0 && coefficients.len().is_multiple_of(classes),
            "SVMClassifier: coefficients is not classes × features"
        );
        (Mode::Linear, coefficients.len() / classes, KernelFn::Linear)
    };
    let op = SvmClassifier {
        kernel,
        mode,
        features,
        weights_all_positive: coefficients.iter().all(|&c| c >= 0.0),
        coefficients,
        rho,
        prob_a,
        prob_b,
        labels,
        transform: PostTransform::of(node)?,
    };
    Ok((expansion(op), vec![]))
}

impl SvmClassifier {
    fn classes(&self) -> usize {
        self.labels.ids.len()
    }

    fn pairs(&self) -> usize {
        self.classes() * (self.classes() - 1) / 2
    }

    fn has_proba(&self) -> bool {
        !self.prob_a.is_empty()
    }

    /// Score columns: one per class, or one per pair for libsvm without probabilities
    /// (two for two classes).
    fn score_columns(&self) -> usize {
        match self.mode {
            Mode::Svc { .. } if !self.has_proba() => {
                if self.classes() > 2 {
                    self.pairs()
                } else {
                    2
                }
            }
            _ => self.classes(),
        }
    }

    /// Pairwise decision values of one row, and the class that wins most pairs.
    fn pairwise(&self, row: &[f32], kernels: &mut [f32], scores: &mut [f32]) -> usize {
        let Mode::Svc {
            support_vectors,
            class_vectors,
            vectors,
        } = &self.mode
        else {
            unreachable!("pairwise decisions are libsvm's");
        };
        for (k, sv) in kernels
            .iter_mut()
            .zip(support_vectors.chunks_exact(self.features))
        {
            *k = self.kernel.apply(row, sv);
        }
        let c = self.classes();
        let mut votes = vec![0u32; c];
        let mut pair = 0;
        for i in 0..c {
            for j in i + 1..c {
                let (si, ni) = class_vectors[i];
                let (sj, nj) = class_vectors[j];
                let ci = &self.coefficients[(j - 1) * vectors + si..][..ni];
                let cj = &self.coefficients[i * vectors + sj..][..nj];
                let mut sum: f64 = 0.0;
                for (a, b) in ci.iter().zip(&kernels[si..si + ni]) {
                    sum += f64::from(a * b);
                }
                for (a, b) in cj.iter().zip(&kernels[sj..sj + nj]) {
                    sum += f64::from(a * b);
                }
                sum += f64::from(self.rho[pair]);
                scores[pair] = sum as f32;
                votes[if sum > 0.0 { i } else { j }] += 1;
                pair += 1;
            }
        }
        // The first class with the most votes.
        let mut best = 0;
        for (k, &v) in votes.iter().enumerate() {
            if v > votes[best] {
                best = k;
            }
        }
        best
    }
}

impl Kernel for SvmClassifier {
    fn name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![
            Output::new(self.labels.datum_type(), Shape::Labels),
            Output::new(f32::datum_type(), Shape::Rows(self.score_columns())),
        ]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = floats(&inputs[0])?;
        let x = as_f32(&input)?;
        let (rows, columns) = rows_and_columns(&input);
        ensure!(
            columns == self.features,
            "SVMClassifier: rows have {columns} features, the model {}",
            self.features
        );
        let width = self.score_columns();
        let classes = self.classes();
        let mut out = vec![0f32; rows * width];
        let mut labels = Vec::with_capacity(rows);
        let mut kernels = match &self.mode {
            Mode::Svc { vectors, .. } => vec![0f32; *vectors],
            Mode::Linear => Vec::new(),
        };
        let mut pairwise = vec![0f32; self.pairs()];
        for (row, scores) in x.chunks_exact(columns).zip(out.chunks_exact_mut(width)) {
            let (best, max_weight) = match self.mode {
                Mode::Linear => {
                    for (s, w) in scores
                        .iter_mut()
                        .zip(self.coefficients.chunks_exact(columns))
                    {
                        *s = self.kernel.apply(row, w) + self.rho[0];
                    }
                    let mut best = 0;
                    for k in 1..classes {
                        if scores[k] > scores[best] {
                            best = k;
                        }
                    }
                    (best, scores[best])
                }
                Mode::Svc { .. } => {
                    let best = self.pairwise(row, &mut kernels, &mut pairwise);
                    if self.has_proba() {
                        self.probabilities(&pairwise, scores);
                    } else if classes > 2 {
                        scores.copy_from_slice(&pairwise);
                    } else {
                        scores[0] = pairwise[0];
                    }
                    (best, 0.0)
                }
            };
            labels.push(self.label(best, max_weight));
            let svc_scores = matches!(self.mode, Mode::Svc { .. }) && !self.has_proba();
            if svc_scores && classes <= 2 {
                let second = if self.transform == PostTransform::None {
                    SecondClass::Opposite
                } else {
                    SecondClass::Complement
                };
                let [a, b] = binary_scores(scores[0], self.transform, second);
                scores[0] = a;
                scores[1] = b;
            } else {
                self.transform.apply(scores);
            }
        }
        Ok(tvec![
            self.labels.tensor(labels)?,
            tensor_of(&[rows, width], out)?
        ])
    }
}

impl SvmClassifier {
    fn label(&self, best: usize, max_weight: f32) -> i64 {
        if self.pairs() != 1 {
            return self.labels.ids[best];
        }
        if self.labels.ids.len() == 2 {
            let positive = !self.has_proba()
                && ((self.weights_all_positive && max_weight >= 0.5)
                    || (!self.weights_all_positive && max_weight > 0.0));
            if positive {
                self.labels.ids[1]
            } else {
                self.labels.ids[best]
            }
        } else {
            i64::from(max_weight > 0.0)
        }
    }

    /// Platt-scaled pairwise probabilities, coupled into one probability per class
    /// (Wu, Lin and Weng's second method, as libsvm and onnxruntime do it, in f32).
    fn probabilities(&self, pairwise: &[f32], p: &mut [f32]) {
        let c = self.classes();
        let mut r = vec![0f32; c * c];
        let mut pair = 0;
        for i in 0..c {
            for j in i + 1..c {
                let v = 1.0 - logistic(pairwise[pair] * self.prob_a[pair] + self.prob_b[pair]);
                let v = v.clamp(1e-7, 1.0 - 1e-7);
                r[i * c + j] = v;
                r[j * c + i] = 1.0 - v;
                pair += 1;
            }
        }
        let mut q = vec![0f32; c * c];
        let mut qp = vec![0f32; c];
        for i in 0..c {
            p[i] = 1.0 / c as f32;
            for j in 0..i {
                q[i * c + i] += r[j * c + i] * r[j * c + i];
                q[i * c + j] = q[j * c + i];
            }
            for j in i + 1..c {
                q[i * c + i] += r[j * c + i] * r[j * c + i];
                q[i * c + j] = -r[j * c + i] * r[i * c + j];
            }
        }
        let eps = 0.005 / c as f32;
        for _ in 0..100 {
            let mut pqp = 0.0;
            for i in 0..c {
                qp[i] = (0..c).map(|j| q[i * c + j] * p[j]).sum();
                pqp += p[i] * qp[i];
            }
            let max_error = qp.iter().map(|v| (v - pqp).abs()).fold(0.0, f32::max);
            if max_error < eps {
                break;
            }
            for i in 0..c {
                let diff = (-qp[i] + pqp) / q[i * c + i];
                p[i] += diff;
                pqp = (pqp + diff * (diff * q[i * c + i] + 2.0 * qp[i]))
                    / (1.0 + diff)
                    / (1.0 + diff);
                for j in 0..c {
                    qp[j] = (qp[j] + diff * q[i * c + j]) / (1.0 + diff);
                    p[j] /= 1.0 + diff;
                }
            }
        }
    }
}

#[derive(Debug)]
struct SvmRegressor {
    kernel: KernelFn,
    /// Support vectors (libsvm), or none (a linear model on `coefficients`).
    support_vectors: Vec<f32>,
    features: usize,
    coefficients: Vec<f32>,
    rho: f32,
    one_class: bool,
    transform: PostTransform,
}

fn svm_regressor(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let supports: i64 = node.get_attr_opt("n_supports")?.unwrap_or(0);
    let support_vectors: Vec<f32> = node
        .get_attr_opt_vec("support_vectors")?
        .unwrap_or_default();
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    ensure!(
        !rho.is_empty() && !coefficients.is_empty(),
        "SVMRegressor: no coefficients"
    );
    let (features, kernel) = if supports > 0 {
        let supports = supports as usize;
        ensure!(
            support_vectors.len().is_multiple_of(supports) && coefficients.len() >= supports,
            "SVMRegressor: support_vectors is not n_supports × features"
        );
        (support_vectors.len() / supports, KernelFn::of(node)?)
    } else {
        (coefficients.len(), KernelFn::Linear)
    };
    let op = SvmRegressor {
        kernel,
        support_vectors: if supports > 0 {
            support_vectors
        } else {
            Vec::new()
        },
        features,
        coefficients,
        rho: rho[0],
        one_class: node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0,
        transform: PostTransform::of(node)?,
    };
    Ok((expansion(op), vec![]))
}

impl Kernel for SvmRegressor {
    fn name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }

    fn outputs(&self) -> TVec<Output> {
        tvec![Output::new(f32::datum_type(), Shape::Rows(1))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = floats(&inputs[0])?;
        let x = as_f32(&input)?;
        let (rows, columns) = rows_and_columns(&input);
        ensure!(
            columns == self.features,
            "SVMRegressor: rows have {columns} features, the model {}",
            self.features
        );
        let out = x
            .chunks_exact(columns)
            .map(|row| {
                let score = if self.support_vectors.is_empty() {
                    self.kernel.apply(row, &self.coefficients) + self.rho
                } else {
                    let mut sum = 0.0;
                    for (sv, c) in self
                        .support_vectors
                        .chunks_exact(columns)
                        .zip(&self.coefficients)
                    {
                        sum += c * self.kernel.apply(row, sv);
                    }
                    sum + self.rho
                };
                let score = if self.transform == PostTransform::Probit {
                    super::post_transform::probit(score)
                } else {
                    score
                };
                if self.one_class {
                    if score > 0.0 { 1.0 } else { -1.0 }
                } else {
                    score
                }
            })
            .collect();
        Ok(tvec![tensor_of(&[rows, 1], out)?])
    }
}

pub(super) fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("SVMClassifier", svm_classifier);
    reg.insert("SVMRegressor", svm_regressor);
}
