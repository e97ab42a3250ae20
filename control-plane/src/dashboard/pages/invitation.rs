//! Accepting an invitation from its link (`/invitations/accept?token=…`): signed in as the
//! invited address, or, for an address without an account, by choosing a password (the
//! account is created and signed in). Runs the API's own acceptance
//! ([`crate::api::invitations::accept`]), audited as `member.joined`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use super::auth::{FormError, RequestTls, anonymous_frame, with_presession};
use crate::api::{AppState, Meta};
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, templates};
use crate::dashboard::session::{self, SESSION_COOKIE, SignedIn};
use crate::error::ApiError;
use crate::{dashboard_sessions, db};

pub(super) const TEMPLATES: &[(&str, &str)] = templates!["auth/invitation.html"];

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/invitations/accept", get(page).post(accept))
}

#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn page(
    State(state): State<AppState>,
    signed: Option<SignedIn>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> PageResult {
    render_page(
        &state,
        signed.as_ref(),
        &headers,
        &query.token,
        None,
        StatusCode::OK,
    )
    .await
}

async fn render_page(
    state: &AppState,
    signed: Option<&SignedIn>,
    headers: &HeaderMap,
    token: &str,
    error: Option<FormError>,
    status: StatusCode,
) -> PageResult {
    let title = "Accept an invitation";
    let (frame, fresh) = match signed {
        Some(signed) => (signed.frame(state).await?.page("", title), None),
        None => anonymous_frame(headers, title),
    };
    let next = format!(
        "/invitations/accept?token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let mut response = render::page(
        "auth/invitation.html",
        &frame,
        context! { token, error, next, signed_in => signed.is_some() },
    )?;
    *response.status_mut() = status;
    Ok(with_presession(response, fresh))
}

#[derive(Debug, Deserialize)]
struct AcceptForm {
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn accept(
    State(state): State<AppState>,
    Meta(meta): Meta,
    signed: Option<SignedIn>,
    headers: HeaderMap,
    tls: RequestTls,
    Form(form): Form<AcceptForm>,
) -> PageResult {
    let password = (!form.password.is_empty()).then(|| form.password.clone());
    if signed.is_none() && form.password != form.confirm_password {
        let error = ApiError::invalid("the two passwords differ");
        return render_page(
            &state,
            None,
            &headers,
            &form.token,
            Some(error.into()),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let ttl = state.settings.refresh_token_ttl_secs;
    let accepted = crate::api::invitations::accept(
        &state,
        &meta,
        signed.as_ref().map(|s| &s.user),
        &form.token,
        password,
        async |tx, _user_id, session_id| {
            Ok(dashboard_sessions::issue(tx, session_id, ttl, db::now())
                .await?
                .secret)
        },
    )
    .await;
    match accepted {
        Ok(accepted) => {
            let mut response =
                Redirect::to(&format!("/orgs/{}", accepted.org.slug)).into_response();
            if let Some(secret) = accepted.session {
                let (name, value) = session::set_cookie(SESSION_COOKIE, &secret, ttl, tls.0);
                response.headers_mut().append(name, value);
            }
            Ok(response)
        }
        Err(error) => {
            let status =
                StatusCode::from_u16(error.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            render_page(
                &state,
                signed.as_ref(),
                &headers,
                &form.token,
                Some(error.into()),
                status,
            )
            .await
        }
    }
}
