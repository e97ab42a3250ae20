//! The runtime: resolves a model version to a compiled component and a loaded graph (from
//! the idle caches, loading on a cold start), then runs one fresh instance per call under
//! the tenant's limits on a bounded pool of threads.

use crate::artifacts::{ArtifactStore, Digest};
use crate::bindings::{Model, ModelPre, types};
use crate::config::RuntimeConfig;
use crate::engine::{EpochTicker, build_engine};
use crate::error::RuntimeError;
use crate::idle_cache::{CacheStats, IdleCache};
use crate::inspect_limits::check_component;
use crate::limits::CallMemory;
use crate::limits::TenantLimits;
use crate::nn::{self, InferenceMeter, OnnxBackend, OnnxGraph};
use crate::precompiled::PrecompiledCache;
use crate::priority::{Placement, Priorities};
use crate::request::{RequestState, ServedModel, YieldToPool};
use crate::slots::Slots;
use crate::tensor::{NamedTensor, Signature, Tensor};
use crate::usage::UsageRecord;
use serde::Serialize;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// The model version a call is for, as the control plane resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The organisation that owns the model. Graphs are cached and named per tenant.
    pub tenant: String,
    /// Model name within the organisation.
    pub model: String,
    /// Version of the model.
    pub version: String,
    /// The component that serves it (the `onnx-runner` template for a plain ONNX upload).
    pub component: Digest,
    /// The ONNX file the component runs through wasi-nn, if any.
    pub graph: Option<Digest>,
}

impl ModelRef {
    /// The name `wasi:nn/graph.load-by-name` resolves to this version's graph.
    pub fn graph_name(&self) -> String {
        format!("{}:{}", self.model, self.version)
    }
}

/// The outputs of a prediction and what it cost.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Named output tensors.
    pub outputs: Vec<NamedTensor>,
    /// Resources used.
    pub usage: UsageRecord,
}

/// Whether a model's parts were already loaded when [`Runtime::warm`] was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Warmth {
    /// The compiled component was in the cache.
    pub component_warm: bool,
    /// The graph was in the cache (or the model has none).
    pub graph_warm: bool,
}

/// Cache counters of the runtime.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuntimeStats {
    /// Compiled, pre-instantiated components.
    pub components: CacheStats,
    /// Loaded graphs.
    pub graphs: CacheStats,
    /// Components deserialized from the precompiled disk cache instead of compiled.
    pub precompiled_hits: u64,
    /// Calls that could not finish in place (they blocked on the runtime) and ran again
    /// on the pool.
    pub in_place_retries: u64,
    /// Calls given up on at their deadline whose threads still run (a long backend node),
    /// no longer holding an execution slot.
    pub stuck_calls: u32,
    /// Execution slots held by running calls now.
    pub slots_in_use: u64,
    /// Execution slots in all (`max_concurrent_instances`).
    pub slots_capacity: u64,
}

/// The inference host. Cheap to clone; all clones share engine, caches and pool.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<RequestState>,
    config: RuntimeConfig,
    artifacts: Arc<dyn ArtifactStore>,
    components: IdleCache<Digest, Arc<ModelPre<RequestState>>>,
    graphs: IdleCache<GraphKey, Arc<OnnxGraph>>,
    precompiled: Option<Arc<PrecompiledCache>>,
    precompiled_hits: AtomicU64,
    in_place_retries: AtomicU64,
    slots: Arc<Slots>,
    priorities: Priorities,
    _ticker: EpochTicker,
}

/// Graphs are keyed by tenant as well as content: two tenants uploading the same file get
/// two graphs, so nothing about one tenant's graph (load time, eviction) reaches another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GraphKey {
    tenant: String,
    digest: Digest,
    /// The backend asked for (`auto` is cached apart from the one it picked).
    backend: OnnxBackend,
}

/// What one instance call returned, with its usage and any failure the backend reported
/// during it (wasi-nn carries only a string to the guest; the typed reason stays here).
struct Executed<R> {
    value: R,
    usage: UsageRecord,
    backend_error: Option<RuntimeError>,
}

/// A model version ready to instantiate.
#[derive(Clone)]
struct Prepared {
    pre: Arc<ModelPre<RequestState>>,
    served: Arc<ServedModel>,
    component_warm: bool,
    graph_warm: bool,
}

impl Runtime {
    /// Builds the engine, linker and caches. Must be called inside a tokio runtime: a
    /// background task applies idle expiry so unused models are dropped without traffic.
    pub fn new(config: RuntimeConfig, artifacts: Arc<dyn ArtifactStore>) -> anyhow::Result<Self> {
        let engine = build_engine(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let linker = build_linker(&engine).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let precompiled = config
            .precompiled_dir
            .as_deref()
            .map(|dir| {
                PrecompiledCache::new(dir, &engine, config.precompiled_cache_bytes).map(Arc::new)
            })
            .transpose()?;
        let graph_budget_kib = (config.graph_cache_bytes >> 10).max(1);
        let inner = Arc::new(Inner {
            _ticker: EpochTicker::start(engine.clone(), config.epoch_tick),
            components: IdleCache::new(config.component_cache_entries, config.idle_ttl, |_, _| 1),
            graphs: IdleCache::new(
                graph_budget_kib,
                config.idle_ttl,
                |_, graph: &Arc<OnnxGraph>| {
                    u32::try_from(graph.file_bytes() >> 10)
                        .unwrap_or(u32::MAX)
                        .max(1)
                },
            ),
            slots: Slots::new(
                config.max_concurrent_instances as usize,
                config.max_stuck_calls,
                config.max_stuck_calls_per_tenant,
            ),
            priorities: Priorities::new(
                config.low_priority_after,
                config.in_place_under,
                (config.max_concurrent_instances + config.max_stuck_calls) as usize,
            ),
            engine,
            linker,
            precompiled,
            precompiled_hits: Default::default(),
            in_place_retries: Default::default(),
            artifacts,
            config,
        });
        spawn_housekeeping(Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// Runs one prediction in a fresh instance of the model's component, its graph on the
    /// configured [`RuntimeConfig::onnx_backend`].
    pub async fn predict(
        &self,
        model: &ModelRef,
        limits: &TenantLimits,
        inputs: Vec<NamedTensor>,
    ) -> Result<Prediction, RuntimeError> {
        self.predict_on(model, self.inner.config.onnx_backend, limits, inputs)
            .await
    }

    /// Runs one prediction with the model's graph on `backend` (the deployment's choice).
    #[tracing::instrument(skip_all, fields(tenant = %model.tenant, model = %model.model, version = %model.version, %backend))]
    pub async fn predict_on(
        &self,
        model: &ModelRef,
        backend: OnnxBackend,
        limits: &TenantLimits,
        inputs: Vec<NamedTensor>,
    ) -> Result<Prediction, RuntimeError> {
        let started = Instant::now();
        let mut input_bytes = 0u64;
        for input in &inputs {
            input
                .tensor
                .check_layout()
                .map_err(|e| RuntimeError::InvalidInput(format!("input `{}`: {e}", input.name)))?;
            input_bytes += input.tensor.data.len() as u64;
        }
        let prepared = self.prepare(model, backend).await?;
        let load_time = started.elapsed();
        let (component_warm, graph_warm) = (prepared.component_warm, prepared.graph_warm);
        // Shared, not moved: a call in place may have to run again on the pool.
        let inputs: Arc<[types::NamedTensor]> = inputs.into_iter().map(Into::into).collect();
        let max_output_bytes = limits.max_output_bytes;
        let executed = self
            .execute(prepared, limits, input_bytes, move |store, model| {
                model.wisp_model_predictor().call_predict(store, &inputs)
            })
            .await?;
        let mut usage = executed.usage;
        let outputs = match executed.value {
            Ok(outputs) => outputs,
            Err(error) => return Err(executed.backend_error.unwrap_or_else(|| guest_error(error))),
        };
        let output_bytes: u64 = outputs.iter().map(|o| o.tensor.data.len() as u64).sum();
        if output_bytes > max_output_bytes {
            return Err(RuntimeError::OutputTooLarge {
                limit: max_output_bytes,
                got: output_bytes,
            });
        }
        let outputs = outputs
            .into_iter()
            .map(NamedTensor::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        usage.input_bytes = input_bytes;
        usage.output_bytes = output_bytes;
        usage.component_warm = component_warm;
        usage.graph_warm = graph_warm;
        usage.load_time = load_time;
        usage.wall_time = started.elapsed();
        Ok(Prediction { outputs, usage })
    }

    /// The signature the model's component declares (its `signature` export).
    pub async fn describe(
        &self,
        model: &ModelRef,
        limits: &TenantLimits,
    ) -> Result<Signature, RuntimeError> {
        self.describe_on(model, self.inner.config.onnx_backend, limits)
            .await
    }

    /// [`Runtime::describe`] with the model's graph on `backend`.
    pub async fn describe_on(
        &self,
        model: &ModelRef,
        backend: OnnxBackend,
        limits: &TenantLimits,
    ) -> Result<Signature, RuntimeError> {
        let prepared = self.prepare(model, backend).await?;
        let executed = self
            .execute(prepared, limits, 0, |store, model| {
                model.wisp_model_predictor().call_describe(store)
            })
            .await?;
        Ok(executed.value.into())
    }

    /// Loads the model's component and graph into the idle caches without running it, so
    /// the next call is warm. Answers whether each was already loaded.
    pub async fn warm(&self, model: &ModelRef) -> Result<Warmth, RuntimeError> {
        self.warm_on(model, self.inner.config.onnx_backend).await
    }

    /// [`Runtime::warm`] with the model's graph on `backend`.
    pub async fn warm_on(
        &self,
        model: &ModelRef,
        backend: OnnxBackend,
    ) -> Result<Warmth, RuntimeError> {
        let prepared = self.prepare(model, backend).await?;
        Ok(Warmth {
            component_warm: prepared.component_warm,
            graph_warm: prepared.graph_warm,
        })
    }

    /// Validates a component not yet in the artifact store (an upload being inspected),
    /// with the ONNX graph it comes with if any, and asks it for its signature in one
    /// throwaway instance under `limits`. Nothing is cached: a refused upload leaves no trace.
    pub async fn describe_component(
        &self,
        component: Vec<u8>,
        graph: Option<Vec<u8>>,
        limits: &TenantLimits,
    ) -> Result<Signature, RuntimeError> {
        let backend = self.inner.config.onnx_backend;
        self.describe_component_on(component, graph, backend, limits)
            .await
    }

    /// [`Runtime::describe_component`] with the graph on `backend`.
    pub async fn describe_component_on(
        &self,
        component: Vec<u8>,
        graph: Option<Vec<u8>>,
        backend: OnnxBackend,
        limits: &TenantLimits,
    ) -> Result<Signature, RuntimeError> {
        let pre = self.compile_uncached(component).await?;
        let graph = match graph {
            None => None,
            Some(bytes) => Some(
                tokio::task::spawn_blocking({
                    let limits = self.inner.config.onnx_limits.clone();
                    move || nn::load_graph(&bytes, &limits, backend).map(Arc::new)
                })
                .await
                .map_err(|e| RuntimeError::internal("graph loading panicked", e))??,
            ),
        };
        let upload = ModelRef {
            tenant: String::new(),
            model: "upload".into(),
            version: "0".into(),
            component: Digest::of(b""),
            graph: None,
        };
        let prepared = Prepared {
            pre,
            served: Arc::new(served_model(&upload, graph)),
            component_warm: false,
            graph_warm: false,
        };
        let executed = self
            .execute(prepared, limits, 0, |store, model| {
                model.wisp_model_predictor().call_describe(store)
            })
            .await?;
        Ok(executed.value.into())
    }

    /// Checks that `bytes` is a component this host can run as a `wisp:model` model:
    /// it compiles, its imports are all provided, and it exports the predictor.
    pub async fn validate_component(&self, bytes: Vec<u8>) -> Result<(), RuntimeError> {
        self.compile_uncached(bytes).await.map(drop)
    }

    /// Compiles and pre-instantiates `bytes` off the executor, bypassing every cache.
    async fn compile_uncached(
        &self,
        bytes: Vec<u8>,
    ) -> Result<Arc<ModelPre<RequestState>>, RuntimeError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            check_component(&bytes, &inner.config.component_limits)
                .map_err(|e| RuntimeError::InvalidComponent(e.to_string()))?;
            let component = Component::new(&inner.engine, &bytes)
                .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
            inner.pre_instantiate(&component)
        })
        .await
        .map_err(|e| RuntimeError::internal("component validation panicked", e))?
    }

    /// Cache counters.
    pub fn stats(&self) -> RuntimeStats {
        let (in_use, capacity) = self.inner.slots.occupancy();
        RuntimeStats {
            slots_in_use: in_use as u64,
            slots_capacity: capacity as u64,
            components: self.inner.components.stats(),
            graphs: self.inner.graphs.stats(),
            precompiled_hits: self.inner.precompiled_hits.load(Ordering::Relaxed),
            in_place_retries: self.inner.in_place_retries.load(Ordering::Relaxed),
            stuck_calls: self.inner.slots.stuck_total(),
        }
    }

    /// Applies pending idle expiry now instead of at the next housekeeping tick.
    pub async fn run_pending_tasks(&self) {
        self.inner.components.run_pending_tasks().await;
        self.inner.graphs.run_pending_tasks().await;
    }

    /// Drops every compiled component and loaded graph, as if all had gone idle.
    pub async fn evict_all(&self) {
        self.inner.components.clear();
        self.inner.graphs.clear();
        self.run_pending_tasks().await;
    }

    /// Finds or loads the component and graph, bounded by the load timeout.
    async fn prepare(
        &self,
        model: &ModelRef,
        backend: OnnxBackend,
    ) -> Result<Prepared, RuntimeError> {
        let load = async {
            let inner = &self.inner;
            let (pre, component_warm) = inner
                .components
                .get_or_load(
                    model.component.clone(),
                    inner.load_component(&model.component),
                )
                .await?;
            let (graph, graph_warm) = match &model.graph {
                None => (None, true),
                Some(digest) => {
                    let key = GraphKey {
                        tenant: model.tenant.clone(),
                        digest: digest.clone(),
                        backend,
                    };
                    let (graph, warm) = inner
                        .graphs
                        .get_or_load(key, inner.load_graph(digest, backend))
                        .await?;
                    (Some(graph), warm)
                }
            };
            Ok(Prepared {
                pre,
                served: Arc::new(served_model(model, graph)),
                component_warm,
                graph_warm,
            })
        };
        tokio::time::timeout(self.inner.config.load_timeout, load)
            .await
            .map_err(|_| RuntimeError::Overloaded("the model did not load in time".into()))?
    }

    /// Runs `call` in a fresh instance under the tenant's limits, holding one of the
    /// bounded execution slots: in place or on a pool, as `priority.rs` decides.
    async fn execute<R, F>(
        &self,
        prepared: Prepared,
        limits: &TenantLimits,
        input_bytes: u64,
        call: F,
    ) -> Result<Executed<R>, RuntimeError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store<RequestState>, &Model) -> wasmtime::Result<R> + Clone + Send + 'static,
    {
        let inner = &self.inner;
        let tenant = prepared.served.tenant.clone();
        let queued = Instant::now();
        let slot = inner
            .slots
            .acquire(&tenant, inner.config.queue_timeout)
            .await?;
        let queue_time = queued.elapsed();
        let queued = move |mut executed: Executed<R>| {
            executed.usage.queue_time = queue_time;
            executed
        };
        let placement = inner.priorities.placement(&tenant, input_bytes);
        let mut retry_limits = None;
        if placement == Placement::InPlace {
            // A call predicted shorter than the hops to the pool and back (see
            // `priority.rs`): its limits hold here as anywhere, and a panic is caught.
            let started = Instant::now();
            // A call predicted short that runs much longer gives the thread back (an
            // overrun as long as the deadline never comes before it).
            let overrun = inner
                .config
                .in_place_under
                .saturating_mul(IN_PLACE_OVERRUN)
                .min(limits.deadline.saturating_mul(2));
            let yield_at = started + overrun;
            let executed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                inner.run_instance(prepared.clone(), limits, Some(yield_at), call.clone())
            }));
            match executed {
                Ok(Some(executed)) => {
                    drop(slot);
                    inner
                        .priorities
                        .record(&tenant, started.elapsed(), input_bytes);
                    return executed.map(queued);
                }
                // The call ran too long for a call in place, or must wait (a sleep, a
                // poll: `bounded_waits.rs`), which a worker thread must not do; any other
                // wait on the tokio runtime panics there (stderr writes finish without
                // it: `ready_streams.rs`). The call had no effect outside its own
                // instance: run it again on the pool, and keep the tenant there.
                yielded => {
                    match yielded {
                        Ok(_) => {
                            tracing::debug!(tenant = %tenant, "a call in place yielded; running it on the pool")
                        }
                        Err(panic) => {
                            tracing::debug!(tenant = %tenant, panic = %panic_text(&panic), "a call in place panicked; running it on the pool")
                        }
                    }
                    inner.in_place_retries.fetch_add(1, Ordering::Relaxed);
                    inner.priorities.keep_on_pool(&tenant);
                    // Within what is left of the call's deadline.
                    retry_limits = Some(TenantLimits {
                        deadline: limits.deadline.saturating_sub(started.elapsed()),
                        ..limits.clone()
                    });
                }
            }
        }
        // A call run again keeps the tenant's deadline in its errors, whatever is left.
        let tenant_deadline = limits.deadline;
        let limits = retry_limits.as_ref().unwrap_or(limits);
        let deadline = limits.deadline;
        let task = {
            let inner = Arc::clone(inner);
            let limits = limits.clone();
            let low = placement == Placement::LowPriority;
            let runner = slot.runner();
            self.inner.priorities.spawn_blocking(low, move || {
                let _runner = runner;
                let started = Instant::now();
                let executed = inner
                    .run_instance(prepared, &limits, None, call)
                    .unwrap_or_else(|| {
                        Err(RuntimeError::internal("a call on the pool yielded", ""))
                    });
                inner
                    .priorities
                    .record(&tenant, started.elapsed(), input_bytes);
                executed
            })
        };
        // Epochs stop Wasm code at the deadline, WASI waits and graph runs end there too;
        // this bounds a call stuck in one long backend node, whose thread finishes in the
        // background without its slot (`slots.rs`).
        let grace = deadline / 10 + inner.config.epoch_tick * 5;
        let result = match tokio::time::timeout(deadline + grace, task).await {
            Err(_) => {
                slot.give_up();
                Err(RuntimeError::DeadlineExceeded { deadline })
            }
            Ok(Err(join_error)) => Err(RuntimeError::internal(
                "instance thread panicked",
                join_error,
            )),
            Ok(Ok(result)) => result,
        };
        result.map(queued).map_err(|error| match error {
            RuntimeError::DeadlineExceeded { .. } => RuntimeError::DeadlineExceeded {
                deadline: tenant_deadline,
            },
            other => other,
        })
    }
}

/// How many times longer than `in_place_under` a call in place may run before it gives its
/// executor thread back (2 ms by default): long enough that a call predicted right never
/// does, short enough that no call holds a worker for long.
const IN_PLACE_OVERRUN: u32 = 8;

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Inner {
    async fn load_component(
        &self,
        digest: &Digest,
    ) -> Result<Arc<ModelPre<RequestState>>, RuntimeError> {
        if let Some(cache) = &self.precompiled {
            let (cache, engine, digest) = (Arc::clone(cache), self.engine.clone(), digest.clone());
            let cached = tokio::task::spawn_blocking(move || cache.load(&engine, &digest))
                .await
                .map_err(|e| {
                    RuntimeError::internal("reading a precompiled component panicked", e)
                })?;
            if let Some(component) = cached {
                self.precompiled_hits.fetch_add(1, Ordering::Relaxed);
                return self.pre_instantiate(&component);
            }
        }
        let bytes = self.fetch(digest).await?;
        let (engine, cache, digest) = (
            self.engine.clone(),
            self.precompiled.clone(),
            digest.clone(),
        );
        let limits = self.config.component_limits.clone();
        let component = tokio::task::spawn_blocking(move || {
            check_component(&bytes, &limits)
                .map_err(|e| RuntimeError::InvalidComponent(e.to_string()))?;
            let component = Component::new(&engine, &bytes)
                .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
            if let Some(cache) = cache
                && let Err(error) = cache.store(&digest, &component)
            {
                tracing::warn!(%digest, %error, "could not write a precompiled component");
            }
            Ok(component)
        })
        .await
        .map_err(|e| RuntimeError::internal("component compilation panicked", e))??;
        self.pre_instantiate(&component)
    }

    async fn load_graph(
        &self,
        digest: &Digest,
        backend: OnnxBackend,
    ) -> Result<Arc<OnnxGraph>, RuntimeError> {
        let bytes = self.fetch(digest).await?;
        let limits = self.config.onnx_limits.clone();
        tokio::task::spawn_blocking(move || nn::load_graph(&bytes, &limits, backend).map(Arc::new))
            .await
            .map_err(|e| RuntimeError::internal("graph loading panicked", e))?
    }

    async fn fetch(&self, digest: &Digest) -> Result<Vec<u8>, RuntimeError> {
        let bytes = self
            .artifacts
            .fetch(digest)
            .await
            .map_err(|e| RuntimeError::internal("artifact store failed", e))?
            .ok_or_else(|| RuntimeError::ModelNotFound(format!("no artifact {digest}")))?;
        if Digest::of(&bytes) != *digest {
            return Err(RuntimeError::internal(
                "artifact store returned bytes of another digest",
                digest,
            ));
        }
        Ok(bytes)
    }

    fn pre_instantiate(
        &self,
        component: &Component,
    ) -> Result<Arc<ModelPre<RequestState>>, RuntimeError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| RuntimeError::InvalidComponent(format!("{e:#}")))?;
        ModelPre::new(pre).map(Arc::new).map_err(|e| {
            RuntimeError::InvalidComponent(format!("not a wisp:model component: {e:#}"))
        })
    }

    /// One instance, one call, then everything is dropped. A call in place (`yield_at`
    /// given) that runs past `yield_at` or must wait stops and answers `None`.
    fn run_instance<R>(
        &self,
        prepared: Prepared,
        limits: &TenantLimits,
        yield_at: Option<Instant>,
        call: impl FnOnce(&mut Store<RequestState>, &Model) -> wasmtime::Result<R>,
    ) -> Option<Result<Executed<R>, RuntimeError>> {
        let deadline_at = Instant::now() + limits.deadline;
        let memory = CallMemory::new(limits);
        let meter = InferenceMeter::new(deadline_at, yield_at, Arc::clone(&memory));
        let nn = nn::request_context(prepared.served.graph.clone(), &meter);
        let state = RequestState::new(prepared.served, limits, nn, memory, deadline_at, yield_at);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // What the host copies out of the guest in one go (a call's outputs, a signature,
        // a tensor's data) is bounded by the tenant's memory limit: lists whose elements
        // all point at one buffer would otherwise be copied once per element.
        store.set_hostcall_fuel(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX));
        if let Err(e) = store.set_fuel(limits.fuel) {
            return Some(Err(RuntimeError::internal("setting fuel failed", e)));
        }
        // Epoch ticks only prompt a look at the clock: a ticker thread that falls behind
        // under load must not stretch the deadline.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            if now >= deadline_at {
                Ok(UpdateDeadline::Interrupt)
            } else if yield_at.is_some_and(|at| now >= at) {
                Err(YieldToPool.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        let result = prepared
            .pre
            .instantiate(&mut store)
            .and_then(|model| call(&mut store, &model));
        let yielded = meter.yielded()
            || result
                .as_ref()
                .is_err_and(|error| error.downcast_ref::<YieldToPool>().is_some());
        if yielded {
            return None;
        }
        let usage = UsageRecord {
            fuel_consumed: limits.fuel - store.get_fuel().unwrap_or(0),
            inference_time: meter.time_in_backend(),
            peak_memory_bytes: store.data().limiter.peak_memory_bytes as u64,
            ..UsageRecord::default()
        };
        Some(match (result, meter.take_last_error()) {
            // The backend stopped at the deadline or at the memory limit: whatever the
            // guest made of that (an error, a panic), that is why the call failed.
            (_, Some(RuntimeError::DeadlineExceeded { .. })) => {
                Err(RuntimeError::DeadlineExceeded {
                    deadline: limits.deadline,
                })
            }
            (_, Some(RuntimeError::MemoryLimitExceeded { .. })) => {
                Err(RuntimeError::MemoryLimitExceeded {
                    limit_bytes: limits.max_memory_bytes,
                })
            }
            (Err(error), _) => Err(classify_trap(&store, &error, limits)),
            (Ok(value), backend_error) => Ok(Executed {
                value,
                usage,
                backend_error,
            }),
        })
    }
}

/// What the host interface tells the instance about the version it serves.
fn served_model(model: &ModelRef, graph: Option<Arc<OnnxGraph>>) -> ServedModel {
    ServedModel {
        tenant: model.tenant.clone(),
        model: model.model.clone(),
        version: model.version.clone(),
        graph: graph.map(|graph| (model.graph_name(), graph)),
    }
}

/// Turns a failed instantiation or call into the tenant-visible error.
fn classify_trap(
    store: &Store<RequestState>,
    error: &wasmtime::Error,
    limits: &TenantLimits,
) -> RuntimeError {
    let state = store.data();
    if state.limiter.memory_limit_hit || is_hostcall_fuel_exhausted(error) {
        return RuntimeError::MemoryLimitExceeded {
            limit_bytes: limits.max_memory_bytes,
        };
    }
    let stderr = state.stderr_text();
    let detail = |what: String| {
        if stderr.is_empty() {
            what
        } else {
            format!("{what}; component stderr: {stderr}")
        }
    };
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RuntimeError::FuelExhausted {
            budget: limits.fuel,
        },
        Some(Trap::Interrupt) => RuntimeError::DeadlineExceeded {
            deadline: limits.deadline,
        },
        Some(Trap::StackOverflow) => {
            RuntimeError::GuestTrap(detail("call stack exhausted (too deep recursion)".into()))
        }
        Some(trap) => RuntimeError::GuestTrap(detail(trap.to_string())),
        None if error
            .downcast_ref::<wasmtime::component::ResourceTableError>()
            .is_some() =>
        {
            RuntimeError::GuestTrap(format!(
                "too many live host resources (the limit is {})",
                limits.max_resources
            ))
        }
        None => RuntimeError::GuestTrap(detail(format!("{error:#}"))),
    }
}

/// Whether `error` is wasmtime's refusal to copy more out of the guest in one host call
/// than the hostcall fuel allows (set to the tenant's memory limit). Its type is private,
/// so this reads its message. Only a list whose elements share one buffer can exceed the
/// fuel (anything else fits in the guest's memory, under the same limit); if a wasmtime
/// upgrade changes the message, such a call is reported as `guest_trap` instead.
fn is_hostcall_fuel_exhausted(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .to_string()
            .contains("fuel allocated for hostcalls has been exhausted")
    })
}

/// A guest's own error, refined by what the backend reported during the call.
fn guest_error(error: types::Error) -> RuntimeError {
    match error {
        types::Error::InvalidInput(message) => RuntimeError::InvalidInput(message),
        types::Error::InferenceFailed(message) => RuntimeError::InferenceFailed(message),
        types::Error::Internal(message) => {
            RuntimeError::InferenceFailed(format!("component error: {message}"))
        }
    }
}

fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    // Rust's std for wasm32-wasip2 imports wasi:cli and friends even in a library component.
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    crate::ready_streams::add_to_linker(&mut linker)?;
    crate::bounded_waits::add_to_linker(&mut linker)?;
    wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |state: &mut RequestState| {
        let (table, nn) = state.nn_view_parts();
        wasmtime_wasi_nn::wit::WasiNnView::new(table, nn)
    })?;
    nn::tensors::add_to_linker(&mut linker)?;
    crate::bindings::host::add_to_linker::<_, HasSelf<RequestState>>(&mut linker, |state| state)?;
    crate::bindings::types::add_to_linker::<_, HasSelf<RequestState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Expires idle entries in the background until the runtime is dropped.
fn spawn_housekeeping(inner: Weak<Inner>) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let period =
        (strong.config.idle_ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    drop(strong);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        loop {
            interval.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            inner.components.run_pending_tasks().await;
            inner.graphs.run_pending_tasks().await;
        }
    });
}

impl From<NamedTensor> for types::NamedTensor {
    fn from(t: NamedTensor) -> Self {
        Self {
            name: t.name,
            tensor: types::Tensor {
                ty: t.tensor.ty.into(),
                shape: t.tensor.shape,
                data: t.tensor.data,
            },
        }
    }
}

impl TryFrom<types::NamedTensor> for NamedTensor {
    type Error = RuntimeError;

    fn try_from(t: types::NamedTensor) -> Result<Self, RuntimeError> {
        let tensor = Tensor {
            ty: t.tensor.ty.into(),
            shape: t.tensor.shape,
            data: t.tensor.data,
        };
        tensor.check_layout().map_err(|e| {
            RuntimeError::InferenceFailed(format!(
                "component returned a malformed output `{}`: {e}",
                t.name
            ))
        })?;
        Ok(Self::new(t.name, tensor))
    }
}
