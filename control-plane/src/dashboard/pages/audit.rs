//! The audit log: the organisation's entries newest first, filtered by actor, action,
//! resource (a target prefix) and a range of days, paged by cursor — the API's own query
//! (`GET /v1/orgs/{org}/audit`). Organisation admins only, like the API.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Date, Month};

use crate::api::AppState;
use crate::audit::{self, AuditQuery};
use crate::auth::rbac::can;
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::error::ApiError;
use crate::orgs;

pub(super) const TEMPLATES: &[(&str, &str)] = templates!["audit/log.html"];

/// Entries per page.
const PAGE_SIZE: i64 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/orgs/{org}/audit", get(log))
}

/// The filter form (every field optional).
#[derive(Debug, Default, Deserialize, Serialize)]
struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
    /// First day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    from: String,
    /// Last day, `YYYY-MM-DD` (UTC), included.
    #[serde(default)]
    to: String,
    /// The cursor of the page (entries older than this id).
    #[serde(default)]
    before: Option<i64>,
}

/// Unix seconds of the start of day `text` (`YYYY-MM-DD`, UTC).
fn day_start(field: &str, text: &str) -> Result<i64, ApiError> {
    let date = (|| {
        let mut parts = text.splitn(3, '-');
        let year = parts.next()?.parse::<i32>().ok()?;
        let month = Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
        let day = parts.next()?.parse::<u8>().ok()?;
        Date::from_calendar_date(year, month, day).ok()
    })();
    date.map(|d| d.midnight().assume_utc().unix_timestamp())
        .ok_or_else(|| {
            ApiError::invalid(format!("{field} must be a date, YYYY-MM-DD, got {text:?}"))
        })
}

fn some(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

async fn log(
    State(state): State<AppState>,
    page: OrgPage<can::ReadAudit>,
    Query(filters): Query<Filters>,
) -> PageResult {
    let since = some(&filters.from)
        .map(|d| day_start("from", &d))
        .transpose()?;
    let until = some(&filters.to)
        .map(|d| day_start("to", &d).map(|s| s + 86_400))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(ApiError::invalid("from must not be after to").into());
    }
    let query = AuditQuery {
        action: some(&filters.action),
        actor: some(&filters.actor),
        target_prefix: some(&filters.resource),
        since,
        until,
        limit: Some(PAGE_SIZE),
        before: filters.before,
    };
    let org = &page.access.org;
    let (found, members) = {
        let conn = state.db.read().await;
        let found = audit::query(&conn, &org.id, &query).await?;
        let members = orgs::members(&conn, &org.id).await?;
        (found, members)
    };
    // Actors by their email where they are members.
    let emails: HashMap<String, String> = members
        .into_iter()
        .map(|m| (format!("user:{}", m.user_id), m.email))
        .collect();
    let entries: Vec<_> = found
        .entries
        .iter()
        .map(|e| {
            let details = if e.details.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                e.details.to_string()
            };
            json!({ "entry": e, "who": emails.get(&e.actor), "details": details })
        })
        .collect();
    let filtered = [
        &filters.actor,
        &filters.action,
        &filters.resource,
        &filters.from,
        &filters.to,
    ]
    .iter()
    .any(|f| !f.trim().is_empty());
    let keep = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("actor", filters.actor.trim())
        .append_pair("action", filters.action.trim())
        .append_pair("resource", filters.resource.trim())
        .append_pair("from", filters.from.trim())
        .append_pair("to", filters.to.trim())
        .finish();
    let frame = page.frame.clone().page("audit", "Audit log");
    render::page(
        "audit/log.html",
        &frame,
        context! {
            entries,
            filters,
            filtered,
            keep,
            next => found.next_cursor,
        },
    )
}
