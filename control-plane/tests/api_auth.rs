//! Authentication: login, refresh, JWT validation, API keys.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use wisp::auth::tokens::{AUDIENCE, AccessClaims, ISSUER, JwtKeys};

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn user_id_of(app_reply: &Reply) -> String {
    app_reply.body["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn login_returns_tokens_and_me_works() {
    let app = TestApp::new().await;
    let reply = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert!(
        reply.body["refresh_token"]
            .as_str()
            .expect("rt")
            .starts_with("wisprt_")
    );
    let token = reply.body["access_token"].as_str().expect("at");
    let me = app.get("/v1/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], ADMIN_EMAIL);
    assert_eq!(me.body["orgs"][0]["slug"], ORG);
    assert_eq!(me.body["orgs"][0]["role"], "owner");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_error_and_audited() {
    let app = TestApp::new().await;
    for (email, password) in [(ADMIN_EMAIL, "wrong"), ("nobody@example.com", "x")] {
        let reply = app
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "invalid_credentials");
    }
    let admin = app.admin().await;
    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=auth.login_failed"),
            &admin,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK);
    let entries = log.body["entries"].as_array().expect("entries");
    assert_eq!(
        entries.len(),
        1,
        "only the known user's org sees its failure: {log:?}"
    );
    assert_eq!(entries[0]["actor"], format!("email:{ADMIN_EMAIL}"));
}

#[tokio::test]
async fn refresh_rotates_and_old_refresh_token_dies() {
    let app = TestApp::new().await;
    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })),
        )
        .await;
    let refresh_token = login.body["refresh_token"].as_str().expect("rt").to_owned();
    let refreshed = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let access = refreshed.body["access_token"].as_str().expect("at");
    assert_eq!(app.get("/v1/me", access).await.status, StatusCode::OK);
    let reused = app
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.code(), "invalid_token");
}

#[tokio::test]
async fn missing_malformed_expired_forged_and_unsigned_tokens_are_rejected() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let me = app.get("/v1/me", &admin).await;
    let user_id = user_id_of(&me);
    let now = wisp::db::now();

    let missing = app.call(Method::GET, "/v1/me", None, None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );

    for (header, status) in [
        (format!("bearer {admin}"), StatusCode::OK),
        (format!("BEARER  {admin}"), StatusCode::OK),
        (
            "Basic YWRtaW46YWRtaW4=".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let request = axum::http::Request::get("/v1/me")
            .header("authorization", header)
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(app.send(request).await.status, status);
    }

    let garbage = app.get("/v1/me", "not-a-jwt").await;
    assert_eq!(
        (garbage.status, garbage.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    let claims = |iat: i64, exp: i64| AccessClaims {
        sub: user_id.clone(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        iat,
        nbf: iat,
        exp,
    };
    let expired = app
        .state
        .jwt
        .sign(&claims(now - 7200, now - 3600))
        .expect("sign");
    let reply = app.get("/v1/me", &expired).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );

    let forger = JwtKeys::new(b"an attacker's guess at the secret!!", 900);
    let forged = forger.sign(&claims(now, now + 600)).expect("sign");
    let reply = app.get("/v1/me", &forged).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(
        serde_json::to_string(&claims(now, now + 600))
            .expect("json")
            .as_bytes(),
    );
    for unsigned in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let reply = app.get("/v1/me", &unsigned).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "invalid_token")
        );
    }

    // A token signed with the right key but a different algorithm family is refused too.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(now, now + 600),
        &jsonwebtoken::EncodingKey::from_secret(b"irrelevant"),
    )
    .expect("sign");
    assert_eq!(app.get("/v1/me", &hs512).await.code(), "invalid_token");
}

#[tokio::test]
async fn api_key_lifecycle_secret_shown_once_revocation_immediate() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let created = app
        .post(
            &format!("/v1/orgs/{ORG}/api-keys"),
            &admin,
            json!({ "name": "ci", "scopes": ["read", "models:write"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("wisp_"));
    assert!(secret.starts_with(created.body["prefix"].as_str().expect("prefix")));

    // The key works, and its use is recorded.
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/models"), &secret)
            .await
            .status,
        StatusCode::OK
    );
    let listed = app.get(&format!("/v1/orgs/{ORG}/api-keys"), &admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        !listed.body.to_string().contains(&secret),
        "secret must never be listed"
    );
    assert!(listed.body[0]["last_used_at"].is_string());
    assert_eq!(listed.body[0]["scopes"], json!(["read", "models:write"]));

    // Rename, then revoke: the very next request fails.
    let renamed = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/api-keys/{id}"),
            Some(&admin),
            Some(json!({ "name": "ci-2" })),
        )
        .await;
    assert_eq!(renamed.body["name"], "ci-2");
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/api-keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = app.get(&format!("/v1/orgs/{ORG}/models"), &secret).await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    let shown = app
        .get(&format!("/v1/orgs/{ORG}/api-keys/{id}"), &admin)
        .await;
    assert!(shown.body["revoked_at"].is_string());

    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?target_prefix=apikey:"),
            &admin,
        )
        .await;
    let actions: Vec<_> = log.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(
        actions,
        vec![
            json!("apikey.revoked"),
            json!("apikey.renamed"),
            json!("apikey.created")
        ]
    );
}

#[tokio::test]
async fn api_keys_expire_and_scopes_are_enforced() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let past = app
        .post(
            &format!("/v1/orgs/{ORG}/api-keys"),
            &admin,
            json!({ "name": "old", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        (past.status, past.code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    let (id, secret) = app.api_key(&admin, ORG, &["predict"]).await;
    let reply = app.get(&format!("/v1/orgs/{ORG}/models"), &secret).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // A key cannot act as a user.
    let reply = app.post("/v1/orgs", &secret, json!({ "slug": "x" })).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Expire the key in the database, as time would.
    {
        let conn = app.state.db.conn().await;
        conn.execute(
            "UPDATE api_keys SET expires_at = 1 WHERE id = ?1",
            [id.as_str()],
        )
        .await
        .expect("update");
    }
    let reply = app.get(&format!("/v1/orgs/{ORG}"), &secret).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );

    let bad_scope = app
        .post(
            &format!("/v1/orgs/{ORG}/api-keys"),
            &admin,
            json!({ "name": "k", "scopes": ["root"] }),
        )
        .await;
    assert_eq!(
        (bad_scope.status, bad_scope.code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let no_scope = app
        .post(
            &format!("/v1/orgs/{ORG}/api-keys"),
            &admin,
            json!({ "name": "k", "scopes": [] }),
        )
        .await;
    assert_eq!(no_scope.code(), "invalid_request");
}

#[tokio::test]
async fn members_cannot_mint_admin_keys() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let member = app
        .user_with_role(&admin, ORG, "m@example.com", "member")
        .await;
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/api-keys"),
            &member,
            json!({ "name": "k", "scopes": ["admin"] }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (_, key) = app
        .api_key(&member, ORG, &["predict", "models:write"])
        .await;
    assert!(key.starts_with("wisp_"));
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account() {
    let app = TestApp::new().await;
    let guess = |password: &str| json!({ "email": ADMIN_EMAIL, "password": password });
    for i in 0..10 {
        let reply = app
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(guess(&format!("guess-{i}"))),
            )
            .await;
        assert_eq!(reply.code(), "invalid_credentials");
    }
    // Even the right password waits now: the attempt is refused before it is checked.
    let throttled = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(guess(ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{throttled:?}"
    );
    assert_eq!(throttled.code(), "rate_limited");
    let retry_after: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}
