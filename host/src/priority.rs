//! Where each call runs: in place, on the pool, or at low CPU priority, from how long the
//! tenant's recent calls took.
//!
//! A short call (a tenant whose recent calls average under
//! [`crate::RuntimeConfig::in_place_under`], 1 ms by default) runs on the thread that asked
//! for it, inside `tokio::task::block_in_place`: the tokio worker hands its other tasks to
//! another thread for the duration, so the executor keeps going, and the call saves the two
//! thread hops (worker → blocking thread → worker) that cost more than a small model's
//! whole inference when the worker would otherwise sleep. The runtime does this only while
//! no other call runs: under load the workers are awake anyway, and handing a worker's
//! tasks to another thread on every call costs more than the hop. Calls of a tenant with no
//! recent calls run on the blocking pool, where the runtime can give up on one stuck in the
//! backend past its deadline. The average weighs each call 1/8, so one call of 8 ms or more
//! moves a short-call tenant back to the pool at once.
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
    /// On the calling thread, inside `block_in_place`: a tenant whose calls are short.
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
    /// Moving average of each tenant's call time, in microseconds.
    averages: Cache<String, Arc<AtomicU64>>,
    low: Option<LowPriorityPool>,
}

impl Priorities {
    /// Calls of tenants averaging over `threshold` run at low priority (never, when zero
    /// or when the pool cannot be started); under `in_place_under`, in place.
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
            averages: Cache::builder()
                .time_to_idle(FORGET_AFTER)
                .max_capacity(100_000)
                .build(),
            low,
        }
    }

    /// Where the tenant's next call runs. In place only on a multi-threaded tokio runtime,
    /// the one kind whose workers can hand their tasks over.
    pub(crate) fn placement(&self, tenant: &str) -> Placement {
        let Some(average) = self.averages.get(tenant) else {
            return Placement::Pool;
        };
        let average = Duration::from_micros(average.load(Ordering::Relaxed));
        if self.low.is_some() && average > self.threshold {
            Placement::LowPriority
        } else if average < self.in_place_under && can_block_in_place() {
            Placement::InPlace
        } else {
            Placement::Pool
        }
    }

    /// Adds one call's time to the tenant's moving average (weight 1/8).
    pub(crate) fn record(&self, tenant: &str, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let average = self
            .averages
            .get_with_by_ref(tenant, || Arc::new(AtomicU64::new(sample)));
        let old = average.load(Ordering::Relaxed);
        let new = old - old / 8 + sample / 8;
        average.store(new, Ordering::Relaxed);
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

/// Whether `tokio::task::block_in_place` may be called here: inside a multi-threaded
/// runtime (it panics in a current-thread one).
fn can_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_moves_between_placements_with_its_average() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_millis(1), 2);
        assert_eq!(priorities.placement("a"), Placement::Pool, "no history yet");
        priorities.record("a", Duration::from_micros(100));
        assert_eq!(priorities.placement("a"), Placement::InPlace);
        for _ in 0..40 {
            priorities.record("a", Duration::from_millis(2));
        }
        assert_eq!(priorities.placement("a"), Placement::Pool, "middling calls");
        for _ in 0..40 {
            priorities.record("a", Duration::from_millis(20));
        }
        assert_eq!(priorities.placement("a"), Placement::LowPriority);
        assert_eq!(
            priorities.placement("b"),
            Placement::Pool,
            "averages are per tenant"
        );
        for _ in 0..40 {
            priorities.record("a", Duration::from_micros(100));
        }
        assert_eq!(
            priorities.placement("a"),
            Placement::InPlace,
            "the average follows recent calls"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_never_runs_calls_in_place() {
        let priorities = Priorities::new(Duration::from_millis(5), Duration::from_millis(1), 2);
        priorities.record("a", Duration::from_micros(100));
        assert_eq!(priorities.placement("a"), Placement::Pool);
    }

    #[test]
    fn a_zero_threshold_keeps_every_call_at_normal_priority() {
        let priorities = Priorities::new(Duration::ZERO, Duration::ZERO, 2);
        priorities.record("a", Duration::from_secs(1));
        assert_eq!(priorities.placement("a"), Placement::Pool);
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
