//! Idempotency keys, as Stripe does them: the first request made under an `Idempotency-Key`
//! runs (and is billed) once; a retry of the same request within the TTL gets the stored
//! response back without running or billing anything; a different request under the same
//! key, or a retry while the first is still running, is refused.
//!
//! Keys are scoped per organisation and credential (API key or user), so two callers never
//! see each other's responses. A request is identified by a SHA-256 fingerprint of its
//! method, path and query, the headers that change what it does, and its body. Rows live
//! in libSQL (so a restart or another machine sharing the database honours them) and are
//! purged once older than the TTL. This module is the storage; the HTTP side is
//! `api::idempotency`.

use std::time::Duration;

use crate::db::Writer;
use libsql::params;
use sha2::{Digest, Sha256};

use crate::db::{self, DbError};

/// The request header naming the key.
pub const KEY_HEADER: &str = "idempotency-key";
/// The response header marking a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted, in bytes (Stripe's bound).
pub const MAX_KEY_BYTES: usize = 255;
/// A first request still marked running after this long is taken to have died with its
/// process (a crash, a kill): the key may be used again. Longer than any plan's deadline.
pub const IN_FLIGHT_LEASE: Duration = Duration::from_secs(600);
/// Response headers stored and replayed with the body; the rest (dates, request ids) are
/// the replay's own.
pub const REPLAYED_HEADERS: &[&str] = &[
    "content-type",
    "inference-header-content-length",
    "x-wisp-cache",
    "wisp-usage-id",
    "wisp-quota-warning",
];
/// Request headers that change what a call does, so they belong to its fingerprint.
const FINGERPRINTED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "inference-header-content-length",
    "x-wisp-org",
    "x-wisp-route-key",
];

/// Configuration: how long a key is remembered, and the largest response stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    pub ttl: Duration,
    pub max_response_bytes: usize,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_response_bytes: 1 << 20,
        }
    }
}

/// Whose key it is: keys of different organisations or credentials never meet.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub org_id: &'a str,
    /// `key:<id>` or `user:<id>`.
    pub credential: &'a str,
    pub key: &'a str,
}

/// A response as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request cannot run under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The key was first used for a different request.
    DifferentRequest,
    /// The first request under the key is still running.
    InProgress,
    /// The first request ran (and was billed, if it succeeded: `usage_id`) but its response
    /// was too large to store, so it cannot be replayed.
    NotReplayable {
        status: u16,
        usage_id: Option<String>,
    },
}

impl Refused {
    /// The `details.reason` of the `idempotency_conflict` answer.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::DifferentRequest => "different_request",
            Refused::InProgress => "in_progress",
            Refused::NotReplayable { .. } => "not_replayable",
        }
    }
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's now: run it, then [`complete`] or [`release`].
    Run,
    /// The same request ran before: answer this.
    Replay(StoredResponse),
    Refused(Refused),
}

/// Whether `key` is an acceptable key: 1 to [`MAX_KEY_BYTES`] visible ASCII characters.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES && key.iter().all(|b| b.is_ascii_graphic())
}

/// The fingerprint of a request: SHA-256 over its method, path and query, the headers that
/// change what it does, and its body, each length-prefixed so no two requests collide by
/// concatenation.
/// `header` gives a request header's value by its (lower-case) name.
pub fn fingerprint<'h>(
    method: &str,
    path_and_query: &str,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    body: &[u8],
) -> String {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(method.as_bytes());
    part(path_and_query.as_bytes());
    for name in FINGERPRINTED_HEADERS {
        let value = header(name).unwrap_or_default();
        part(name.as_bytes());
        part(value);
    }
    part(body);
    hex::encode(hash.finalize())
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Claims `scope`'s key for a request with `fingerprint` at `now`: a new (or expired, or
/// abandoned) key becomes this request's; a used one answers a replay or a refusal.
pub async fn claim(
    conn: &Writer,
    scope: KeyScope<'_>,
    fingerprint: &str,
    now: i64,
    ttl: Duration,
) -> Result<Claim, DbError> {
    let expired_before = now.saturating_sub(secs(ttl));
    let abandoned_before = now.saturating_sub(secs(IN_FLIGHT_LEASE));
    // One statement: two machines racing for a key cannot both win it.
    let won = conn
        .execute(
            "INSERT INTO idempotency_keys (org_id, credential, idempotency_key, fingerprint,
                state, created_at)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5)
             ON CONFLICT (org_id, credential, idempotency_key) DO UPDATE SET
                fingerprint = excluded.fingerprint, state = 'running', status = NULL,
                headers = NULL, body = NULL, usage_id = NULL, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= ?6
                OR (idempotency_keys.state = 'running' AND idempotency_keys.created_at <= ?7)",
            params![
                scope.org_id,
                scope.credential,
                scope.key,
                fingerprint,
                now,
                expired_before,
                abandoned_before
            ],
        )
        .await?;
    if won == 1 {
        return Ok(Claim::Run);
    }
    let rows = conn
        .query(
            "SELECT fingerprint, state, status, headers, body, usage_id FROM idempotency_keys
             WHERE org_id = ?1 AND credential = ?2 AND idempotency_key = ?3",
            params![scope.org_id, scope.credential, scope.key],
        )
        .await?;
    let Some(row) = db::first_row(rows).await? else {
        // Released between the two statements: the caller may simply retry.
        return Ok(Claim::Refused(Refused::InProgress));
    };
    if row.get::<String>(0)? != fingerprint {
        return Ok(Claim::Refused(Refused::DifferentRequest));
    }
    let status = row
        .get::<Option<i64>>(2)?
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(500);
    match row.get::<String>(1)?.as_str() {
        "done" => {
            let headers: Vec<(String, String)> =
                serde_json::from_str(&row.get::<Option<String>>(3)?.unwrap_or_default())
                    .map_err(|e| DbError::Corrupt(format!("idempotency headers: {e}")))?;
            Ok(Claim::Replay(StoredResponse {
                status,
                headers,
                body: row.get::<Option<Vec<u8>>>(4)?.unwrap_or_default(),
            }))
        }
        "too_large" => Ok(Claim::Refused(Refused::NotReplayable {
            status,
            usage_id: row.get(5)?,
        })),
        _ => Ok(Claim::Refused(Refused::InProgress)),
    }
}

/// Stores the response of the request that claimed the key: `Ok` to replay it, `Err` with
/// its status when it is over the bound (retries are then refused as not replayable).
pub async fn complete(
    conn: &Writer,
    scope: KeyScope<'_>,
    response: Result<&StoredResponse, u16>,
    usage_id: Option<&str>,
) -> Result<(), DbError> {
    let (state, status, headers, body) = match response {
        Ok(stored) => (
            "done",
            stored.status,
            Some(serde_json::to_string(&stored.headers).expect("headers serialise")),
            Some(stored.body.clone()),
        ),
        Err(status) => ("too_large", status, None, None),
    };
    conn.execute(
        "UPDATE idempotency_keys SET state = ?4, status = ?5, headers = ?6, body = ?7,
            usage_id = ?8
         WHERE org_id = ?1 AND credential = ?2 AND idempotency_key = ?3 AND state = 'running'",
        params![
            scope.org_id,
            scope.credential,
            scope.key,
            state,
            i64::from(status),
            headers,
            body,
            usage_id
        ],
    )
    .await?;
    Ok(())
}

/// Gives the key up: the request did not run (refused before it started, or cancelled),
/// so a retry runs it.
pub async fn release(conn: &Writer, scope: KeyScope<'_>) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM idempotency_keys
         WHERE org_id = ?1 AND credential = ?2 AND idempotency_key = ?3 AND state = 'running'",
        params![scope.org_id, scope.credential, scope.key],
    )
    .await?;
    Ok(())
}

/// Deletes keys older than `ttl` at `now`. Returns how many.
pub async fn purge(conn: &Writer, now: i64, ttl: Duration) -> Result<u64, DbError> {
    Ok(conn
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at <= ?1",
            params![now.saturating_sub(secs(ttl))],
        )
        .await?)
}

/// Purges expired keys every hour (and at start).
pub async fn purge_hourly(db: std::sync::Arc<crate::db::Db>, ttl: Duration) {
    let mut ticks = tokio::time::interval(Duration::from_secs(3_600));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let db = std::sync::Arc::clone(&db);
        // A commit waits for `fsync`: not on an executor thread.
        crate::db::on_blocking_thread(async move {
            match purge(&*db.write_unmemoised().await, crate::db::now(), ttl).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged expired idempotency keys"),
                Err(error) => tracing::warn!(error = %error, "failed to purge idempotency keys"),
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    const TTL: Duration = Duration::from_secs(100);

    fn scope<'a>(credential: &'a str, key: &'a str) -> KeyScope<'a> {
        KeyScope {
            org_id: "org-1",
            credential,
            key,
        }
    }

    fn response(body: &str) -> StoredResponse {
        StoredResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn a_key_runs_once_then_replays_and_refuses_other_requests() {
        let db = Db::memory().await.unwrap();
        let conn = db.write_unmemoised().await;
        let s = scope("key:a", "k");
        assert_eq!(claim(&conn, s, "f1", 0, TTL).await.unwrap(), Claim::Run);
        assert_eq!(
            claim(&conn, s, "f1", 1, TTL).await.unwrap(),
            Claim::Refused(Refused::InProgress)
        );
        assert_eq!(
            claim(&conn, s, "f2", 1, TTL).await.unwrap(),
            Claim::Refused(Refused::DifferentRequest)
        );
        // Another credential of the same organisation has its own keys.
        assert_eq!(
            claim(&conn, scope("key:b", "k"), "f1", 1, TTL)
                .await
                .unwrap(),
            Claim::Run
        );
        complete(&conn, s, Ok(&response("{}")), Some("u1"))
            .await
            .unwrap();
        assert_eq!(
            claim(&conn, s, "f1", 2, TTL).await.unwrap(),
            Claim::Replay(response("{}"))
        );
        assert_eq!(
            claim(&conn, s, "f2", 2, TTL).await.unwrap(),
            Claim::Refused(Refused::DifferentRequest)
        );
        // After the TTL the key is new again, and a purge deletes what expired.
        assert_eq!(claim(&conn, s, "f2", 100, TTL).await.unwrap(), Claim::Run);
        assert_eq!(purge(&conn, 101, TTL).await.unwrap(), 1, "key:b's");
        assert_eq!(purge(&conn, 200, TTL).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn released_abandoned_and_oversized_keys() {
        let db = Db::memory().await.unwrap();
        let conn = db.write_unmemoised().await;
        let s = scope("key:a", "k");
        assert_eq!(
            claim(&conn, s, "f1", 0, TTL * 100).await.unwrap(),
            Claim::Run
        );
        release(&conn, s).await.unwrap();
        assert_eq!(
            claim(&conn, s, "f2", 0, TTL * 100).await.unwrap(),
            Claim::Run
        );
        // Its process died: after the lease another request may take the key.
        let later = secs(IN_FLIGHT_LEASE);
        assert_eq!(
            claim(&conn, s, "f1", later, TTL * 100).await.unwrap(),
            Claim::Run
        );
        complete(&conn, s, Err(200), Some("u1")).await.unwrap();
        assert_eq!(
            claim(&conn, s, "f1", later + 1, TTL * 100).await.unwrap(),
            Claim::Refused(Refused::NotReplayable {
                status: 200,
                usage_id: Some("u1".into())
            })
        );
        // A completed key is never released.
        release(&conn, s).await.unwrap();
        assert!(matches!(
            claim(&conn, s, "f1", later + 2, TTL * 100).await.unwrap(),
            Claim::Refused(Refused::NotReplayable { .. })
        ));
    }

    #[test]
    fn keys_and_fingerprints() {
        assert!(valid_key(b"order-42"));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"has space"));
        assert!(!valid_key(&[b'k'; MAX_KEY_BYTES + 1]));
        let none = |_: &str| None;
        let a = fingerprint("POST", "/p", none, b"{}");
        assert_eq!(a, fingerprint("POST", "/p", none, b"{}"));
        assert_ne!(a, fingerprint("POST", "/p", none, b"{ }"));
        assert_ne!(a, fingerprint("POST", "/q", none, b"{}"));
        let org = |name: &str| (name == "x-wisp-org").then_some(&b"other"[..]);
        assert_ne!(a, fingerprint("POST", "/p", org, b"{}"));
    }
}
