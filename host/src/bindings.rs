//! Host bindings generated from `wit/`, the only definition of the host–guest boundary.
//!
//! `wasi:nn` is linked from `wasmtime-wasi-nn`; the bindings generated here for it are unused.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wisp:model/model",
});

pub(crate) use wisp::model::host;
pub(crate) use wisp::model::types;
