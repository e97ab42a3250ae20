//! `/metrics` over HTTP: on the metrics listener (its only route, no authentication: it
//! listens on a private address), and on the main port only with `metrics.token` set, for
//! a caller presenting it as a bearer token; otherwise the main port answers `404`.
//!
//! The body is OpenMetrics 1.0.0 text when the `Accept` header prefers it (as Prometheus
//! does), else the Prometheus 0.0.4 text format.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::telemetry::{Telemetry, wants_openmetrics};

/// The exposition, in the format the `Accept` header prefers.
fn expose(telemetry: &Telemetry, headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let exposition = telemetry.expose(wants_openmetrics(accept));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(exposition.content_type),
        )],
        exposition.body,
    )
        .into_response()
}

/// `GET /metrics` on the main port.
pub(super) async fn main_port(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let telemetry = &state.telemetry;
    if !telemetry.on_main_port() {
        return ApiError::new(ErrorCode::NotFound, "no such endpoint").into_response();
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !telemetry.token_matches(presented) {
        return ApiError::new(
            ErrorCode::Unauthenticated,
            "/metrics needs the metrics token as a bearer token",
        )
        .into_response();
    }
    expose(telemetry, &headers)
}

/// The metrics listener's application: `/metrics` and nothing else.
pub fn listener_app(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State(telemetry): State<Arc<Telemetry>>, headers: HeaderMap| async move {
                    expose(&telemetry, &headers)
                },
            ),
        )
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .with_state(telemetry)
}
