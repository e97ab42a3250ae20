//! Host memory a call makes the process allocate outside its sandbox (wasi-nn tensors,
//! graph intermediates whose size depends on input values) is charged to the call's
//! memory limit: the process's resident set stays bounded while each attack runs, and the
//! caller gets `memory_limit_exceeded`.
//!
//! One test, in a binary of its own: the peak resident set is per process, and no other
//! test may run beside it.

mod common;

use common::*;
use wisp_host::{ModelRef, NamedTensor, RuntimeError, TenantLimits, Tensor};
use wisp_test_artifacts::components;

/// The tenant's memory limit in these tests.
const LIMIT: u64 = 64 << 20;
/// How far the peak resident set may rise above where it was during one attack: the
/// limit twice (inside and outside the sandbox; a lifted copy) and room for the runtime.
const ALLOWED_RISE: u64 = 2 * LIMIT + (64 << 20);

/// A field of `/proc/self/status` in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib << 10
}

/// Runs `model` on `inputs`, and checks that it fails with `memory_limit_exceeded` while
/// the peak resident set rises by less than [`ALLOWED_RISE`].
async fn bounded(harness: &Harness, what: &str, model: &ModelRef, inputs: Vec<NamedTensor>) {
    let limits = TenantLimits {
        max_memory_bytes: LIMIT,
        ..tight_limits()
    };
    // Resets VmHWM to the current resident set (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let before = status_bytes("VmRSS:");
    let error = harness
        .runtime
        .predict(model, &limits, inputs)
        .await
        .map(drop)
        .expect_err(what);
    let peak = status_bytes("VmHWM:");
    assert_eq!(
        error,
        RuntimeError::MemoryLimitExceeded { limit_bytes: LIMIT },
        "{what}"
    );
    let rise = peak.saturating_sub(before);
    assert!(
        rise < ALLOWED_RISE,
        "{what}: the process grew by {} MiB",
        rise >> 20
    );
}

fn scalar(name: &str, value: i64) -> NamedTensor {
    NamedTensor::new(name, Tensor::from_values(&[], &[value]))
}

#[tokio::test(flavor = "multi_thread")]
async fn host_allocations_of_a_call_are_charged_to_its_memory_limit() {
    let harness = Harness::new();
    // Warm every model first so loading is not counted.
    let range = harness.graph_model("org-a", "range", graphs::range());
    let bomb = harness.model("org-a", "bomb", components::TENSOR_BOMB, None);
    let small = TenantLimits {
        max_memory_bytes: LIMIT,
        ..tight_limits()
    };
    harness
        .runtime
        .predict(&range, &small, vec![scalar("n", 10)])
        .await
        .expect("a small range");
    harness
        .runtime
        .predict(&bomb, &small, vec![scalar("mib", 1), scalar("count", 2)])
        .await
        .expect("a few small tensors");

    // 2^26 int64 values: 512 MiB in one node.
    bounded(
        &harness,
        "Range fed by an input",
        &range,
        vec![scalar("n", 1 << 26)],
    )
    .await;
    // 128 host tensors copied from one 8 MiB buffer: 1 GiB outside linear memory.
    bounded(
        &harness,
        "host tensors",
        &bomb,
        vec![scalar("mib", 8), scalar("count", 128)],
    )
    .await;
}
