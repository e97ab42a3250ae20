//! The dashboard's static files, embedded in the binary and served under `/static/`:
//! wisp's own stylesheet and scripts (`dashboard.js`, `charts.js`), and the vendored htmx and uPlot (minified, as
//! published on npm, with their licences next to them in `static/vendor/`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;

/// `(path under /static/, content type, bytes)`. Vendored names carry their version, so
/// they may be cached for long; wisp's own are revalidated.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("static/dashboard.css"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/dashboard.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/charts.js"),
    ),
    (
        "vendor/htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "vendor/uPlot-1.6.32.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/vendor/uPlot-1.6.32.iife.min.js"),
    ),
    (
        "vendor/uPlot-1.6.32.min.css",
        "text/css; charset=utf-8",
        include_bytes!("static/vendor/uPlot-1.6.32.min.css"),
    ),
    (
        "vendor/htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("static/vendor/htmx.LICENSE"),
    ),
    (
        "vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("static/vendor/uPlot.LICENSE"),
    ),
];

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/static/{*path}", get(file))
}

async fn file(Path(path): Path<String>) -> Response {
    let Some((name, content_type, bytes)) = FILES.iter().find(|(name, _, _)| *name == path) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let cache = if name.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        *bytes,
    )
        .into_response()
}
