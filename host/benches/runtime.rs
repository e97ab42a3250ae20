//! Runtime benchmarks: per-request instantiation, wasm-vs-native inference and cold starts.
//!
//! Every target is a ratio or a latency measured against a baseline in the same run:
//!
//! ```text
//! cargo bench -p wisp-host --bench runtime            # full run
//! cargo bench -p wisp-host --bench runtime -- --quick # fewer iterations
//! cargo bench -p wisp-host --bench runtime -- --only noop # one section (for a profiler):
//!                                                         # noop, mlp, cnn, cold, deadline
//! ```
//!
//! Results are recorded in docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wisp_host::{
    InMemoryArtifacts, ModelRef, NamedTensor, OnnxGraph, Runtime, RuntimeConfig, TenantLimits,
    Tensor,
};
use wisp_test_artifacts::{component, components, fixture};

/// The allocator the `wisp` binary uses, so both paths allocate as they would in the server.
/// Under glibc's malloc the native baseline's large batches paid for the heap being trimmed
/// and regrown on every call (page faults the pool threads' arenas mostly escaped), which
/// made wasm look faster than native.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Summary {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Bench {
    runtime: Runtime,
    artifacts: Arc<InMemoryArtifacts>,
}

impl Bench {
    fn new(config: RuntimeConfig) -> Self {
        let artifacts = Arc::new(InMemoryArtifacts::new());
        let runtime = Runtime::new(config, artifacts.clone()).expect("runtime");
        Self { runtime, artifacts }
    }

    fn model(&self, name: &str, component_path: &str, onnx: Option<&str>) -> ModelRef {
        ModelRef {
            tenant: "bench".into(),
            model: name.into(),
            version: "1".into(),
            component: self.artifacts.put(component(component_path)),
            graph: onnx.map(|f| self.artifacts.put(fixture(f))),
        }
    }

    async fn time_predictions(
        &self,
        model: &ModelRef,
        inputs: &[NamedTensor],
        n: usize,
    ) -> Vec<Duration> {
        let limits = TenantLimits::default();
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let inputs = inputs.to_vec();
            let started = Instant::now();
            self.runtime
                .predict(model, &limits, inputs)
                .await
                .expect("prediction");
            samples.push(started.elapsed());
        }
        samples
    }
}

/// `rows` rows of the digits data set, taken from the reference inputs and repeated.
fn digits_rows(rows: usize) -> Vec<f32> {
    let refs: serde_json::Value = serde_json::from_slice(&fixture("references.json")).unwrap();
    let base: Vec<f32> = refs["digits_mlp.onnx"]["inputs"]["input"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    base.chunks(64)
        .cycle()
        .take(rows)
        .flatten()
        .copied()
        .collect()
}

fn time_native(graph: &OnnxGraph, inputs: &[NamedTensor], n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let inputs = inputs.to_vec();
            let started = Instant::now();
            graph.run(inputs).unwrap();
            started.elapsed()
        })
        .collect()
}

/// One input batch to run through both paths.
struct Workload<'a> {
    label: String,
    input_name: &'a str,
    shape: Vec<u32>,
    values: Vec<f32>,
}

/// Interleaves wasm and native runs so drift in machine load hits both alike.
async fn compare(bench: &Bench, model: &ModelRef, workload: Workload<'_>, per_round: usize) {
    const ROUNDS: usize = 10;
    let graph = OnnxGraph::load(&fixture(&format!("{}.onnx", model.model))).unwrap();
    let inputs = vec![NamedTensor::new(
        workload.input_name,
        Tensor::from_values(&workload.shape, &workload.values),
    )];
    bench.time_predictions(model, &inputs, 20).await;
    time_native(&graph, &inputs, 20);
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        wasm.extend(bench.time_predictions(model, &inputs, per_round).await);
        native.extend(time_native(&graph, &inputs, per_round));
    }
    let (w, n) = (summarize(wasm), summarize(native));
    println!(
        "{:<22} wasm p50 {:>10}  native p50 {:>10}  ratio p50 {:.3}  (p99 {} vs {}, mean ratio {:.3})",
        workload.label,
        us(w.p50),
        us(n.p50),
        w.p50.as_secs_f64() / n.p50.as_secs_f64(),
        us(w.p99),
        us(n.p99),
        w.mean.as_secs_f64() / n.mean.as_secs_f64(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1).cloned());
    let runs = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let scale = if quick { 10 } else { 1 };
    println!(
        "wisp runtime benchmarks ({} run)\n",
        if quick { "quick" } else { "full" }
    );

    // 1. Instantiate + call a no-op component.
    let bench = Bench::new(RuntimeConfig::default());
    if runs("noop") {
        let noop = bench.model("noop", components::NOOP, None);
        bench.time_predictions(&noop, &[], 500).await;
        let samples = bench.time_predictions(&noop, &[], 10_000 / scale).await;
        let n = samples.len();
        let s = summarize(samples);
        println!(
            "no-op instantiate + call ({n} calls)   p50 {}  p99 {}  mean {}",
            us(s.p50),
            us(s.p99),
            us(s.mean)
        );
    }

    // 2. Wasm + wasi-nn vs the same tract plan called natively, same inputs, same run.
    println!();
    let mlp = bench.model(
        "digits_mlp",
        components::ONNX_RUNNER,
        Some("digits_mlp.onnx"),
    );
    let cnn = bench.model(
        "digits_cnn",
        components::ONNX_RUNNER,
        Some("digits_cnn.onnx"),
    );
    let per_round = |rows: usize| (if rows > 100 { 50 } else { 200 }) / scale;
    for rows in [1usize, 64, 1797].into_iter().filter(|_| runs("mlp")) {
        let workload = Workload {
            label: format!("MLP, batch {rows}"),
            input_name: "input",
            shape: vec![rows as u32, 64],
            values: digits_rows(rows),
        };
        compare(&bench, &mlp, workload, per_round(rows)).await;
    }
    for rows in [1usize, 64, 512].into_iter().filter(|_| runs("cnn")) {
        let workload = Workload {
            label: format!("CNN, batch {rows}"),
            input_name: "image",
            shape: vec![rows as u32, 1, 8, 8],
            values: digits_rows(rows).iter().map(|v| v / 16.0).collect(),
        };
        compare(&bench, &cnn, workload, per_round(rows)).await;
    }

    // 3. Cold path: the first call after the model was evicted.
    println!();
    let dir = tempfile::tempdir().unwrap();
    let cold_runs = [
        ("without disk cache", None),
        ("with disk cache", Some(dir.path().to_owned())),
    ];
    for (label, precompiled_dir) in cold_runs.into_iter().filter(|_| runs("cold")) {
        let bench = Bench::new(RuntimeConfig {
            precompiled_dir,
            ..RuntimeConfig::default()
        });
        let mlp = bench.model(
            "digits_mlp",
            components::ONNX_RUNNER,
            Some("digits_mlp.onnx"),
        );
        let inputs = vec![NamedTensor::new(
            "input",
            Tensor::from_values(&[1, 64], &digits_rows(1)),
        )];
        bench.time_predictions(&mlp, &inputs, 1).await; // fills the disk cache when there is one
        let mut cold = Vec::new();
        for _ in 0..(20 / scale.min(4)) {
            bench.runtime.evict_all().await;
            cold.extend(bench.time_predictions(&mlp, &inputs, 1).await);
        }
        let s = summarize(cold);
        println!(
            "cold MLP call {label:<20} p50 {}  p99 {}",
            ms(s.p50),
            ms(s.p99)
        );
    }

    // 4. Deadline overshoot: an infinite loop against a 100 ms deadline.
    if !runs("deadline") {
        return;
    }
    println!();
    let spin = bench.model("spin", components::SPIN_LOOP, None);
    let limits = TenantLimits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(100),
        ..TenantLimits::default()
    };
    // The first call compiles the component; the deadline covers execution, not loading.
    let _ = bench.runtime.predict(&spin, &limits, vec![]).await;
    let mut worst: f64 = 0.0;
    for _ in 0..10 {
        let started = Instant::now();
        let error = bench
            .runtime
            .predict(&spin, &limits, vec![])
            .await
            .unwrap_err();
        assert_eq!(error.code(), "deadline_exceeded");
        worst = worst.max(started.elapsed().as_secs_f64() / 0.1);
    }
    println!("infinite loop vs 100 ms deadline      worst elapsed/deadline {worst:.3}");
}
