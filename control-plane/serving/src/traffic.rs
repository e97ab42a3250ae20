//! Traffic splitting: which version of a deployment a call runs (weighted variants for A/B
//! tests and canaries, sticky on a request key), whether it is mirrored to a shadow version,
//! and per-variant counts, errors and latencies.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

pub use crate::deployments::{Shadow, SplitError, Variant, validate};

/// A point in 0..100 for a call: from the request key (the same key always lands on the
/// same point, so a user sticks to a variant) or at random.
fn point(route_key: Option<&str>, salt: &str) -> u32 {
    match route_key {
        Some(key) => {
            let digest = Sha256::new()
                .chain_update(salt.as_bytes())
                .chain_update(key.as_bytes())
                .finalize();
            u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) % 100
        }
        None => rand::thread_rng().gen_range(0..100),
    }
}

/// The version a call runs.
pub fn pick(traffic: &[Variant], route_key: Option<&str>) -> i64 {
    let at = point(route_key, "variant");
    let mut cumulative = 0;
    for variant in traffic {
        cumulative += variant.weight;
        if at < cumulative {
            return variant.version;
        }
    }
    traffic.last().map_or(0, |v| v.version)
}

/// Whether a call is mirrored to the shadow.
pub fn mirrored(shadow: &Shadow, route_key: Option<&str>) -> bool {
    point(route_key, "shadow") < shadow.percent
}

/// Whether a variant serves answers or shadows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Live,
    Shadow,
}

/// Counts and latencies of one version in one role.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariantStats {
    pub version: i64,
    pub role: Role,
    pub calls: u64,
    pub errors: u64,
    /// Median latency of the last calls (up to 1,000), in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency of the last calls (up to 1,000), in microseconds.
    pub p99_us: u64,
}

#[derive(Debug, Default)]
struct Counter {
    calls: u64,
    errors: u64,
    /// A ring of recent latencies in microseconds.
    recent: Vec<u64>,
    next: usize,
}

const RECENT: usize = 1000;

/// Per-variant statistics of every deployment, since the process started.
#[derive(Debug, Default)]
pub struct TrafficStats {
    counters: Mutex<HashMap<(String, i64, Role), Counter>>,
}

impl TrafficStats {
    /// Records one call of `version` of the model `model_id`.
    pub fn record(&self, model_id: &str, version: i64, role: Role, ok: bool, latency: Duration) {
        let mut counters = self.counters.lock().expect("stats lock");
        let counter = counters
            .entry((model_id.to_owned(), version, role))
            .or_default();
        counter.calls += 1;
        counter.errors += u64::from(!ok);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if counter.recent.len() < RECENT {
            counter.recent.push(micros);
        } else {
            counter.recent[counter.next] = micros;
        }
        counter.next = (counter.next + 1) % RECENT;
    }

    /// The statistics of one model's variants, by version and role.
    pub fn of_model(&self, model_id: &str) -> Vec<VariantStats> {
        let counters = self.counters.lock().expect("stats lock");
        let mut stats: Vec<VariantStats> = counters
            .iter()
            .filter(|((model, _, _), _)| model == model_id)
            .map(|((_, version, role), counter)| {
                let mut sorted = counter.recent.clone();
                sorted.sort_unstable();
                let quantile = |q: f64| {
                    sorted
                        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                        .copied()
                        .unwrap_or(0)
                };
                VariantStats {
                    version: *version,
                    role: *role,
                    calls: counter.calls,
                    errors: counter.errors,
                    p50_us: quantile(0.5),
                    p99_us: quantile(0.99),
                }
            })
            .collect();
        stats.sort_by_key(|s| (s.version, s.role == Role::Shadow));
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(weights: &[(i64, u32)]) -> Vec<Variant> {
        weights
            .iter()
            .map(|&(version, weight)| Variant { version, weight })
            .collect()
    }

    #[test]
    fn splits_are_validated() {
        assert_eq!(validate(&split(&[(1, 90), (2, 10)]), None), Ok(1));
        assert_eq!(validate(&split(&[(1, 50), (2, 50)]), None), Ok(1));
        assert_eq!(
            validate(&split(&[(1, 90), (2, 20)]), None),
            Err(SplitError::Weights(110))
        );
        assert_eq!(
            validate(&split(&[(1, 100), (2, 0)]), None),
            Err(SplitError::Weights(100))
        );
        assert_eq!(
            validate(&split(&[(1, 50), (1, 50)]), None),
            Err(SplitError::Duplicate(1))
        );
        assert_eq!(validate(&[], None), Err(SplitError::Empty));
        let bad_shadow = Shadow {
            version: 3,
            percent: 0,
        };
        assert_eq!(
            validate(&split(&[(1, 100)]), Some(&bad_shadow)),
            Err(SplitError::ShadowPercent)
        );
    }

    #[test]
    fn a_request_key_sticks_to_one_variant_and_keys_spread_by_weight() {
        let traffic = split(&[(1, 80), (2, 20)]);
        let first = pick(&traffic, Some("user-42"));
        for _ in 0..10 {
            assert_eq!(pick(&traffic, Some("user-42")), first);
        }
        let canary = (0..2000)
            .filter(|i| pick(&traffic, Some(&format!("user-{i}"))) == 2)
            .count();
        assert!(
            (300..=500).contains(&canary),
            "{canary} of 2000 keys on the 20% canary"
        );
    }

    #[test]
    fn statistics_count_calls_errors_and_latency_per_role() {
        let stats = TrafficStats::default();
        for ms in 1..=100 {
            stats.record("m", 1, Role::Live, ms != 100, Duration::from_millis(ms));
        }
        stats.record("m", 2, Role::Shadow, true, Duration::from_millis(5));
        stats.record("other", 1, Role::Live, true, Duration::from_millis(5));
        let of_m = stats.of_model("m");
        assert_eq!(of_m.len(), 2);
        assert_eq!((of_m[0].calls, of_m[0].errors), (100, 1));
        assert!(
            (50_000..=51_000).contains(&of_m[0].p50_us),
            "{}",
            of_m[0].p50_us
        );
        assert_eq!(of_m[1].role, Role::Shadow);
    }
}
