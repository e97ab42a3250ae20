//! The web dashboard served at `/` by `wisp serve`: server-rendered pages (minijinja
//! templates embedded in the binary), small vendored assets, a session cookie tied to a
//! real sign-in session, anti-forgery tokens on every change, and a strict CSP.
//!
//! Layout:
//! - [`session`]: the cookie, the signed-in user ([`session::SignedIn`]) and the
//!   organisation page extractor ([`session::OrgPage`]) that applies the API's permission
//!   table.
//! - [`csrf`]: the guard every non-GET dashboard request passes.
//! - [`security`]: the response headers (CSP, framing, referrer, sniffing, caching).
//! - [`render`]: the template environment and the [`render::Frame`] every page shows.
//! - [`error`]: [`error::PageError`], an error answered as an HTML page.
//! - [`assets`]: the embedded static files under `/static/`.
//! - [`pages`]: one module per page area, each with its routes and its templates.
//!
//! Adding a page: see `README.md` next to this file (and `docs/dashboard.md`).

pub mod assets;
pub mod csrf;
pub mod error;
pub mod pages;
pub mod render;
pub mod security;
pub mod session;

use axum::Router;

use crate::api::AppState;

/// Every dashboard route (pages and static files), with the CSRF guard and the security
/// headers. Merged into the application by [`crate::app`]; the paths (`/`, `/sign-in`, `/orgs/…`,
/// `/static/…`, …) do not overlap the API's (`/v1`, `/v2`, `/api`, `/docs`, `/healthz`,
/// `/metrics`).
pub fn routes() -> Router<AppState> {
    pages::routes()
        .route_layer(axum::middleware::from_fn(csrf::guard))
        .merge(assets::routes())
        .layer(axum::middleware::from_fn(security::headers))
}
