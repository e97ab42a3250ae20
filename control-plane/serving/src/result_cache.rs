//! The result cache: identical requests to the same model version of the same organisation
//! answered from memory for the deployment's TTL.
//!
//! The key is (organisation, model version's file digest + number, digest of the canonical
//! inputs: names in order, dtypes, shapes and bytes), so a cached result is never served to
//! another organisation or another version. Entries are weighed by their output bytes under
//! a total budget, and each expires after the TTL its deployment had when it was stored.
//! A change another node made to an organisation (its invalidation log entry) drops every
//! entry of that organisation here ([`ResultCache::invalidate_org`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use wisp_host::NamedTensor;

/// Whether a response came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    Hit,
    Miss,
    /// The caller sent `Cache-Control: no-cache`, or the deployment does not cache.
    Bypass,
}

impl CacheStatus {
    /// The value of the `x-wisp-cache` response header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// A cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    org_id: String,
    version: String,
    inputs: [u8; 32],
}

impl CacheKey {
    /// The key of `inputs` to `version` (its sha256 and number) of a model of `org_id`.
    pub fn new(org_id: &str, model_id: &str, version: i64, inputs: &[NamedTensor]) -> Self {
        let mut hash = Sha256::new();
        for input in inputs {
            for part in [input.name.as_bytes(), input.tensor.ty.name().as_bytes()] {
                hash.update((part.len() as u64).to_le_bytes());
                hash.update(part);
            }
            hash.update((input.tensor.shape.len() as u64).to_le_bytes());
            for dim in &input.tensor.shape {
                hash.update(dim.to_le_bytes());
            }
            hash.update((input.tensor.data.len() as u64).to_le_bytes());
            hash.update(&input.tensor.data);
        }
        Self {
            org_id: org_id.to_owned(),
            version: format!("{model_id}/{version}"),
            inputs: hash.finalize().into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    outputs: Arc<Vec<NamedTensor>>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<CacheKey, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheCounters {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

/// The cache and its counters.
pub struct ResultCache {
    entries: Cache<CacheKey, Entry>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("counters", &self.counters())
            .finish()
    }
}

impl ResultCache {
    /// A cache holding at most `budget_bytes` of outputs.
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|_, entry: &Entry| {
                    let bytes: usize = entry
                        .outputs
                        .iter()
                        .map(|o| o.tensor.data.len() + o.name.len() + 64)
                        .sum();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached outputs for `key`, counting the hit or miss.
    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Vec<NamedTensor>>> {
        let found = self.entries.get(key).await.map(|entry| entry.outputs);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores outputs for `ttl`.
    pub async fn put(&self, key: CacheKey, outputs: Vec<NamedTensor>, ttl: Duration) {
        self.entries
            .insert(
                key,
                Entry {
                    outputs: Arc::new(outputs),
                    ttl,
                },
            )
            .await;
    }

    /// Forgets every entry of `org_id` (`None`: of every organisation).
    pub fn invalidate_org(&self, org_id: Option<&str>) {
        let Some(org_id) = org_id else {
            self.entries.invalidate_all();
            return;
        };
        let org_id = org_id.to_owned();
        if let Err(error) = self
            .entries
            .invalidate_entries_if(move |key, _| key.org_id == org_id)
        {
            tracing::warn!(%error, "failed to invalidate cached results; dropping them all");
            self.entries.invalidate_all();
        }
    }

    /// Hits, misses and live entries.
    pub fn counters(&self) -> CacheCounters {
        CacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.entry_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_host::Tensor;

    fn input(values: &[f32]) -> Vec<NamedTensor> {
        vec![NamedTensor::new(
            "input",
            Tensor::from_values(&[1, values.len() as u32], values),
        )]
    }

    #[tokio::test]
    async fn keys_separate_organisations_versions_and_inputs() {
        let cache = ResultCache::new(1 << 20);
        let key = CacheKey::new("org-a", "m", 1, &input(&[1.0, 2.0]));
        cache
            .put(key.clone(), input(&[9.0]), Duration::from_secs(60))
            .await;
        assert!(cache.get(&key).await.is_some());
        for other in [
            CacheKey::new("org-b", "m", 1, &input(&[1.0, 2.0])),
            CacheKey::new("org-a", "m", 2, &input(&[1.0, 2.0])),
            CacheKey::new("org-a", "m", 1, &input(&[1.0, 2.5])),
        ] {
            assert!(cache.get(&other).await.is_none(), "{other:?}");
        }
        let counters = cache.counters();
        assert_eq!((counters.hits, counters.misses), (1, 3));
    }

    #[tokio::test]
    async fn an_organisation_s_entries_can_be_dropped_alone() {
        let cache = ResultCache::new(1 << 20);
        let a = CacheKey::new("org-a", "m", 1, &input(&[1.0]));
        let b = CacheKey::new("org-b", "m", 1, &input(&[1.0]));
        for key in [&a, &b] {
            cache
                .put(key.clone(), input(&[9.0]), Duration::from_secs(60))
                .await;
        }
        cache.invalidate_org(Some("org-a"));
        assert!(cache.get(&a).await.is_none());
        assert!(cache.get(&b).await.is_some());
        cache.invalidate_org(None);
        assert!(cache.get(&b).await.is_none());
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let cache = ResultCache::new(1 << 20);
        let key = CacheKey::new("org-a", "m", 1, &input(&[1.0]));
        cache
            .put(key.clone(), input(&[9.0]), Duration::from_millis(50))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(cache.get(&key).await.is_none());
    }
}
