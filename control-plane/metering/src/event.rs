//! The usage event: what one inference call did, recorded exactly once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wisp_host::UsageRecord;

use super::compute::compute_units;

/// Which deployment variant served a call. Shadow calls mirror traffic: they are metered
/// but never billed to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Primary,
    Canary,
    Shadow,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Primary => "primary",
            Variant::Canary => "canary",
            Variant::Shadow => "shadow",
        }
    }
}

/// Who made a call: an API key or a signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    ApiKey(String),
    User(String),
}

impl Caller {
    /// `key:<id>` or `user:<id>`: how rollups and the usage API group by caller.
    pub fn label(&self) -> String {
        match self {
            Caller::ApiKey(id) => format!("key:{id}"),
            Caller::User(id) => format!("user:{id}"),
        }
    }
}

impl From<&crate::access::Principal> for Caller {
    fn from(principal: &crate::access::Principal) -> Self {
        match principal {
            crate::access::Principal::ApiKey { id, .. } => Caller::ApiKey(id.clone()),
            crate::access::Principal::User { id, .. } => Caller::User(id.clone()),
        }
    }
}

/// One inference call as metered. `outcome` is `ok` or the call's error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Unique, minted before the call: inserting the same event twice is a no-op.
    pub id: String,
    pub org_id: String,
    pub caller: Caller,
    pub model_id: String,
    pub model_name: String,
    pub version: i64,
    pub variant: Variant,
    pub outcome: String,
    pub cache_hit: bool,
    pub compute_units: u64,
    pub fuel: u64,
    pub wall_us: u64,
    pub inference_us: u64,
    pub peak_memory_bytes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Milliseconds since the Unix epoch, when the call began.
    pub at_ms: i64,
    /// The runtime had to compile the component or load the graph for this call (it was
    /// not in memory). Outbox lines written before the field existed read as warm.
    #[serde(default)]
    pub cold_start: bool,
    /// For a cold start, how long finding and loading the component and graph took, in
    /// microseconds (0 for a warm call and for outbox lines written before the field).
    #[serde(default)]
    pub cold_load_us: u64,
}

/// The outcome of a successful call.
pub const OK: &str = "ok";

impl UsageEvent {
    /// Whether the call is billed (and counts against the calls quota): it succeeded and
    /// was not a shadow copy. Cache hits are billed calls with no compute.
    pub fn billable(&self) -> bool {
        self.outcome == OK && self.variant != Variant::Shadow
    }

    /// Compute units billed for this call.
    pub fn billed_compute_units(&self) -> u64 {
        if self.billable() {
            self.compute_units
        } else {
            0
        }
    }

    /// Fills the measurements from the runtime's record of the call.
    pub fn measure(&mut self, usage: &UsageRecord) {
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.fuel = usage.fuel_consumed;
        self.inference_us = micros(usage.inference_time);
        self.wall_us = micros(usage.wall_time);
        self.peak_memory_bytes = usage.peak_memory_bytes;
        self.bytes_in = usage.input_bytes;
        self.bytes_out = usage.output_bytes;
        self.compute_units = compute_units(self.fuel, self.inference_us);
        self.cold_start = !usage.component_warm || !usage.graph_warm;
        self.cold_load_us = if self.cold_start {
            micros(usage.load_time)
        } else {
            0
        };
    }
}

#[cfg(test)]
pub(crate) fn sample(id: &str, at_ms: i64) -> UsageEvent {
    UsageEvent {
        id: id.to_owned(),
        org_id: "org-1".into(),
        caller: Caller::ApiKey("key-1".into()),
        model_id: "model-1".into(),
        model_name: "iris".into(),
        version: 1,
        variant: Variant::Primary,
        outcome: OK.into(),
        cache_hit: false,
        compute_units: 10,
        fuel: 5_000,
        wall_us: 100,
        inference_us: 5,
        peak_memory_bytes: 65_536,
        bytes_in: 16,
        bytes_out: 8,
        at_ms,
        cold_start: false,
        cold_load_us: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_successful_non_shadow_calls_are_billed() {
        let mut event = sample("a", 0);
        assert!(event.billable());
        assert_eq!(event.billed_compute_units(), 10);
        event.variant = Variant::Shadow;
        assert!(!event.billable());
        assert_eq!(event.billed_compute_units(), 0);
        event.variant = Variant::Canary;
        event.outcome = "fuel_exhausted".into();
        assert!(!event.billable());
    }

    #[test]
    fn events_round_trip_through_json() {
        let event = sample("a", 1_700_000_000_000);
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<UsageEvent>(&line).unwrap(), event);
    }

    #[test]
    fn outbox_lines_without_cold_start_still_load_as_warm() {
        let mut event = sample("a", 1_700_000_000_000);
        event.cold_start = true;
        let mut line = serde_json::to_value(&event).unwrap();
        line.as_object_mut().unwrap().remove("cold_start");
        let old: UsageEvent = serde_json::from_value(line).unwrap();
        assert!(!old.cold_start);
        assert_eq!(old.id, event.id);
    }

    #[test]
    fn a_call_that_loaded_its_component_or_graph_is_a_cold_start() {
        let mut event = sample("a", 0);
        let warm = UsageRecord {
            component_warm: true,
            graph_warm: true,
            ..UsageRecord::default()
        };
        event.measure(&warm);
        assert!(!event.cold_start);
        event.measure(&UsageRecord {
            graph_warm: false,
            ..warm.clone()
        });
        assert!(event.cold_start);
        event.measure(&UsageRecord {
            component_warm: false,
            ..warm
        });
        assert!(event.cold_start);
    }
}
