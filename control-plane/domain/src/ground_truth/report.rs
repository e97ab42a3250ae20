//! Performance and fairness of a model over a time range, from its predictions with
//! feedback: per window (`step`) and version, `wisp_monitoring`'s classification and
//! regression accumulators; per segment, its fairness counts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use wisp_monitoring::fairness::{FairnessCounts, FairnessReport};
use wisp_monitoring::performance::{ClassMetrics, ClassificationCounts, RegressionErrors};

use super::Answer;
use super::rows::{Actual, Outcome};

/// At most this many windows per performance request.
pub const MAX_WINDOWS: i64 = 1000;

/// A time range cut into windows of `step_ms`; the last may be shorter.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
}

/// The metrics of one version over one window (or the whole range).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionMetrics {
    pub version: i64,
    /// Window start and end, seconds since the Unix epoch (end exclusive).
    pub from: i64,
    pub to: i64,
    /// Predictions with feedback counted.
    pub count: u64,
    /// Classifier metrics, when the version's predictions are labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Regressor metrics, when they are values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
}

/// Accuracy, per-class and averaged precision/recall/F1, and the positive label's.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Classification {
    pub accuracy: f64,
    #[schema(value_type = Object)]
    pub per_class: BTreeMap<String, Class>,
    pub macro_avg: Class,
    pub weighted_avg: Class,
    /// The positive label's metrics (binary classification), if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive: Option<Class>,
    /// Actual label → predicted label → count.
    #[schema(value_type = Object)]
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Precision, recall, F1 and support of a class (or an average).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Class {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

impl From<ClassMetrics> for Class {
    fn from(m: ClassMetrics) -> Self {
        Self {
            precision: m.precision,
            recall: m.recall,
            f1: m.f1,
            support: m.support,
        }
    }
}

/// Mean absolute and root mean squared error, and the mean signed error (bias).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Regression {
    pub mae: f64,
    pub rmse: f64,
    pub mean_error: f64,
}

#[derive(Default)]
struct Accumulator {
    labels: ClassificationCounts,
    errors: RegressionErrors,
    count: u64,
}

impl Accumulator {
    fn add(&mut self, outcome: &Outcome) {
        match (&outcome.predicted, &outcome.actual) {
            (Answer::Label(p), Actual::Label(a)) => self.labels.add(p, a),
            (Answer::Value(p), Actual::Value(a)) => self.errors.add(*p, *a),
            _ => return,
        }
        self.count += 1;
    }

    fn merge(&mut self, other: &Accumulator) {
        self.labels.merge(&other.labels);
        self.errors.merge(&other.errors);
        self.count += other.count;
    }

    fn metrics(
        &self,
        version: i64,
        from_ms: i64,
        to_ms: i64,
        positive: Option<&str>,
    ) -> VersionMetrics {
        let classification = self.labels.report().map(|r| {
            let labels = self.labels.labels();
            let positive = positive
                .map(str::to_owned)
                .or_else(|| default_positive(&labels))
                .map(|l| self.labels.class_metrics(&l).into());
            Classification {
                accuracy: r.accuracy,
                macro_avg: r.macro_avg.into(),
                weighted_avg: r.weighted_avg.into(),
                positive,
                confusion: labels
                    .iter()
                    .map(|a| {
                        let row = labels
                            .iter()
                            .map(|p| ((*p).to_owned(), self.labels.confusion(a, p)))
                            .filter(|(_, n)| *n > 0)
                            .collect();
                        ((*a).to_owned(), row)
                    })
                    .collect(),
                per_class: r
                    .per_class
                    .into_iter()
                    .map(|(l, m)| (l, m.into()))
                    .collect(),
            }
        });
        let regression = match (
            self.errors.mae(),
            self.errors.rmse(),
            self.errors.mean_error(),
        ) {
            (Some(mae), Some(rmse), Some(mean_error)) => Some(Regression {
                mae,
                rmse,
                mean_error,
            }),
            _ => None,
        };
        VersionMetrics {
            version,
            from: from_ms.div_euclid(1000),
            to: to_ms.div_euclid(1000),
            count: self.count,
            classification,
            regression,
        }
    }
}

/// The positive label when none is given: of exactly two labels, `1` or `true` if it is
/// one of them, else the greater (scikit-learn's `pos_label=1` for 0/1 labels).
pub fn default_positive(labels: &BTreeSet<&str>) -> Option<String> {
    if labels.len() != 2 {
        return None;
    }
    ["1", "true"]
        .into_iter()
        .find(|l| labels.contains(l))
        .or_else(|| labels.last().copied())
        .map(str::to_owned)
}

/// Performance per window and version, and over the whole range per version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Performance {
    /// One entry per window and version with feedback, oldest window first.
    pub windows: Vec<VersionMetrics>,
    /// One entry per version, over the whole range.
    pub overall: Vec<VersionMetrics>,
}

/// Performance of `outcomes` (within `windows`' range) per window and version.
pub fn performance(outcomes: &[Outcome], windows: Windows, positive: Option<&str>) -> Performance {
    let mut per_window: BTreeMap<(i64, i64), Accumulator> = BTreeMap::new();
    for outcome in outcomes {
        let index = (outcome.at_ms - windows.from_ms).div_euclid(windows.step_ms);
        per_window
            .entry((index, outcome.version))
            .or_default()
            .add(outcome);
    }
    let mut overall: BTreeMap<i64, Accumulator> = BTreeMap::new();
    let windows_out = per_window
        .iter()
        .map(|((index, version), acc)| {
            overall.entry(*version).or_default().merge(acc);
            let from = windows.from_ms + index * windows.step_ms;
            let to = (from + windows.step_ms).min(windows.to_ms);
            acc.metrics(*version, from, to, positive)
        })
        .collect();
    Performance {
        windows: windows_out,
        overall: overall
            .iter()
            .map(|(version, acc)| acc.metrics(*version, windows.from_ms, windows.to_ms, positive))
            .collect(),
    }
}

/// Fairness over segments, with the positive label it was computed for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Fairness {
    /// `None` only when there was nothing to count.
    pub positive_label: Option<String>,
    /// Classified predictions with feedback and a segment.
    pub count: u64,
    /// Classified predictions with feedback but no segment (left out).
    pub without_segment: u64,
    #[schema(value_type = Object)]
    #[serde(flatten)]
    pub report: FairnessReport,
}

/// Fairness of the classified `outcomes` that have a segment, for `positive` (or the
/// default positive label of their labels; `None` if there are predictions but no
/// positive label to choose: more than two labels and none given).
pub fn fairness(outcomes: &[Outcome], positive: Option<&str>) -> Option<Fairness> {
    let pairs: Vec<(&str, &str, Option<&str>)> = outcomes
        .iter()
        .filter_map(|o| match (&o.predicted, &o.actual) {
            (Answer::Label(p), Actual::Label(a)) => {
                Some((p.as_str(), a.as_str(), o.segment.as_deref()))
            }
            _ => None,
        })
        .collect();
    let positive = match positive {
        Some(p) => p.to_owned(),
        None => {
            let labels: BTreeSet<&str> = pairs.iter().flat_map(|(p, a, _)| [*p, *a]).collect();
            match default_positive(&labels) {
                Some(p) => p,
                None if pairs.is_empty() => String::new(),
                None => return None,
            }
        }
    };
    let mut counts = FairnessCounts::new(positive.clone());
    let mut without_segment = 0;
    for (predicted, actual, segment) in &pairs {
        match segment {
            Some(segment) => counts.add(segment, predicted, actual),
            None => without_segment += 1,
        }
    }
    Some(Fairness {
        positive_label: (!positive.is_empty()).then_some(positive),
        count: counts.segments().values().map(|c| c.rows).sum(),
        without_segment,
        report: counts.report(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(version: i64, at_ms: i64, p: &str, a: &str, segment: Option<&str>) -> Outcome {
        Outcome {
            version,
            at_ms,
            predicted: Answer::Label(p.into()),
            actual: Actual::Label(a.into()),
            segment: segment.map(str::to_owned),
        }
    }

    #[test]
    fn windows_and_versions_merge_into_the_overall_figures() {
        let outcomes = [
            label(1, 0, "1", "1", None),
            label(1, 5, "1", "0", None),
            label(1, 10, "0", "0", None),
            label(2, 12, "1", "1", None),
        ];
        let windows = Windows {
            from_ms: 0,
            to_ms: 15,
            step_ms: 10,
        };
        let p = performance(&outcomes, windows, None);
        assert_eq!(p.windows.len(), 3);
        assert_eq!(p.windows[0].version, 1);
        assert_eq!((p.windows[2].version, p.windows[2].count), (2, 1));
        let v1 = &p.overall[0];
        assert_eq!((v1.version, v1.count), (1, 3));
        let c = v1.classification.as_ref().unwrap();
        assert!((c.accuracy - 2.0 / 3.0).abs() < 1e-12);
        let positive = c.positive.unwrap();
        assert!((positive.precision - 0.5).abs() < 1e-12 && positive.recall == 1.0);
        assert_eq!(c.confusion["0"]["1"], 1);
    }

    #[test]
    fn the_default_positive_label() {
        let set = |l: &[&'static str]| l.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(default_positive(&set(&["0", "1"])).as_deref(), Some("1"));
        assert_eq!(
            default_positive(&set(&["no", "yes"])).as_deref(),
            Some("yes")
        );
        assert_eq!(default_positive(&set(&["a", "b", "c"])), None);
    }
}
