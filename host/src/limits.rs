//! Per-tenant limits on one model instance, and the `ResourceLimiter` that enforces the
//! memory part of them.
//!
//! `TenantLimits` is owned by the control plane (it comes from the organisation's plan)
//! and handed to the runtime with every call.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What one call of one tenant may consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Fuel budget for the Wasm code of one call (roughly one unit per Wasm instruction).
    pub fuel: u64,
    /// Cap on all linear memories of one instance together, in bytes.
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

/// Enforces [`TenantLimits::max_memory_bytes`] across every memory of an instance and
/// records the peak, so a failed call can be told apart as a memory-limit error.
#[derive(Debug)]
pub(crate) struct InstanceLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    memory_bytes: usize,
    pub(crate) peak_memory_bytes: usize,
    pub(crate) memory_limit_hit: bool,
}

impl InstanceLimiter {
    pub(crate) fn new(limits: &TenantLimits) -> Self {
        Self {
            max_memory_bytes: usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX),
            max_table_elements: usize::try_from(limits.max_table_elements).unwrap_or(usize::MAX),
            memory_bytes: 0,
            peak_memory_bytes: 0,
            memory_limit_hit: false,
        }
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
        if total > self.max_memory_bytes {
            // Refuse the growth (memory.grow returns -1); a guest that cannot cope traps,
            // and the flag lets the runtime report that trap as a memory-limit error.
            self.memory_limit_hit = true;
            return Ok(false);
        }
        self.memory_bytes = total;
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
        let mut limiter = InstanceLimiter::new(&limits);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        // A second memory may not take what the first already holds.
        assert!(!limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_limit_hit);
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert_eq!(limiter.peak_memory_bytes, 100);
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
