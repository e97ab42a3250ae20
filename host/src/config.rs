//! Process-wide runtime settings: the engine's pools, the caches and their budgets.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How the runtime is sized. Per-tenant limits are [`crate::TenantLimits`], given per call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Instances that may run at once (the execution slots; the pooling allocator has room
    /// for these and for `max_stuck_calls` more).
    pub max_concurrent_instances: u32,
    /// Calls given up on at their deadline while still running (one long backend node)
    /// that no longer hold an execution slot; past this, such a call keeps its slot.
    pub max_stuck_calls: u32,
    /// A tenant with this many stuck calls gets `overloaded` until one of them ends.
    pub max_stuck_calls_per_tenant: u32,
    /// How long a call may wait for a free execution slot before it is `overloaded`.
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// The largest linear memory any tenant may be allowed (pool slot size), in bytes.
    pub max_memory_bytes_per_instance: u64,
    /// Wasm stack size limit; deep recursion past it traps.
    pub max_wasm_stack_bytes: usize,
    /// Granularity of wall-clock deadlines (the epoch tick).
    #[serde(with = "humantime_serde")]
    pub epoch_tick: Duration,
    /// A component or graph unused this long is dropped: scale-to-zero.
    #[serde(with = "humantime_serde")]
    pub idle_ttl: Duration,
    /// Memory budget for loaded graphs, weighed by model file size, in bytes.
    pub graph_cache_bytes: u64,
    /// Most compiled components held at once.
    pub component_cache_entries: u64,
    /// How long a call waits for its model to be compiled and loaded on a cold start.
    #[serde(with = "humantime_serde")]
    pub load_timeout: Duration,
    /// Directory of precompiled components; `None` compiles on every cold start.
    pub precompiled_dir: Option<PathBuf>,
    /// Calls of a tenant whose recent calls took longer than this on average run on
    /// low-priority threads, so other tenants' short calls are scheduled first; zero
    /// turns this off.
    #[serde(with = "humantime_serde")]
    pub low_priority_after: Duration,
    /// Calls predicted to take less than this (the tenant's average call time, scaled by
    /// input size) run on the calling thread instead of hopping to a blocking thread and
    /// back; zero turns this off. Keep it short: such a call holds an executor thread.
    #[serde(with = "humantime_serde")]
    pub in_place_under: Duration,
    /// Bytes the precompiled component directory may hold; the least recently used files
    /// are deleted past it.
    pub precompiled_cache_bytes: u64,
    /// Bounds on ONNX files, checked before they are decoded (at upload and at load).
    pub onnx_limits: crate::OnnxLimits,
    /// The backend of graphs whose deployment names none (the `_on` methods of
    /// [`crate::Runtime`] take a deployment's own choice).
    pub onnx_backend: crate::OnnxBackend,
    /// Bounds on components, checked before they are compiled (at upload and at load).
    pub component_limits: crate::ComponentLimits,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_concurrent_instances: 64,
            max_stuck_calls: 16,
            max_stuck_calls_per_tenant: 2,
            queue_timeout: Duration::from_secs(30),
            max_memory_bytes_per_instance: 1 << 30,
            max_wasm_stack_bytes: 512 << 10,
            epoch_tick: Duration::from_millis(1),
            idle_ttl: Duration::from_secs(300),
            graph_cache_bytes: 2 << 30,
            component_cache_entries: 1_000,
            load_timeout: Duration::from_secs(60),
            precompiled_dir: None,
            low_priority_after: Duration::from_millis(5),
            in_place_under: Duration::from_micros(250),
            precompiled_cache_bytes: 1 << 30,
            onnx_limits: crate::OnnxLimits::default(),
            onnx_backend: crate::OnnxBackend::default(),
            component_limits: crate::ComponentLimits::default(),
        }
    }
}
