//! Guests that try to exhaust their limits or reach outside their tenant each get their own
//! error, and the host keeps serving after every one.

mod common;

use common::*;
use std::time::Duration;
use wisp_host::{ModelRef, NamedTensor, RuntimeConfig, RuntimeError, TenantLimits, Tensor};
use wisp_test_artifacts::components;

/// Runs `hostile` under `limits`, returns its error, then checks a normal model still works.
async fn expect_failure(
    harness: &Harness,
    hostile: &ModelRef,
    limits: &TenantLimits,
    inputs: Vec<NamedTensor>,
) -> RuntimeError {
    let error = harness
        .runtime
        .predict(hostile, limits, inputs)
        .await
        .expect_err("the hostile guest must fail");
    predict_healthy(harness, limits)
        .await
        .expect("a normal request succeeds afterwards");
    error
}

/// One iris prediction of `org-a`: a normal request.
async fn predict_healthy(harness: &Harness, limits: &TenantLimits) -> Result<(), RuntimeError> {
    let healthy = harness.onnx_model("org-a", "iris_logreg.onnx");
    let input = Tensor::from_values(&[1, 4], &[5.1f32, 3.5, 1.4, 0.2]);
    harness
        .runtime
        .predict(&healthy, limits, vec![NamedTensor::new("input", input)])
        .await
        .map(drop)
}

/// Fuel enough to spin until the 300 ms deadline.
fn spin_limits() -> TenantLimits {
    TenantLimits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(300),
        ..tight_limits()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_hits_the_deadline() {
    let harness = Harness::new();
    let model = harness.model("org-a", "spin", components::SPIN_LOOP, None);
    let limits = spin_limits();
    let error = expect_failure(&harness, &model, &limits, vec![]).await;
    assert_eq!(
        error,
        RuntimeError::DeadlineExceeded {
            deadline: Duration::from_millis(300)
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_allocation_hits_the_memory_limit() {
    let harness = Harness::new();
    let model = harness.model("org-a", "bomb", components::ALLOC_BOMB, None);
    let limits = TenantLimits {
        deadline: Duration::from_secs(20),
        ..tight_limits()
    };
    let error = expect_failure(&harness, &model, &limits, vec![]).await;
    assert_eq!(
        error,
        RuntimeError::MemoryLimitExceeded {
            limit_bytes: 32 << 20
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_burn_exhausts_the_budget() {
    let harness = Harness::new();
    let model = harness.model("org-a", "burn", components::FUEL_BURN, None);
    let limits = TenantLimits {
        fuel: 50_000_000,
        deadline: Duration::from_secs(60),
        ..tight_limits()
    };
    let error = expect_failure(&harness, &model, &limits, vec![]).await;
    assert_eq!(error, RuntimeError::FuelExhausted { budget: 50_000_000 });
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_traps_instead_of_crashing() {
    let harness = Harness::new();
    let model = harness.model("org-a", "deep", components::DEEP_RECURSION, None);
    let limits = TenantLimits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_secs(20),
        ..tight_limits()
    };
    let error = expect_failure(&harness, &model, &limits, vec![]).await;
    assert_eq!(error.code(), "guest_trap", "{error}");
    assert!(
        error.to_string().contains("call stack exhausted"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_is_a_trap() {
    let harness = Harness::new();
    let model = harness.model("org-a", "unreachable", components::UNREACHABLE, None);
    let error = expect_failure(&harness, &model, &tight_limits(), vec![]).await;
    assert_eq!(error.code(), "guest_trap", "{error}");
    assert!(error.to_string().contains("unreachable"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_message_reaches_the_caller() {
    let harness = Harness::new();
    let model = harness.model("org-a", "panicker", components::PANICKER, None);
    let error = expect_failure(&harness, &model, &tight_limits(), vec![]).await;
    assert_eq!(error.code(), "guest_trap", "{error}");
    assert!(
        error.to_string().contains("model exploded on 0 inputs"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn giant_output_hits_the_output_limit() {
    let harness = Harness::new();
    let model = harness.model("org-a", "giant", components::GIANT_OUTPUT, None);
    let size = Tensor::from_values(&[1], &[8i64 << 20]);
    let error = expect_failure(
        &harness,
        &model,
        &tight_limits(),
        vec![NamedTensor::new("bytes", size)],
    )
    .await;
    assert_eq!(
        error,
        RuntimeError::OutputTooLarge {
            limit: 1 << 20,
            got: 8 << 20
        }
    );
    // Under the limit the same component is fine.
    let small = Tensor::from_values(&[1], &[1000i64]);
    let outputs = harness
        .runtime
        .predict(
            &model,
            &tight_limits(),
            vec![NamedTensor::new("bytes", small)],
        )
        .await
        .unwrap()
        .outputs;
    assert_eq!(outputs[0].tensor.data.len(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn hoarding_host_resources_hits_the_table_cap() {
    let harness = Harness::new();
    let model = harness.model("org-a", "hoard", components::TENSOR_HOARD, None);
    let error = expect_failure(&harness, &model, &tight_limits(), vec![]).await;
    assert_eq!(error.code(), "guest_trap", "{error}");
    assert!(
        error.to_string().contains("too many live host resources"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_name_reaches_another_tenants_graph() {
    let harness = Harness::new();
    // Tenant B's model is loaded and warm.
    let victim = harness.onnx_model("org-b", "iris_logreg.onnx");
    let row = || {
        NamedTensor::new(
            "input",
            Tensor::from_values(&[1, 4], &[5.1f32, 3.5, 1.4, 0.2]),
        )
    };
    harness.predict(&victim, vec![row()]).await.unwrap();
    // Tenant A serves the same file (so the same digest) through a snooping component.
    let snoop = harness.model(
        "org-a",
        "snoop",
        components::GRAPH_SNOOP,
        Some("iris_logreg.onnx"),
    );
    let name_input = |name: &str| {
        NamedTensor::new(
            "graph",
            Tensor::from_values(&[name.len() as u32], name.as_bytes()),
        )
    };

    // Its own graph resolves: the mechanism works.
    let own = harness
        .predict(&snoop, vec![name_input(&snoop.graph_name()), row()])
        .await;
    assert!(own.is_ok(), "own graph: {own:?}");

    let victim_digest = victim.graph.as_ref().unwrap().to_string();
    let guesses = [
        victim.graph_name(),
        "iris_logreg:1".into(),
        format!("org-b/{}", victim.graph_name()),
        format!("org-b:{}", victim.graph_name()),
        victim_digest.clone(),
        format!("org-b/{victim_digest}"),
        format!("../org-b/{}", victim.graph_name()),
        "*".into(),
        String::new(),
        format!("{} ", snoop.graph_name()),
    ];
    for guess in guesses {
        let error = harness
            .predict(&snoop, vec![name_input(&guess), row()])
            .await
            .expect_err(&guess);
        assert!(
            error.to_string().contains("failed to find graph"),
            "{guess:?}: {error}"
        );
    }
    let stats = harness.runtime.stats();
    assert_eq!(stats.graphs.loads, 2, "one graph per tenant, never shared");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_without_a_graph_sees_no_graphs() {
    // Even its own graph name resolves to nothing when the version has no graph.
    let harness = Harness::new();
    let model = harness.model("org-a", "snoop", components::GRAPH_SNOOP, None);
    let name = "snoop:1";
    let error = harness
        .predict(
            &model,
            vec![NamedTensor::new(
                "graph",
                Tensor::from_values(&[name.len() as u32], name.as_bytes()),
            )],
        )
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("failed to find graph"),
        "{error}"
    );
}

/// A harness where every call after a tenant's first runs in place, on the calling worker.
fn in_place_harness() -> Harness {
    Harness::with_config(RuntimeConfig {
        in_place_under: Duration::from_secs(3_600),
        low_priority_after: Duration::ZERO,
        ..test_config()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_calls_run_in_place_fail_the_same_way() {
    // Every call after a tenant's first runs in place (on the calling tokio worker) with
    // this configuration: the limits hold there too, each failure keeps its own error, and
    // the next call still succeeds. A guest that writes its panic message to stderr
    // (`unreachable` here) finishes in place too: its stderr is ready, so the write does
    // not block on the runtime (which would panic on a worker and run the call again).
    let harness = in_place_harness();
    predict_healthy(&harness, &tight_limits())
        .await
        .expect("the first call, on the pool");

    let spin = harness.model("org-a", "spin", components::SPIN_LOOP, None);
    let limits = spin_limits();
    let error = expect_failure(&harness, &spin, &limits, vec![]).await;
    assert_eq!(
        error,
        RuntimeError::DeadlineExceeded {
            deadline: Duration::from_millis(300)
        }
    );

    let bomb = harness.model("org-a", "bomb", components::ALLOC_BOMB, None);
    let error = expect_failure(&harness, &bomb, &tight_limits(), vec![]).await;
    assert_eq!(
        error,
        RuntimeError::MemoryLimitExceeded {
            limit_bytes: 32 << 20
        }
    );

    let unreachable = harness.model("org-a", "unreachable", components::UNREACHABLE, None);
    let error = expect_failure(&harness, &unreachable, &tight_limits(), vec![]).await;
    assert_eq!(error.code(), "guest_trap", "{error}");

    let panicker = harness.model("org-a", "panicker", components::PANICKER, None);
    let error = expect_failure(&harness, &panicker, &tight_limits(), vec![]).await;
    assert!(
        error.to_string().contains("model exploded on 0 inputs"),
        "the panic message written to stderr in place reaches the caller: {error}"
    );
    assert_eq!(
        harness.runtime.stats().in_place_retries,
        0,
        "no call had to run again on the pool"
    );
}

/// The sleeper's input: how long it sleeps.
fn sleep_for(ms: i64) -> Vec<NamedTensor> {
    vec![NamedTensor::new("ms", Tensor::from_values(&[1], &[ms]))]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_must_block_runs_again_on_the_pool() {
    // A guest's sleep blocks on the runtime, which a call in place cannot do: the call runs
    // again on the pool, and the tenant's next calls go there directly.
    let harness = in_place_harness();
    let sleeper = harness.model("org-a", "sleeper", components::SLEEPER, None);
    let limits = TenantLimits {
        deadline: Duration::from_secs(10),
        ..tight_limits()
    };
    for call in 0..3 {
        harness
            .runtime
            .predict(&sleeper, &limits, sleep_for(1))
            .await
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
    }
    assert_eq!(
        harness.runtime.stats().in_place_retries,
        1,
        "the first call ran on the pool, the second in place and again, the third on the pool"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_run_again_reports_the_tenants_deadline() {
    let harness = in_place_harness();
    let sleeper = harness.model("org-a", "sleeper", components::SLEEPER, None);
    let limits = spin_limits();
    // A short first call, on the pool, so that the second is predicted short.
    harness
        .runtime
        .predict(&sleeper, &limits, sleep_for(0))
        .await
        .expect("a short sleep");
    // Sleeping past the deadline: in place it cannot block, so it runs again on the pool
    // with what is left of the deadline, where the wall-clock timeout stops it.
    let error = harness
        .runtime
        .predict(&sleeper, &limits, sleep_for(1_000))
        .await
        .expect_err("sleeps past the deadline");
    assert_eq!(harness.runtime.stats().in_place_retries, 1);
    assert_eq!(
        error,
        RuntimeError::DeadlineExceeded {
            deadline: limits.deadline
        }
    );
}
