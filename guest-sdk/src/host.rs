//! What the host tells a component: the model version it serves, and a log.

use crate::bindings::wisp::model::host;
use crate::{LogLevel, ServedModel};

/// Describes the model version this instance serves.
pub fn model_info() -> ServedModel {
    host::model_info()
}

/// The value of metadata key `key` stored with the model file (ONNX `metadata_props`).
pub fn metadata(info: &ServedModel, key: &str) -> Option<String> {
    info.metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// Writes a line to the host's log, attributed to this model version.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}
