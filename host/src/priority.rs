//! Which calls run at low CPU priority: those of tenants whose recent calls are long.
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

/// Per-tenant call times, and the pool that runs the long ones.
pub(crate) struct Priorities {
    threshold: Duration,
    /// Moving average of each tenant's call time, in microseconds.
    averages: Cache<String, Arc<AtomicU64>>,
    low: Option<LowPriorityPool>,
}

impl Priorities {
    /// Calls of tenants averaging over `threshold` run at low priority (never, when zero
    /// or when the pool cannot be started).
    pub(crate) fn new(threshold: Duration, threads: usize) -> Self {
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
            averages: Cache::builder()
                .time_to_idle(FORGET_AFTER)
                .max_capacity(100_000)
                .build(),
            low,
        }
    }

    /// Whether the tenant's calls are long enough to run at low priority.
    pub(crate) fn is_long(&self, tenant: &str) -> bool {
        self.low.is_some()
            && self.averages.get(tenant).is_some_and(|average| {
                Duration::from_micros(average.load(Ordering::Relaxed)) > self.threshold
            })
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

    #[test]
    fn a_tenant_is_long_once_its_average_passes_the_threshold() {
        let priorities = Priorities::new(Duration::from_millis(5), 2);
        assert!(!priorities.is_long("a"));
        priorities.record("a", Duration::from_millis(1));
        assert!(!priorities.is_long("a"));
        for _ in 0..40 {
            priorities.record("a", Duration::from_millis(20));
        }
        assert!(priorities.is_long("a"));
        assert!(!priorities.is_long("b"), "averages are per tenant");
        for _ in 0..40 {
            priorities.record("a", Duration::from_millis(1));
        }
        assert!(!priorities.is_long("a"), "the average follows recent calls");
    }

    #[test]
    fn a_zero_threshold_keeps_every_call_at_normal_priority() {
        let priorities = Priorities::new(Duration::ZERO, 2);
        priorities.record("a", Duration::from_secs(1));
        assert!(!priorities.is_long("a"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn low_priority_calls_run_on_niced_threads() {
        let priorities = Priorities::new(Duration::from_millis(5), 2);
        // SAFETY: reads the calling thread's nice value.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let normal = priorities.spawn_blocking(false, nice).await.unwrap();
        let low = priorities.spawn_blocking(true, nice).await.unwrap();
        assert_eq!(low, (normal + LOW_PRIORITY_NICE).min(19));
    }
}
