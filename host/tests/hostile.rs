//! Guests that try to exhaust their limits or reach outside their tenant each get their own
//! error, and the host keeps serving after every one.

mod common;

use common::*;
use std::time::Duration;
use wisp_host::{ModelRef, NamedTensor, RuntimeConfig, RuntimeError, TenantLimits, Tensor};
use wisp_test_artifacts::components;

/// The two tests that load the CPU with graph work take turns: a node of the long chain
/// slowed by the other test's huge product could overshoot the deadline by more than the
/// grace, and a stopped call would count as stuck.
static GRAPH_WORK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// A runtime of two execution slots whose calls wait for one at most `queue_timeout`:
/// easy to saturate, and a call that cannot get a slot soon says so.
fn two_slots(queue_timeout: Duration) -> Harness {
    Harness::with_config(RuntimeConfig {
        max_concurrent_instances: 2,
        queue_timeout,
        ..test_config()
    })
}

/// Limits whose deadline ends a stuck call long before anything it waits for.
fn short_deadline() -> TenantLimits {
    TenantLimits {
        deadline: Duration::from_millis(200),
        ..tight_limits()
    }
}

/// Runs every hostile call at once, with a call of another organisation among them, and
/// checks that the other organisation is answered, during the attack and after it, and
/// that every hostile call ends with `deadline_exceeded`.
async fn answered_under_attack<F>(harness: &Harness, hostile: Vec<F>)
where
    F: Future<Output = Result<(), RuntimeError>>,
{
    let (results, during) = tokio::join!(futures_join_all(hostile), async {
        // Let the hostile calls take the slots first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        predict_healthy(harness, &tight_limits()).await
    });
    during.expect("another organisation is answered during the attack");
    for result in results {
        let error = result.expect_err("a hostile call cannot succeed");
        assert_eq!(error.code(), "deadline_exceeded", "{error}");
    }
    predict_healthy(harness, &tight_limits())
        .await
        .expect("and after it");
}

/// Polls every future to completion together (the test crate has no `futures`).
async fn futures_join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(done) => *output = Some(done),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sleeping_guests_of_many_orgs_do_not_starve_another_org() {
    // Four organisations whose calls sleep for half a minute: each sleep ends at the
    // call's deadline, and its slot with it.
    let harness = two_slots(Duration::from_secs(3));
    let limits = short_deadline();
    let sleepers: Vec<ModelRef> = (0..4)
        .map(|org| {
            harness.model(
                &format!("hostile-{org}"),
                "sleeper",
                components::SLEEPER,
                None,
            )
        })
        .collect();
    let (runtime, limits) = (&harness.runtime, &limits);
    let calls = sleepers
        .iter()
        .map(|model| async move {
            runtime
                .predict(model, limits, sleep_for(30_000))
                .await
                .map(drop)
        })
        .collect();
    answered_under_attack(&harness, calls).await;
    assert_eq!(
        harness.runtime.stats().stuck_calls,
        0,
        "no call outlived its deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_whose_describe_sleeps_do_not_starve_another_org() {
    type PendingCall<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), RuntimeError>> + 'a>>;
    // An upload is inspected by asking its component for its signature; this one sleeps
    // there, as a deployed model's `describe` could.
    let harness = two_slots(Duration::from_secs(3));
    let limits = short_deadline();
    let slow = harness.model("hostile", "slow", components::SLOW_DESCRIBE, None);
    let (runtime, limits) = (&harness.runtime, &limits);
    let mut calls: Vec<PendingCall<'_>> = Vec::new();
    for _ in 0..3 {
        let component = wisp_test_artifacts::component(components::SLOW_DESCRIBE);
        calls.push(Box::pin(async move {
            runtime
                .describe_component(component, None, limits)
                .await
                .map(drop)
        }));
    }
    let slow = &slow;
    calls.push(Box::pin(async move {
        runtime.describe(slow, limits).await.map(drop)
    }));
    answered_under_attack(&harness, calls).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_graph_stops_between_nodes_at_its_deadline() {
    // 1,200 matrix products of the input with itself: seconds of backend work, which
    // epochs cannot interrupt; the run stops before the first node past the deadline. Each
    // node is small (a few ms), well inside the deadline's 10 % grace.
    let _turn = GRAPH_WORK.lock().await;
    let harness = two_slots(Duration::from_secs(3));
    let limits = short_deadline();
    let chain = harness.graph_model("hostile", "chain", graphs::matmul_chain(1200));
    let side = 256u32;
    let x = || {
        vec![NamedTensor::new(
            "x",
            Tensor::from_values(&[side, side], &vec![0.5f32; (side * side) as usize]),
        )]
    };
    let (runtime, limits, chain) = (&harness.runtime, &limits, &chain);
    let calls = (0..3)
        .map(|_| {
            let input = x();
            async move { runtime.predict(chain, limits, input).await.map(drop) }
        })
        .collect();
    answered_under_attack(&harness, calls).await;
    assert_eq!(
        harness.runtime.stats().stuck_calls,
        0,
        "no call outlived its deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_stuck_in_one_long_node_gives_its_slot_back() {
    // One product of two 3072 × 3072 matrices: one node of tens of GFLOP that nothing can
    // stop. The caller hears `deadline_exceeded` on time; the call's slot goes back to the
    // pool while its thread finishes, counted against its tenant's stuck calls.
    let _turn = GRAPH_WORK.lock().await;
    let harness = two_slots(Duration::from_secs(1));
    let limits = TenantLimits {
        deadline: Duration::from_millis(100),
        ..TenantLimits::default()
    };
    let product = harness.graph_model("hostile", "product", graphs::matmul_chain(1));
    let side = 3072u32;
    let x = || {
        vec![NamedTensor::new(
            "x",
            Tensor::from_values(&[side, side], &vec![0.5f32; (side * side) as usize]),
        )]
    };
    let (runtime, limits, product) = (&harness.runtime, &limits, &product);
    let calls = (0..2)
        .map(|_| {
            let input = x();
            async move { runtime.predict(product, limits, input).await.map(drop) }
        })
        .collect();
    answered_under_attack(&harness, calls).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_in_place_that_runs_long_gives_its_worker_back() {
    // A tenant whose calls are short runs in place, on the executor. The same call with
    // another input *value* runs a thousand times longer: it stops after a few times the
    // in-place threshold, runs again on the pool, and ends there at its deadline; it
    // never holds the executor thread for its whole deadline.
    let harness = Harness::with_config(RuntimeConfig {
        in_place_under: Duration::from_millis(5),
        low_priority_after: Duration::ZERO,
        ..test_config()
    });
    let model = harness.graph_model("org-a", "sines", graphs::range_sines(200));
    let n = |n: f32| vec![NamedTensor::new("n", Tensor::from_values(&[], &[n]))];
    let limits = TenantLimits {
        deadline: Duration::from_millis(200),
        ..TenantLimits::default()
    };
    for _ in 0..10 {
        harness
            .runtime
            .predict(&model, &limits, n(1.0))
            .await
            .expect("a short call");
    }
    assert_eq!(harness.runtime.stats().in_place_retries, 0);
    let error = harness
        .runtime
        .predict(&model, &limits, n(4_000_000.0))
        .await
        .expect_err("runs past its deadline");
    assert_eq!(error.code(), "deadline_exceeded", "{error}");
    assert_eq!(
        harness.runtime.stats().in_place_retries,
        1,
        "the long call left the executor thread"
    );
}
