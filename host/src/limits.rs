//! Per-tenant limits on one model instance, the `ResourceLimiter` that enforces the
//! memory part of them, and [`CallMemory`]: what one call holds in memory inside the
//! sandbox (linear memories) and outside it (host tensors, graph intermediates), counted
//! together against the tenant's memory limit.
//!
//! `TenantLimits` is owned by the control plane (it comes from the organisation's plan)
//! and handed to the runtime with every call.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What one call of one tenant may consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Fuel budget for the Wasm code of one call (roughly one unit per Wasm instruction).
    pub fuel: u64,
    /// Cap on what one call holds in memory, in bytes: all linear memories of its
    /// instance together with what the host holds for it (wasi-nn tensors, the graph's
    /// intermediate values during a compute).
    pub max_memory_bytes: u64,
    /// Wall-clock deadline for one call, inference included.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Cap on the elements of all tables of one instance.
    pub max_table_elements: u64,
    /// Cap on live host resources (tensors, graphs, contexts, …) of one instance.
    pub max_resources: usize,
    /// Cap on the total bytes of the outputs of one call.
    pub max_output_bytes: u64,
    /// Log lines one call may write through the host interface; the rest are dropped.
    pub max_log_lines: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            max_memory_bytes: 256 << 20,
            deadline: Duration::from_secs(10),
            max_table_elements: 100_000,
            max_resources: 1_000,
            max_output_bytes: 64 << 20,
            max_log_lines: 100,
        }
    }
}

/// What one call holds in memory: its linear memories and what the host keeps for it.
/// Shared by the instance's limiter and its wasi-nn context (atomics: the backend's
/// contexts must be `Sync`; one call only ever touches it from one thread at a time).
#[derive(Debug)]
pub(crate) struct CallMemory {
    limit: usize,
    linear: AtomicUsize,
    host: AtomicUsize,
}

impl CallMemory {
    pub(crate) fn new(limits: &TenantLimits) -> Arc<Self> {
        Arc::new(Self {
            limit: usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX),
            linear: AtomicUsize::new(0),
            host: AtomicUsize::new(0),
        })
    }

    /// Bytes the call may still take, in or out of the sandbox.
    pub(crate) fn available(&self) -> usize {
        let used = self.linear.load(Ordering::Relaxed) + self.host.load(Ordering::Relaxed);
        self.limit.saturating_sub(used)
    }

    /// Counts `bytes` more held by the host for this call, if they fit.
    pub(crate) fn try_add_host(&self, bytes: usize) -> bool {
        if bytes > self.available() {
            return false;
        }
        self.host.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// The host let go of `bytes` it held for this call.
    pub(crate) fn remove_host(&self, bytes: usize) {
        self.host.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn host_bytes(&self) -> usize {
        self.host.load(Ordering::Relaxed)
    }
}

/// Enforces [`TenantLimits::max_memory_bytes`] across every memory of an instance, together
/// with what the host holds for the call ([`CallMemory`]), and records the peak of linear
/// memory, so a failed call can be told apart as a memory-limit error.
#[derive(Debug)]
pub(crate) struct InstanceLimiter {
    memory: Arc<CallMemory>,
    max_table_elements: usize,
    memory_bytes: usize,
    pub(crate) peak_memory_bytes: usize,
    pub(crate) memory_limit_hit: bool,
}

impl InstanceLimiter {
    pub(crate) fn new(limits: &TenantLimits, memory: Arc<CallMemory>) -> Self {
        Self {
            memory,
            max_table_elements: usize::try_from(limits.max_table_elements).unwrap_or(usize::MAX),
            memory_bytes: 0,
            peak_memory_bytes: 0,
            memory_limit_hit: false,
        }
    }

    /// The shared account this limiter grows linear memory against.
    pub(crate) fn memory(&self) -> &Arc<CallMemory> {
        &self.memory
    }
}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_bytes - current.min(self.memory_bytes) + desired;
        if total.saturating_add(self.memory.host_bytes()) > self.memory.limit {
            // Refuse the growth (memory.grow returns -1); a guest that cannot cope traps,
            // and the flag lets the runtime report that trap as a memory-limit error.
            self.memory_limit_hit = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        self.memory.linear.store(total, Ordering::Relaxed);
        self.peak_memory_bytes = self.peak_memory_bytes.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_cap_covers_all_memories_together() {
        let limits = TenantLimits {
            max_memory_bytes: 100,
            ..TenantLimits::default()
        };
        let mut limiter = InstanceLimiter::new(&limits, CallMemory::new(&limits));
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        // A second memory may not take what the first already holds.
        assert!(!limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_limit_hit);
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert_eq!(limiter.peak_memory_bytes, 100);
    }

    #[test]
    fn host_memory_and_linear_memory_share_the_limit() {
        let limits = TenantLimits {
            max_memory_bytes: 100,
            ..TenantLimits::default()
        };
        let memory = CallMemory::new(&limits);
        let mut limiter = InstanceLimiter::new(&limits, Arc::clone(&memory));
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert_eq!(memory.available(), 40);
        assert!(
            !memory.try_add_host(41),
            "the host may not take what the guest holds"
        );
        assert!(memory.try_add_host(30));
        assert!(
            !limiter.memory_growing(60, 80, None).unwrap(),
            "nor the guest what the host holds"
        );
        memory.remove_host(30);
        assert!(limiter.memory_growing(60, 80, None).unwrap());
    }

    #[test]
    fn limits_parse_with_defaults_and_reject_unknown_keys() {
        let limits: TenantLimits =
            serde_json::from_str(r#"{"fuel": 5, "deadline": "250ms"}"#).unwrap();
        assert_eq!(limits.fuel, 5);
        assert_eq!(limits.deadline, Duration::from_millis(250));
        assert_eq!(limits.max_log_lines, TenantLimits::default().max_log_lines);
        assert!(serde_json::from_str::<TenantLimits>(r#"{"fuels": 5}"#).is_err());
    }
}
