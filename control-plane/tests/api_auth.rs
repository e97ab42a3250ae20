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
async fn wrong_password_and_unknown_email_are_the_same_error_and_only_the_user_sees_it() {
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
    // The user's own history has the failure and the success…
    let history = app.get("/v1/me/sign-ins", &admin).await;
    assert_eq!(history.status, StatusCode::OK, "{history:?}");
    let outcomes: Vec<bool> = history
        .body
        .as_array()
        .expect("sign-ins")
        .iter()
        .map(|s| s["succeeded"].as_bool().expect("succeeded"))
        .collect();
    assert_eq!(outcomes, [true, false]);
    // …and no organisation's audit log has sign-ins.
    let log = app.get(&format!("/v1/orgs/{ORG}/audit"), &admin).await;
    assert!(
        !log.body.to_string().contains("auth."),
        "sign-ins must not be in an organisation's log: {log:?}"
    );
    // An unknown address leaves nothing behind.
    let conn = app.state.db.write().await;
    let mut rows = conn
        .query(
            "SELECT COUNT(*) FROM audit_log WHERE actor LIKE '%nobody%' OR details LIKE '%nobody%'",
            (),
        )
        .await
        .expect("query");
    let row = rows.next().await.expect("row").expect("one row");
    assert_eq!(row.get::<i64>(0).expect("count"), 0);
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
        sid: "a-session".into(),
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
        let conn = app.state.db.write().await;
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
async fn password_guessing_is_delayed_per_account_and_address() {
    let app = TestApp::new().await;
    let guess = |password: &str| json!({ "email": ADMIN_EMAIL, "password": password });
    for i in 0..5 {
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
    // From the same address, even the right password waits now: the attempt is refused
    // before it is checked.
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
    assert!((1..=900).contains(&retry_after), "{retry_after}");
}

/// Logs in and returns the whole token answer.
async fn session(app: &TestApp, email: &str, password: &str) -> serde_json::Value {
    let reply = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "login failed: {reply:?}");
    reply.body
}

fn field(value: &serde_json::Value, name: &str) -> String {
    value[name].as_str().expect(name).to_owned()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": refresh_token })),
    )
    .await
}

async fn login_reply(app: &TestApp, email: &str, password: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

async fn invite_x(app: &TestApp, admin: &str, org: &str) -> Reply {
    app.post(
        &format!("/v1/orgs/{org}/members"),
        admin,
        json!({ "email": "x@example.com", "role": "admin" }),
    )
    .await
}

/// Item 1: two organisations invite the same address; neither admin ever chooses, sees or
/// can set its password, the answers do not tell whether the account exists, and the token
/// works once, until it expires.
#[tokio::test]
async fn invitations_never_let_an_admin_choose_or_learn_a_password() {
    let app = TestApp::new().await;
    let acme_admin = app.admin().await;
    let bob = app
        .user_with_role(&acme_admin, ORG, "bob@example.com", "viewer")
        .await;
    app.org(&bob, "bobco").await;

    // The old way of choosing someone's password is refused outright.
    let chosen = app
        .post(
            &format!("/v1/orgs/{ORG}/members"),
            &acme_admin,
            json!({ "email": "x@example.com", "role": "member", "password": "chosen-by-admin" }),
        )
        .await;
    assert_eq!(chosen.code(), "invalid_request", "{chosen:?}");

    let from_acme = invite_x(&app, &acme_admin, ORG).await;
    assert_eq!(from_acme.status, StatusCode::CREATED, "{from_acme:?}");
    assert_eq!(from_acme.body["status"], "pending");
    assert!(!from_acme.body.to_string().contains("password"));
    let acme_token = field(&from_acme.body, "token");
    assert!(acme_token.starts_with("wispinv_"));

    // The invitation is pending, not a membership.
    let members = app
        .get(&format!("/v1/orgs/{ORG}/members"), &acme_admin)
        .await;
    assert!(!members.body.to_string().contains("x@example.com"));
    let pending = app
        .get(&format!("/v1/orgs/{ORG}/invitations"), &acme_admin)
        .await;
    assert_eq!(pending.body[0]["email"], "x@example.com", "{pending:?}");
    assert!(!pending.body.to_string().contains("wispinv_"));

    // Only the token's holder sets the password.
    let accepted = app.accept(&acme_token, None, Some("x's own secret")).await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");
    assert_eq!(accepted.body["org"]["slug"], ORG);
    assert_eq!(accepted.body["role"], "admin");
    assert!(accepted.body["session"]["access_token"].is_string());
    // Single use.
    let again = app
        .accept(&acme_token, None, Some("an attacker's pick"))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    // Bob's invitation of the same, now existing, address answers exactly the same way.
    let from_bobco = invite_x(&app, &bob, "bobco").await;
    assert_eq!(from_bobco.status, StatusCode::CREATED, "{from_bobco:?}");
    let keys = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&from_bobco.body), keys(&from_acme.body));
    assert_eq!(from_bobco.body["status"], "pending");
    let bobco_token = field(&from_bobco.body, "token");

    // The token alone cannot touch an existing account: no password is set, nobody joins.
    let takeover = app
        .accept(&bobco_token, None, Some("bob's pick for x"))
        .await;
    assert_eq!(
        (takeover.status, takeover.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{takeover:?}"
    );
    assert_eq!(
        login_reply(&app, "x@example.com", "bob's pick for x")
            .await
            .code(),
        "invalid_credentials"
    );
    // Neither admin can act as x: signed in as themselves, the invitation is not theirs.
    let as_bob = app.accept(&bobco_token, Some(&bob), None).await;
    assert_eq!(as_bob.code(), "forbidden");

    // x accepts, signed in: x joins bobco with the password x chose.
    let x = app.login("x@example.com", "x's own secret").await;
    let joined = app.accept(&bobco_token, Some(&x), None).await;
    assert_eq!(joined.status, StatusCode::OK, "{joined:?}");
    assert!(joined.body["session"].is_null());
    let me = app.get("/v1/me", &x).await;
    assert_eq!(me.body["orgs"].as_array().expect("orgs").len(), 2);

    // An expired invitation and a revoked one do not work.
    let late = app
        .invite(&acme_admin, ORG, "late@example.com", "viewer")
        .await;
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE invitations SET expires_at = 1 WHERE email = 'late@example.com'",
            (),
        )
        .await
        .expect("expire");
    }
    let expired = app.accept(&late, None, Some("password-123")).await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );
    let revoked = app
        .invite(&acme_admin, ORG, "gone@example.com", "viewer")
        .await;
    let id = app
        .get(&format!("/v1/orgs/{ORG}/invitations"), &acme_admin)
        .await
        .body
        .as_array()
        .expect("pending")
        .iter()
        .find(|i| i["email"] == "gone@example.com")
        .expect("pending invitation")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/invitations/{id}"),
            Some(&acme_admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.accept(&revoked, None, Some("password-123"))
            .await
            .code(),
        "invalid_token"
    );
}

/// Item 2: adding an existing user tells the adding organisation nothing about their
/// sign-ins; those are the user's own history.
#[tokio::test]
async fn another_org_never_sees_a_members_sign_ins() {
    let app = TestApp::new().await;
    let acme_admin = app.admin().await;
    let bob = app
        .user_with_role(&acme_admin, ORG, "bob@example.com", "viewer")
        .await;
    app.org(&bob, "bobco").await;
    // x has an account (through acme), and bobco invites and gets x.
    let x = app
        .user_with_role(&acme_admin, ORG, "x@example.com", "member")
        .await;
    let token = app.invite(&bob, "bobco", "x@example.com", "viewer").await;
    assert_eq!(
        app.accept(&token, Some(&x), None).await.status,
        StatusCode::OK
    );
    // x signs in, wrong then right, from an address of their own.
    let wrong = app
        .login_from("198.51.100.7", &[], "x@example.com", "not it")
        .await;
    assert_eq!(wrong.code(), "invalid_credentials");
    let right = app
        .login_from("198.51.100.7", &[], "x@example.com", "password-123")
        .await;
    assert_eq!(right.status, StatusCode::OK, "{right:?}");

    let log = app.get("/v1/orgs/bobco/audit?limit=500", &bob).await;
    assert_eq!(log.status, StatusCode::OK);
    let text = log.body.to_string();
    assert!(!text.contains("auth."), "{text}");
    assert!(!text.contains("198.51.100.7"), "{text}");
    assert!(!text.contains("user_created"), "{text}");
    // x's own history has them.
    let x_token = field(&right.body, "access_token");
    let history = app.get("/v1/me/sign-ins", &x_token).await;
    assert!(
        history.body.to_string().contains("198.51.100.7"),
        "{history:?}"
    );
}

/// Items 1 and 3: a password change ends every session, refresh and access tokens alike.
#[tokio::test]
async fn password_change_ends_every_session() {
    let app = TestApp::new().await;
    let laptop = session(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let phone = session(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let laptop_access = field(&laptop, "access_token");

    let wrong = app
        .post(
            "/v1/auth/password",
            &laptop_access,
            json!({ "current_password": "nope", "new_password": "a brand new password" }),
        )
        .await;
    assert_eq!(wrong.code(), "invalid_credentials");
    let changed = app
        .post(
            "/v1/auth/password",
            &laptop_access,
            json!({ "current_password": ADMIN_PASSWORD, "new_password": "a brand new password" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");

    for old in [&laptop, &phone] {
        let reply = app.get("/v1/me", &field(old, "access_token")).await;
        assert_eq!(reply.code(), "invalid_token", "{reply:?}");
        let reply = refresh(&app, &field(old, "refresh_token")).await;
        assert_eq!(reply.code(), "invalid_token", "{reply:?}");
    }
    assert_eq!(
        app.get("/v1/me", &field(&changed.body, "access_token"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        login_reply(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await.code(),
        "invalid_credentials"
    );
    app.login(ADMIN_EMAIL, "a brand new password").await;
}

/// Item 3: logout ends one session, logout-all every one.
#[tokio::test]
async fn logout_and_logout_everywhere() {
    let app = TestApp::new().await;
    let one = session(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let two = session(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let three = session(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let listed = app
        .get("/v1/auth/sessions", &field(&two, "access_token"))
        .await;
    assert_eq!(
        listed.body.as_array().expect("sessions").len(),
        3,
        "{listed:?}"
    );

    let out = app
        .call(
            Method::POST,
            "/v1/auth/logout",
            Some(&field(&one, "access_token")),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    assert_eq!(
        app.get("/v1/me", &field(&one, "access_token")).await.code(),
        "invalid_token"
    );
    assert_eq!(
        refresh(&app, &field(&one, "refresh_token")).await.code(),
        "invalid_token"
    );
    assert_eq!(
        app.get("/v1/me", &field(&two, "access_token")).await.status,
        StatusCode::OK
    );

    let all = app
        .call(
            Method::POST,
            "/v1/auth/logout-all",
            Some(&field(&two, "access_token")),
            None,
        )
        .await;
    assert_eq!(all.status, StatusCode::NO_CONTENT);
    for gone in [&two, &three] {
        assert_eq!(
            app.get("/v1/me", &field(gone, "access_token")).await.code(),
            "invalid_token"
        );
        assert_eq!(
            refresh(&app, &field(gone, "refresh_token")).await.code(),
            "invalid_token"
        );
    }
}

/// Item 3: presenting an already rotated refresh token ends the whole family, including
/// the fresh tokens whoever refreshed first got.
#[tokio::test]
async fn a_reused_refresh_token_ends_its_whole_session() {
    let app = TestApp::new().await;
    let login = session(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let stolen = field(&login, "refresh_token");
    let rotated = refresh(&app, &stolen).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let (fresh_access, fresh_refresh) = (
        field(&rotated.body, "access_token"),
        field(&rotated.body, "refresh_token"),
    );
    assert_eq!(
        app.get("/v1/me", &fresh_access).await.status,
        StatusCode::OK
    );

    let replayed = refresh(&app, &stolen).await;
    assert_eq!(
        (replayed.status, replayed.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert_eq!(refresh(&app, &fresh_refresh).await.code(), "invalid_token");
    assert_eq!(
        app.get("/v1/me", &fresh_access).await.code(),
        "invalid_token"
    );
    assert_eq!(
        app.get("/v1/me", &field(&login, "access_token"))
            .await
            .code(),
        "invalid_token"
    );
    // Other sessions are not affected.
    app.admin().await;
}

/// Item 3: the generated first-admin password is not printed, sits in a 0600 file, and must
/// be changed before the account can do anything.
#[tokio::test]
async fn the_generated_admin_password_must_be_changed_first() {
    let app = TestApp::with_generated_admin_password().await;
    let path = app.dir.path().join("admin-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("password file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let generated = std::fs::read_to_string(&path).expect("password file");
    let generated = generated.trim();
    let login = session(&app, ADMIN_EMAIL, generated).await;
    assert_eq!(login["must_change_password"], true);
    let access = field(&login, "access_token");
    let blocked = app.get(&format!("/v1/orgs/{ORG}/models"), &access).await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (StatusCode::FORBIDDEN, "password_change_required"),
        "{blocked:?}"
    );
    let blocked = app
        .post("/v1/orgs", &access, json!({ "slug": "sneaky" }))
        .await;
    assert_eq!(blocked.code(), "password_change_required");
    let me = app.get("/v1/me", &access).await;
    assert_eq!(me.body["must_change_password"], true);

    let changed = app
        .post(
            "/v1/auth/password",
            &access,
            json!({ "current_password": generated, "new_password": "the admin's own one" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["must_change_password"], false);
    let fresh = field(&changed.body, "access_token");
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/models"), &fresh)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        login_reply(&app, ADMIN_EMAIL, generated).await.code(),
        "invalid_credentials"
    );
}

/// Item 4: oversized credentials are refused before any hashing, throttling or storage.
#[tokio::test]
async fn oversized_credentials_are_refused_before_any_work() {
    let app = TestApp::new().await;
    let huge_email = format!("{}@example.com", "a".repeat(1 << 20));
    for _ in 0..20 {
        let reply = login_reply(&app, &huge_email, "whatever").await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
    }
    let huge_password = "p".repeat(1 << 20);
    let reply = login_reply(&app, ADMIN_EMAIL, &huge_password).await;
    assert_eq!(reply.code(), "invalid_request");
    let reply = refresh(&app, &"r".repeat(1 << 20)).await;
    assert_eq!(reply.code(), "invalid_request");
    let reply = app
        .accept(&"t".repeat(1 << 20), None, Some("password-123"))
        .await;
    assert_eq!(reply.code(), "invalid_request");
    // Nothing stored anywhere, and the real account is not slowed down.
    let conn = app.state.db.write().await;
    for table in ["audit_log", "sign_ins"] {
        let mut rows = conn
            .query(&format!("SELECT COUNT(*) FROM {table}"), ())
            .await
            .expect("count");
        let count: i64 = rows
            .next()
            .await
            .expect("row")
            .expect("row")
            .get(0)
            .expect("n");
        let expected = i64::from(table == "audit_log"); // the first start's org.created
        assert_eq!(count, expected, "{table}");
    }
    drop(conn);
    app.admin().await;
}

/// Item 4: argon2 work has a global cap; beyond it a login is answered `overloaded`.
#[tokio::test]
async fn concurrent_password_hashing_is_capped() {
    let app = TestApp::with_config(|config| {
        config.auth.max_concurrent_password_hashes = 1;
        config.auth.password_hash_wait_ms = 0;
    })
    .await;
    let busy = app.state.password_hashing.occupy().await;
    let reply = login_reply(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        "{reply:?}"
    );
    assert!(reply.headers.contains_key("retry-after"));
    drop(busy);
    app.admin().await;
}

/// Item 4: strangers guessing a password slow only themselves down; the owner, from
/// another address, signs in normally.
#[tokio::test]
async fn wrong_passwords_from_strangers_cannot_lock_the_owner_out() {
    let app = TestApp::new().await;
    let mut throttled = false;
    for i in 0..10 {
        let reply = app
            .login_from("203.0.113.66", &[], ADMIN_EMAIL, &format!("guess-{i}"))
            .await;
        if reply.code() == "rate_limited" {
            throttled = true;
            break;
        }
        assert_eq!(reply.code(), "invalid_credentials");
    }
    assert!(throttled, "the guessing address must be slowed down");
    let stranger = app
        .login_from("203.0.113.66", &[], ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(stranger.code(), "rate_limited");
    let owner = app
        .login_from("192.0.2.10", &[], ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{owner:?}");
}

/// Item 4: `Fly-Client-IP` / `X-Forwarded-For` name the client only when the peer is a
/// configured trusted proxy; otherwise anyone could pick their own throttle bucket.
#[tokio::test]
async fn proxy_headers_count_only_from_trusted_proxies() {
    // Untrusted: the headers are ignored; every guess is the peer's.
    let app = TestApp::new().await;
    for i in 0..10 {
        let fake = format!("198.51.100.{i}");
        let reply = app
            .login_from(
                "10.0.0.2",
                &[("fly-client-ip", fake.as_str())],
                ADMIN_EMAIL,
                "guess",
            )
            .await;
        if reply.code() == "rate_limited" {
            break;
        }
        assert_eq!(reply.code(), "invalid_credentials");
    }
    let reply = app
        .login_from(
            "10.0.0.2",
            &[("fly-client-ip", "198.51.100.200")],
            ADMIN_EMAIL,
            "guess",
        )
        .await;
    assert_eq!(
        reply.code(),
        "rate_limited",
        "a spoofed header must not reset the delay"
    );

    // Behind a trusted proxy every client has its own bucket and its own address.
    let app = TestApp::with_config(|config| {
        config.server.trusted_proxies = vec!["10.0.0.0/8".into()];
    })
    .await;
    for i in 0..10 {
        let reply = app
            .login_from(
                "10.0.0.2",
                &[("fly-client-ip", "198.51.100.1")],
                ADMIN_EMAIL,
                &format!("g{i}"),
            )
            .await;
        if reply.code() == "rate_limited" {
            break;
        }
    }
    let owner = app
        .login_from(
            "10.0.0.2",
            &[("x-forwarded-for", "192.0.2.44, 10.0.0.3")],
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{owner:?}");
    let history = app
        .get("/v1/me/sign-ins", &field(&owner.body, "access_token"))
        .await;
    assert_eq!(history.body[0]["source_ip"], "192.0.2.44", "{history:?}");
    assert_eq!(history.body[1]["source_ip"], "198.51.100.1", "{history:?}");
}
