//! Compute units: the one measure of work a call did, covering both the Wasm code (fuel)
//! and the inference backend running outside Wasm (CPU time).
//!
//! **1 compute unit (CU) = 1,000 units of fuel = 1 µs of inference-backend time.**
//! A thousand Wasm instructions take about a microsecond on one core with Cranelift, so a
//! CU is roughly one microsecond of one CPU core whichever side did the work, and a million
//! CU is about one CPU-second. Calls are metered, billed and budgeted in this one unit: the
//! plan's per-call budget (`compute_units_per_call`) is given to Wasm as fuel
//! ([`FUEL_PER_COMPUTE_UNIT`] each) and the call fails with `fuel_exhausted` when Wasm and
//! backend together went over it.

pub use crate::plans::FUEL_PER_COMPUTE_UNIT;

/// Compute units in one microsecond of inference-backend time.
pub const COMPUTE_UNITS_PER_BACKEND_MICROSECOND: u64 = 1;

/// The compute units of a call that consumed `fuel` and ran `backend_us` microseconds in
/// the inference backend. Fuel rounds up, so any Wasm work costs at least one unit.
pub fn compute_units(fuel: u64, backend_us: u64) -> u64 {
    fuel.div_ceil(FUEL_PER_COMPUTE_UNIT)
        .saturating_add(backend_us.saturating_mul(COMPUTE_UNITS_PER_BACKEND_MICROSECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_and_backend_time_add_up_at_the_fixed_rate() {
        assert_eq!(compute_units(0, 0), 0);
        assert_eq!(compute_units(1, 0), 1);
        assert_eq!(compute_units(1_000, 0), 1);
        assert_eq!(compute_units(1_001, 0), 2);
        assert_eq!(compute_units(2_000_000, 250), 2_250);
        assert_eq!(compute_units(u64::MAX, u64::MAX), u64::MAX);
    }
}
