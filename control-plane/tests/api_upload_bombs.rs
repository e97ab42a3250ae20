//! Hostile uploads through the real router and the real inspector (bounds in-process, the
//! load and the compile in children of the `wisp` binary): each is refused with its own
//! `details.reason`, the server stays up and its memory stays where it was.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use proptest::prelude::*;
use wisp::inspect::{InspectError, ModelInspector};
use wisp_test_artifacts::{bombs, fixture};

/// The process's peak resident memory, from `/proc/self/status`.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib << 10
}

/// What an upload may add to the server's peak memory: the body, staged and read back,
/// and the walk's bookkeeping; far below what decoding or folding a bomb takes.
const RSS_GROWTH_LIMIT: u64 = 192 << 20;

async fn refused(app: &TestApp, model: &str, bytes: Vec<u8>) -> Reply {
    let admin = app.admin().await;
    app.model(&admin, ORG, model).await;
    let blobs = app.blob_count();
    let reply = app.upload(ORG, model, &admin, bytes).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    assert_eq!(app.blob_count(), blobs, "a refused upload stores nothing");
    reply
}

/// The server still takes a real model after a refusal.
async fn still_serves(app: &TestApp) {
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    let reply = app
        .upload(ORG, "iris", &admin, fixture("iris_logreg.onnx"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn millions_of_empty_nodes_are_refused_before_decoding() {
    let app = TestApp::serving().await;
    // Two bytes per node in the file, hundreds once decoded: about 1 GB inside prost.
    let bomb = bombs::onnx_empty_nodes(3_000_000);
    let before = peak_rss_bytes();
    let reply = refused(&app, "nodes", bomb).await;
    assert_eq!(reply.code(), "invalid_model");
    assert_eq!(
        reply.body["details"]["reason"], "too_many_nodes",
        "{reply:?}"
    );
    assert_eq!(reply.body["details"]["limit"], 100_000);
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(grown < RSS_GROWTH_LIMIT, "peak RSS grew by {grown} bytes");
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn constant_folding_bombs_are_refused_without_the_allocation() {
    let app = TestApp::serving_with(|config| config.inspection.memory_bytes = 1 << 30).await;
    let before = peak_rss_bytes();

    // The plain case: the shape is an initializer; the pre-check computes the fold.
    let plain = refused(
        &app,
        "plain",
        bombs::onnx_constant_of_shape(&[1 << 20, 1 << 12]),
    )
    .await;
    assert_eq!(plain.code(), "invalid_model");
    assert_eq!(
        plain.body["details"]["reason"], "constant_too_large",
        "{plain:?}"
    );

    // The shape is computed (a Concat the pre-check does not follow): tract's optimiser
    // folds it into 4 GiB inside the inspection child, which has 1 GiB.
    let computed = refused(
        &app,
        "computed",
        bombs::onnx_concat_constant_of_shape(1 << 16, 1 << 14),
    )
    .await;
    assert_eq!(computed.code(), "invalid_model");
    assert_eq!(
        computed.body["details"]["reason"], "inspection_memory_exceeded",
        "{computed:?}"
    );
    assert_eq!(computed.body["details"]["limit"], 1u64 << 30);

    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(grown < RSS_GROWTH_LIMIT, "peak RSS grew by {grown} bytes");
    still_serves(&app).await;
}

/// The budget is what the job may take, whatever the binary's size or the allocator's
/// reservations: a fold of 512 MiB does not fit in 256 MiB, and a plain model loads every
/// time under the smallest budget (an absolute limit, below what the child had mapped
/// once the allocator reserved its first arena, failed the allocator's bookkeeping at
/// random: 1 in 300 loads at 1 GiB, 1 in 30 at 256 MiB).
#[test]
fn the_inspection_budget_is_the_jobs_own() {
    let mut config = wisp::config::Config::default();
    config.inspection.memory_bytes = 256 << 20;
    let inspector = sandboxed_inspector(&config);
    match inspector.inspect(&bombs::onnx_concat_constant_of_shape(1 << 15, 1 << 12)) {
        Err(InspectError::Refused { reason, limit, .. }) => {
            assert_eq!(reason, "inspection_memory_exceeded");
            assert_eq!(limit, 256 << 20);
        }
        other => panic!("a 512 MiB fold in a 256 MiB budget: {other:?}"),
    }
    let iris = fixture("iris_logreg.onnx");
    for attempt in 0..100 {
        if let Err(error) = inspector.inspect(&iris) {
            panic!("attempt {attempt}: {error:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn other_onnx_bounds_name_themselves() {
    let app = TestApp::serving().await;
    let deep = refused(&app, "deep", bombs::onnx_nested_subgraphs(9)).await;
    assert_eq!(
        deep.body["details"]["reason"], "subgraphs_too_deep",
        "{deep:?}"
    );
    let declared = refused(
        &app,
        "declared",
        bombs::onnx_declared_tensor(&[1 << 20, 1 << 20]),
    )
    .await;
    assert_eq!(
        declared.body["details"]["reason"], "tensor_too_large",
        "{declared:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn component_compile_bombs_are_refused_before_compiling() {
    let app = TestApp::serving().await;
    let many = refused(&app, "many", bombs::component_with_functions(200_000, 1)).await;
    assert_eq!(many.code(), "invalid_component");
    assert_eq!(
        many.body["details"]["reason"], "too_many_functions",
        "{many:?}"
    );
    assert_eq!(many.body["details"]["limit"], 100_000);
    let huge = refused(&app, "huge", bombs::component_with_functions(1, 2 << 20)).await;
    assert_eq!(
        huge.body["details"]["reason"], "function_too_large",
        "{huge:?}"
    );
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inspections_past_their_time_are_killed() {
    // No child can start, let alone load or compile, in a nanosecond: every inspection
    // meets the kill.
    let app =
        TestApp::serving_with(|config| config.inspection.timeout = Duration::from_nanos(1)).await;
    let model = refused(&app, "slow-model", fixture("iris_logreg.onnx")).await;
    assert_eq!(
        model.body["details"]["reason"], "inspection_timeout",
        "{model:?}"
    );
    let component = refused(
        &app,
        "slow-component",
        bombs::component_with_functions(10, 1),
    )
    .await;
    assert_eq!(component.code(), "invalid_component");
    assert_eq!(
        component.body["details"]["reason"], "compile_timeout",
        "{component:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Arbitrary edits of a real model, inspected as an upload is: an answer or a clean
    /// refusal, whatever the decoder or the optimiser make of the bytes.
    #[test]
    fn mutated_models_get_a_clean_answer(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = fixture("iris_logreg.onnx");
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        bytes.truncate(cut.index(bytes.len()) + 1);
        let inspector = sandboxed_inspector(&wisp::config::Config::default());
        // A panic of the decoder or the optimiser stays in the child (a `crashed`
        // refusal); here only an answer or an error may come back.
        match inspector.inspect(&bytes) {
            Ok(model) => prop_assert!(!model.signature.outputs.is_empty()),
            Err(
                InspectError::Invalid(_)
                | InspectError::Unsupported(_)
                | InspectError::Refused { .. }
                | InspectError::UnsupportedOperator { .. },
            ) => {}
        }
    }
}
