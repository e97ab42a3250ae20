//! A mergeable frequent-items sketch for a categorical value: Misra–Gries with a bounded
//! number of counters, merged as Agarwal et al. ("Mergeable summaries", PODS 2012) do.
//!
//! While the distinct values fit in `capacity` counters nothing is dropped and every count
//! is exact ([`FrequentItems::is_exact`]) — the usual case for a categorical feature or a
//! class label. Past that, each reduction subtracts the `(capacity + 1)`-th largest count
//! from every counter and drops the ones that reach zero; a kept count then undercounts
//! its value by at most [`FrequentItems::max_error`] (≤ `total / (capacity + 1)`), and a
//! dropped value occurred at most that often.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters kept by [`FrequentItems::default`].
pub const DEFAULT_CAPACITY: usize = 64;

/// Counts of the most frequent values of a categorical feature, mergeable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequentItems {
    capacity: usize,
    counts: BTreeMap<String, u64>,
    total: u64,
    max_error: u64,
}

impl Default for FrequentItems {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl FrequentItems {
    /// An empty sketch keeping at most `capacity` counters (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            counts: BTreeMap::new(),
            total: 0,
            max_error: 0,
        }
    }

    /// Counts one occurrence of `item`.
    pub fn add(&mut self, item: &str) {
        self.add_count(item, 1);
    }

    /// Counts `count` occurrences of `item`.
    pub fn add_count(&mut self, item: &str, count: u64) {
        if count == 0 {
            return;
        }
        match self.counts.get_mut(item) {
            Some(c) => *c += count,
            None => {
                self.counts.insert(item.to_owned(), count);
            }
        }
        self.total += count;
        self.reduce();
    }

    /// Adds the counts of `other` (kept with `self`'s capacity).
    pub fn merge(&mut self, other: &FrequentItems) {
        for (item, count) in &other.counts {
            *self.counts.entry(item.clone()).or_default() += count;
        }
        self.total += other.total;
        self.max_error += other.max_error;
        self.reduce();
    }

    /// Misra–Gries reduction: subtract the `(capacity + 1)`-th largest count from all.
    fn reduce(&mut self) {
        if self.counts.len() <= self.capacity {
            return;
        }
        let mut values: Vec<u64> = self.counts.values().copied().collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        let cut = values[self.capacity];
        self.counts.retain(|_, c| {
            *c -= cut;
            *c > 0
        });
        self.max_error += cut;
    }

    /// How many values were counted in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether every count is exact (nothing was ever dropped).
    pub fn is_exact(&self) -> bool {
        self.max_error == 0
    }

    /// How much any count may be below the true one.
    pub fn max_error(&self) -> u64 {
        self.max_error
    }

    /// The counter limit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The estimated count of `item` (a lower bound; exact if [`Self::is_exact`]).
    pub fn count(&self, item: &str) -> u64 {
        self.counts.get(item).copied().unwrap_or(0)
    }

    /// The kept counters, by value.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// Occurrences not attributed to a kept value (0 while exact).
    pub fn unattributed(&self) -> u64 {
        self.total - self.counts.values().sum::<u64>()
    }

    /// The `k` most frequent values, largest count first (ties by value).
    pub fn top_k(&self, k: usize) -> Vec<(&str, u64)> {
        let mut items: Vec<(&str, u64)> = self
            .counts
            .iter()
            .map(|(item, count)| (item.as_str(), *count))
            .collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        items.truncate(k);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn exact_while_the_values_fit() {
        let mut sketch = FrequentItems::new(4);
        for item in ["a", "b", "a", "c", "a", "b"] {
            sketch.add(item);
        }
        assert!(sketch.is_exact());
        assert_eq!(sketch.top_k(2), vec![("a", 3), ("b", 2)]);
        assert_eq!(sketch.total(), 6);
        assert_eq!(sketch.count("z"), 0);
    }

    #[test]
    fn counts_stay_within_the_error_bound() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut truth: BTreeMap<String, u64> = BTreeMap::new();
        let mut sketch = FrequentItems::new(10);
        for _ in 0..20_000 {
            // Zipf-like, P(v = k) = 1/(k(k+1)): a few heavy values and a long tail
            let item = format!("v{}", (1.0 / rng.gen_range(f64::EPSILON..1.0)) as u64);
            *truth.entry(item.clone()).or_default() += 1;
            sketch.add(&item);
        }
        assert!(!sketch.is_exact());
        assert!(sketch.max_error() <= sketch.total() / 11);
        for (item, &true_count) in &truth {
            let estimate = sketch.count(item);
            assert!(estimate <= true_count);
            assert!(true_count - estimate <= sketch.max_error(), "{item}");
        }
        assert_eq!(
            sketch.top_k(2),
            vec![("v1", sketch.count("v1")), ("v2", sketch.count("v2"))]
        );
    }

    #[test]
    fn merge_of_exact_sketches_is_the_sketch_of_the_union() {
        let mut left = FrequentItems::new(8);
        let mut right = FrequentItems::new(8);
        let mut whole = FrequentItems::new(8);
        for (i, item) in ["x", "y", "z", "x", "w", "x", "y"].iter().enumerate() {
            if i % 2 == 0 { &mut left } else { &mut right }.add(item);
            whole.add(item);
        }
        left.merge(&right);
        assert_eq!(left, whole);
    }

    #[test]
    fn merged_bound_holds_past_capacity() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut truth: BTreeMap<String, u64> = BTreeMap::new();
        let mut merged = FrequentItems::new(6);
        for _ in 0..20 {
            let mut minute = FrequentItems::new(6);
            for _ in 0..300 {
                let item = format!("c{}", rng.gen_range(0..3) * rng.gen_range(0..12));
                *truth.entry(item.clone()).or_default() += 1;
                minute.add(&item);
            }
            merged.merge(&minute);
        }
        assert_eq!(merged.total(), 6000);
        for (item, &true_count) in &truth {
            assert!(true_count - merged.count(item) <= merged.max_error());
        }
        let json = serde_json::to_string(&merged).unwrap();
        assert_eq!(
            serde_json::from_str::<FrequentItems>(&json).unwrap(),
            merged
        );
    }
}
