//! Axum extractors that authenticate the bearer credentials and apply the permission table.
//!
//! - [`Principal`]: who is calling (a user with an access token, or an API key).
//! - [`CurrentUser`]: a user session is required (e.g. creating an organisation);
//!   [`CurrentSession`] also names the session (logout).
//!
//! An access token is valid only while its session is (see [`crate::sessions`]), and an
//! account whose password must be changed can only reach [`PASSWORD_CHANGE_PATHS`].
//! - [`Authorized<P>`]: the caller may perform action `P` in the organisation named by the
//!   `{org}` path segment. A caller outside that organisation gets `404`, exactly as if it
//!   did not exist; a member without the right role or scope gets `403`.
//! - [`CredentialOrg<P>`]: the same, for routes without an `{org}` segment (the standard
//!   inference protocols): the organisation comes from the credential.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use crate::access::{OrgAccess, Principal};
use crate::auth::rbac::{self, can::Permission};
use crate::auth::tokens::{self, TokenError};
use crate::error::{ApiError, ErrorCode};
use crate::orgs::{self, Org};

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "missing bearer token"))?;
        let token = bearer_or_basic_key(header.to_str().unwrap_or_default()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "expected `Authorization: Bearer <token>` (or Basic with an API key as the password)",
            )
        })?;
        let token = token.as_str();
        let principal = if token.starts_with(tokens::API_KEY_PREFIX) {
            authenticate_api_key(state, token).await?
        } else {
            let (principal, session) = authenticate_access_token(state, token).await?;
            if session.must_change_password && !PASSWORD_CHANGE_PATHS.contains(&parts.uri.path()) {
                return Err(ApiError::new(
                    ErrorCode::PasswordChangeRequired,
                    "this account's password is a one-time one: change it first (POST /v1/auth/password, `wisp password change`)",
                ));
            }
            parts.extensions.insert(session);
            principal
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// What an account that must change its password may still call.
pub const PASSWORD_CHANGE_PATHS: &[&str] = &[
    "/v1/me",
    "/v1/auth/password",
    "/v1/auth/logout",
    "/v1/auth/logout-all",
];

/// The session of a user's access token.
#[derive(Debug, Clone)]
pub struct SessionId {
    pub id: String,
    must_change_password: bool,
}

/// The credential of an `Authorization` header: a bearer token, or the password of Basic
/// credentials when it is an API key. Clients that only speak Basic (MLflow's
/// `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`) put the key in the password; the
/// username is not used (the key names its organisation). Account passwords are never
/// accepted this way: they go through login, with its throttling.
fn bearer_or_basic_key(header: &str) -> Option<String> {
    use base64::Engine;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let (scheme, credentials) = header.split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!credentials.is_empty()).then(|| credentials.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_, password) = decoded.split_once(':')?;
        return password
            .starts_with(tokens::API_KEY_PREFIX)
            .then(|| password.to_owned());
    }
    None
}

async fn authenticate_api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let hash = tokens::hash_secret(key);
    let now = crate::db::now();
    let found = match state.lookups.api_key(&hash, now).await? {
        Some(key) => key.check(now),
        None => crate::keys::KeyCheck::Unknown,
    };
    match found {
        crate::keys::KeyCheck::Valid {
            id,
            org_id,
            scopes,
            principal_user_id,
        } => {
            // The key has no more power than the person it acts for has now, even if a
            // revocation was missed: none once they left, their role's once demoted.
            let role = match &principal_user_id {
                Some(user_id) => state.lookups.role(&org_id, user_id).await?,
                None => None,
            };
            let scopes = role
                .map(|role| crate::keys::scopes_within_role(scopes, role))
                .unwrap_or_default();
            if scopes.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidToken,
                    "invalid or revoked API key",
                ));
            }
            Ok(Principal::ApiKey { id, org_id, scopes })
        }
        crate::keys::KeyCheck::Expired => {
            Err(ApiError::new(ErrorCode::TokenExpired, "API key expired"))
        }
        crate::keys::KeyCheck::Unknown => Err(ApiError::new(
            ErrorCode::InvalidToken,
            "invalid or revoked API key",
        )),
    }
}

async fn authenticate_access_token(
    state: &AppState,
    token: &str,
) -> Result<(Principal, SessionId), ApiError> {
    let claims = state.jwt.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "access token expired"),
        TokenError::Invalid => ApiError::new(ErrorCode::InvalidToken, "invalid access token"),
    })?;
    if claims.sid.is_empty() {
        // Issued before sessions existed: its refresh token (now a session) renews it.
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            "access token expired: refresh it",
        ));
    }
    let ended = || ApiError::new(ErrorCode::InvalidToken, "the session has ended");
    let session = state
        .lookups
        .session(&claims.sid)
        .await?
        .ok_or_else(ended)?;
    if session.user_id != claims.sub {
        return Err(ended());
    }
    let user = state
        .lookups
        .user(&claims.sub)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "invalid access token"))?;
    Ok((
        Principal::User {
            id: user.id,
            email: user.email,
        },
        SessionId {
            id: session.id,
            must_change_password: user.must_change_password,
        },
    ))
}

/// A signed-in user (not an API key).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
    pub email: String,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::User { id, email } => Ok(CurrentUser { id, email }),
            Principal::ApiKey { .. } => Err(ApiError::new(
                ErrorCode::Forbidden,
                "this endpoint needs a user session, not an API key",
            )),
        }
    }
}

/// A signed-in user and the session of their access token.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub user: CurrentUser,
    pub session_id: String,
    /// Whether the account's password is a one-time one.
    pub must_change_password: bool,
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let session = parts
            .extensions
            .get::<SessionId>()
            .cloned()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("user without a session")))?;
        Ok(Self {
            user,
            session_id: session.id,
            must_change_password: session.must_change_password,
        })
    }
}

/// `Option<CurrentSession>`: `None` without an `Authorization` header; a header that does
/// not authenticate a user is still refused.
impl axum::extract::OptionalFromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Proof that the caller may perform `P` in the organisation of the `{org}` path segment.
#[derive(Debug)]
pub struct Authorized<P> {
    access: OrgAccess,
    _action: PhantomData<P>,
}

impl<P> Deref for Authorized<P> {
    type Target = OrgAccess;
    fn deref(&self) -> &OrgAccess {
        &self.access
    }
}

impl<P: Permission> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        let slug = params
            .iter()
            .find(|(name, _)| *name == "org")
            .map(|(_, value)| value.to_owned())
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("route has no {{org}} segment")))?;
        let access = resolve(state, principal, &slug, P::ACTION).await?;
        Ok(Self {
            access,
            _action: PhantomData,
        })
    }
}

/// The header naming the organisation of a user's call on routes without an `{org}`
/// segment.
pub const ORG_HEADER: &str = "x-wisp-org";

/// Proof that the caller may perform `P` in the organisation its credential designates,
/// for routes that cannot name one in the path (KServe V1, Open Inference Protocol V2), so
/// that stock clients work with nothing but an `Authorization: Bearer` header.
///
/// An API key belongs to exactly one organisation. A user names one with the
/// [`ORG_HEADER`] header (its slug), or may omit it when member of exactly one. The
/// permission table and the `404`/`403` answers are those of [`Authorized<P>`].
#[derive(Debug)]
pub struct CredentialOrg<P> {
    access: OrgAccess,
    _action: PhantomData<P>,
}

impl<P> Deref for CredentialOrg<P> {
    type Target = OrgAccess;
    fn deref(&self) -> &OrgAccess {
        &self.access
    }
}

impl<P: Permission> FromRequestParts<AppState> for CredentialOrg<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let named = match parts.headers.get(ORG_HEADER) {
            None => None,
            Some(value) => Some(value.to_str().map(str::trim).map_err(|_| {
                ApiError::invalid(format!("the {ORG_HEADER} header is not a valid slug"))
            })?),
        };
        let org = match (&principal, named) {
            (Principal::ApiKey { org_id, .. }, named) => {
                let org = state
                    .lookups
                    .org_by_id(org_id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("organisation"))?;
                // A key naming another organisation sees it as missing, like in a path.
                if named.is_some_and(|slug| slug != org.slug) {
                    return Err(ApiError::not_found("organisation"));
                }
                org
            }
            (Principal::User { .. }, Some(slug)) => state
                .lookups
                .org_by_slug(slug)
                .await?
                .ok_or_else(|| ApiError::not_found("organisation"))?,
            (Principal::User { id, .. }, None) => {
                let mut orgs = orgs::list_for_user(&state.db, id).await?;
                if orgs.len() != 1 {
                    return Err(ApiError::invalid(format!(
                        "you are a member of {} organisations: name one with the {ORG_HEADER} header",
                        orgs.len()
                    )));
                }
                orgs.remove(0).0
            }
        };
        let access = authorize(state, principal, org, P::ACTION).await?;
        Ok(Self {
            access,
            _action: PhantomData,
        })
    }
}

/// Applies the permission table for `action` in the organisation `slug`.
pub(crate) async fn resolve(
    state: &AppState,
    principal: Principal,
    slug: &str,
    action: rbac::Action,
) -> Result<OrgAccess, ApiError> {
    let org = state
        .lookups
        .org_by_slug(slug)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))?;
    authorize(state, principal, org, action).await
}

/// Applies the permission table for `action` in `org`. A caller outside it gets `404`.
async fn authorize(
    state: &AppState,
    principal: Principal,
    org: Org,
    action: rbac::Action,
) -> Result<OrgAccess, ApiError> {
    let not_found = || ApiError::not_found("organisation");
    let (allowed, role) = match &principal {
        Principal::User { id, .. } => {
            let role = state
                .lookups
                .role(&org.id, id)
                .await?
                .ok_or_else(not_found)?;
            (rbac::role_allows(role, action), Some(role))
        }
        Principal::ApiKey { org_id, scopes, .. } => {
            if *org_id != org.id {
                return Err(not_found());
            }
            (rbac::scopes_allow(scopes, action), None)
        }
    };
    // After the membership check, so only the organisation's own callers learn of it.
    if org.suspended_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::OrgSuspended,
            "this organisation is suspended; contact the service operator",
        ));
    }
    if !allowed {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("not allowed to {action:?} in this organisation"),
        ));
    }
    Ok(OrgAccess {
        org,
        principal,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    #[test]
    fn basic_credentials_carry_only_api_keys() {
        let key = format!("{}abc", tokens::API_KEY_PREFIX);
        assert_eq!(bearer_or_basic_key("Bearer tok").as_deref(), Some("tok"));
        assert_eq!(bearer_or_basic_key("bearer  tok ").as_deref(), Some("tok"));
        assert_eq!(bearer_or_basic_key(&basic("acme", &key)), Some(key.clone()));
        assert_eq!(bearer_or_basic_key(&basic("", &key)), Some(key));
        assert_eq!(
            bearer_or_basic_key(&basic("me@example.com", "hunter2")),
            None
        );
        assert_eq!(bearer_or_basic_key("Basic !!!"), None);
        assert_eq!(bearer_or_basic_key("Bearer "), None);
        assert_eq!(bearer_or_basic_key("Digest x"), None);
    }
}
