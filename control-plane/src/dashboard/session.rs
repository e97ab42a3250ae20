//! Who is looking at the dashboard: the session cookie ([`SESSION_COOKIE`]), resolved to
//! the real sign-in session behind it ([`crate::dashboard_sessions`]), and the
//! organisation pages' extractor [`OrgPage<P>`], which applies the API's permission table
//! (a viewer reads, cannot change; another organisation answers like a missing one).

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use super::error::PageError;
use super::render::{Frame, OrgLink};
use crate::access::{OrgAccess, Principal};
use crate::api::{AppState, CurrentUser};
use crate::auth::rbac::{self, can::Permission};
use crate::auth::tokens;
use crate::client_ip::ClientIpPolicy;
use crate::{dashboard_sessions, orgs};

/// The cookie naming a dashboard sign-in (a random secret; the database keeps its hash).
pub const SESSION_COOKIE: &str = "wisp_session";
/// A random value set before sign-in, so the sign-in form carries an anti-forgery token
/// too (login CSRF).
pub const PRESESSION_COOKIE: &str = "wisp_presession";

/// What a signed-in account whose password is a one-time one may still open.
const PASSWORD_CHANGE_PAGES: &[&str] = &["/account/password", "/sign-out"];

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached wisp over TLS: only a trusted proxy
/// (`server.trusted_proxies`) can say so, with `X-Forwarded-Proto: https`. wisp itself
/// serves plain HTTP.
pub fn over_tls(parts: &Parts) -> bool {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    parts
        .extensions
        .get::<Arc<ClientIpPolicy>>()
        .is_some_and(|policy| policy.forwarded_https(peer, &parts.headers))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, the whole site, `Secure` over TLS.
/// An empty `value` with `max_age` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age: i64,
    secure: bool,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    (
        SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie values are ASCII"),
    )
}

/// Whether `next` is a path of this site (not `//host`, not a URL): the only redirect
/// targets accepted after a sign-in.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control())
}

/// A signed-in browser: the user and the session of its cookie.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: CurrentUser,
    pub session_id: String,
    /// The anti-forgery token of this cookie (see [`super::csrf`]).
    pub csrf: String,
    /// Whether the request came over TLS (the cookie's `Secure`).
    pub secure: bool,
}

impl SignedIn {
    /// The frame of a page outside any organisation.
    pub async fn frame(&self, state: &AppState) -> Result<Frame, PageError> {
        let orgs = orgs::list_for_user(&state.db, &self.user.id)
            .await?
            .iter()
            .map(|(org, role)| OrgLink::new(org, *role))
            .collect();
        Ok(Frame {
            user: self.user.email.clone(),
            orgs,
            org: None,
            csrf: self.csrf.clone(),
            section: "",
            title: String::new(),
        })
    }

    /// The principal the API's permission table judges.
    pub fn principal(&self) -> Principal {
        Principal::User {
            id: self.user.id.clone(),
            email: self.user.email.clone(),
        }
    }
}

/// The cookie's session, if it is valid, and whether the password must be changed.
async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<(SignedIn, bool)>, PageError> {
    let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if !secret.starts_with(dashboard_sessions::COOKIE_SECRET_PREFIX) || secret.len() > 128 {
        return Ok(None);
    }
    let found = {
        let conn = state.db.read().await;
        dashboard_sessions::find(&conn, &tokens::hash_secret(secret), crate::db::now()).await?
    };
    let Some(found) = found else {
        return Ok(None);
    };
    let Some(user) = state.lookups.user(&found.user_id).await? else {
        return Ok(None);
    };
    let signed = SignedIn {
        user: CurrentUser {
            id: user.id,
            email: user.email,
        },
        session_id: found.session_id,
        csrf: super::csrf::token(secret),
        secure: over_tls(parts),
    };
    Ok(Some((signed, user.must_change_password)))
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let path = parts.uri.path().to_owned();
        let Some((signed, must_change)) = resolve(parts, state).await? else {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            return Err(PageError::SignIn { next });
        };
        if must_change && !PASSWORD_CHANGE_PAGES.contains(&path.as_str()) {
            return Err(PageError::PasswordChange);
        }
        Ok(signed)
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, PageError> {
        Ok(resolve(parts, state).await?.map(|(signed, _)| signed))
    }
}

/// A page of the organisation in the `{org}` path segment that the signed-in user may see
/// with permission `P`: the API's `Authorized<P>` for the browser.
#[derive(Debug)]
pub struct OrgPage<P> {
    pub access: OrgAccess,
    pub signed: SignedIn,
    pub frame: Frame,
    _action: PhantomData<P>,
}

impl<P> OrgPage<P> {
    /// Whether the user's role allows `action` here (to show or hide a button; the
    /// action's own route checks again).
    pub fn can(&self, action: rbac::Action) -> bool {
        self.access
            .role
            .is_some_and(|role| rbac::role_allows(role, action))
    }
}

impl<P: Permission> FromRequestParts<AppState> for OrgPage<P> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let signed = SignedIn::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| crate::error::ApiError::invalid(e.body_text()))?;
        let slug = params
            .iter()
            .find(|(name, _)| *name == "org")
            .map(|(_, value)| value.to_owned())
            .ok_or_else(|| {
                crate::error::ApiError::internal(anyhow::anyhow!("page has no {{org}} segment"))
            })?;
        let access =
            crate::api::extract::resolve(state, signed.principal(), &slug, P::ACTION).await?;
        let mut frame = signed.frame(state).await?;
        frame.org = frame
            .orgs
            .iter()
            .find(|o| o.slug == access.org.slug)
            .cloned();
        Ok(Self {
            access,
            signed,
            frame,
            _action: PhantomData,
        })
    }
}
