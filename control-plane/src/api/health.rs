//! `/healthz` and `/readyz`: whether this node serves, and whether it reaches its database.
//!
//! `/healthz` is the liveness check Fly's proxy runs: it answers `200` as long as the
//! process serves, with `{"status":"degraded"}` while the database is unreachable — warm
//! inference still answers then, so the proxy must keep sending it traffic. `/readyz`
//! answers `503` during such an outage, for a balancer that should route around the node.
//! Neither touches the database: they report what its last statement found
//! ([`crate::db::link::Health`], kept current by [`crate::db::watch_health`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

fn body(state: &AppState) -> (bool, serde_json::Value) {
    let available = !state.db.health().is_unavailable();
    let body = json!({
        "status": if available { "ok" } else { "degraded" },
        "database": if available { "ok" } else { "unavailable" },
    });
    (available, body)
}

/// Liveness: `200` while the process serves; `status` says whether it is degraded.
pub(super) async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    Json(body(&state).1)
}

/// Readiness: `503` while the database is unreachable.
pub(super) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (available, body) = body(&state);
    let status = if available {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
