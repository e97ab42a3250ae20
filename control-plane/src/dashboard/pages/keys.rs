//! API keys: the keys the signed-in user may see (the API's visibility rules), creating
//! one with its secret shown once on the answer to the form (never stored, never shown
//! again), renaming and revoking one. Creation, renaming and revocation are the API's own
//! functions and domain operations, so they are audited like their API twins.

use axum::Router;
use axum::extract::{Path, Query, RawForm, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use minijinja::context;
use serde_json::json;

use crate::api::keys::{self as api_keys, CreateKey};
use crate::api::{AppState, Meta};
use crate::auth::Scope;
use crate::auth::rbac::{self, Action, KeyAccess, can};
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::OrgPage;
use crate::domain::{self, Acting};
use crate::error::{ApiError, DomainResult};

pub(super) const TEMPLATES: &[(&str, &str)] = templates!["keys/list.html"];

/// Every scope, in the order the form offers them.
const SCOPES: &[(Scope, &str)] = &[
    (Scope::Predict, "call deployed models"),
    (
        Scope::ModelsWrite,
        "create models, upload versions, deploy; MLflow tracking",
    ),
    (Scope::Read, "read what a viewer reads"),
    (Scope::Admin, "everything an organisation admin can do"),
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/keys", get(list).post(create))
        .route("/orgs/{org}/keys/{key}/rename", post(rename))
        .route("/orgs/{org}/keys/{key}/revoke", post(revoke))
}

async fn list(
    State(state): State<AppState>,
    page: OrgPage<can::ReadKeys>,
    Query(query): Query<super::Done>,
) -> PageResult {
    let notice = match query.done.as_str() {
        "revoked" => Some("Key revoked: requests made with it are refused."),
        "renamed" => Some("Key renamed: its secret and scopes are unchanged."),
        _ => None,
    };
    show(&state, &page, None, notice).await
}

/// The page, with the key just created (and its secret) if there is one.
async fn show<P>(
    state: &AppState,
    page: &OrgPage<P>,
    created: Option<api_keys::CreatedKey>,
    notice: Option<&str>,
) -> PageResult {
    let keys: Vec<_> = api_keys::visible_keys(state, &page.access)
        .await?
        .into_iter()
        .map(|(key, can)| {
            let manage = can == KeyAccess::Manage && key.revoked_at.is_none();
            json!({ "key": key, "manage": manage })
        })
        .collect();
    let role = page.access.acting_role();
    let scopes: Vec<_> = SCOPES
        .iter()
        .filter(|(scope, _)| rbac::role_may_grant(role, *scope))
        .map(|(scope, help)| json!({ "name": scope.as_str(), "help": help }))
        .collect();
    let frame = page.frame.clone().page("keys", "API keys");
    render::page(
        "keys/list.html",
        &frame,
        context! {
            keys,
            scopes,
            created,
            notice,
            can_write => page.can(Action::ManageKeys),
        },
    )
}

/// Creates a key from the form (`name`, `scope` repeated, optional `expires` date) and
/// answers the list with the secret, once.
async fn create(
    State(state): State<AppState>,
    page: OrgPage<can::ManageKeys>,
    Meta(meta): Meta,
    RawForm(form): RawForm,
) -> PageResult {
    let mut name = String::new();
    let mut scopes = Vec::new();
    let mut expires = String::new();
    for (field, value) in url::form_urlencoded::parse(&form) {
        match &*field {
            "name" => name = value.trim().to_owned(),
            "scope" => scopes.push(
                value
                    .parse::<Scope>()
                    .map_err(|e| ApiError::invalid(format!("scope: {e}")))?,
            ),
            "expires" => expires = value.trim().to_owned(),
            _ => {}
        }
    }
    // A date from the form's date input: the key expires at the start of that day (UTC).
    let expires_at = (!expires.is_empty()).then(|| format!("{expires}T00:00:00Z"));
    let request = CreateKey {
        name,
        scopes,
        expires_at,
    };
    let created = api_keys::create(&state, &page.access, &meta, &request).await?;
    show(&state, &page, Some(created), None).await
}

/// Renames a key from its row's form (`name`).
async fn rename(
    State(state): State<AppState>,
    page: OrgPage<can::ManageKeys>,
    Meta(meta): Meta,
    Path((_, key_id)): Path<(String, String)>,
    RawForm(form): RawForm,
) -> PageResult {
    let name = url::form_urlencoded::parse(&form)
        .find(|(field, _)| field == "name")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    api_keys::rename(&state, &page.access, &meta, &key_id, &name).await?;
    Ok(Redirect::to(&format!("/orgs/{}/keys?done=renamed", page.access.org.slug)).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    page: OrgPage<can::ManageKeys>,
    Meta(meta): Meta,
    Path((_, key_id)): Path<(String, String)>,
) -> PageResult {
    let acting = Acting::new(&page.access, &meta);
    state
        .db
        .transaction(async |tx| -> DomainResult<_> {
            domain::keys::revoke(tx, &acting, &page.access, &key_id).await
        })
        .await?;
    Ok(Redirect::to(&format!("/orgs/{}/keys?done=revoked", page.access.org.slug)).into_response())
}
