//! The OpenAPI document (`/openapi.json`) and a self-contained page to browse it (`/docs`).
//!
//! The page loads nothing from the network: wisp must be browsable on a machine without
//! internet access.

use std::sync::Arc;

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::OpenApi;

use super::AppState;

pub(super) fn routes(openapi: OpenApi) -> Router<AppState> {
    let json = Arc::new(openapi.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "failed to serialise the OpenAPI document");
        "{}".to_owned()
    }));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [("content-type", "application/json")],
                        json.as_str().to_owned(),
                    )
                        .into_response()
                }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}

const DOCS_PAGE: &str = include_str!("docs.html");
