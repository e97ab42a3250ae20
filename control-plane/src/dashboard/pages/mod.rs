//! The dashboard's pages, one module per area, each exposing `routes()` and `TEMPLATES`
//! (its templates under `templates/<area>/`). To add an area: write the module, add it to
//! [`routes`] and [`TEMPLATES`] below — one line each.

pub mod auth;
pub mod home;
pub mod invitation;
pub mod models;

use axum::Router;

use crate::api::AppState;

/// Every page route. The CSRF guard and security headers are added by the caller.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(home::routes())
        .merge(invitation::routes())
        .merge(models::routes())
}

/// An entry of an organisation's navigation: `/orgs/{org}{path}`, highlighted on pages
/// whose frame has this `section`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct NavLink {
    pub section: &'static str,
    pub label: &'static str,
    pub path: &'static str,
}

/// The organisation navigation, in order. A page area adds its line here.
pub const NAV: &[NavLink] = &[
    NavLink {
        section: "home",
        label: "Home",
        path: "",
    },
    NavLink {
        section: "models",
        label: "Models",
        path: "/models",
    },
];

/// Every page area's templates.
pub const TEMPLATES: &[&[(&str, &str)]] = &[
    auth::TEMPLATES,
    home::TEMPLATES,
    invitation::TEMPLATES,
    models::TEMPLATES,
];
