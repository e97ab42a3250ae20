//! Concurrency on one graph, idle eviction (scale-to-zero) and the precompiled disk cache.

mod common;

use common::*;
use std::time::Duration;
use wisp_host::{NamedTensor, RuntimeConfig, TenantLimits, Tensor};

fn mlp_input(refs: &serde_json::Value) -> Vec<NamedTensor> {
    reference_inputs(&refs["digits_mlp.onnx"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_predictions_share_one_graph() {
    let harness = Harness::new();
    let model = harness.onnx_model("org-a", "digits_mlp.onnx");
    let refs = references();
    let calls = (0..64).map(|_| {
        let (runtime, model, inputs) = (harness.runtime.clone(), model.clone(), mlp_input(&refs));
        tokio::spawn(async move {
            runtime
                .predict(&model, &TenantLimits::default(), inputs)
                .await
        })
    });
    let results = futures_join(calls).await;
    let want = &refs["digits_mlp.onnx"]["outputs"];
    for result in results {
        let outputs = result.unwrap().outputs;
        assert_matches_reference(
            "probabilities",
            output(&outputs, "probabilities"),
            &want["probabilities"],
            1e-5,
        );
        assert_matches_reference("label", output(&outputs, "label"), &want["label"], 0.0);
    }
    let stats = harness.runtime.stats();
    assert_eq!(stats.graphs.loads, 1, "the graph is loaded once");
    assert_eq!(stats.components.loads, 1, "the component is compiled once");
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.expect("task did not panic"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_models_are_evicted_and_reload_cold() {
    let harness = Harness::with_config(RuntimeConfig {
        idle_ttl: Duration::from_secs(2),
        ..test_config()
    });
    let model = harness.onnx_model("org-a", "digits_mlp.onnx");
    let refs = references();
    let limits = TenantLimits::default();

    let first = harness
        .runtime
        .predict(&model, &limits, mlp_input(&refs))
        .await
        .unwrap();
    assert!(!first.usage.component_warm && !first.usage.graph_warm);
    let second = harness
        .runtime
        .predict(&model, &limits, mlp_input(&refs))
        .await
        .unwrap();
    assert!(second.usage.component_warm && second.usage.graph_warm);

    tokio::time::sleep(Duration::from_secs(5)).await;
    harness.runtime.run_pending_tasks().await;
    let idle = harness.runtime.stats();
    assert_eq!(idle.graphs.entries, 0, "the graph is gone: {idle:?}");
    assert_eq!(
        idle.components.entries, 0,
        "the instance-pre is gone: {idle:?}"
    );
    assert_eq!(idle.graphs.evictions, 1);
    assert_eq!(idle.components.evictions, 1);

    let third = harness
        .runtime
        .predict(&model, &limits, mlp_input(&refs))
        .await
        .unwrap();
    assert!(
        !third.usage.component_warm && !third.usage.graph_warm,
        "reloaded cold"
    );
    assert_eq!(third.outputs, first.outputs);
    let stats = harness.runtime.stats();
    assert_eq!((stats.graphs.loads, stats.components.loads), (2, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_budget_evicts_least_used_graphs() {
    // A budget smaller than two graphs: loading the second pushes the first out.
    let mlp_kib = (wisp_test_artifacts::fixture("digits_mlp.onnx").len() >> 10) as u64;
    let harness = Harness::with_config(RuntimeConfig {
        graph_cache_bytes: (mlp_kib + mlp_kib / 2) << 10,
        ..test_config()
    });
    let refs = references();
    let a = harness.onnx_model("org-a", "digits_mlp.onnx");
    let b = harness.onnx_model("org-b", "digits_mlp.onnx");
    harness.predict(&a, mlp_input(&refs)).await.unwrap();
    harness.predict(&b, mlp_input(&refs)).await.unwrap();
    harness.runtime.run_pending_tasks().await;
    let stats = harness.runtime.stats();
    assert_eq!(stats.graphs.entries, 1, "{stats:?}");
    assert_eq!(stats.graphs.evictions, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn precompiled_components_survive_restarts_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        precompiled_dir: Some(dir.path().to_owned()),
        ..test_config()
    };
    let run = |harness: Harness| async move {
        let model = harness.onnx_model("org-a", "iris_logreg.onnx");
        let inputs = reference_inputs(&references()["iris_logreg.onnx"]);
        harness.predict(&model, inputs).await.unwrap();
        harness.runtime.stats()
    };
    // First process: compiles and writes the artifact.
    let stats = run(Harness::with_config(config.clone())).await;
    assert_eq!(stats.precompiled_hits, 0);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // "Restart": a new runtime deserializes instead of compiling.
    let stats = run(Harness::with_config(config.clone())).await;
    assert_eq!(stats.precompiled_hits, 1);

    // A truncated artifact is detected and rebuilt.
    let artifact = &files[0];
    let bytes = std::fs::read(artifact).unwrap();
    std::fs::write(artifact, &bytes[..bytes.len() / 3]).unwrap();
    let stats = run(Harness::with_config(config.clone())).await;
    assert_eq!(stats.precompiled_hits, 0, "corrupt file not used");
    assert_eq!(std::fs::read(artifact).unwrap(), bytes, "rebuilt in place");

    // So is one with flipped bytes in the machine code.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(artifact, &flipped).unwrap();
    let stats = run(Harness::with_config(config.clone())).await;
    assert_eq!(stats.precompiled_hits, 0);
    let stats = run(Harness::with_config(config)).await;
    assert_eq!(
        stats.precompiled_hits, 1,
        "and the rebuilt file is used again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_instance_outlives_its_request() {
    // With one execution slot, a thousand sequential calls only work if every instance
    // gives its pool slot back when its call ends.
    let harness = Harness::with_config(RuntimeConfig {
        max_concurrent_instances: 1,
        ..test_config()
    });
    let model = harness.model("org-a", "noop", wisp_test_artifacts::components::NOOP, None);
    for _ in 0..1000 {
        harness
            .predict(
                &model,
                vec![NamedTensor::new("x", Tensor::from_values(&[1], &[1u8]))],
            )
            .await
            .unwrap();
    }
}
