//! Signing in and out, and changing one's password (including the forced change of a
//! one-time password). Sign-in and the password change run the API's own functions
//! ([`crate::api::auth::sign_in`], [`crate::api::auth::replace_password`]): the same
//! throttling, one-time passwords, sign-in history and session revocation.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::api::{AppState, Meta};
use crate::dashboard::csrf;
use crate::dashboard::error::PageResult;
use crate::dashboard::render::{self, Frame, templates};
use crate::dashboard::session::{self, PRESESSION_COOKIE, SESSION_COOKIE, SignedIn};
use crate::error::ApiError;
use crate::sessions::{self, EndReason};
use crate::{dashboard_sessions, db};

pub(super) const TEMPLATES: &[(&str, &str)] = templates!["auth/sign_in.html", "auth/password.html"];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", axum::routing::post(sign_out))
        .route(
            "/account/password",
            get(password_page).post(change_password),
        )
}

/// An error shown inside a form.
#[derive(Debug, Serialize)]
pub(super) struct FormError {
    code: &'static str,
    message: String,
}

impl From<ApiError> for FormError {
    fn from(error: ApiError) -> Self {
        Self {
            code: error.code().as_str(),
            message: error.message().to_owned(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Next {
    #[serde(default)]
    next: String,
}

/// The frame of a page shown before sign-in, and the pre-session cookie to set if the
/// browser has none yet (the sign-in form's anti-forgery token needs one).
pub(super) fn anonymous_frame(headers: &HeaderMap, title: &str) -> (Frame, Option<String>) {
    let (anchor, fresh) = match csrf::anchor(headers) {
        Some(anchor) => (anchor.to_owned(), None),
        None => {
            let fresh = crate::auth::tokens::random_hex_32();
            (fresh.clone(), Some(fresh))
        }
    };
    let frame = Frame {
        csrf: csrf::token(&anchor),
        title: title.to_owned(),
        section: "sign-in",
        ..Frame::default()
    };
    (frame, fresh)
}

async fn sign_in_page(
    signed: Option<SignedIn>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> PageResult {
    if signed.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    render_sign_in(&headers, &next.next, "", None, axum::http::StatusCode::OK)
}

fn render_sign_in(
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<FormError>,
    status: axum::http::StatusCode,
) -> PageResult {
    let (frame, fresh) = anonymous_frame(headers, "Sign in");
    let next = if session::is_local_path(next) {
        next
    } else {
        ""
    };
    let mut response = render::page("auth/sign_in.html", &frame, context! { next, email, error })?;
    *response.status_mut() = status;
    Ok(with_presession(response, fresh))
}

/// Sets the pre-session cookie `fresh`, if a new one was drawn.
pub(super) fn with_presession(mut response: Response, fresh: Option<String>) -> Response {
    if let Some(fresh) = fresh {
        let (name, value) = session::set_cookie(PRESESSION_COOKIE, &fresh, 24 * 3600, false);
        response.headers_mut().append(name, value);
    }
    response
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    parts: RequestTls,
    Form(form): Form<SignInForm>,
) -> PageResult {
    let ttl = state.settings.refresh_token_ttl_secs;
    let signed_in = crate::api::auth::sign_in(
        &state,
        &meta,
        &form.email,
        form.password,
        async |tx, user, session_id| {
            let secret = dashboard_sessions::issue(tx, session_id, ttl, db::now()).await?;
            Ok((secret.secret, user.must_change_password))
        },
    )
    .await;
    let (secret, must_change) = match signed_in {
        Ok(done) => done,
        Err(error) => {
            let status = axum::http::StatusCode::from_u16(error.code().http_status())
                .unwrap_or(axum::http::StatusCode::UNAUTHORIZED);
            let retry = error.retry_after();
            let mut response = render_sign_in(
                &headers,
                &form.next,
                &form.email,
                Some(error.into()),
                status,
            )?;
            if let Some(seconds) = retry {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(seconds),
                );
            }
            return Ok(response);
        }
    };
    let target = if must_change {
        "/account/password"
    } else if session::is_local_path(&form.next) {
        form.next.as_str()
    } else {
        "/"
    };
    Ok(signed_in_response(target, &secret, ttl, parts.0))
}

/// A redirect to `target` that sets the session cookie (and drops the pre-session one).
fn signed_in_response(target: &str, secret: &str, ttl: i64, secure: bool) -> Response {
    let mut response = Redirect::to(target).into_response();
    let (name, value) = session::set_cookie(SESSION_COOKIE, secret, ttl, secure);
    response.headers_mut().append(name, value);
    let (name, value) = session::set_cookie(PRESESSION_COOKIE, "", 0, secure);
    response.headers_mut().append(name, value);
    response
}

/// Whether the request came over TLS (for the cookie's `Secure`).
pub(super) struct RequestTls(pub(super) bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestTls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(session::over_tls(parts)))
    }
}

/// Ends this browser's session (like `POST /v1/auth/logout`) and drops the cookie.
async fn sign_out(
    State(state): State<AppState>,
    signed: Option<SignedIn>,
    tls: RequestTls,
) -> PageResult {
    if let Some(signed) = signed {
        let now = db::now();
        state
            .db
            .transaction(async |tx| -> Result<_, ApiError> {
                sessions::revoke(tx, &signed.session_id, EndReason::Logout, now).await?;
                Ok(())
            })
            .await?;
    }
    let mut response = Redirect::to("/sign-in").into_response();
    let (name, value) = session::set_cookie(SESSION_COOKIE, "", 0, tls.0);
    response.headers_mut().append(name, value);
    Ok(response)
}

async fn password_page(State(state): State<AppState>, signed: SignedIn) -> PageResult {
    render_password(&state, &signed, None, axum::http::StatusCode::OK).await
}

async fn render_password(
    state: &AppState,
    signed: &SignedIn,
    error: Option<FormError>,
    status: axum::http::StatusCode,
) -> PageResult {
    let forced = state
        .lookups
        .user(&signed.user.id)
        .await?
        .is_some_and(|u| u.must_change_password);
    let frame = signed.frame(state).await?.page("account", "Your password");
    let mut response = render::page("auth/password.html", &frame, context! { forced, error })?;
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    signed: SignedIn,
    Form(form): Form<PasswordForm>,
) -> PageResult {
    if form.new_password != form.confirm_password {
        let error = ApiError::invalid("the two new passwords differ");
        return render_password(
            &state,
            &signed,
            Some(error.into()),
            axum::http::StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let ttl = state.settings.refresh_token_ttl_secs;
    let changed = crate::api::auth::replace_password(
        &state,
        &meta,
        &signed.user,
        form.current_password,
        form.new_password,
        async |tx, session_id| {
            Ok(dashboard_sessions::issue(tx, session_id, ttl, db::now())
                .await?
                .secret)
        },
    )
    .await;
    match changed {
        Ok(secret) => Ok(signed_in_response("/", &secret, ttl, signed.secure)),
        Err(error) => {
            let status = axum::http::StatusCode::from_u16(error.code().http_status())
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            render_password(&state, &signed, Some(error.into()), status).await
        }
    }
}
