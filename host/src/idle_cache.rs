//! A cache whose entries disappear when idle: the mechanism behind scale-to-zero for both
//! compiled components and loaded graphs.
//!
//! Concurrent requests for a missing key share one load; entries expire after an idle TTL
//! and are evicted early when the weighted budget is full. Loads, hits and evictions are
//! counted for metrics and tests.

use crate::error::RuntimeError;
use moka::notification::RemovalCause;
use serde::Serialize;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one cache since the runtime started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Times a value was built because it was missing (a cold start).
    pub loads: u64,
    /// Times a value was found already loaded.
    pub hits: u64,
    /// Values dropped because they were idle too long or the budget was full.
    pub evictions: u64,
    /// Values held now.
    pub entries: u64,
    /// Their total weight (bytes for graphs, entries for components).
    pub weight: u64,
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    hits: AtomicU64,
    evictions: AtomicU64,
}

pub(crate) struct IdleCache<K, V> {
    entries: moka::future::Cache<K, V>,
    counters: Arc<Counters>,
}

impl<K, V> IdleCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache holding at most `budget` total weight, dropping entries idle for `idle_ttl`.
    pub(crate) fn new(
        budget: u64,
        idle_ttl: Duration,
        weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let evictions = Arc::clone(&counters);
        let entries = moka::future::Cache::builder()
            .max_capacity(budget)
            .weigher(weigher)
            .time_to_idle(idle_ttl)
            .eviction_listener(move |_key, _value, cause| {
                if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                    evictions.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self { entries, counters }
    }

    /// Returns the value for `key`, loading it with `load` if missing, and whether it was
    /// already warm. Concurrent callers for the same missing key wait for a single load.
    pub(crate) async fn get_or_load<F>(&self, key: K, load: F) -> Result<(V, bool), RuntimeError>
    where
        F: Future<Output = Result<V, RuntimeError>>,
    {
        if let Some(value) = self.entries.get(&key).await {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((value, true));
        }
        let counters = &self.counters;
        let entry = self
            .entries
            .entry(key)
            .or_try_insert_with(async move {
                counters.loads.fetch_add(1, Ordering::Relaxed);
                load.await
            })
            .await
            .map_err(|e| RuntimeError::clone(&e))?;
        Ok((entry.into_value(), false))
    }

    /// Applies pending expirations and evictions now (moka otherwise does it lazily).
    pub(crate) async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            loads: self.counters.loads.load(Ordering::Relaxed),
            hits: self.counters.hits.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            entries: self.entries.entry_count(),
            weight: self.entries.weighted_size(),
        }
    }
}
