//! The per-request side channel between the HTTP edge and metering: the usage event id and
//! soft-limit warnings come out as response headers, and whether the call ran (for
//! `api::idempotency`). A task-local set by [`scoped`] around each request, so that no inference
//! handler has to thread it through.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// The response header carrying the usage event id of the call.
pub const USAGE_ID_HEADER: &str = "wisp-usage-id";
/// The response header carrying soft-limit warnings (`calls_per_month 812/1000 (81%)`).
pub const QUOTA_WARNING_HEADER: &str = "wisp-quota-warning";

#[derive(Debug, Default)]
struct CallContext {
    notes: Mutex<Notes>,
}

#[derive(Debug, Default)]
struct Notes {
    usage_id: Option<String>,
    warning: Option<String>,
    /// The call ran (or a stored result answered it): its event is the bill.
    finished: bool,
}

tokio::task_local! {
    static CALL: Arc<CallContext>;
}

/// What metering noted about one request: for the edge's response headers.
#[derive(Debug, Default)]
pub struct Noted {
    pub usage_id: Option<String>,
    pub warning: Option<String>,
}

/// Runs `request` (the whole handling of one request) with its side channel; returns its
/// output and what metering noted meanwhile.
pub async fn scoped<T>(request: impl Future<Output = T>) -> (T, Noted) {
    let context = Arc::new(CallContext {
        notes: Mutex::default(),
    });
    let output = CALL.scope(Arc::clone(&context), request).await;
    let notes = std::mem::take(&mut *context.notes.lock().unwrap_or_else(|p| p.into_inner()));
    let noted = Noted {
        usage_id: notes.usage_id,
        warning: notes.warning,
    };
    (output, noted)
}

/// Notes the usage event of the current request, and a soft-limit warning if any;
/// `finished` when the call ran (not when it was refused before running).
pub fn note(usage_id: &str, warning: Option<String>, finished: bool) {
    let _ = CALL.try_with(|c| {
        let mut notes = c.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.usage_id = Some(usage_id.to_owned());
        notes.finished |= finished;
        if warning.is_some() {
            notes.warning = warning;
        }
    });
}

/// The usage event id of the current request's call, if it ran.
pub fn finished_call() -> Option<String> {
    CALL.try_with(|c| {
        let notes = c.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.finished.then(|| notes.usage_id.clone()).flatten()
    })
    .ok()
    .flatten()
}
