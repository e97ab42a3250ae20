//! Ground-truth performance: classification and regression metrics from mergeable
//! accumulators, so per-minute rows combine into any window.
//!
//! Definitions follow scikit-learn: per-class precision `tp / (tp + fp)`, recall
//! `tp / (tp + fn)`, F1 `2 tp / (2 tp + fp + fn)`, each 0 when undefined
//! (`zero_division=0`); macro averages are unweighted means over every label seen as
//! actual or predicted, weighted ones weigh by support (actual count).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Confusion counts of a classifier: actual label → predicted label → occurrences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationCounts {
    confusion: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Precision, recall and F1 of one class (or an average of them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// `tp / (tp + fp)`.
    pub precision: f64,
    /// `tp / (tp + fn)`.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Occurrences of the class as the actual label.
    pub support: u64,
}

/// Everything [`ClassificationCounts::report`] computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Pairs counted.
    pub count: u64,
    /// Share predicted correctly.
    pub accuracy: f64,
    /// Per label.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Unweighted mean over labels (support: all pairs).
    pub macro_avg: ClassMetrics,
    /// Mean weighted by support.
    pub weighted_avg: ClassMetrics,
}

impl ClassificationCounts {
    /// No pairs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one `(predicted, actual)` pair.
    pub fn add(&mut self, predicted: &str, actual: &str) {
        self.add_count(predicted, actual, 1);
    }

    /// Counts `count` identical pairs.
    pub fn add_count(&mut self, predicted: &str, actual: &str, count: u64) {
        *self
            .confusion
            .entry(actual.to_owned())
            .or_default()
            .entry(predicted.to_owned())
            .or_default() += count;
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &ClassificationCounts) {
        for (actual, row) in &other.confusion {
            for (predicted, count) in row {
                self.add_count(predicted, actual, *count);
            }
        }
    }

    /// Pairs with this actual and predicted label.
    pub fn confusion(&self, actual: &str, predicted: &str) -> u64 {
        self.confusion
            .get(actual)
            .and_then(|r| r.get(predicted))
            .copied()
            .unwrap_or(0)
    }

    /// All pairs counted.
    pub fn count(&self) -> u64 {
        self.confusion.values().flat_map(|r| r.values()).sum()
    }

    /// Every label seen, as actual or predicted.
    pub fn labels(&self) -> BTreeSet<&str> {
        self.confusion
            .iter()
            .flat_map(|(a, row)| std::iter::once(a.as_str()).chain(row.keys().map(String::as_str)))
            .collect()
    }

    /// Share of pairs predicted correctly; `None` with no pairs.
    pub fn accuracy(&self) -> Option<f64> {
        let correct: u64 = self
            .confusion
            .iter()
            .map(|(a, row)| row.get(a).copied().unwrap_or(0))
            .sum();
        let n = self.count();
        (n > 0).then(|| correct as f64 / n as f64)
    }

    /// Precision, recall and F1 of `label` as the positive class (binary metrics with a
    /// positive label are this).
    pub fn class_metrics(&self, label: &str) -> ClassMetrics {
        let tp = self.confusion(label, label);
        let support: u64 = self
            .confusion
            .get(label)
            .map(|r| r.values().sum())
            .unwrap_or(0);
        let predicted: u64 = self.confusion.values().filter_map(|r| r.get(label)).sum();
        let (fp, fn_) = (predicted - tp, support - tp);
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        ClassMetrics {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            support,
        }
    }

    /// Accuracy, per-class, macro and weighted metrics; `None` with no pairs.
    pub fn report(&self) -> Option<ClassificationReport> {
        let accuracy = self.accuracy()?;
        let count = self.count();
        let per_class: BTreeMap<String, ClassMetrics> = self
            .labels()
            .into_iter()
            .map(|l| (l.to_owned(), self.class_metrics(l)))
            .collect();
        let k = per_class.len() as f64;
        let mean = |f: fn(&ClassMetrics) -> f64, weighted: bool| -> f64 {
            per_class
                .values()
                .map(|m| {
                    if weighted {
                        f(m) * m.support as f64 / count as f64
                    } else {
                        f(m) / k
                    }
                })
                .sum()
        };
        let average = |weighted| ClassMetrics {
            precision: mean(|m| m.precision, weighted),
            recall: mean(|m| m.recall, weighted),
            f1: mean(|m| m.f1, weighted),
            support: count,
        };
        Some(ClassificationReport {
            count,
            accuracy,
            macro_avg: average(false),
            weighted_avg: average(true),
            per_class,
        })
    }
}

/// Running sums of a regressor's errors (`predicted − actual`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionErrors {
    /// Pairs counted.
    pub count: u64,
    /// Σ error (for the mean error, the bias).
    pub sum_error: f64,
    /// Σ |error|.
    pub sum_abs_error: f64,
    /// Σ error².
    pub sum_squared_error: f64,
}

impl RegressionErrors {
    /// No pairs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one pair; pairs with a non-finite value are skipped.
    pub fn add(&mut self, predicted: f64, actual: f64) {
        let error = predicted - actual;
        if !error.is_finite() {
            return;
        }
        self.count += 1;
        self.sum_error += error;
        self.sum_abs_error += error.abs();
        self.sum_squared_error += error * error;
    }

    /// Adds `other`'s sums.
    pub fn merge(&mut self, other: &RegressionErrors) {
        self.count += other.count;
        self.sum_error += other.sum_error;
        self.sum_abs_error += other.sum_abs_error;
        self.sum_squared_error += other.sum_squared_error;
    }

    fn mean(&self, sum: f64) -> Option<f64> {
        (self.count > 0).then(|| sum / self.count as f64)
    }

    /// Mean absolute error.
    pub fn mae(&self) -> Option<f64> {
        self.mean(self.sum_abs_error)
    }

    /// Root mean squared error.
    pub fn rmse(&self) -> Option<f64> {
        self.mean(self.sum_squared_error).map(f64::sqrt)
    }

    /// Mean signed error: positive when the model over-predicts.
    pub fn mean_error(&self) -> Option<f64> {
        self.mean(self.sum_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, &str)]) -> ClassificationCounts {
        let mut c = ClassificationCounts::new();
        pairs.iter().for_each(|(p, a)| c.add(p, a));
        c
    }

    #[test]
    fn matches_scikit_learn_on_a_small_example() {
        // y_true = [cat, cat, dog, dog, dog, bird], y_pred = [cat, dog, dog, dog, cat, cat]
        let c = counts(&[
            ("cat", "cat"),
            ("dog", "cat"),
            ("dog", "dog"),
            ("dog", "dog"),
            ("cat", "dog"),
            ("cat", "bird"),
        ]);
        let report = c.report().unwrap();
        assert!((report.accuracy - 0.5).abs() < 1e-15);
        let cat = report.per_class["cat"];
        assert!((cat.precision - 1.0 / 3.0).abs() < 1e-15 && (cat.recall - 0.5).abs() < 1e-15);
        assert!((cat.f1 - 0.4).abs() < 1e-15);
        let bird = report.per_class["bird"];
        assert_eq!(
            (bird.precision, bird.recall, bird.f1, bird.support),
            (0.0, 0.0, 0.0, 1)
        );
        // sklearn: precision_recall_fscore_support(average='macro')
        //   = (0.3333333333333333, 0.38888888888888884, 0.35555555555555557)
        assert!((report.macro_avg.precision - 1.0 / 3.0).abs() < 1e-15);
        assert!((report.macro_avg.recall - 7.0 / 18.0).abs() < 1e-15);
        assert!((report.macro_avg.f1 - 16.0 / 45.0).abs() < 1e-15);
        // weighted: f1 = (2·0.4 + 3·(2/3) + 0) / 6
        assert!((report.weighted_avg.f1 - (0.8 + 2.0) / 6.0).abs() < 1e-15);
    }

    #[test]
    fn binary_metrics_with_a_positive_label_and_merge() {
        let mut a = counts(&[("1", "1"), ("1", "0"), ("0", "1")]);
        let b = counts(&[("1", "1"), ("0", "0")]);
        a.merge(&b);
        let positive = a.class_metrics("1");
        assert!((positive.precision - 2.0 / 3.0).abs() < 1e-15);
        assert!((positive.recall - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(a.count(), 5);
        assert!(ClassificationCounts::new().report().is_none());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            serde_json::from_str::<ClassificationCounts>(&json).unwrap(),
            a
        );
    }

    #[test]
    fn regression_errors_merge() {
        let (mut a, mut b) = (RegressionErrors::new(), RegressionErrors::new());
        a.add(3.0, 1.0);
        a.add(f64::NAN, 1.0);
        b.add(1.0, 2.0);
        b.add(5.0, 5.0);
        a.merge(&b);
        assert_eq!(a.count, 3);
        assert!((a.mae().unwrap() - 1.0).abs() < 1e-15);
        assert!((a.rmse().unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((a.mean_error().unwrap() - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(RegressionErrors::new().mae(), None);
    }
}
