//! What one call consumed, returned with every prediction for metering and billing.

use serde::Serialize;
use std::time::Duration;

/// Resources one call used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    /// Fuel consumed by the Wasm code.
    pub fuel_consumed: u64,
    /// Wall-clock time of the call, from entering the runtime to the outputs (cold loads included).
    #[serde(with = "micros")]
    pub wall_time: Duration,
    /// Time spent inside the inference backend.
    #[serde(with = "micros")]
    pub inference_time: Duration,
    /// Largest total size of the instance's linear memories, in bytes.
    pub peak_memory_bytes: u64,
    /// Bytes of tensor data passed in.
    pub input_bytes: u64,
    /// Bytes of tensor data returned.
    pub output_bytes: u64,
    /// Whether the compiled component was already in memory.
    pub component_warm: bool,
    /// Whether the graph was already loaded (`true` for models without a graph).
    pub graph_warm: bool,
    /// Of `wall_time`, the time spent finding or loading the component and graph (a cold
    /// load when either was not warm). For metrics; not part of the usage record.
    #[serde(skip)]
    pub load_time: Duration,
    /// Of `wall_time`, the time spent waiting for an execution slot. For metrics; not part
    /// of the usage record.
    #[serde(skip)]
    pub queue_time: Duration,
}

mod micros {
    use serde::Serializer;
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}
