//! The dashboard's pages, one module per area, each exposing `routes()` and `TEMPLATES`
//! (its templates under `templates/<area>/`). To add an area: write the module, add it to
//! [`routes`] and [`TEMPLATES`] below — one line each.

pub mod audit;
pub mod auth;
pub mod batch;
pub mod chart;
pub mod experiments;
pub mod home;
pub mod invitation;
pub mod keys;
pub mod members;
pub mod models;
pub mod monitoring;
pub mod usage;

use axum::Router;

use crate::api::AppState;

/// Every page route. The CSRF guard and security headers are added by the caller.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(home::routes())
        .merge(invitation::routes())
        .merge(models::routes())
        .merge(keys::routes())
        .merge(members::routes())
        .merge(monitoring::routes())
        .merge(batch::routes())
        .merge(usage::routes())
        .merge(audit::routes())
        .merge(experiments::routes())
}

/// `?done=…` on the page a form redirects to: what the form just did (`deployed`,
/// `revoked`, …), for the page's notice.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Done {
    #[serde(default)]
    pub done: String,
}

/// An entry of an organisation's navigation: `/orgs/{org}{path}`, highlighted on pages
/// whose frame has this `section`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct NavLink {
    pub section: &'static str,
    pub label: &'static str,
    pub path: &'static str,
    /// Roles that may not open the page (the entry is not shown to them).
    pub hidden_for: &'static [&'static str],
}

/// The organisation navigation, in order. A page area adds its line here.
pub const NAV: &[NavLink] = &[
    NavLink {
        section: "home",
        label: "Home",
        path: "",
        hidden_for: &[],
    },
    NavLink {
        section: "models",
        label: "Models",
        path: "/models",
        hidden_for: &[],
    },
    NavLink {
        section: "experiments",
        label: "Experiments",
        path: "/experiments",
        hidden_for: &[],
    },
    NavLink {
        section: "monitoring",
        label: "Monitoring",
        path: "/monitoring",
        hidden_for: &[],
    },
    NavLink {
        section: "batch",
        label: "Batch jobs",
        path: "/batch",
        hidden_for: &["viewer"],
    },
    NavLink {
        section: "keys",
        label: "API keys",
        path: "/keys",
        hidden_for: &["viewer"],
    },
    NavLink {
        section: "members",
        label: "Members",
        path: "/members",
        hidden_for: &[],
    },
    NavLink {
        section: "usage",
        label: "Usage",
        path: "/usage",
        hidden_for: &["member", "viewer"],
    },
    NavLink {
        section: "audit",
        label: "Audit log",
        path: "/audit",
        hidden_for: &["member", "viewer"],
    },
];

/// Every page area's templates.
pub const TEMPLATES: &[&[(&str, &str)]] = &[
    auth::TEMPLATES,
    home::TEMPLATES,
    invitation::TEMPLATES,
    models::TEMPLATES,
    keys::TEMPLATES,
    members::TEMPLATES,
    monitoring::TEMPLATES,
    batch::TEMPLATES,
    usage::TEMPLATES,
    audit::TEMPLATES,
    experiments::TEMPLATES,
];
