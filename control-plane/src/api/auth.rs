//! Sign-in and sessions: password login, refresh-token rotation with reuse detection,
//! logout (one session or all), password change, and the user's own sessions and sign-in
//! history.
//!
//! Sign-ins are the user's own business: they are recorded in the user's history
//! ([`crate::sign_ins`]), never in an organisation's audit log.

use crate::api::Meta;
use crate::db::Writer;
use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, AppState};
use crate::api::{CurrentSession, CurrentUser};
use crate::audit::RequestMeta;
use crate::auth::{input, password, tokens};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::sessions::{self, EndReason, Rotation, SessionView};
use crate::sign_ins::{self, SignIn};
use crate::{orgs, users};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(me))
        .routes(routes!(my_sign_ins))
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// At most 254 bytes.
    pub email: String,
    /// At most 1024 bytes.
    pub password: String,
}

/// A refresh token obtained from a login or a previous refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The current password and the new one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// 8 to 1024 bytes.
    pub new_password: String,
}

/// A session: a short-lived access token and a refresh token to renew it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT; send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single use: each refresh returns a new one and spends the old. Presenting a spent
    /// one ends the whole session.
    pub refresh_token: String,
    /// The password is a one-time one: until it is changed (`POST /v1/auth/password`),
    /// these tokens can do nothing else.
    pub must_change_password: bool,
}

/// Who is signed in, and where.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub id: String,
    pub email: String,
    pub orgs: Vec<super::orgs::OrgView>,
    /// See [`TokenResponse::must_change_password`].
    pub must_change_password: bool,
}

fn parse_ip(meta: &RequestMeta) -> Option<IpAddr> {
    meta.source_ip.as_deref().and_then(|ip| ip.parse().ok())
}

fn overloaded(_: password::Busy) -> ApiError {
    ApiError::new(
        ErrorCode::Overloaded,
        "too many sign-ins at once; retry shortly",
    )
}

fn throttled(wait: std::time::Duration) -> ApiError {
    ApiError::rate_limited("too many attempts; try again later", wait)
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
        (status = 400, description = "`invalid_request`: an email or password over its bound", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = crate::error::ErrorBody),
        (status = 503, description = "`overloaded`: every password hashing slot is busy", body = crate::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let response = sign_in(
        &state,
        &meta,
        &request.email,
        request.password,
        async |tx, user, session| {
            issue_tokens(
                &state,
                tx,
                &user.id,
                session,
                user.must_change_password,
                db::now(),
            )
            .await
        },
    )
    .await?;
    Ok(Json(response))
}

/// Password sign-in, the one way in for `POST /v1/auth/login` and the dashboard: bounds,
/// throttling per account and address, argon2 on the hashing pool (a dummy hash for
/// unknown emails), the sign-in history, and a new session. `then` runs in the
/// transaction that starts the session, with the user and the session id, to issue what
/// the caller hands out (tokens, a cookie).
pub(crate) async fn sign_in<T>(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password: String,
    then: impl AsyncFnOnce(&Writer, &users::User, &str) -> ApiResult<T>,
) -> ApiResult<T> {
    // Bounds first: nothing unbounded reaches the throttle's keys, argon2 or the database.
    let email = input::email(email)?.to_owned();
    input::password(&password)?;
    let ip = parse_ip(meta);
    state
        .login_throttle
        .attempt(&email, ip)
        .map_err(throttled)?;
    let user = {
        let conn = state.db.read().await;
        users::find_by_email(&conn, &email).await?
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state
        .password_hashing
        .run(move || match stored {
            Some(stored) => password::verify(&password, &stored),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(overloaded)?;
    let now = db::now();
    let Some(user) = user else {
        return Err(wrong_credentials());
    };
    if !verified {
        // `reader`, not a transaction: `sign_ins` is no memoised row, so a flood of wrong
        // passwords must not make every tenant's memos stale.
        let conn = state.db.write_unmemoised().await;
        sign_ins::record(&conn, &user.id, false, meta.source_ip.as_deref(), now).await?;
        return Err(wrong_credentials());
    }
    state.login_throttle.succeeded(&email, ip);
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            sign_ins::record(tx, &user.id, true, meta.source_ip.as_deref(), now).await?;
            let session = sessions::start(tx, &user.id, meta.source_ip.as_deref(), now).await?;
            then(tx, &user, &session).await
        })
        .await
}

fn wrong_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong email or password")
}

/// Exchanges a refresh token for a new one and a new access token. A refresh token works
/// once: presenting one that was already exchanged ends its whole session (every token
/// issued in it), since it means someone else holds it too.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    input::token(&request.refresh_token)?;
    let hash = tokens::hash_secret(&request.refresh_token);
    let now = db::now();
    // The reuse is committed even though the call fails: the session must stay ended.
    let rotation = state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            Ok(sessions::rotate(tx, &hash, now).await?)
        })
        .await?;
    let (session_id, user_id) = match rotation {
        Rotation::Rotated {
            session_id,
            user_id,
        } => (session_id, user_id),
        Rotation::Invalid => {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "invalid refresh token",
            ));
        }
        Rotation::Expired => {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                "refresh token expired",
            ));
        }
        Rotation::Reused => {
            tracing::warn!(error.type = "refresh_token_reused", "a spent refresh token was presented; its session is revoked");
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "this refresh token was already used: the session has been ended; sign in again",
            ));
        }
    };
    let response = state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            let must_change = users::find_by_id(tx, &user_id)
                .await?
                .is_some_and(|u| u.must_change_password);
            issue_tokens(&state, tx, &user_id, &session_id, must_change, now).await
        })
        .await?;
    Ok(Json(response))
}

/// Ends the caller's session: its refresh token and every access token issued in it stop
/// working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)))]
async fn logout(State(state): State<AppState>, session: CurrentSession) -> ApiResult<StatusCode> {
    let now = db::now();
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            sessions::revoke(tx, &session.session_id, EndReason::Logout, now).await?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out everywhere: ends every session of the caller, this one included.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth",
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)))]
async fn logout_all(
    State(state): State<AppState>,
    session: CurrentSession,
) -> ApiResult<StatusCode> {
    let now = db::now();
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            sessions::revoke_all(tx, &session.user.id, EndReason::LogoutAll, now).await?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password. Every session of the user ends (on every device); the
/// answer is a new session for the caller.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = ChangePassword,
    responses((status = 200, body = TokenResponse),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, description = "`invalid_credentials`: wrong current password", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    Meta(meta): Meta,
    session: CurrentSession,
    ApiJson(request): ApiJson<ChangePassword>,
) -> ApiResult<Json<TokenResponse>> {
    let response = replace_password(
        &state,
        &meta,
        &session.user,
        request.current_password,
        request.new_password,
        async |tx, new_session| {
            issue_tokens(&state, tx, &session.user.id, new_session, false, db::now()).await
        },
    )
    .await?;
    Ok(Json(response))
}

/// Changes `user`'s password, the one way for `POST /v1/auth/password` and the dashboard:
/// bounds, the throttle (a stolen credential must not become a way to guess the password
/// fast), the current password checked, every session of the user ended, and a new
/// session started. `then` runs in that transaction with the new session's id.
pub(crate) async fn replace_password<T>(
    state: &AppState,
    meta: &RequestMeta,
    user: &CurrentUser,
    current_password: String,
    new_password: String,
    then: impl AsyncFnOnce(&Writer, &str) -> ApiResult<T>,
) -> ApiResult<T> {
    input::password(&current_password)?;
    input::new_password(&new_password)?;
    if new_password == current_password {
        return Err(ApiError::invalid(
            "the new password must differ from the current one",
        ));
    }
    let user_id = user.id.clone();
    let email = user.email.clone();
    let ip = parse_ip(meta);
    state
        .login_throttle
        .attempt(&email, ip)
        .map_err(throttled)?;
    let stored = {
        let conn = state.db.read().await;
        users::find_by_id(&conn, &user_id)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "invalid access token"))?
            .password_hash
    };
    let current = current_password;
    let new = new_password;
    let hashed = state
        .password_hashing
        .run(move || {
            password::verify(&current, &stored)
                .then(|| password::hash(&new))
                .transpose()
        })
        .await
        .map_err(overloaded)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("failed to hash a password: {e}")))?;
    let Some(hash) = hashed else {
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "wrong current password",
        ));
    };
    state.login_throttle.succeeded(&email, ip);
    let now = db::now();
    state
        .db
        .transaction(async |tx| -> Result<_, crate::error::ApiError> {
            users::set_password(tx, &user_id, &hash).await?;
            sessions::revoke_all(tx, &user_id, EndReason::PasswordChanged, now).await?;
            let new_session = sessions::start(tx, &user_id, meta.source_ip.as_deref(), now).await?;
            then(tx, &new_session).await
        })
        .await
}

/// The caller's sessions that have not ended, newest first (at most 100).
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "auth",
    responses((status = 200, body = [SessionView]), (status = 401, body = crate::error::ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    session: CurrentSession,
) -> ApiResult<Json<Vec<SessionView>>> {
    let conn = state.db.read().await;
    Ok(Json(
        sessions::list_active(&conn, &session.user.id, &session.session_id).await?,
    ))
}

/// The signed-in user and their organisations.
#[utoipa::path(get, path = "/v1/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody)))]
async fn me(State(state): State<AppState>, session: CurrentSession) -> ApiResult<Json<MeResponse>> {
    let user = session.user;
    let orgs = orgs::list_for_user(&state.db, &user.id)
        .await?
        .into_iter()
        .map(|(org, role)| super::orgs::OrgView::new(&org, Some(role)))
        .collect();
    Ok(Json(MeResponse {
        id: user.id,
        email: user.email,
        orgs,
        must_change_password: session.must_change_password,
    }))
}

/// The caller's own recent sign-in attempts (successes and wrong passwords, with the
/// address they came from), newest first. Nobody else sees them.
#[utoipa::path(get, path = "/v1/me/sign-ins", tag = "auth",
    responses((status = 200, body = [SignIn]), (status = 401, body = crate::error::ErrorBody)))]
async fn my_sign_ins(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<Vec<SignIn>>> {
    let conn = state.db.read().await;
    Ok(Json(sign_ins::list(&conn, &user.id).await?))
}

/// Issues an access token and the next refresh token of `session_id`.
pub(super) async fn issue_tokens(
    state: &AppState,
    conn: &Writer,
    user_id: &str,
    session_id: &str,
    must_change_password: bool,
    now: i64,
) -> ApiResult<TokenResponse> {
    let access_token = state
        .jwt
        .issue(user_id, session_id, now)
        .map_err(ApiError::internal)?;
    let refresh = sessions::issue_refresh_token(
        conn,
        session_id,
        user_id,
        state.settings.refresh_token_ttl_secs,
        now,
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.access_ttl_secs,
        refresh_token: refresh.secret,
        must_change_password,
    })
}
