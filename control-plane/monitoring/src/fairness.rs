//! Fairness across segments (e.g. a protected attribute's values) from
//! `(segment, predicted, actual)` triples and a positive label, with mergeable counts.
//!
//! Definitions, as fairlearn's `between_groups` metrics (and the usual literature):
//!
//! - *selection rate* of a segment: `P(ŷ = +)`, the share predicted positive;
//! - *true positive rate*: `P(ŷ = + | y = +)`; *false positive rate*: `P(ŷ = + | y = −)`;
//! - **demographic parity difference**: max − min selection rate over segments
//!   (`fairlearn.metrics.demographic_parity_difference`); 0 is parity;
//! - **disparate impact ratio**: min / max selection rate
//!   (`demographic_parity_ratio`); 1 is parity, below 0.8 fails the "four-fifths rule".
//!   [`FairnessReport::selection_rate_ratios`] gives the AIF360-style ratio of each
//!   segment to a chosen reference (privileged) segment instead;
//! - **equal opportunity difference**: max − min true positive rate
//!   (`equal_opportunity_difference`);
//! - **equalized odds difference**: the larger of the TPR and FPR gaps
//!   (`equalized_odds_difference`).
//!
//! A segment without actual positives (negatives) has no TPR (FPR) and is left out of
//! those gaps, where fairlearn would count the rate as 0; a gap needs two segments with
//! the rate defined, else it is `None`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why fairness counts could not be combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FairnessError {
    /// The two accumulators count different positive labels.
    #[error("positive labels differ: {0:?} and {1:?}")]
    PositiveLabelMismatch(String, String),
}

/// Counts of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentCounts {
    /// Rows.
    pub rows: u64,
    /// Predicted positive.
    pub predicted_positive: u64,
    /// Actually positive.
    pub actual_positive: u64,
    /// Predicted and actually positive.
    pub true_positive: u64,
}

impl SegmentCounts {
    fn merge(&mut self, other: &SegmentCounts) {
        self.rows += other.rows;
        self.predicted_positive += other.predicted_positive;
        self.actual_positive += other.actual_positive;
        self.true_positive += other.true_positive;
    }

    fn rates(&self) -> SegmentRates {
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        let actual_negative = self.rows - self.actual_positive;
        SegmentRates {
            rows: self.rows,
            selection_rate: ratio(self.predicted_positive, self.rows).unwrap_or(0.0),
            true_positive_rate: ratio(self.true_positive, self.actual_positive),
            false_positive_rate: ratio(
                self.predicted_positive - self.true_positive,
                actual_negative,
            ),
        }
    }
}

/// Per-segment counts for one positive label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessCounts {
    positive_label: String,
    segments: BTreeMap<String, SegmentCounts>,
}

impl FairnessCounts {
    /// No rows yet; `positive_label` is the favourable outcome.
    pub fn new(positive_label: impl Into<String>) -> Self {
        Self {
            positive_label: positive_label.into(),
            segments: BTreeMap::new(),
        }
    }

    /// The favourable outcome.
    pub fn positive_label(&self) -> &str {
        &self.positive_label
    }

    /// Counts one row.
    pub fn add(&mut self, segment: &str, predicted: &str, actual: &str) {
        let (p, a) = (
            predicted == self.positive_label,
            actual == self.positive_label,
        );
        let counts = self.segments.entry(segment.to_owned()).or_default();
        counts.rows += 1;
        counts.predicted_positive += u64::from(p);
        counts.actual_positive += u64::from(a);
        counts.true_positive += u64::from(p && a);
    }

    /// Adds `other`'s counts; both must count the same positive label.
    pub fn merge(&mut self, other: &FairnessCounts) -> Result<(), FairnessError> {
        if other.positive_label != self.positive_label {
            return Err(FairnessError::PositiveLabelMismatch(
                self.positive_label.clone(),
                other.positive_label.clone(),
            ));
        }
        for (segment, counts) in &other.segments {
            self.segments
                .entry(segment.clone())
                .or_default()
                .merge(counts);
        }
        Ok(())
    }

    /// The counts, by segment.
    pub fn segments(&self) -> &BTreeMap<String, SegmentCounts> {
        &self.segments
    }

    /// Rates per segment and the gaps between them.
    pub fn report(&self) -> FairnessReport {
        let segments: BTreeMap<String, SegmentRates> = self
            .segments
            .iter()
            .map(|(s, c)| (s.clone(), c.rates()))
            .collect();
        let gap = |rate: fn(&SegmentRates) -> Option<f64>| -> Option<f64> {
            let rates: Vec<f64> = segments.values().filter_map(rate).collect();
            (rates.len() >= 2).then(|| max(&rates) - min(&rates))
        };
        let selection = gap(|r| Some(r.selection_rate));
        let tpr = gap(|r| r.true_positive_rate);
        let fpr = gap(|r| r.false_positive_rate);
        let selection_rates: Vec<f64> = segments.values().map(|r| r.selection_rate).collect();
        let disparate_impact_ratio = (selection_rates.len() >= 2 && max(&selection_rates) > 0.0)
            .then(|| min(&selection_rates) / max(&selection_rates));
        FairnessReport {
            demographic_parity_difference: selection,
            disparate_impact_ratio,
            equal_opportunity_difference: tpr,
            equalized_odds_difference: match (tpr, fpr) {
                (Some(t), Some(f)) => Some(t.max(f)),
                _ => None,
            },
            segments,
        }
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Rates of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentRates {
    /// Rows.
    pub rows: u64,
    /// Share predicted positive.
    pub selection_rate: f64,
    /// Share of actual positives predicted positive; `None` without actual positives.
    pub true_positive_rate: Option<f64>,
    /// Share of actual negatives predicted positive; `None` without actual negatives.
    pub false_positive_rate: Option<f64>,
}

/// Fairness gaps between segments; each is `None` with fewer than two segments where
/// its rates are defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessReport {
    /// Rates by segment.
    pub segments: BTreeMap<String, SegmentRates>,
    /// Max − min selection rate.
    pub demographic_parity_difference: Option<f64>,
    /// Min / max selection rate (`None` also when no segment selects anyone).
    pub disparate_impact_ratio: Option<f64>,
    /// Max − min true positive rate.
    pub equal_opportunity_difference: Option<f64>,
    /// Max of the TPR and FPR gaps.
    pub equalized_odds_difference: Option<f64>,
}

impl FairnessReport {
    /// Each segment's selection rate divided by `reference`'s (AIF360's disparate impact
    /// with `reference` as the privileged group); `None` if `reference` is unknown or
    /// selects nobody.
    pub fn selection_rate_ratios(&self, reference: &str) -> Option<BTreeMap<String, f64>> {
        let base = self.segments.get(reference)?.selection_rate;
        (base > 0.0).then(|| {
            self.segments
                .iter()
                .map(|(s, r)| (s.clone(), r.selection_rate / base))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segment a: 4 rows, 3 selected, 2 actual positives both caught, 1 of 2 negatives
    /// selected. Segment b: 4 rows, 1 selected, 2 actual positives 1 caught, no FP.
    fn example() -> FairnessCounts {
        let mut c = FairnessCounts::new("approve");
        for (s, p, a) in [
            ("a", "approve", "approve"),
            ("a", "approve", "approve"),
            ("a", "approve", "deny"),
            ("a", "deny", "deny"),
            ("b", "approve", "approve"),
            ("b", "deny", "approve"),
            ("b", "deny", "deny"),
            ("b", "deny", "deny"),
        ] {
            c.add(s, p, a);
        }
        c
    }

    #[test]
    fn gaps_match_fairlearn_definitions() {
        // fairlearn 0.15.0 on these rows: demographic_parity_difference = 0.5,
        // demographic_parity_ratio = 1/3,
        // equal_opportunity_difference = 0.5, equalized_odds_difference = 0.5
        let r = example().report();
        assert_eq!(r.segments["a"].selection_rate, 0.75);
        assert_eq!(r.demographic_parity_difference, Some(0.5));
        assert!((r.disparate_impact_ratio.unwrap() - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(r.equal_opportunity_difference, Some(0.5));
        assert_eq!(r.equalized_odds_difference, Some(0.5));
        let ratios = r.selection_rate_ratios("a").unwrap();
        assert!((ratios["b"] - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn merge_needs_the_same_positive_label() {
        let mut a = example();
        a.merge(&example()).unwrap();
        assert_eq!(a.segments()["b"].rows, 8);
        assert_eq!(a.report().demographic_parity_difference, Some(0.5));
        assert!(a.merge(&FairnessCounts::new("deny")).is_err());
        let one = FairnessCounts::new("x");
        assert_eq!(one.report().demographic_parity_difference, None);
    }
}
