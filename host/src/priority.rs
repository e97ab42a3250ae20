//! Where each call runs: in place, on the pool, or at low CPU priority, from how long the
//! tenant's recent calls took.
//!
//! A call predicted to be short (under [`crate::RuntimeConfig::in_place_under`], 250 µs by
//! default) runs on the thread that asked for it, a tokio worker, like any other short
//! piece of request work: the two thread hops to the blocking pool and back (worker →
//! blocking thread → worker, each a wake-up and a cold cache) cost more than a small
//! model's whole call, and under load the kernel's scheduling of those hops was a fifth of
//! the server's CPU. The prediction is the tenant's average call time, scaled up by how
//! much bigger this call's input is than its average input, so a tenant of one-row calls
//! that sends a 10,000-row batch goes to the pool. A call that runs longer than predicted
//! holds one worker for its duration (the other workers steal its queued tasks), and moves
//! its tenant to the pool at once: the average weighs each call 1/8, so one call of 8 × the
//! threshold (2 ms) or more does it. Calls of a tenant with no recent calls run on the
//! pool, where the runtime can give up on one stuck in the backend past its deadline.
//!
//! A long inference (a CNN over hundreds of rows) runs in the backend, where neither epochs
//! nor the runtime can preempt it; the kernel can. Calls of a tenant whose recent calls
//! took longer than [`crate::RuntimeConfig::low_priority_after`] on average run on a
//! separate pool of threads with a raised `nice` value, so that under contention the kernel
//! runs other tenants' short calls first. Alone, a low-priority thread still gets every idle
//! core: this orders work, it takes nothing away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use tokio::task::JoinHandle;

/// How much the low-priority threads raise their `nice` value (19 is the lowest priority).
const LOW_PRIORITY_NICE: i32 = 10;
/// How long a tenant's call-time average is remembered without calls.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Where one call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On the calling thread: a call predicted to be short.
    InPlace,
    /// On the runtime's blocking pool: a tenant with no recent calls, or middling ones.
    Pool,
    /// On the low-priority pool: a tenant whose calls are long.
    LowPriority,
}

/// Per-tenant call times, and the pool that runs the long ones.
pub(crate) struct Priorities {
    threshold: Duration,
    in_place_under: Duration,
    histories: Cache<String, Arc<History>>,
    low: Option<LowPriorityPool>,
}

/// Moving averages (weight 1/8) of a tenant's recent calls.
struct History {
    micros: AtomicU64,
    input_bytes: AtomicU64,
}

impl History {
    fn add(&self, micros: u64, input_bytes: u64) {
        for (average, sample) in [(&self.micros, micros), (&self.input_bytes, input_bytes)] {
            let old = average.load(Ordering::Relaxed);
            average.store(old - old / 8 + sample / 8, Ordering::Relaxed);
        }
    }

    /// The average call time, scaled up by how much bigger `input_bytes` is than the
    /// average input.
    fn predict(&self, input_bytes: u64) -> Duration {
        let micros = u128::from(self.micros.load(Ordering::Relaxed));
        let usual = u128::from(self.input_bytes.load(Ordering::Relaxed).max(1));
        let scaled = micros * u128::from(input_bytes).max(usual) / usual;
        Duration::from_micros(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

impl Priorities {
    /// Calls of tenants averaging over `threshold` run at low priority (never, when zero
    /// or when the pool cannot be started); calls predicted under `in_place_under`, in
    /// place.
    pub(crate) fn new(threshold: Duration, in_place_under: Duration, threads: usize) -> Self {
        let low = if threshold.is_zero() {
            None
        } else {
            match LowPriorityPool::start(threads) {
                Ok(pool) => Some(pool),
                Err(error) => {
                    tracing::warn!(%error, "no low-priority pool: every call runs at normal priority");
                    None
                }
            }
        };
        Self {
            threshold,
            in_place_under,
            histories: Cache::builder()
                .time_to_idle(FORGET_AFTER)
                .max_capacity(100_000)
                .build(),
            low,
        }
    }

    /// Where the tenant's next call, with `input_bytes` of input, runs.
    pub(crate) fn placement(&self, tenant: &str, input_bytes: u64) -> Placement {
        let Some(history) = self.histories.get(tenant) else {
            return Placement::Pool;
        };
        let average = Duration::from_micros(history.micros.load(Ordering::Relaxed));
        if self.low.is_some() && average > self.threshold {
            Placement::LowPriority
        } else if history.predict(input_bytes) < self.in_place_under {
            Placement::InPlace
        } else {
            Placement::Pool
        }
    }

    /// Adds one call's time and input size to the tenant's moving averages.
    pub(crate) fn record(&self, tenant: &str, took: Duration, input_bytes: u64) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut first = false;
        let history = self.histories.get_with_by_ref(tenant, || {
            first = true;
            Arc::new(History {
                micros: AtomicU64::new(micros),
                input_bytes: AtomicU64::new(input_bytes),
            })
        });
        if !first {
            history.add(micros, input_bytes);
        }
    }

    /// Sends the tenant's next calls to the pool: its last call could not run in place.
    /// They come back once their average falls under the threshold again.
    pub(crate) fn keep_on_pool(&self, tenant: &str) {
        let mut far_over = self.in_place_under.saturating_mul(8);
        if self.low.is_some() {
            // Not so far that it lands on the low-priority pool.
            far_over = far_over.min(self.threshold);
        }
        let far_over = u64::try_from(far_over.as_micros()).unwrap_or(u64::MAX);
        if let Some(history) = self.histories.get(tenant) {
            let micros = history.micros.load(Ordering::Relaxed);
            history
                .micros
                .store(micros.max(far_over), Ordering::Relaxed);
        }
    }

    /// Runs `work` on a blocking thread: a low-priority one when `low` (and there is a
    /// pool), else the caller's runtime's.
    pub(crate) fn spawn_blocking<R, F>(&self, low: bool, work: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match (&self.low, low) {
            (Some(pool), true) => pool.spawn_blocking(work),
            _ => tokio::task::spawn_blocking(work),
        }
    }
}

/// A tokio runtime used only for its blocking threads, each lowered in priority when it
/// starts.
struct LowPriorityPool {
    runtime: Option<tokio::runtime::Runtime>,
}

impl LowPriorityPool {
    fn start(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads.max(1))
            // WASI sleeps and the deadlines of waits (`bounded_waits.rs`) need timers here.
            .enable_time()
            .thread_name("wisp-low-priority")
            .on_thread_start(lower_this_thread)
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn spawn_blocking<R, F>(&self, work: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn_blocking(work)
    }
}

impl Drop for LowPriorityPool {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another runtime: let its
        // threads finish in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Raises the calling thread's `nice` value (on Linux, `nice` is per thread).
fn lower_this_thread() {
    #[cfg(unix)]
    // SAFETY: `nice` only adjusts the calling thread's priority; a failure (-1 with errno)
    // leaves it as it was, which is harmless.
    unsafe {
        libc::nice(LOW_PRIORITY_NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: u64 = 256;

    #[test]
    fn a_tenant_moves_between_placements_with_its_average() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_millis(1), 2);
        assert_eq!(
            priorities.placement("a", ROW),
            Placement::Pool,
            "no history yet"
        );
        priorities.record("a", Duration::from_micros(100), ROW);
        assert_eq!(priorities.placement("a", ROW), Placement::InPlace);
        for _ in 0..40 {
            priorities.record("a", Duration::from_millis(2), ROW);
        }
        assert_eq!(
            priorities.placement("a", ROW),
            Placement::Pool,
            "middling calls"
        );
        for _ in 0..40 {
            priorities.record("a", Duration::from_millis(20), ROW);
        }
        assert_eq!(priorities.placement("a", ROW), Placement::LowPriority);
        assert_eq!(
            priorities.placement("b", ROW),
            Placement::Pool,
            "averages are per tenant"
        );
        for _ in 0..40 {
            priorities.record("a", Duration::from_micros(100), ROW);
        }
        assert_eq!(
            priorities.placement("a", ROW),
            Placement::InPlace,
            "the average follows recent calls"
        );
    }

    #[test]
    fn a_call_much_bigger_than_the_tenants_usual_ones_goes_to_the_pool() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_millis(1), 2);
        for _ in 0..40 {
            priorities.record("a", Duration::from_micros(100), ROW);
        }
        assert_eq!(priorities.placement("a", ROW), Placement::InPlace);
        assert_eq!(priorities.placement("a", 0), Placement::InPlace, "smaller");
        assert_eq!(
            priorities.placement("a", 5 * ROW),
            Placement::InPlace,
            "predicted 500 µs"
        );
        assert_eq!(
            priorities.placement("a", 20 * ROW),
            Placement::Pool,
            "predicted 2 ms"
        );
        assert_eq!(priorities.placement("a", u64::MAX), Placement::Pool);
    }

    #[test]
    fn one_long_call_moves_a_tenant_to_the_pool() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_millis(1), 2);
        for _ in 0..40 {
            priorities.record("a", Duration::from_micros(50), ROW);
        }
        priorities.record("a", Duration::from_millis(8), ROW);
        assert_eq!(priorities.placement("a", ROW), Placement::Pool);
    }

    #[test]
    fn a_tenant_kept_on_the_pool_comes_back_with_its_next_short_calls() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_micros(250), 2);
        for _ in 0..40 {
            priorities.record("a", Duration::from_micros(40), ROW);
        }
        priorities.keep_on_pool("a");
        assert_eq!(
            priorities.placement("a", ROW),
            Placement::Pool,
            "not low priority"
        );
        let mut calls = 0;
        while priorities.placement("a", ROW) == Placement::Pool {
            priorities.record("a", Duration::from_micros(40), ROW);
            calls += 1;
        }
        assert!((10..=20).contains(&calls), "back after {calls} calls");
    }

    #[test]
    fn a_zero_threshold_keeps_every_call_at_normal_priority() {
        let priorities = Priorities::new(Duration::ZERO, Duration::ZERO, 2);
        priorities.record("a", Duration::from_secs(1), ROW);
        assert_eq!(priorities.placement("a", ROW), Placement::Pool);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn low_priority_calls_run_on_niced_threads() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_millis(1), 2);
        // SAFETY: reads the calling thread's nice value.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let normal = priorities.spawn_blocking(false, nice).await.unwrap();
        let low = priorities.spawn_blocking(true, nice).await.unwrap();
        assert_eq!(low, (normal + LOW_PRIORITY_NICE).min(19));
    }
}
