//! The wisp runtime: runs model components per request under tenant limits.
//!
//! The control plane calls [`Runtime::predict`] with a [`ModelRef`] (which tenant, which
//! component, which graph), the tenant's [`TenantLimits`] and named input tensors, and gets
//! back named outputs with a [`UsageRecord`], or a [`RuntimeError`] with a stable code. The
//! runtime knows nothing of HTTP, authentication, billing or storage beyond the
//! [`ArtifactStore`] it reads component and model bytes from.
//!
//! See `docs/ARCHITECTURE.md` for the design and its invariants.

mod artifacts;
mod bindings;
mod bounded_waits;
mod config;
mod engine;
mod error;
mod idle_cache;
mod inspect_limits;
mod limits;
mod nn;
mod precompiled;
mod priority;
mod ready_streams;
mod request;
mod runtime;
mod slots;
mod tensor;
mod usage;

pub use artifacts::{ArtifactStore, Digest, FetchFuture, InMemoryArtifacts};
pub use config::RuntimeConfig;
pub use error::RuntimeError;
pub use idle_cache::CacheStats;
pub use inspect_limits::{ComponentLimits, LimitExceeded, check_component, compile_component};
pub use limits::TenantLimits;
pub use nn::{
    ClassLabels, GraphInfo, OnnxBackend, OnnxGraph, OnnxLimits, OnnxOperator, check_onnx,
    inspect_onnx, inspect_onnx_on, refused_operators, zipmap_class_labels,
};
pub use runtime::{ModelRef, Prediction, Runtime, RuntimeStats, Warmth};
pub use tensor::{Element, NamedTensor, Signature, Tensor, TensorSpec, TensorType, decode_strings};
pub use usage::UsageRecord;
