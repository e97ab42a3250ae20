//! A profile of a model's inputs and outputs over some rows: the reference data set, or
//! one time window of live calls. Mergeable and stored as JSON.
//!
//! A numeric feature keeps a [`QuantileSketch`] (for the Wasserstein distance against a
//! large reference), its values' counts while there are few of them ([`FrequentItems`],
//! for features with ≤ 5 distinct values that are tested as categories), and a uniform
//! sample of at most [`SAMPLE_CAPACITY`] values (a reservoir), which holds every value
//! while the profile has at most that many rows: Kolmogorov–Smirnov and chi-squared
//! against a small reference are then computed on the exact samples. A categorical
//! feature keeps its categories' counts ([`FrequentItems`], exact up to
//! [`CATEGORY_CAPACITY`] categories).

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use wisp_monitoring::{FrequentItems, QuantileSketch};

use super::columns::{Column, Values};

/// Values a numeric feature's sample keeps; a profile with at most this many rows keeps
/// them all (Evidently's "small reference" bound).
pub const SAMPLE_CAPACITY: usize = 1000;
/// Distinct values of a numeric feature counted exactly (beyond it, it is not categorical).
const VALUE_CAPACITY: usize = 32;
/// Categories of a categorical feature counted exactly.
pub const CATEGORY_CAPACITY: usize = 256;

/// A uniform sample of a stream of values (Vitter's algorithm R), mergeable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reservoir {
    /// Values offered.
    pub seen: u64,
    /// At most [`SAMPLE_CAPACITY`] of them, uniformly chosen; all of them while
    /// `seen ≤ SAMPLE_CAPACITY`.
    pub values: Vec<f64>,
}

impl Reservoir {
    /// Offers one value.
    pub fn add(&mut self, value: f64, rng: &mut impl Rng) {
        self.seen += 1;
        if self.values.len() < SAMPLE_CAPACITY {
            self.values.push(value);
        } else {
            let slot = rng.gen_range(0..self.seen);
            if let Some(kept) = self.values.get_mut(slot as usize) {
                *kept = value;
            }
        }
    }

    /// Whether the sample holds every value offered.
    pub fn is_complete(&self) -> bool {
        self.seen == self.values.len() as u64
    }

    /// A uniform sample of both streams: the union while it fits, else each kept value of
    /// the result drawn from one side with probability proportional to what it saw.
    pub fn merge(&mut self, other: &Reservoir, rng: &mut impl Rng) {
        if self.values.len() + other.values.len() <= SAMPLE_CAPACITY
            && self.is_complete()
            && other.is_complete()
        {
            self.values.extend_from_slice(&other.values);
            self.seen += other.seen;
            return;
        }
        let (mut mine, mut theirs) = (self.values.clone(), other.values.clone());
        let (mut left_mine, mut left_theirs) = (self.seen, other.seen);
        let mut merged = Vec::with_capacity(SAMPLE_CAPACITY);
        while merged.len() < SAMPLE_CAPACITY && (!mine.is_empty() || !theirs.is_empty()) {
            let from_mine = if mine.is_empty() {
                false
            } else if theirs.is_empty() {
                true
            } else {
                rng.gen_range(0..left_mine + left_theirs) < left_mine
            };
            let (pool, left) = if from_mine {
                (&mut mine, &mut left_mine)
            } else {
                (&mut theirs, &mut left_theirs)
            };
            let pick = rng.gen_range(0..pool.len());
            merged.push(pool.swap_remove(pick));
            *left = left.saturating_sub(1);
        }
        self.values = merged;
        self.seen += other.seen;
    }
}

/// One feature's profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureProfile {
    Numeric {
        // Boxed: the sketch is most of the variant's size.
        sketch: Box<QuantileSketch>,
        /// Counts per value, while the feature has few distinct values.
        values: FrequentItems,
        /// A uniform sample; absent in a large reference (stored as sketches only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sample: Option<Reservoir>,
    },
    Categorical {
        categories: FrequentItems,
    },
}

impl FeatureProfile {
    fn numeric() -> Self {
        Self::Numeric {
            sketch: Box::new(QuantileSketch::new()),
            values: FrequentItems::new(VALUE_CAPACITY),
            sample: Some(Reservoir::default()),
        }
    }

    fn categorical() -> Self {
        Self::Categorical {
            categories: FrequentItems::new(CATEGORY_CAPACITY),
        }
    }

    /// Values counted (non-finite numbers are not).
    pub fn count(&self) -> u64 {
        match self {
            Self::Numeric { sketch, .. } => sketch.count(),
            Self::Categorical { categories } => categories.total(),
        }
    }

    /// `"numeric"` or `"categorical"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Numeric { .. } => "numeric",
            Self::Categorical { .. } => "categorical",
        }
    }

    fn add(&mut self, values: &Values, rng: &mut impl Rng) {
        match (self, values) {
            (
                Self::Numeric {
                    sketch,
                    values: counts,
                    sample,
                },
                Values::Numeric(v),
            ) => {
                for &x in v.iter().filter(|x| x.is_finite()) {
                    let x = x + 0.0; // -0.0 is 0.0
                    sketch.add(x);
                    counts.add(&x.to_string());
                    if let Some(sample) = sample {
                        sample.add(x, rng);
                    }
                }
            }
            (Self::Categorical { categories }, Values::Text(v)) => {
                v.iter().for_each(|s| categories.add(s));
            }
            // A feature whose type changed (a new version): its old kind stays.
            _ => {}
        }
    }

    fn merge(&mut self, other: &FeatureProfile, rng: &mut impl Rng) {
        match (self, other) {
            (
                Self::Numeric {
                    sketch,
                    values,
                    sample,
                },
                Self::Numeric {
                    sketch: other_sketch,
                    values: other_values,
                    sample: other_sample,
                },
            ) => {
                // Both sketches are built with the same parameters.
                let _ = sketch.merge(other_sketch);
                values.merge(other_values);
                match (sample.as_mut(), other_sample) {
                    (Some(mine), Some(theirs)) => mine.merge(theirs, rng),
                    _ => *sample = None,
                }
            }
            (Self::Categorical { categories }, Self::Categorical { categories: other }) => {
                categories.merge(other)
            }
            _ => {}
        }
    }
}

/// Inputs and outputs over some rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Rows (one per element of a call's batch dimension).
    pub rows: u64,
    /// Input features, by name.
    pub features: BTreeMap<String, FeatureProfile>,
    /// Output columns (the prediction), by name.
    pub outputs: BTreeMap<String, FeatureProfile>,
}

impl Profile {
    /// Adds `rows` rows whose inputs and outputs are these columns.
    pub fn add(&mut self, rows: u64, inputs: &[Column], outputs: &[Column], rng: &mut impl Rng) {
        self.rows += rows;
        for (side, columns) in [(&mut self.features, inputs), (&mut self.outputs, outputs)] {
            for column in columns {
                side.entry(column.name.clone())
                    .or_insert_with(|| match column.values {
                        Values::Numeric(_) => FeatureProfile::numeric(),
                        Values::Text(_) => FeatureProfile::categorical(),
                    })
                    .add(&column.values, rng);
            }
        }
    }

    /// Adds everything `other` counted.
    pub fn merge(&mut self, other: &Profile, rng: &mut impl Rng) {
        self.rows += other.rows;
        for (side, theirs) in [
            (&mut self.features, &other.features),
            (&mut self.outputs, &other.outputs),
        ] {
            for (name, feature) in theirs {
                match side.get_mut(name) {
                    Some(mine) => mine.merge(feature, rng),
                    None => {
                        side.insert(name.clone(), feature.clone());
                    }
                }
            }
        }
    }

    /// A reference of more than [`SAMPLE_CAPACITY`] rows is kept as sketches only.
    pub fn into_reference(mut self) -> Self {
        if self.rows > SAMPLE_CAPACITY as u64 {
            for feature in self.features.values_mut().chain(self.outputs.values_mut()) {
                if let FeatureProfile::Numeric { sample, .. } = feature {
                    *sample = None;
                }
            }
        }
        self
    }

    /// Whether numeric features are stored as raw values (a small reference).
    pub fn is_raw(&self) -> bool {
        self.features
            .values()
            .chain(self.outputs.values())
            .all(|f| match f {
                FeatureProfile::Numeric { sample, .. } => {
                    sample.as_ref().is_some_and(Reservoir::is_complete)
                }
                FeatureProfile::Categorical { categories } => categories.is_exact(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservoir_is_exact_while_it_fits_and_bounded_after() {
        let mut rng = rand::thread_rng();
        let mut a = Reservoir::default();
        let mut b = Reservoir::default();
        (0..400).for_each(|i| a.add(i as f64, &mut rng));
        (400..900).for_each(|i| b.add(i as f64, &mut rng));
        a.merge(&b, &mut rng);
        assert!(a.is_complete());
        let mut sorted = a.values.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(sorted, (0..900).map(|i| i as f64).collect::<Vec<_>>());
        let mut c = Reservoir::default();
        (0..5000).for_each(|i| c.add(i as f64, &mut rng));
        a.merge(&c, &mut rng);
        assert_eq!((a.seen, a.values.len()), (5900, SAMPLE_CAPACITY));
        assert!(!a.is_complete());
    }

    #[test]
    fn profiles_merge_and_a_large_reference_drops_its_samples() {
        let mut rng = rand::thread_rng();
        let column = |v: Vec<f64>| Column {
            name: "x".into(),
            values: Values::Numeric(v),
        };
        let mut p = Profile::default();
        p.add(3, &[column(vec![1.0, 2.0, f64::NAN])], &[], &mut rng);
        let mut q = Profile::default();
        q.add(2, &[column(vec![3.0, -0.0])], &[], &mut rng);
        p.merge(&q, &mut rng);
        assert_eq!(p.rows, 5);
        assert_eq!(p.features["x"].count(), 4);
        assert!(p.is_raw());
        let mut big = Profile::default();
        big.add(
            2000,
            &[column((0..2000).map(f64::from).collect())],
            &[],
            &mut rng,
        );
        let big = big.into_reference();
        assert!(!big.is_raw());
        let json = serde_json::to_string(&big).unwrap();
        let back: Profile = serde_json::from_str(&json).unwrap();
        assert_eq!(back.features["x"].count(), 2000);
    }
}
