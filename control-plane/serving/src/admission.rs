//! Admission control in front of the runtime: request rates per API key and per
//! organisation (GCRA buckets, governor) and concurrent calls per organisation (its fair
//! share of the cores, [`super::fair_share`]), all sized from the organisation's plan.
//!
//! Limiters are cached by (owner, limit): a plan change takes effect on the next request,
//! with a fresh bucket, and no restart. Idle limiters are dropped after a while.
//!
//! Across nodes: each node allows its share of a plan's rate, the rate divided by the live
//! nodes of the fleet ([`Admission::set_fleet_size`], from the node registry's heartbeats),
//! rounded up. Traffic spread over the nodes (the proxy's job) gets the plan's rate; the
//! fleet as a whole never admits more than the rate plus one bucket per node (its burst)
//! plus `nodes − 1` per second of rounding, except while the node count changes: a node
//! that joins takes its share before the others have seen it (up to one heartbeat TTL at
//! `1/(n−1) + 1/n` of the rate), and a node that dies leaves the others at their smaller
//! share until its heartbeat expires. Traffic sent to one node only gets that node's share.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use moka::sync::Cache;

use crate::error::{Error, ErrorCode};
use crate::plans::Plan;

use super::fair_share::{DEFAULT_LINGER, FairShare, Slot};

/// How many times the plan's request rates the MLflow tracking API allows.
pub const TRACKING_RATE_FACTOR: u32 = 10;

/// The limiters of every organisation and key.
pub struct Admission {
    rates: Cache<(String, u32), Arc<DefaultDirectRateLimiter>>,
    /// Concurrent calls: never more than the machine's cores for one organisation, whatever
    /// its plan allows (inference is CPU-bound, so more calls than cores only take CPU time
    /// from the others), and a fair share of them while other organisations are busy.
    slots: FairShare,
    clock: DefaultClock,
    /// Live nodes sharing the plans' rates.
    fleet_size: AtomicU32,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Default for Admission {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(u32::try_from(cores).unwrap_or(u32::MAX))
    }
}

impl Admission {
    /// Limiters sharing `cores` between the organisations' concurrent calls.
    pub fn new(cores: u32) -> Self {
        let idle = Duration::from_secs(600);
        Self {
            rates: Cache::builder()
                .time_to_idle(idle)
                .max_capacity(100_000)
                .build(),
            slots: FairShare::new(cores, DEFAULT_LINGER),
            clock: DefaultClock::default(),
            fleet_size: AtomicU32::new(1),
        }
    }

    /// How many live nodes share the plans' rates (1: this node alone).
    pub fn set_fleet_size(&self, nodes: u32) {
        self.fleet_size.store(nodes.max(1), Ordering::Relaxed);
    }
}

/// Who is calling, for admission.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub org_id: &'a str,
    /// The API key, if the call is made with one (user sessions are limited per organisation).
    pub key_id: Option<&'a str>,
}

impl Admission {
    /// Takes one request from the key's and the organisation's buckets, or answers
    /// `rate_limited` with how long to wait.
    pub fn check_rate(&self, caller: Caller<'_>, plan: &Plan) -> Result<(), Error> {
        if let Some(key) = caller.key_id {
            self.take(
                format!("key:{key}"),
                plan.key_requests_per_second,
                "API key",
            )?;
        }
        self.take(
            format!("org:{}", caller.org_id),
            plan.org_requests_per_second,
            "organisation",
        )
    }

    /// Like [`Admission::check_rate`], for the MLflow tracking API: its own buckets, so
    /// logging never uses up a key's inference rate, [`TRACKING_RATE_FACTOR`] times as large
    /// (a training script logs in bursts of small calls).
    pub fn check_tracking_rate(&self, caller: Caller<'_>, plan: &Plan) -> Result<(), Error> {
        let scaled = |rate: u32| rate.saturating_mul(TRACKING_RATE_FACTOR);
        if let Some(key) = caller.key_id {
            self.take(
                format!("tracking-key:{key}"),
                scaled(plan.key_requests_per_second),
                "API key",
            )?;
        }
        self.take(
            format!("tracking-org:{}", caller.org_id),
            scaled(plan.org_requests_per_second),
            "organisation",
        )
    }

    fn take(&self, owner: String, per_second: u32, what: &str) -> Result<(), Error> {
        let rate = NonZeroU32::new(per_second.max(1)).expect("at least one");
        let nodes = self.fleet_size.load(Ordering::Relaxed).max(1);
        let share = NonZeroU32::new(rate.get().div_ceil(nodes)).expect("at least one");
        let limiter = self.rates.get_with((owner, share.get()), || {
            Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(share)))
        });
        limiter.check().map_err(|not_until| {
            Error::rate_limited(
                format!("this {what} may make {rate} requests per second"),
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    /// Waits (up to `wait`) for one of the organisation's concurrent-call slots, so one
    /// tenant cannot take every execution slot of the runtime nor slow the others down
    /// beyond a fair share of the cores.
    pub async fn enter(&self, org_id: &str, plan: &Plan, wait: Duration) -> Result<Slot, Error> {
        let limit = plan.max_concurrent_calls;
        self.slots.acquire(org_id, limit, wait).await.map_err(|_| {
            Error::new(
                ErrorCode::Overloaded,
                format!(
                    "the organisation's {} concurrent calls stayed busy for {} ms",
                    self.slots.share_of(org_id, limit),
                    wait.as_millis()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: u32, concurrent: u32) -> Plan {
        Plan {
            id: "test".into(),
            name: "Test".into(),
            max_upload_bytes: 1,
            compute_units_per_call: 1,
            max_memory_bytes: 1,
            deadline_ms: 1,
            max_output_bytes: 1,
            key_requests_per_second: rate,
            org_requests_per_second: rate * 2,
            max_concurrent_calls: concurrent,
            quotas: Default::default(),
            prices: Default::default(),
        }
    }

    #[test]
    fn keys_and_organisations_have_their_own_buckets() {
        let admission = Admission::default();
        let plan = plan(2, 1);
        let a = Caller {
            org_id: "org-a",
            key_id: Some("k1"),
        };
        assert!(admission.check_rate(a, &plan).is_ok());
        assert!(admission.check_rate(a, &plan).is_ok());
        let error = admission.check_rate(a, &plan).unwrap_err();
        assert_eq!(error.code(), ErrorCode::RateLimited);
        // Another key of the same organisation still has its own bucket (and the org's).
        let b = Caller {
            org_id: "org-a",
            key_id: Some("k2"),
        };
        assert!(admission.check_rate(b, &plan).is_ok());
        // Another organisation is untouched.
        let c = Caller {
            org_id: "org-b",
            key_id: Some("k3"),
        };
        assert!(admission.check_rate(c, &plan).is_ok());
        // A new plan is a new bucket.
        assert!(admission.check_rate(a, &self::plan(10, 1)).is_ok());
    }

    #[test]
    fn each_node_of_a_fleet_allows_its_share_of_the_rate() {
        let admission = Admission::default();
        admission.set_fleet_size(2);
        let plan = plan(4, 1);
        let a = Caller {
            org_id: "org-a",
            key_id: Some("k1"),
        };
        assert!(admission.check_rate(a, &plan).is_ok());
        assert!(admission.check_rate(a, &plan).is_ok());
        let error = admission.check_rate(a, &plan).unwrap_err();
        assert_eq!(error.code(), ErrorCode::RateLimited);
        // Alone again: the whole rate, in a fresh bucket.
        admission.set_fleet_size(1);
        for _ in 0..4 {
            assert!(admission.check_rate(a, &plan).is_ok());
        }
    }

    #[tokio::test]
    async fn no_plan_runs_more_calls_at_once_than_the_machine_has_cores() {
        let admission = Admission::new(2);
        let generous = plan(100, 48);
        let wait = Duration::from_millis(10);
        let _a = admission.enter("org-a", &generous, wait).await.unwrap();
        let _b = admission.enter("org-a", &generous, wait).await.unwrap();
        let third = admission.enter("org-a", &generous, wait).await.unwrap_err();
        assert_eq!(third.code(), ErrorCode::Overloaded);
    }

    #[tokio::test]
    async fn an_organisation_waits_for_its_own_slots_only() {
        let admission = Admission::default();
        let plan = plan(100, 1);
        let held = admission
            .enter("org-a", &plan, Duration::from_millis(10))
            .await
            .unwrap();
        let busy = admission
            .enter("org-a", &plan, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(busy.code(), ErrorCode::Overloaded);
        assert!(
            admission
                .enter("org-b", &plan, Duration::from_millis(10))
                .await
                .is_ok()
        );
        drop(held);
        assert!(
            admission
                .enter("org-a", &plan, Duration::from_millis(10))
                .await
                .is_ok()
        );
    }
}
