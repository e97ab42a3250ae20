//! Anti-forgery tokens (synchronizer tokens) and the guard every dashboard request that is
//! not a `GET`/`HEAD` passes, so that no page handler can forget the check.
//!
//! The token is derived from the browser's session cookie secret (or, before sign-in, from
//! the pre-session cookie): it is bound to that session, and a page from another origin
//! can neither read it nor compute it. Forms carry it in a hidden `_csrf` field; htmx
//! requests and uploads in the `X-CSRF-Token` header (the layout sets `hx-headers`).
//! Cookies are also `SameSite=Strict`; the token is the check that does not depend on the
//! browser.

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::PageError;
use super::session::{PRESESSION_COOKIE, SESSION_COOKIE, cookie};

/// The header htmx requests and scripts send the token in.
pub const HEADER: &str = "x-csrf-token";
/// The hidden form field carrying the token.
pub const FIELD: &str = "_csrf";
/// Largest url-encoded form the guard reads to find the field.
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The token of a cookie secret.
pub fn token(cookie_secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"wisp dashboard csrf\0");
    hasher.update(cookie_secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// The cookie the token of a request is bound to: the session's, else the pre-session one.
pub fn anchor(headers: &axum::http::HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE).or_else(|| cookie(headers, PRESESSION_COOKIE))
}

/// Refuses a state-changing request without the token of its cookie.
pub async fn guard(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let Some(expected) = anchor(request.headers()).map(token) else {
        return PageError::csrf().into_response();
    };
    let by_header = request
        .headers()
        .get(HEADER)
        .map(|sent| matches(sent.as_bytes(), &expected));
    match by_header {
        Some(true) => return next.run(request).await,
        Some(false) => return PageError::csrf().into_response(),
        None => {}
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return PageError::csrf().into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return PageError::Api(crate::error::ApiError::new(
            crate::error::ErrorCode::PayloadTooLarge,
            "this form is too large",
        ))
        .into_response();
    };
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned());
    match sent {
        Some(sent) if matches(sent.as_bytes(), &expected) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => PageError::csrf().into_response(),
    }
}

fn matches(sent: &[u8], expected: &str) -> bool {
    sent.len() == expected.len() && bool::from(sent.ct_eq(expected.as_bytes()))
}
