//! `Idempotency-Key` on the inference endpoints: the HTTP side of
//! [`metering::idempotency`](crate::metering::idempotency).
//!
//! [`once`] wraps a call. Without the header it only runs it: the hot path pays one header
//! lookup. With it, the key is claimed in the database before the call runs; a call that
//! ran (its usage event was recorded) has its response stored for replay; a call that did
//! not run (refused by validation, rate limits, quotas) gives the key back, so a retry
//! runs it, as Stripe does.

use std::future::Future;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::access::OrgAccess;
use crate::error::{ApiError, ErrorCode};
use crate::metering::context;
use crate::metering::idempotency::{
    self, Claim, KEY_HEADER, KeyScope, REPLAYED_HEADER, REPLAYED_HEADERS, Refused, StoredResponse,
};

/// The request as the fingerprint sees it.
pub(crate) struct Called<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

/// Runs `call` at most once per idempotency key of the caller (see the module doc).
pub(crate) async fn once(
    state: &AppState,
    access: &OrgAccess,
    request: Called<'_>,
    call: impl Future<Output = Response>,
) -> Response {
    let Some(key) = request.headers.get(KEY_HEADER) else {
        return call.await;
    };
    if !idempotency::valid_key(key.as_bytes()) {
        return ApiError::invalid(format!(
            "Idempotency-Key must be 1 to {} visible ASCII characters",
            idempotency::MAX_KEY_BYTES
        ))
        .into_response();
    }
    let key = key.to_str().unwrap_or_default();
    let credential = access.principal.actor();
    let scope = KeyScope {
        org_id: &access.org.id,
        credential: &credential,
        key,
    };
    let settings = state.settings.idempotency;
    let fingerprint = idempotency::fingerprint(
        request.method.as_str(),
        request
            .uri
            .path_and_query()
            .map_or(request.uri.path(), |p| p.as_str()),
        |name| request.headers.get(name).map(|v| v.as_bytes()),
        request.body,
    );
    // Keys are nothing a memo holds.
    let claimed = idempotency::claim(
        &*state.db.write_unmemoised().await,
        scope,
        &fingerprint,
        crate::db::now(),
        settings.ttl,
    )
    .await;
    match claimed {
        Err(error) => return ApiError::from(error).into_response(),
        Ok(Claim::Replay(stored)) => return replay(stored),
        Ok(Claim::Refused(refused)) => return conflict(refused).into_response(),
        Ok(Claim::Run) => {}
    }
    // A cancelled request (its client went away) gives the key back when this is dropped.
    let mut held = HeldKey {
        state,
        org_id: access.org.id.clone(),
        credential: credential.clone(),
        key: key.to_owned(),
        settled: false,
    };
    let response = call.await;
    let Some(usage_id) = context::finished_call() else {
        // Nothing ran, nothing was billed: a retry may run it.
        held.settled = true;
        if let Err(error) = idempotency::release(&*state.db.write_unmemoised().await, scope).await {
            tracing::warn!(error = %error, "failed to release an idempotency key");
        }
        return response;
    };
    let (parts, body) = response.into_parts();
    // Handlers answer with complete bodies: this takes what is already in memory.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::internal(anyhow::anyhow!("{error}")).into_response(),
    };
    let mut headers: Vec<(String, String)> = REPLAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    // The usage id goes on the response after this returns; the replay needs it now.
    headers.retain(|(name, _)| name != context::USAGE_ID_HEADER);
    headers.push((context::USAGE_ID_HEADER.to_owned(), usage_id.clone()));
    let status = parts.status.as_u16();
    let stored = StoredResponse {
        status,
        headers,
        body: body.to_vec(),
    };
    let to_store = if stored.body.len() <= settings.max_response_bytes {
        Ok(&stored)
    } else {
        Err(status)
    };
    held.settled = true;
    if let Err(error) = idempotency::complete(
        &*state.db.write_unmemoised().await,
        scope,
        to_store,
        Some(&usage_id),
    )
    .await
    {
        // The call ran and was metered; the key stays `running` until its lease ends.
        tracing::error!(error = %error, "failed to store an idempotent response");
    }
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The stored response, marked as a replay.
fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(axum::body::Body::from(stored.body));
    *response.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// The `409 idempotency_conflict` answer.
fn conflict(refused: Refused) -> ApiError {
    let message = match &refused {
        Refused::DifferentRequest => {
            "this Idempotency-Key was used for a different request; use a new key".to_owned()
        }
        Refused::InProgress => {
            "the first request with this Idempotency-Key is still running; retry later".to_owned()
        }
        Refused::NotReplayable { status, .. } => format!(
            "the first request with this Idempotency-Key ran (status {status}) but its response \
             was too large to store for replay; use a new key to run it again"
        ),
    };
    let mut details = serde_json::json!({ "reason": refused.reason() });
    if let Refused::NotReplayable { status, usage_id } = &refused {
        details["status"] = (*status).into();
        details["usage_id"] = usage_id.clone().into();
    }
    let error = ApiError::new(ErrorCode::IdempotencyConflict, message).with_details(details);
    match refused {
        Refused::InProgress => error.with_retry_after(1),
        _ => error,
    }
}

/// A claimed key, released if the request is dropped before it settles.
struct HeldKey<'a> {
    state: &'a AppState,
    org_id: String,
    credential: String,
    key: String,
    settled: bool,
}

impl Drop for HeldKey<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let db = std::sync::Arc::clone(&self.state.db);
        let (org_id, credential, key) = (
            std::mem::take(&mut self.org_id),
            std::mem::take(&mut self.credential),
            std::mem::take(&mut self.key),
        );
        // If the call ran before the cancellation, its usage event is billed and a retry
        // runs it again, billed again: each run is billed exactly once.
        tokio::spawn(async move {
            let scope = KeyScope {
                org_id: &org_id,
                credential: &credential,
                key: &key,
            };
            if let Err(error) = idempotency::release(&*db.write_unmemoised().await, scope).await {
                tracing::warn!(error = %error, "failed to release an abandoned idempotency key");
            }
        });
    }
}
