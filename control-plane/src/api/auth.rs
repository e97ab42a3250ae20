//! Sign-in: password login and refresh-token rotation.

use axum::Json;
use axum::extract::State;
use libsql::params;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiJson, AppState, transaction};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::auth::{CurrentUser, password, tokens};
use crate::db::{self};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::{orgs, users};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(me))
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// A refresh token obtained from a login or a previous refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
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
    /// Single use: each refresh returns a new one and invalidates the old.
    pub refresh_token: String,
}

/// Who is signed in, and where.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub id: String,
    pub email: String,
    pub orgs: Vec<super::orgs::OrgView>,
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = crate::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let ip = meta.source_ip.as_deref().and_then(|ip| ip.parse().ok());
    if let Err(wait) = state.login_throttle.attempt(&request.email, ip) {
        return Err(ApiError::rate_limited(
            "too many login attempts; try again later",
            wait,
        ));
    }
    let user = {
        let conn = state.db.conn().await;
        users::find_by_email(&conn, request.email.trim()).await?
    };
    let verified = {
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let password = request.password.clone();
        tokio::task::spawn_blocking(move || match stored {
            Some(stored) => password::verify(&password, &stored),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(ApiError::internal)?
    };
    let org_ids = match &user {
        Some(user) => orgs::list_for_user(&state.db, &user.id)
            .await?
            .into_iter()
            .map(|(org, _)| org.id)
            .collect(),
        None => Vec::new(),
    };
    let Some(user) = user.filter(|_| verified) else {
        let actor = format!("email:{}", request.email.trim());
        transaction!(state, |tx| {
            record_per_org(&tx, &meta, &org_ids, &actor, "auth.login_failed").await
        })?;
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "wrong email or password",
        ));
    };
    let response = transaction!(state, |tx| {
        let response = issue_session(&state, &tx, &user.id).await?;
        record_per_org(
            &tx,
            &meta,
            &org_ids,
            &format!("user:{}", user.id),
            "auth.login",
        )
        .await?;
        Ok(response)
    })?;
    Ok(Json(response))
}

/// Exchanges a refresh token for a new session (the old refresh token stops working).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let hash = tokens::hash_secret(&request.refresh_token);
    let now = db::now();
    let response = transaction!(state, |tx| {
        let rows = tx
            .query(
                "SELECT id, user_id, expires_at FROM refresh_tokens
                 WHERE token_hash = ?1 AND revoked_at IS NULL",
                params![hash.as_str()],
            )
            .await
            .map_err(ApiError::internal)?;
        let row = db::first_row(rows)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "invalid refresh token"))?;
        let (id, user_id, expires_at): (String, String, i64) = (
            row.get(0).map_err(ApiError::internal)?,
            row.get(1).map_err(ApiError::internal)?,
            row.get(2).map_err(ApiError::internal)?,
        );
        if expires_at <= now {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                "refresh token expired",
            ));
        }
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE id = ?1",
            params![id, now],
        )
        .await
        .map_err(ApiError::internal)?;
        issue_session(&state, &tx, &user_id).await
    })?;
    Ok(Json(response))
}

/// The signed-in user and their organisations.
#[utoipa::path(get, path = "/v1/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody)))]
async fn me(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<MeResponse>> {
    let orgs = orgs::list_for_user(&state.db, &user.id)
        .await?
        .into_iter()
        .map(|(org, role)| super::orgs::OrgView::new(&org, Some(role)))
        .collect();
    Ok(Json(MeResponse {
        id: user.id,
        email: user.email,
        orgs,
    }))
}

async fn issue_session(
    state: &AppState,
    conn: &libsql::Connection,
    user_id: &str,
) -> ApiResult<TokenResponse> {
    let now = db::now();
    let access_token = state.jwt.issue(user_id, now).map_err(ApiError::internal)?;
    let refresh = tokens::generate_secret(tokens::REFRESH_TOKEN_PREFIX);
    conn.execute(
        "INSERT INTO refresh_tokens (id, user_id, token_hash, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            db::new_id(),
            user_id,
            refresh.hash.as_str(),
            now + state.settings.refresh_token_ttl_secs,
            now
        ],
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.access_ttl_secs,
        refresh_token: refresh.secret,
    })
}

/// Sign-ins are not tied to one organisation: each organisation the user belongs to gets
/// the event, so its admins see it; unknown emails are logged without an organisation.
async fn record_per_org(
    conn: &libsql::Connection,
    meta: &RequestMeta,
    org_ids: &[String],
    actor: &str,
    action: &str,
) -> ApiResult<()> {
    let targets: Vec<Option<&str>> = if org_ids.is_empty() {
        vec![None]
    } else {
        org_ids.iter().map(|id| Some(id.as_str())).collect()
    };
    for org_id in targets {
        audit::record(
            conn,
            meta,
            AuditEvent {
                org_id,
                actor,
                action,
                target: None,
                details: json!({}),
            },
        )
        .await?;
    }
    Ok(())
}
