//! The metering headers of every response: the usage event id of the call
//! (`wisp-usage-id`) and soft-limit warnings (`wisp-quota-warning`), from what metering
//! noted while the request ran ([`crate::metering::context`]).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::metering::context::{self, QUOTA_WARNING_HEADER, USAGE_ID_HEADER};

/// Middleware: runs the request, adds the metering headers.
pub(super) async fn layer(request: Request, next: Next) -> Response {
    let (mut response, noted) = context::scoped(next.run(request)).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (USAGE_ID_HEADER, noted.usage_id),
        (QUOTA_WARNING_HEADER, noted.warning),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}
