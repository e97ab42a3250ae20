//! Serving: the bridge from the registry to the `wisp-host` runtime.
//!
//! A registry version becomes a [`ModelRef`]: a plain ONNX upload runs in the built-in
//! `onnx-runner` component with the file as its graph; a custom component runs as uploaded,
//! with the graph it came with if any. The runtime reads both through [`BlobArtifacts`].
//! The organisation id is the runtime's tenant, so graphs are cached and named per
//! organisation.

pub mod batch;

// The layers below, under the names the modules use (`crate::registry`, `crate::db`, …).
use wisp_core::alerts as alerts_rows;
use wisp_core::{access, deployments, error, fleet, inspect, lookups, plans, registry};
use wisp_domain as domain;
use wisp_metering as metering;
use wisp_storage::{blob, db};

pub mod admission;
pub mod answers;
mod artifacts;
#[cfg(test)]
mod codec_properties;
pub mod drift;
pub mod fair_share;
pub mod metrics;
pub mod pipeline;
pub mod prediction_log;
pub mod result_cache;
pub mod schema;
pub mod shape_limits;
pub mod tensors;
pub mod traffic;
pub mod v1_codec;
pub mod v2_codec;
pub mod warmup;

use std::sync::Arc;

use wisp_host::{Digest, ModelRef, Runtime, RuntimeConfig};

pub use artifacts::BlobArtifacts;

use crate::blob::ObjectStore;
use crate::inspect::Framework;
use crate::registry::ModelVersion;

/// The `onnx-runner` template, built for wasm32-wasip2 by `build.rs`.
pub const ONNX_RUNNER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/onnx-runner.wasm"));

/// The runtime and what the control plane needs to address models in it.
#[derive(Clone)]
pub struct Serving {
    runtime: Runtime,
    onnx_runner: Digest,
}

impl Serving {
    /// Starts the runtime over the object store. Must be called inside a tokio runtime.
    pub fn new(config: RuntimeConfig, blobs: Arc<dyn ObjectStore>) -> anyhow::Result<Self> {
        let artifacts = BlobArtifacts::new(blobs, &[ONNX_RUNNER]);
        Ok(Self {
            runtime: Runtime::new(config, Arc::new(artifacts))?,
            onnx_runner: Digest::of(ONNX_RUNNER),
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// How the runtime addresses `version` of the model `model_name` of organisation
    /// `org_id`.
    pub fn model_ref(&self, org_id: &str, model_name: &str, version: &ModelVersion) -> ModelRef {
        let file = Digest::parse(&version.sha256);
        let (component, graph) = if version.framework == Framework::WasmComponent.as_str() {
            (
                file,
                version.graph_sha256.as_deref().and_then(Digest::parse),
            )
        } else {
            (Some(self.onnx_runner.clone()), file)
        };
        ModelRef {
            tenant: org_id.to_owned(),
            model: model_name.to_owned(),
            version: version.version.to_string(),
            // Stored digests are validated on upload; an unparsable one names nothing.
            component: component.unwrap_or_else(|| Digest::of(b"")),
            graph,
        }
    }
}
