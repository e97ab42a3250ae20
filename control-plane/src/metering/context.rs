//! The per-request side channel between the HTTP edge and metering: the caller's
//! `Idempotency-Key` goes in, the usage event id and soft-limit warnings come out as
//! response headers. A task-local set by [`layer`], so that no inference handler has to
//! thread it through.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The request header a client sets to make a retried call count once.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The response header carrying the usage event id of the call.
pub const USAGE_ID_HEADER: &str = "wisp-usage-id";
/// The response header carrying soft-limit warnings (`calls_per_month 812/1000 (81%)`).
pub const QUOTA_WARNING_HEADER: &str = "wisp-quota-warning";

#[derive(Debug, Default)]
struct CallContext {
    idempotency_key: Option<String>,
    notes: Mutex<Notes>,
}

#[derive(Debug, Default)]
struct Notes {
    usage_id: Option<String>,
    warning: Option<String>,
}

tokio::task_local! {
    static CALL: Arc<CallContext>;
}

/// Middleware: reads `Idempotency-Key`, runs the request, adds the metering headers.
pub async fn layer(request: Request, next: Next) -> Response {
    let idempotency_key = request
        .headers()
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned);
    let context = Arc::new(CallContext {
        idempotency_key,
        notes: Mutex::default(),
    });
    let mut response = CALL.scope(Arc::clone(&context), next.run(request)).await;
    let notes = std::mem::take(&mut *context.notes.lock().unwrap_or_else(|p| p.into_inner()));
    let headers = response.headers_mut();
    for (name, value) in [
        (USAGE_ID_HEADER, notes.usage_id),
        (QUOTA_WARNING_HEADER, notes.warning),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// The `Idempotency-Key` of the current request, if any.
pub fn idempotency_key() -> Option<String> {
    CALL.try_with(|c| c.idempotency_key.clone()).ok().flatten()
}

/// Notes the usage event of the current request, and a soft-limit warning if any.
pub fn note(usage_id: &str, warning: Option<String>) {
    let _ = CALL.try_with(|c| {
        let mut notes = c.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.usage_id = Some(usage_id.to_owned());
        if warning.is_some() {
            notes.warning = warning;
        }
    });
}
