//! The logger of the `wisp` binary: human-readable text, or one JSON object per line with
//! the fields of the current span (a request's `request_id`, `org`, `model`, `version`)
//! flattened beside the event's own.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// What is logged without `RUST_LOG`. wasmtime-wasi-nn logs every backend error at ERROR,
/// including a call in place stopped to run again on the pool (a routine event under
/// load); the runtime reports every failure that matters itself, with its code.
pub const DEFAULT_LOG: &str = "info,wasmtime_wasi_nn=off";

/// Installs the global logger, writing to stderr.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
