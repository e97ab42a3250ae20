//! The template environment (every template compiled once, from the binary) and the
//! [`Frame`] — who is signed in, the organisation switcher, the anti-forgery token — that
//! the layout of every page shows.

use std::sync::OnceLock;

use axum::response::{Html, IntoResponse};
use minijinja::{Environment, Value, context};
use serde::Serialize;

use super::error::{PageError, PageResult};
use crate::auth::rbac::Role;

/// `(name, source)` of templates under `src/dashboard/templates/`, embedded at build time.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$((
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/dashboard/templates/", $name)),
        )),*]
    };
}
pub(crate) use templates;

/// The layout and the error page; each page area lists its own in `pages::*::TEMPLATES`.
const SHARED: &[(&str, &str)] = templates!["layout.html", "error.html", "macros.html"];

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.add_global("nav", Value::from_serialize(super::pages::NAV));
        env.add_filter("filesizeformat", file_size);
        env.add_filter("json_data", json_data);
        env.add_filter("ms_time", ms_time);
        for (name, source) in SHARED
            .iter()
            .chain(super::pages::TEMPLATES.iter().flat_map(|area| area.iter()))
        {
            // Templates are part of the binary: one that does not parse is a build bug,
            // caught by the first test that renders any page.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("dashboard template {name}: {e}"));
        }
        env
    })
}

/// A byte count for people: `1.5 MB` (decimal units, like the API's quota messages).
fn file_size(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Unix milliseconds as an RFC 3339 time (UTC, to the second), as the API writes times.
fn ms_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `value` as JSON for a `<script type="application/json">` data block: `<`, `>`, `&` and
/// `'` escaped as `\u00XX`, so the text can neither close the element nor start markup.
fn json_data(value: Value) -> Result<Value, minijinja::Error> {
    let text = serde_json::to_string(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            '\'' => safe.push_str("\\u0027"),
            c => safe.push(c),
        }
    }
    Ok(Value::from_safe_string(safe))
}

/// An organisation in the switcher.
#[derive(Debug, Clone, Serialize)]
pub struct OrgLink {
    pub slug: String,
    pub name: String,
    pub role: &'static str,
}

impl OrgLink {
    pub fn new(org: &crate::orgs::Org, role: Role) -> Self {
        Self {
            slug: org.slug.clone(),
            name: org.name.clone(),
            role: role.as_str(),
        }
    }
}

/// What the layout shows around every page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Frame {
    /// The signed-in user's email; empty on the sign-in pages.
    pub user: String,
    /// The user's organisations (the switcher).
    pub orgs: Vec<OrgLink>,
    /// The organisation of the page, if any.
    pub org: Option<OrgLink>,
    /// The anti-forgery token of this browser, for forms and htmx requests.
    pub csrf: String,
    /// The navigation entry to highlight (`home`, `models`, …).
    pub section: &'static str,
    /// The page's `<title>` and `<h1>`.
    pub title: String,
}

impl Frame {
    /// The same frame for another page of the area.
    pub fn page(mut self, section: &'static str, title: impl Into<String>) -> Self {
        self.section = section;
        self.title = title.into();
        self
    }
}

/// Renders `template` with the frame and the page's own values (`values` may be
/// `context! { … }`).
pub fn page(template: &str, frame: &Frame, values: Value) -> PageResult {
    let html = render(template, context! { frame => frame, ..values })?;
    Ok(Html(html).into_response())
}

/// Renders a fragment (an htmx swap target) without a frame.
pub fn fragment(template: &str, values: Value) -> PageResult {
    Ok(Html(render(template, values)?).into_response())
}

fn render(template: &str, values: Value) -> Result<String, PageError> {
    environment()
        .get_template(template)
        .and_then(|t| t.render(values))
        .map_err(|e| {
            PageError::Api(crate::error::ApiError::internal(anyhow::anyhow!(
                "failed to render {template}: {e:#}"
            )))
        })
}

/// Renders a page that must not fail (the error page itself).
pub(super) fn render_bare(template: &str, values: Value) -> Html<String> {
    match render(template, context! { frame => Frame::default(), ..values }) {
        Ok(html) => Html(html),
        Err(_) => Html("<!doctype html><title>Error</title><h1>Error</h1>".to_owned()),
    }
}
