//! The state of one request's `Store`: WASI, wasi-nn, the tenant's limits and what the
//! `wisp:model/host` interface tells the guest. Built per call and dropped with it.

use crate::bindings::{host, types};
use crate::limits::{CallMemory, InstanceLimiter, TenantLimits};
use crate::nn::OnnxGraph;
use crate::nn::tensors::TensorLedger;
use crate::tensor::{Signature, TensorSpec, TensorType};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_nn::wit::WasiNnCtx;

/// Longest log line a guest may write; the rest is cut.
const MAX_LOG_LINE: usize = 4096;
/// What a guest may write to stderr; kept to explain a trap (a Rust panic message).
const STDERR_CAPACITY: usize = 8192;

/// What stops a call in place that must give its executor thread back: it ran longer than
/// a call in place may, or it must wait. The runtime runs it again on the pool.
#[derive(Debug)]
pub(crate) struct YieldToPool;

impl std::fmt::Display for YieldToPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the call cannot finish on an executor thread")
    }
}

impl std::error::Error for YieldToPool {}

/// What a component learns about the model version it serves.
#[derive(Clone, Default)]
pub(crate) struct ServedModel {
    pub(crate) tenant: String,
    pub(crate) model: String,
    pub(crate) version: String,
    /// The graph, and the name `load-by-name` finds it under.
    pub(crate) graph: Option<(String, Arc<OnnxGraph>)>,
}

pub(crate) struct RequestState {
    wasi: WasiCtx,
    table: ResourceTable,
    nn: WasiNnCtx,
    pub(crate) limiter: InstanceLimiter,
    /// Host tensors the guest made, charged to the call's memory.
    tensors: TensorLedger,
    /// When the call must end: every wait the host does for the guest ends here too.
    pub(crate) deadline: Instant,
    /// For a call in place: when it must give its executor thread back. Such a call may
    /// not wait at all.
    pub(crate) yield_at: Option<Instant>,
    served: Arc<ServedModel>,
    stderr: MemoryOutputPipe,
    log_lines_left: u32,
}

impl RequestState {
    pub(crate) fn new(
        served: Arc<ServedModel>,
        limits: &TenantLimits,
        nn: WasiNnCtx,
        memory: Arc<CallMemory>,
        deadline: Instant,
        yield_at: Option<Instant>,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No arguments, environment, files, sockets or inherited stdio: a model component
        // computes on its inputs and nothing else.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        Self {
            wasi,
            table,
            nn,
            limiter: InstanceLimiter::new(limits, memory),
            tensors: TensorLedger::default(),
            deadline,
            yield_at,
            served,
            stderr,
            log_lines_left: limits.max_log_lines,
        }
    }

    /// The two halves `WasiNnView` borrows at once.
    pub(crate) fn nn_view_parts(&mut self) -> (&mut ResourceTable, &mut WasiNnCtx) {
        (&mut self.table, &mut self.nn)
    }

    /// What the tensor constructor borrows at once.
    pub(crate) fn tensor_parts(
        &mut self,
    ) -> (&mut ResourceTable, &mut TensorLedger, &mut InstanceLimiter) {
        (&mut self.table, &mut self.tensors, &mut self.limiter)
    }

    /// What the guest wrote to stderr, for trap messages.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for RequestState {
    fn log(&mut self, level: host::LogLevel, mut message: String) {
        if self.log_lines_left == 0 {
            return;
        }
        self.log_lines_left -= 1;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let served = &*self.served;
        let (tenant, model, version) = (&served.tenant, &served.model, &served.version);
        match level {
            host::LogLevel::Trace => {
                tracing::trace!(target: "wisp::guest", tenant, model, version, "{message}")
            }
            host::LogLevel::Debug => {
                tracing::debug!(target: "wisp::guest", tenant, model, version, "{message}")
            }
            host::LogLevel::Info => {
                tracing::info!(target: "wisp::guest", tenant, model, version, "{message}")
            }
            host::LogLevel::Warn => {
                tracing::warn!(target: "wisp::guest", tenant, model, version, "{message}")
            }
            host::LogLevel::Error => {
                tracing::error!(target: "wisp::guest", tenant, model, version, "{message}")
            }
        }
    }

    fn model_info(&mut self) -> host::ServedModel {
        let served = &*self.served;
        let info = served.graph.as_ref().map(|(_, graph)| graph.info());
        host::ServedModel {
            model: served.model.clone(),
            version: served.version.clone(),
            graph: served.graph.as_ref().map(|(name, _)| name.clone()),
            graph_signature: info.map(|info| (&info.signature).into()),
            metadata: info.map(|info| info.metadata.clone()).unwrap_or_default(),
        }
    }
}

impl types::Host for RequestState {}

impl From<TensorType> for types::TensorType {
    fn from(ty: TensorType) -> Self {
        match ty {
            TensorType::F32 => Self::F32,
            TensorType::F64 => Self::F64,
            TensorType::I32 => Self::I32,
            TensorType::I64 => Self::I64,
            TensorType::U8 => Self::U8,
            TensorType::String => Self::String,
        }
    }
}

impl From<types::TensorType> for TensorType {
    fn from(ty: types::TensorType) -> Self {
        match ty {
            types::TensorType::F32 => Self::F32,
            types::TensorType::F64 => Self::F64,
            types::TensorType::I32 => Self::I32,
            types::TensorType::I64 => Self::I64,
            types::TensorType::U8 => Self::U8,
            types::TensorType::String => Self::String,
        }
    }
}

impl From<&TensorSpec> for types::TensorSpec {
    fn from(spec: &TensorSpec) -> Self {
        Self {
            name: spec.name.clone(),
            ty: spec.ty.into(),
            shape: spec.shape.clone(),
        }
    }
}

impl From<types::TensorSpec> for TensorSpec {
    fn from(spec: types::TensorSpec) -> Self {
        Self {
            name: spec.name,
            ty: spec.ty.into(),
            shape: spec.shape,
        }
    }
}

impl From<&Signature> for types::Signature {
    fn from(signature: &Signature) -> Self {
        Self {
            inputs: signature.inputs.iter().map(Into::into).collect(),
            outputs: signature.outputs.iter().map(Into::into).collect(),
        }
    }
}

impl From<types::Signature> for Signature {
    fn from(signature: types::Signature) -> Self {
        Self {
            inputs: signature.inputs.into_iter().map(Into::into).collect(),
            outputs: signature.outputs.into_iter().map(Into::into).collect(),
        }
    }
}
