//! The dashboard through the router (no sockets): security headers, the session cookie's
//! flags (and `Secure` only behind a trusted TLS proxy), CSRF refusals, sign-in through
//! the API's login (history, one-time passwords), sessions ended by the API ending the
//! cookie, roles (a viewer's forged POST refused), another organisation answering like a
//! missing one, and changes audited like their API twins. The real-browser tests are in
//! `e2e_dashboard.rs`.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, ORG, Reply, TestApp};

/// A browser: its cookies, and the anti-forgery token of the last page it loaded.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
    csrf: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, reply: &Reply) {
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii");
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        if let Some(html) = reply.body.as_str()
            && let Some(start) = html.find("name=\"_csrf\" value=\"")
        {
            let rest = &html[start + "name=\"_csrf\" value=\"".len()..];
            self.csrf = rest[..rest.find('"').expect("end")].to_owned();
        }
    }

    async fn get(&mut self, app: &TestApp, uri: &str) -> Reply {
        let request = Request::get(uri)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .expect("request");
        let reply = app.send(request).await;
        self.remember(&reply);
        reply
    }

    /// Posts a form; `_csrf` is added unless `csrf` is false.
    async fn post(
        &mut self,
        app: &TestApp,
        uri: &str,
        fields: &[(&str, &str)],
        csrf: bool,
    ) -> Reply {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        if csrf {
            form.append_pair("_csrf", &self.csrf);
        }
        let request = Request::post(uri)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.finish()))
            .expect("request");
        let reply = app.send(request).await;
        self.remember(&reply);
        reply
    }

    async fn sign_in(&mut self, app: &TestApp, email: &str, password: &str) -> Reply {
        self.get(app, "/sign-in").await;
        self.post(
            app,
            "/sign-in",
            &[("email", email), ("password", password)],
            true,
        )
        .await
    }

    fn has(&self, name: &str) -> bool {
        self.cookies.iter().any(|(k, _)| k == name)
    }
}

fn location(reply: &Reply) -> &str {
    reply
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<no location>")
}

fn html(reply: &Reply) -> &str {
    reply.body.as_str().unwrap_or("")
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_no_inline_script() {
    let app = TestApp::new().await;
    let mut browser = Browser::default();
    let landing = browser.get(&app, "/").await;
    assert_eq!(landing.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&landing), "/sign-in");
    let page = browser.get(&app, "/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    let body = html(&page);
    // Scripts only from files; no inline handlers or htmx evaluation.
    for script in body.match_indices("<script") {
        let tag = &body[script.0..script.0 + body[script.0..].find('>').expect("tag end")];
        assert!(tag.contains("src=\"/static/"), "inline script: {tag}");
    }
    for forbidden in [
        " onclick=",
        " onload=",
        " onsubmit=",
        "hx-on",
        "js:",
        "style=\"",
    ] {
        assert!(!body.contains(forbidden), "the page has {forbidden}");
    }
    assert!(body.contains("\"includeIndicatorStyles\":false"));
    // The pre-session cookie backs the sign-in form's token.
    let set = page.headers[header::SET_COOKIE].to_str().expect("cookie");
    assert!(set.starts_with("wisp_presession="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"));
    // Static files exist, are typed, and the API still answers beside the dashboard.
    let htmx = browser.get(&app, "/static/vendor/htmx-2.0.11.min.js").await;
    assert_eq!(htmx.status, StatusCode::OK);
    assert!(
        htmx.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ct")
            .starts_with("text/javascript")
    );
    assert_eq!(
        browser.get(&app, "/static/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(browser.get(&app, "/healthz").await.status, StatusCode::OK);
    let api = app.call(Method::GET, "/v1/me", None, None).await;
    assert_eq!(api.code(), "unauthenticated");
    let unknown = app.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(unknown.code(), "not_found");
}

#[tokio::test]
async fn posts_without_the_sessions_csrf_token_are_refused() {
    let app = TestApp::new().await;
    let mut browser = Browser::default();
    // No cookie at all.
    let bare = browser
        .post(
            &app,
            "/sign-in",
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
            false,
        )
        .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert!(html(&bare).contains("csrf_token_invalid"));
    browser.get(&app, "/sign-in").await;
    let tokenless = browser
        .post(
            &app,
            "/sign-in",
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
            false,
        )
        .await;
    assert_eq!(tokenless.status, StatusCode::FORBIDDEN);
    assert!(!browser.has("wisp_session"));

    let signed = browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{signed:?}");
    assert!(browser.has("wisp_session"));
    browser.get(&app, &format!("/orgs/{ORG}/models")).await;
    // The pre-session token does not work once signed in, nor another session's.
    let other_token = {
        let mut other = Browser::default();
        other.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        other.get(&app, &format!("/orgs/{ORG}/models")).await;
        other.csrf
    };
    assert_ne!(other_token, browser.csrf);
    let mine = std::mem::replace(&mut browser.csrf, other_token);
    let crossed = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "m1")],
            true,
        )
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    browser.csrf = mine;
    let without = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "m1")],
            false,
        )
        .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert!(html(&without).contains("csrf_token_invalid"));
    // The header works too (htmx), and a wrong header is refused.
    let request = |token: &str| {
        Request::post(format!("/orgs/{ORG}/models"))
            .header(header::COOKIE, browser.cookie_header())
            .header("x-csrf-token", token)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("name=m2"))
            .expect("request")
    };
    assert_eq!(
        app.send(request("nope")).await.status,
        StatusCode::FORBIDDEN
    );
    let by_header = app.send(request(&browser.csrf)).await;
    assert_eq!(by_header.status, StatusCode::SEE_OTHER, "{by_header:?}");
    let created = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "m1")],
            true,
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&created), format!("/orgs/{ORG}/models/m1"));
    let token = app.admin().await;
    let models = app.get(&format!("/v1/orgs/{ORG}/models"), &token).await;
    assert_eq!(models.body.as_array().expect("models").len(), 2);
}

#[tokio::test]
async fn the_cookie_is_secure_only_behind_a_trusted_tls_proxy() {
    let app = TestApp::with_config(|config| {
        config.server.trusted_proxies = vec!["10.0.0.1".to_owned()];
    })
    .await;
    for (peer, proto, secure) in [
        ("10.0.0.1", "https", true),
        ("10.0.0.1", "http", false),
        ("192.0.2.7", "https", false),
    ] {
        let mut browser = Browser::default();
        browser.get(&app, "/sign-in").await;
        let body = format!(
            "email={}&password={}&_csrf={}",
            url::form_urlencoded::byte_serialize(ADMIN_EMAIL.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(ADMIN_PASSWORD.as_bytes()).collect::<String>(),
            browser.csrf
        );
        let mut request = Request::post("/sign-in")
            .header(header::COOKIE, browser.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-forwarded-proto", proto)
            .body(Body::from(body))
            .expect("request");
        let addr: SocketAddr = format!("{peer}:4000").parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(addr));
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
        let session = reply
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .find(|v| v.starts_with("wisp_session="))
            .expect("session cookie")
            .to_owned();
        assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
        assert_eq!(
            session.contains("; Secure"),
            secure,
            "{peer} {proto}: {session}"
        );
    }
}

#[tokio::test]
async fn sign_in_is_the_apis_login_and_api_logouts_end_the_cookie() {
    let app = TestApp::new().await;
    let mut browser = Browser::default();
    let wrong = browser.sign_in(&app, ADMIN_EMAIL, "not it at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(html(&wrong).contains("invalid_credentials"));
    let signed = browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(location(&signed), "/");
    let home = browser.get(&app, &format!("/orgs/{ORG}")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(html(&home).contains("Getting started"));
    // Both attempts are in the user's sign-in history, like API logins.
    let token = app.admin().await;
    let history = app.get("/v1/me/sign-ins", &token).await;
    let outcomes: Vec<bool> = history
        .body
        .as_array()
        .expect("history")
        .iter()
        .map(|s| s["succeeded"].as_bool().expect("succeeded"))
        .collect();
    assert!(outcomes.len() >= 3, "{history:?}");
    assert!(outcomes.contains(&false));
    // Signing out everywhere through the API ends the dashboard's session.
    let logout = app
        .call(Method::POST, "/v1/auth/logout-all", Some(&token), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let after = browser.get(&app, &format!("/orgs/{ORG}")).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(
        location(&after).starts_with("/sign-in"),
        "{}",
        location(&after)
    );
}

#[tokio::test]
async fn expired_cookies_are_refused_and_deleted_at_the_next_sign_in() {
    let app = TestApp::new().await;
    let cookies = async || -> i64 {
        let conn = app.state.db.read().await;
        let mut rows = conn
            .query("SELECT COUNT(*) FROM dashboard_sessions", ())
            .await
            .expect("count");
        rows.next()
            .await
            .expect("row")
            .expect("row")
            .get(0)
            .expect("count")
    };
    let mut first = Browser::default();
    first.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(cookies().await, 1);
    // The cookie's time is up.
    app.state
        .db
        .write()
        .await
        .execute(
            "UPDATE dashboard_sessions SET expires_at = created_at - 1",
            (),
        )
        .await
        .expect("expire");
    let refused = first.get(&app, &format!("/orgs/{ORG}")).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(location(&refused).starts_with("/sign-in"));
    let mut second = Browser::default();
    let signed = second.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(location(&signed), "/");
    assert_eq!(cookies().await, 1, "the expired cookie's row is gone");
}

#[tokio::test]
async fn a_password_change_ends_other_sessions_and_one_time_passwords_must_be_changed() {
    let app = TestApp::with_generated_admin_password().await;
    let one_time =
        std::fs::read_to_string(app.dir.path().join("admin-password")).expect("password");
    let one_time = one_time.trim();
    let mut other = Browser::default();
    let mut browser = Browser::default();
    let signed = browser.sign_in(&app, ADMIN_EMAIL, one_time).await;
    assert_eq!(location(&signed), "/account/password");
    other.sign_in(&app, ADMIN_EMAIL, one_time).await;
    let elsewhere = browser.get(&app, &format!("/orgs/{ORG}/models")).await;
    assert_eq!(location(&elsewhere), "/account/password");
    let page = browser.get(&app, "/account/password").await;
    assert!(html(&page).contains("one-time password"));
    let mismatch = browser
        .post(
            &app,
            "/account/password",
            &[
                ("current_password", one_time),
                ("new_password", "a brand new password"),
                ("confirm_password", "typo"),
            ],
            true,
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    let changed = browser
        .post(
            &app,
            "/account/password",
            &[
                ("current_password", one_time),
                ("new_password", "a brand new password"),
                ("confirm_password", "a brand new password"),
            ],
            true,
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{changed:?}");
    assert_eq!(location(&changed), "/");
    assert_eq!(
        browser
            .get(&app, &format!("/orgs/{ORG}/models"))
            .await
            .status,
        StatusCode::OK
    );
    // The other browser's session ended with the change.
    let ended = other.get(&app, &format!("/orgs/{ORG}/models")).await;
    assert!(location(&ended).starts_with("/sign-in"));
    // Sign-out ends this one.
    browser.get(&app, &format!("/orgs/{ORG}")).await;
    let out = browser.post(&app, "/sign-out", &[], true).await;
    assert_eq!(location(&out), "/sign-in");
    assert!(!browser.has("wisp_session"));
}

#[tokio::test]
async fn viewers_see_no_write_action_and_their_forged_posts_are_refused() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    assert_eq!(
        app.model(&admin, ORG, "iris").await.status,
        StatusCode::CREATED
    );
    app.user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let mut viewer = Browser::default();
    viewer
        .sign_in(&app, "viewer@example.com", "password-123")
        .await;
    let list = viewer.get(&app, &format!("/orgs/{ORG}/models")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(html(&list).contains("iris"));
    assert!(!html(&list).contains("Create model"));
    let page = viewer.get(&app, &format!("/orgs/{ORG}/models/iris")).await;
    assert_eq!(page.status, StatusCode::OK);
    for button in ["Upload", "Deploy", "Set alias", "Roll back", "Predict"] {
        assert!(
            !html(&page).contains(&format!(">{button}</button>")),
            "a viewer sees {button}"
        );
    }
    for (uri, fields) in [
        (format!("/orgs/{ORG}/models"), vec![("name", "sneaky")]),
        (
            format!("/orgs/{ORG}/models/iris/deploy"),
            vec![("version", "1")],
        ),
        (
            format!("/orgs/{ORG}/models/iris/alias"),
            vec![("alias", "prod"), ("version", "1")],
        ),
        (format!("/orgs/{ORG}/models/iris/rollback"), vec![]),
    ] {
        let refused = viewer.post(&app, &uri, &fields, true).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(html(&refused).contains("forbidden"), "{uri}");
    }
    let models = app.get(&format!("/v1/orgs/{ORG}/models"), &admin).await;
    assert_eq!(models.body.as_array().expect("models").len(), 1);
}

#[tokio::test]
async fn another_organisation_answers_like_a_missing_one() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.org(&admin, "other").await;
    assert_eq!(
        app.model(&admin, "other", "secret-model").await.status,
        StatusCode::CREATED
    );
    app.user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    let mut member = Browser::default();
    member
        .sign_in(&app, "member@example.com", "password-123")
        .await;
    let missing = member.get(&app, "/orgs/nowhere/models").await;
    let other = member.get(&app, "/orgs/other/models").await;
    let other_model = member.get(&app, "/orgs/other/models/secret-model").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other_model.status, StatusCode::NOT_FOUND);
    assert_eq!(html(&other), html(&missing));
    assert!(!html(&other_model).contains("secret-model"));
    member.get(&app, &format!("/orgs/{ORG}/models")).await;
    let post = member
        .post(&app, "/orgs/other/models", &[("name", "planted")], true)
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    // The switcher lists only the member's organisations.
    let home = member.get(&app, &format!("/orgs/{ORG}")).await;
    assert!(!html(&home).contains("/orgs/other\""));
    // A model's own page in its organisation does not exist for a missing name either.
    assert_eq!(
        member
            .get(&app, &format!("/orgs/{ORG}/models/secret-model"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn dashboard_changes_are_audited_like_their_api_twins() {
    let app = TestApp::new().await;
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.get(&app, &format!("/orgs/{ORG}/models")).await;
    let created = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "audited"), ("description", "via the dashboard")],
            true,
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let token = app.admin().await;
    let audit = app.get(&format!("/v1/orgs/{ORG}/audit"), &token).await;
    let text = audit.body.to_string();
    assert!(text.contains("model.created"), "{text}");
    assert!(text.contains("audited"), "{text}");
    // The name rules are the API's: a bad name gets the API's code.
    let bad = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "..")],
            true,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(html(&bad).contains("invalid_request"));
    let duplicate = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "audited")],
            true,
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    // Names are free text: the page of one with a space and a slash is reachable.
    let spaced = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/models"),
            &[("name", "my model/v2")],
            true,
        )
        .await;
    assert_eq!(
        location(&spaced),
        format!("/orgs/{ORG}/models/my%20model%2Fv2")
    );
    let page = browser.get(&app, location(&spaced)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(html(&page).contains("Model my model"));
}

/// A page's HTML with minijinja's escapes of `/`, `'`, `"` and `&` undone.
fn text(reply: &Reply) -> String {
    html(reply)
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The text between `start` and the next `end` after it.
fn between<'h>(html: &'h str, start: &str, end: &str) -> Option<&'h str> {
    let from = html.find(start)? + start.len();
    let to = html[from..].find(end)?;
    Some(&html[from..from + to])
}

#[tokio::test]
async fn the_keys_page_shows_a_new_secret_once_and_revokes_like_the_api() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let empty = browser.get(&app, &format!("/orgs/{ORG}/keys")).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(html(&empty).contains("No API keys yet"));
    // The checklist's first step leads here.
    let home = browser.get(&app, &format!("/orgs/{ORG}")).await;
    assert!(text(&home).contains(&format!("<a href=\"/orgs/{ORG}/keys\">API keys page")));
    browser.get(&app, &format!("/orgs/{ORG}/keys")).await;
    let created = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/keys"),
            &[
                ("name", "from the page"),
                ("scope", "read"),
                ("scope", "predict"),
            ],
            true,
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    let secret = between(
        html(&created),
        "<pre id=\"new-secret\" tabindex=\"0\"><code>",
        "</code>",
    )
    .expect("the secret is shown")
    .to_owned();
    assert!(secret.starts_with("wisp_"), "{secret}");
    // The key works against the API with the scopes chosen.
    let models = app.get(&format!("/v1/orgs/{ORG}/models"), &secret).await;
    assert_eq!(models.status, StatusCode::OK, "{models:?}");
    // Never shown again.
    let again = browser.get(&app, &format!("/orgs/{ORG}/keys")).await;
    assert!(html(&again).contains("from the page"));
    assert!(!html(&again).contains(&secret));
    let keys = app.get(&format!("/v1/orgs/{ORG}/api-keys"), &admin).await;
    let key = keys.body.as_array().expect("keys")[0].clone();
    assert_eq!(key["name"], "from the page");
    assert_eq!(key["scopes"], serde_json::json!(["read", "predict"]));
    let id = key["id"].as_str().expect("id").to_owned();
    // Bad input gets the API's code.
    for fields in [
        vec![("name", "no scope")],
        vec![("name", "bad scope"), ("scope", "root")],
        vec![("name", ""), ("scope", "read")],
        vec![
            ("name", "past"),
            ("scope", "read"),
            ("expires", "2001-01-01"),
        ],
        vec![
            ("name", "not a date"),
            ("scope", "read"),
            ("expires", "soon"),
        ],
    ] {
        let bad = browser
            .post(&app, &format!("/orgs/{ORG}/keys"), &fields, true)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(html(&bad).contains("invalid_request"), "{fields:?}");
    }
    // Renaming from the page: the same key under its new name, audited like the API's;
    // a bad name gets the API's code.
    browser.get(&app, &format!("/orgs/{ORG}/keys")).await;
    let renamed = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/keys/{id}/rename"),
            &[("name", "  checkout-service ")],
            true,
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{renamed:?}");
    assert_eq!(location(&renamed), format!("/orgs/{ORG}/keys?done=renamed"));
    let key = app
        .get(&format!("/v1/orgs/{ORG}/api-keys/{id}"), &admin)
        .await;
    assert_eq!(key.body["name"], "checkout-service", "{key:?}");
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/models"), &secret)
            .await
            .status,
        StatusCode::OK
    );
    let bad = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/keys/{id}/rename"),
            &[("name", " ")],
            true,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
    assert!(html(&bad).contains("invalid_request"));
    // Revoking from the page: the key stops working, audited like the API's.
    browser.get(&app, &format!("/orgs/{ORG}/keys")).await;
    let revoked = browser
        .post(&app, &format!("/orgs/{ORG}/keys/{id}/revoke"), &[], true)
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{revoked:?}");
    assert_eq!(location(&revoked), format!("/orgs/{ORG}/keys?done=revoked"));
    let refused = app.get(&format!("/v1/orgs/{ORG}/models"), &secret).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    let audit = app.get(&format!("/v1/orgs/{ORG}/audit"), &admin).await;
    let text = audit.body.to_string();
    assert!(
        text.contains("apikey.created")
            && text.contains("apikey.renamed")
            && text.contains("apikey.revoked"),
        "{text}"
    );
    let listed = browser
        .get(&app, &format!("/orgs/{ORG}/keys?done=revoked"))
        .await;
    assert!(html(&listed).contains("revoked"));
    assert!(!html(&listed).contains("Revoke from the page"));
}

#[tokio::test]
async fn keys_follow_the_apis_roles_and_tenants() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (admin_key, _) = app.api_key(&admin, ORG, &["admin"]).await;
    app.org(&admin, "other").await;
    let (other_key, other_secret) = app.api_key(&admin, "other", &["read"]).await;
    app.user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    app.user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    // A viewer cannot open the keys page (the API's rule), nor create with a valid token;
    // the navigation does not offer it.
    let mut viewer = Browser::default();
    viewer
        .sign_in(&app, "viewer@example.com", "password-123")
        .await;
    let home = viewer.get(&app, &format!("/orgs/{ORG}")).await;
    assert!(text(&home).contains(&format!("href=\"/orgs/{ORG}/models\"")));
    assert!(!text(&home).contains(&format!("href=\"/orgs/{ORG}/keys\">API keys</a>")));
    assert_eq!(
        viewer.get(&app, &format!("/orgs/{ORG}/keys")).await.status,
        StatusCode::FORBIDDEN
    );
    let forged = viewer
        .post(
            &app,
            &format!("/orgs/{ORG}/keys"),
            &[("name", "sneaky"), ("scope", "read")],
            true,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A member sees only their own keys, is not offered `admin`, and the admin's key
    // answers like a missing one; asking for `admin` anyway is refused.
    let mut member = Browser::default();
    member
        .sign_in(&app, "member@example.com", "password-123")
        .await;
    let page = member.get(&app, &format!("/orgs/{ORG}/keys")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!html(&page).contains(&admin_key));
    assert!(!html(&page).contains("value=\"admin\""));
    let elevated = member
        .post(
            &app,
            &format!("/orgs/{ORG}/keys"),
            &[("name", "elevated"), ("scope", "admin")],
            true,
        )
        .await;
    assert_eq!(elevated.status, StatusCode::FORBIDDEN, "{elevated:?}");
    let theirs = member
        .post(
            &app,
            &format!("/orgs/{ORG}/keys/{admin_key}/revoke"),
            &[],
            true,
        )
        .await;
    let missing = member
        .post(
            &app,
            &format!("/orgs/{ORG}/keys/no-such-key/revoke"),
            &[],
            true,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(html(&theirs), html(&missing));
    // Another organisation's key, from this organisation's page: like a missing one, and
    // it keeps working.
    let mut owner = Browser::default();
    owner.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    owner.get(&app, &format!("/orgs/{ORG}/keys")).await;
    let crossed = owner
        .post(
            &app,
            &format!("/orgs/{ORG}/keys/{other_key}/revoke"),
            &[],
            true,
        )
        .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    owner.get(&app, &format!("/orgs/{ORG}/keys")).await;
    let crossed = owner
        .post(
            &app,
            &format!("/orgs/{ORG}/keys/{other_key}/rename"),
            &[("name", "taken over")],
            true,
        )
        .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    let other = app
        .get(&format!("/v1/orgs/other/api-keys/{other_key}"), &admin)
        .await;
    assert_ne!(other.body["name"], "taken over", "{other:?}");
    assert_eq!(
        app.get("/v1/orgs/other/models", &other_secret).await.status,
        StatusCode::OK
    );
    let page = owner.get(&app, &format!("/orgs/{ORG}/keys")).await;
    assert!(!html(&page).contains(&other_key));
}

#[tokio::test]
async fn the_members_page_invites_changes_roles_and_removes_like_the_api() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = browser.get(&app, &format!("/orgs/{ORG}/members")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(html(&page).contains(ADMIN_EMAIL));
    assert!(html(&page).contains("No pending invitation"));
    let invited = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members"),
            &[("email", "bob@example.com"), ("role", "viewer")],
            true,
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{invited:?}");
    let invited = text(&invited);
    let token =
        between(&invited, "/invitations/accept?token=", "</code>").expect("the invitation link");
    let token = url::form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .expect("token")
        .1
        .into_owned();
    // The link is shown once: the list shows the pending invitation, not its token.
    let listed = browser.get(&app, &format!("/orgs/{ORG}/members")).await;
    assert!(html(&listed).contains("data-pending=\"bob@example.com\""));
    assert!(!text(&listed).contains("/invitations/accept?token="));
    let accepted = app.accept(&token, None, Some("password-123")).await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");
    let members = app.get(&format!("/v1/orgs/{ORG}/members"), &admin).await;
    let bob = members
        .body
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "bob@example.com")
        .expect("bob joined")
        .clone();
    assert_eq!(bob["role"], "viewer");
    let bob_id = bob["user_id"].as_str().expect("id").to_owned();
    // Bad input gets the API's codes.
    let bad_email = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members"),
            &[("email", "not an address"), ("role", "viewer")],
            true,
        )
        .await;
    assert_eq!(bad_email.status, StatusCode::BAD_REQUEST);
    let bad_role = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members/{bob_id}/role"),
            &[("role", "emperor")],
            true,
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::BAD_REQUEST);
    assert!(html(&bad_role).contains("invalid_request"));
    let again = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members"),
            &[("email", "bob@example.com"), ("role", "viewer")],
            true,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // Change the role, then remove: the API sees both, and both are audited.
    let changed = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members/{bob_id}/role"),
            &[("role", "member")],
            true,
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{changed:?}");
    let bob_now = app
        .get(&format!("/v1/orgs/{ORG}/members/{bob_id}"), &admin)
        .await;
    assert_eq!(bob_now.body["role"], "member");
    let me = app.get("/v1/me", &admin).await;
    let my_id = me.body["id"].as_str().expect("my id").to_owned();
    let last_owner = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members/{my_id}/role"),
            &[("role", "viewer")],
            true,
        )
        .await;
    assert_eq!(last_owner.status, StatusCode::CONFLICT);
    assert!(html(&last_owner).contains("last_owner"));
    let removed = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members/{bob_id}/remove"),
            &[],
            true,
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{removed:?}");
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/members/{bob_id}"), &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let audit = app.get(&format!("/v1/orgs/{ORG}/audit"), &admin).await;
    let text = audit.body.to_string();
    for action in ["member.invited", "member.role_changed", "member.removed"] {
        assert!(text.contains(action), "{action}: {text}");
    }
    // A pending invitation revoked from the page stops working.
    browser.get(&app, &format!("/orgs/{ORG}/members")).await;
    browser
        .post(
            &app,
            &format!("/orgs/{ORG}/members"),
            &[("email", "carol@example.com"), ("role", "member")],
            true,
        )
        .await;
    let pending = app
        .get(&format!("/v1/orgs/{ORG}/invitations"), &admin)
        .await;
    let invitation = pending.body[0]["id"]
        .as_str()
        .expect("invitation")
        .to_owned();
    let revoked = browser
        .post(
            &app,
            &format!("/orgs/{ORG}/invitations/{invitation}/revoke"),
            &[],
            true,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let pending = app
        .get(&format!("/v1/orgs/{ORG}/invitations"), &admin)
        .await;
    assert_eq!(pending.body, serde_json::json!([]));
}

#[tokio::test]
async fn members_follow_the_apis_roles_and_tenants() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.org(&admin, "other").await;
    app.user_with_role(&admin, "other", "stranger@example.com", "member")
        .await;
    let others = app.get("/v1/orgs/other/members", &admin).await;
    let stranger = others
        .body
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "stranger@example.com")
        .expect("stranger")["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    // A viewer sees the members, no control, and a forged change is refused.
    let mut viewer = Browser::default();
    viewer
        .sign_in(&app, "viewer@example.com", "password-123")
        .await;
    let page = viewer.get(&app, &format!("/orgs/{ORG}/members")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(html(&page).contains(ADMIN_EMAIL));
    for control in [
        ">Invite</button>",
        ">Change role</button>",
        ">Remove</button>",
    ] {
        assert!(!html(&page).contains(control), "a viewer sees {control}");
    }
    let forged = viewer
        .post(
            &app,
            &format!("/orgs/{ORG}/members"),
            &[("email", "friend@example.com"), ("role", "owner")],
            true,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Another organisation's member, from this organisation's page: like a missing one.
    let mut owner = Browser::default();
    owner.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    owner.get(&app, &format!("/orgs/{ORG}/members")).await;
    let crossed = owner
        .post(
            &app,
            &format!("/orgs/{ORG}/members/{stranger}/remove"),
            &[],
            true,
        )
        .await;
    let missing = owner
        .post(
            &app,
            &format!("/orgs/{ORG}/members/nobody/remove"),
            &[],
            true,
        )
        .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    assert_eq!(html(&crossed), html(&missing));
    let still = app.get("/v1/orgs/other/members", &admin).await;
    assert!(still.body.to_string().contains("stranger@example.com"));
}

/// The JSON of a chart's data block on a page.
fn chart_data(page: &str, id: &str) -> serde_json::Value {
    let start = format!("<script type=\"application/json\" id=\"{id}\">");
    let json = between(page, &start, "</script>").unwrap_or_else(|| panic!("no {id} on the page"));
    serde_json::from_str(json).expect("chart json")
}

#[tokio::test(flavor = "multi_thread")]
async fn monitoring_shows_the_apis_analytics_drift_feedback_and_alerts() {
    use serde_json::json;
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    common::deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    // A drift reference, calls, one feedback, and an alert rule watching the model.
    let mut csv = String::from("input[0],input[1],input[2],input[3]\n");
    for i in 0..30 {
        csv.push_str(&format!(
            "{},{},1.4,0.2\n",
            5.0 + 0.05 * f64::from(i),
            3.0 + 0.02 * f64::from(i)
        ));
    }
    let reference = app
        .send(
            Request::put(format!("/v1/orgs/{ORG}/models/iris/drift/reference"))
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "text/csv")
                .body(Body::from(csv))
                .expect("request"),
        )
        .await;
    assert_eq!(reference.status, StatusCode::OK, "{reference:?}");
    let mut ids = Vec::new();
    for i in 0..4 {
        let reply = app
            .post(
                &format!("/v1/orgs/{ORG}/models/iris/predict"),
                &admin,
                json!({ "inputs": { "input": [[5.1 + 0.3 * f64::from(i), 3.5, 1.4, 0.2]] } }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        ids.push(
            reply.headers["wisp-usage-id"]
                .to_str()
                .expect("id")
                .to_owned(),
        );
    }
    app.state.drift.flush().await;
    let feedback = app
        .post(
            &format!("/v1/orgs/{ORG}/models/iris/feedback"),
            &admin,
            json!({ "prediction_id": ids[0], "actual": 0 }),
        )
        .await;
    assert_eq!(feedback.status, StatusCode::OK, "{feedback:?}");
    let rule = app
        .post(
            &format!("/v1/orgs/{ORG}/alerts/rules"),
            &admin,
            json!({ "name": "iris-errors", "model": "iris", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "window": "1h" }),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{rule:?}");

    app.user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let mut viewer = Browser::default();
    viewer
        .sign_in(&app, "viewer@example.com", "password-123")
        .await;
    let overview = viewer.get(&app, &format!("/orgs/{ORG}/monitoring")).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(text(&overview).contains(&format!("/orgs/{ORG}/models/iris/monitoring")));
    assert!(html(&overview).contains("iris-errors"));
    let model_page = viewer.get(&app, &format!("/orgs/{ORG}/models/iris")).await;
    assert!(html(&model_page).contains("data-monitoring-link"));
    let page = viewer
        .get(&app, &format!("/orgs/{ORG}/models/iris/monitoring"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let body = html(&page).to_owned();
    // The charts carry the API's numbers: calls per version add up to its total.
    let api = app
        .get(
            &format!("/v1/orgs/{ORG}/models/iris/analytics?step=hour"),
            &admin,
        )
        .await;
    assert_eq!(api.body["total"]["calls"], 4, "{api:?}");
    let calls = chart_data(&body, "chart-calls-data");
    assert_eq!(calls["series"][0]["label"], "v1");
    let charted: f64 = calls["series"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .sum();
    assert_eq!(charted, 4.0);
    let latency = chart_data(&body, "chart-latency-data");
    let labels: Vec<&str> = latency["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s["label"].as_str())
        .collect();
    assert_eq!(labels, ["v1 p50", "v1 p99"]);
    // Drift per feature, from the drift report.
    assert!(body.contains("data-feature=\"input[0]\""), "{body}");
    let drift = chart_data(&body, "chart-drift-data");
    assert!(!drift["series"].as_array().expect("series").is_empty());
    // Feedback and the alert rule with its state.
    assert!(body.contains("data-performance-version=\"1\""), "{body}");
    assert!(body.contains("data-rule=\"iris-errors\""));
    // No inline script: data blocks only.
    for script in body.match_indices("<script") {
        let tag = &body[script.0..script.0 + body[script.0..].find('>').expect("tag end")];
        assert!(
            tag.contains("src=\"/static/") || tag.contains("type=\"application/json\""),
            "inline script: {tag}"
        );
    }
    assert!(!body.contains("style=\""));
    let hour = viewer
        .get(
            &app,
            &format!("/orgs/{ORG}/models/iris/monitoring?range=hour"),
        )
        .await;
    assert_eq!(hour.status, StatusCode::OK);
    assert!(html(&hour).contains("per minute"));
    // Another organisation's model answers like a missing one.
    app.org(&admin, "other").await;
    app.model(&admin, "other", "hidden").await;
    let mut owner = Browser::default();
    owner.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let missing = owner
        .get(&app, &format!("/orgs/{ORG}/models/nothing/monitoring"))
        .await;
    let crossed = owner
        .get(&app, &format!("/orgs/{ORG}/models/hidden/monitoring"))
        .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    assert_eq!(html(&crossed).replace("hidden", "nothing"), html(&missing));
    let stranger = viewer.get(&app, "/orgs/other/monitoring").await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn batch_pages_poll_progress_until_finished_and_cancel_like_the_api() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    common::deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    let submit = |body: String| {
        Request::post(format!(
            "/v1/orgs/{ORG}/batch-jobs?model=iris&format=ndjson"
        ))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body))
        .expect("request")
    };
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let empty = browser.get(&app, &format!("/orgs/{ORG}/batch")).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(html(&empty).contains("No batch jobs yet"));

    // Every job slot taken: the job stays queued, the page polls, and cancel is offered.
    let slots = app.state.batch.slots();
    let all = u32::try_from(app.state.batch.settings().max_running_jobs).expect("slots");
    let held = slots.clone().acquire_many_owned(all).await.expect("slots");
    let created = app
        .send(submit("{\"input\": [5.1, 3.5, 1.4, 0.2]}\n".repeat(50)))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().expect("id").to_owned();
    let list = browser.get(&app, &format!("/orgs/{ORG}/batch")).await;
    assert!(html(&list).contains(&format!("data-job=\"{id}\"")));
    let page = browser.get(&app, &format!("/orgs/{ORG}/batch/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(html(&page).contains("hx-trigger=\"every 1s\""));
    assert!(html(&page).contains(">Cancel job</button>"));
    let fragment = browser
        .get(&app, &format!("/orgs/{ORG}/batch/{id}/progress"))
        .await;
    assert!(html(&fragment).contains("data-status=\"queued\""));
    assert!(html(&fragment).contains("hx-trigger"));
    assert!(!html(&fragment).contains("<html"));
    // A viewer cannot open batch jobs (the API's rule) nor cancel with a valid token.
    app.user_with_role(&admin, ORG, "viewer@example.com", "viewer")
        .await;
    let mut viewer = Browser::default();
    viewer
        .sign_in(&app, "viewer@example.com", "password-123")
        .await;
    let home = viewer.get(&app, &format!("/orgs/{ORG}")).await;
    assert!(!text(&home).contains(&format!("href=\"/orgs/{ORG}/batch\"")));
    assert_eq!(
        viewer
            .get(&app, &format!("/orgs/{ORG}/batch/{id}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let forged = viewer
        .post(&app, &format!("/orgs/{ORG}/batch/{id}/cancel"), &[], true)
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Another organisation's job answers like a missing one.
    app.org(&admin, "other").await;
    let mut stranger = Browser::default();
    app.user_with_role(&admin, "other", "stranger@example.com", "admin")
        .await;
    stranger
        .sign_in(&app, "stranger@example.com", "password-123")
        .await;
    stranger.get(&app, "/orgs/other/batch").await;
    let crossed = stranger.get(&app, &format!("/orgs/other/batch/{id}")).await;
    let missing = stranger.get(&app, "/orgs/other/batch/no-such-job").await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    assert_eq!(html(&crossed), html(&missing));
    let crossed_cancel = stranger
        .post(&app, &format!("/orgs/other/batch/{id}/cancel"), &[], true)
        .await;
    assert_eq!(crossed_cancel.status, StatusCode::NOT_FOUND);
    // Cancel from the page: the API sees it cancelled, audited like its twin.
    let cancelled = browser
        .post(&app, &format!("/orgs/{ORG}/batch/{id}/cancel"), &[], true)
        .await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER, "{cancelled:?}");
    let job = app
        .get(&format!("/v1/orgs/{ORG}/batch-jobs/{id}"), &admin)
        .await;
    assert_eq!(job.body["status"], "cancelled");
    let audit = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=batch_job.cancelled"),
            &admin,
        )
        .await;
    assert_eq!(audit.body["entries"].as_array().expect("entries").len(), 1);
    let twice = browser
        .post(&app, &format!("/orgs/{ORG}/batch/{id}/cancel"), &[], true)
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(html(&twice).contains("job_finished"));
    drop(held);
    // A finished job's fragment stops the polling and offers no cancel.
    let done = browser
        .get(&app, &format!("/orgs/{ORG}/batch/{id}/progress"))
        .await;
    assert!(html(&done).contains("data-status=\"cancelled\""));
    assert!(!html(&done).contains("hx-trigger"));
    let page = browser.get(&app, &format!("/orgs/{ORG}/batch/{id}")).await;
    assert!(!html(&page).contains(">Cancel job</button>"));
    // A job that runs: its results download through the page.
    let ran = app
        .send(submit("{\"input\": [5.1, 3.5, 1.4, 0.2]}\n".repeat(3)))
        .await;
    let ran_id = ran.body["id"].as_str().expect("id").to_owned();
    for _ in 0..3000 {
        let job = app
            .get(&format!("/v1/orgs/{ORG}/batch-jobs/{ran_id}"), &admin)
            .await;
        if job.body["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let download = browser
        .get(&app, &format!("/orgs/{ORG}/batch/{ran_id}/results"))
        .await;
    assert_eq!(download.status, StatusCode::OK);
    assert!(
        download.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    let text = match &download.body {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert_eq!(text.matches("\"row\"").count(), 3, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_shows_the_apis_report_preview_and_invoices_to_admins_only() {
    let app = TestApp::serving().await;
    let admin = app.admin().await;
    common::deployed(&app, &admin, "iris", "iris_logreg.onnx").await;
    for _ in 0..3 {
        let reply = app
            .post(
                &format!("/v1/orgs/{ORG}/models/iris/predict"),
                &admin,
                serde_json::json!({ "inputs": { "input": [[5.1, 3.5, 1.4, 0.2]] } }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    // The organisation has existed since last month: that period gets a final invoice.
    let last_month = wisp::metering::period::Period::containing(wisp::db::now()).previous();
    app.state
        .db
        .write()
        .await
        .execute(
            "UPDATE orgs SET created_at = ?1 WHERE slug = ?2",
            libsql::params![last_month.start, ORG],
        )
        .await
        .expect("backdate");
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = browser.get(&app, &format!("/orgs/{ORG}/usage")).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let body = html(&page).to_owned();
    let api = app.get(&format!("/v1/orgs/{ORG}/usage"), &admin).await;
    assert!(body.contains("data-quota=\"calls_per_month\""));
    let calls = chart_data(&body, "chart-calls-data");
    let charted: f64 = calls["series"]
        .as_array()
        .expect("series")
        .iter()
        .find(|s| s["label"] == "calls")
        .expect("calls series")["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .sum();
    assert_eq!(
        serde_json::json!(charted as u64),
        api.body["totals"]["calls"]
    );
    assert_eq!(charted, 3.0);
    let quota = chart_data(&body, "chart-quota-data");
    assert!(quota["series"].to_string().contains("billed calls so far"));
    // The preview and the invoices are the API's, amounts written out.
    let preview = app
        .get(&format!("/v1/orgs/{ORG}/billing/invoice-preview"), &admin)
        .await;
    assert!(body.contains("Invoice preview"));
    let total = preview.body["total_micros"].as_u64().expect("total");
    let written = format!("{}.{:02}", total / 1_000_000, (total % 1_000_000) / 10_000);
    assert!(
        body.contains(&format!("<td data-total>{written}</td>")),
        "{written}: {body}"
    );
    let invoices = app
        .get(&format!("/v1/orgs/{ORG}/billing/invoices"), &admin)
        .await;
    let id = invoices.body[0]["id"]
        .as_str()
        .expect("a final invoice")
        .to_owned();
    assert!(body.contains(&format!("data-invoice=\"{id}\"")));
    let invoice = browser
        .get(&app, &format!("/orgs/{ORG}/usage/invoices/{id}"))
        .await;
    assert_eq!(invoice.status, StatusCode::OK);
    assert!(html(&invoice).contains(&last_month.label()));
    assert!(html(&invoice).contains("data-line=\"plan_fee\""));
    // A bad period gets the API's code.
    let bad = browser
        .get(&app, &format!("/orgs/{ORG}/usage?period=last-month"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(html(&bad).contains("invalid_request"));
    // Members and viewers are refused (the API's rule), and not offered the page.
    app.user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    let mut member = Browser::default();
    member
        .sign_in(&app, "member@example.com", "password-123")
        .await;
    let home = member.get(&app, &format!("/orgs/{ORG}")).await;
    assert!(!text(&home).contains(&format!("href=\"/orgs/{ORG}/usage\"")));
    assert_eq!(
        member.get(&app, &format!("/orgs/{ORG}/usage")).await.status,
        StatusCode::FORBIDDEN
    );
    // Another organisation's invoice answers like a missing one.
    app.org(&admin, "other").await;
    let other_invoices = app.get("/v1/orgs/other/billing/invoices", &admin).await;
    assert_eq!(other_invoices.status, StatusCode::OK);
    let crossed = browser
        .get(&app, &format!("/orgs/other/usage/invoices/{id}"))
        .await;
    let missing = browser
        .get(&app, "/orgs/other/usage/invoices/no-such-invoice")
        .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    assert_eq!(html(&crossed), html(&missing));
}

#[tokio::test]
async fn the_audit_log_filters_and_pages_like_the_api_for_admins_only() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    for i in 0..60 {
        assert_eq!(
            app.model(&admin, ORG, &format!("m{i:02}")).await.status,
            StatusCode::CREATED
        );
    }
    app.api_key(&admin, ORG, &["read"]).await;
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let first = browser.get(&app, &format!("/orgs/{ORG}/audit")).await;
    assert_eq!(first.status, StatusCode::OK);
    let body = text(&first);
    assert_eq!(body.matches("<tr data-action=").count(), 50);
    assert!(body.contains("data-action=\"apikey.created\""));
    assert!(body.contains(ADMIN_EMAIL), "actors by email");
    // The next page continues where the API's cursor says.
    let api = app
        .get(&format!("/v1/orgs/{ORG}/audit?limit=50"), &admin)
        .await;
    let cursor = api.body["next_cursor"].as_i64().expect("a next page");
    assert!(body.contains(&format!("before={cursor}")));
    let second = browser
        .get(&app, &format!("/orgs/{ORG}/audit?before={cursor}"))
        .await;
    let rest = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?limit=50&before={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(
        text(&second).matches("<tr data-action=").count(),
        rest.body["entries"].as_array().expect("entries").len()
    );
    // Filters: action, resource prefix, actor, days.
    let keys = browser
        .get(&app, &format!("/orgs/{ORG}/audit?action=apikey.created"))
        .await;
    assert_eq!(text(&keys).matches("<tr data-action=").count(), 1);
    let resource = browser
        .get(&app, &format!("/orgs/{ORG}/audit?resource=model%3Am5"))
        .await;
    let api_resource = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?target_prefix=model%3Am5"),
            &admin,
        )
        .await;
    assert_eq!(
        text(&resource).matches("<tr data-action=").count(),
        api_resource.body["entries"]
            .as_array()
            .expect("entries")
            .len()
    );
    let nobody = browser
        .get(&app, &format!("/orgs/{ORG}/audit?actor=user%3Anobody"))
        .await;
    assert!(html(&nobody).contains("No entry matches"));
    let today = time::OffsetDateTime::now_utc().date();
    let day = format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    let ranged = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/audit?from={day}&to={day}&action=apikey.created"),
        )
        .await;
    assert_eq!(text(&ranged).matches("<tr data-action=").count(), 1);
    let past = browser
        .get(&app, &format!("/orgs/{ORG}/audit?to=2001-01-01"))
        .await;
    assert!(html(&past).contains("No entry matches"));
    let bad = browser
        .get(&app, &format!("/orgs/{ORG}/audit?from=yesterday"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(html(&bad).contains("invalid_request"));
    // Members are refused, as by the API; another organisation is like a missing one.
    app.user_with_role(&admin, ORG, "member@example.com", "member")
        .await;
    let mut member = Browser::default();
    member
        .sign_in(&app, "member@example.com", "password-123")
        .await;
    assert_eq!(
        member.get(&app, &format!("/orgs/{ORG}/audit")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        member.get(&app, "/orgs/elsewhere/audit").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_experiments_runs_are_paged_keeping_the_filter() {
    use serde_json::json;
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (_, key) = app.api_key(&admin, ORG, &["models:write"]).await;
    let created = app
        .post(
            "/api/2.0/mlflow/experiments/create",
            &key,
            json!({ "name": "sweep" }),
        )
        .await;
    let exp = created.body["experiment_id"]
        .as_str()
        .expect("id")
        .to_owned();
    for n in 0..101 {
        let run = app
            .post(
                "/api/2.0/mlflow/runs/create",
                &key,
                json!({ "experiment_id": exp, "run_name": format!("run-{n}"), "start_time": 1000 + n,
                        "tags": [{ "key": "sweep", "value": "yes" }] }),
            )
            .await;
        assert_eq!(run.status, StatusCode::OK, "{run:?}");
    }
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let first = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/experiments/{exp}?filter=tags.sweep+%3D+%27yes%27"),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(html(&first).matches("data-run=").count(), 100);
    let page = html(&first);
    let end = page.find("\" rel=\"next\"").expect("a next page");
    let start = page[..end].rfind("href=\"").expect("its link") + "href=\"".len();
    let next = page[start..end]
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    assert!(next.contains("filter=tags.sweep"), "{next}");
    let second = browser.get(&app, &next).await;
    assert_eq!(html(&second).matches("data-run=").count(), 1);
    // The oldest run, last of the newest-first order.
    assert!(html(&second).contains(">run-0</a>"));
    assert!(html(&second).contains("rel=\"prev\""));
}

#[tokio::test]
async fn experiments_show_runs_metric_history_compare_and_artifacts_of_the_org_only() {
    use serde_json::json;
    const MLFLOW: &str = "/api/2.0/mlflow";
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let (_, key) = app.api_key(&admin, ORG, &["models:write"]).await;
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let empty = browser.get(&app, &format!("/orgs/{ORG}/experiments")).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(html(&empty).contains("No experiments yet"));
    let created = app
        .post(
            &format!("{MLFLOW}/experiments/create"),
            &key,
            json!({ "name": "tuning" }),
        )
        .await;
    let exp = created.body["experiment_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut runs = Vec::new();
    for (name, lr) in [("slow", "0.01"), ("fast", "0.1")] {
        let run = app
            .post(
                &format!("{MLFLOW}/runs/create"),
                &key,
                json!({ "experiment_id": exp, "run_name": name, "start_time": 1000 }),
            )
            .await;
        let id = run.body["run"]["info"]["run_id"]
            .as_str()
            .expect("run")
            .to_owned();
        let metrics: Vec<_> = (0..5)
            .map(|step| json!({ "key": "loss", "value": 1.0 / f64::from(step + 1) / lr.parse::<f64>().unwrap(), "timestamp": 1000 + step, "step": step }))
            .collect();
        let logged = app
            .post(
                &format!("{MLFLOW}/runs/log-batch"),
                &key,
                json!({ "run_id": id, "metrics": metrics, "params": [{ "key": "lr", "value": lr }] }),
            )
            .await;
        assert_eq!(logged.status, StatusCode::OK, "{logged:?}");
        runs.push(id);
    }
    let root = format!("{exp}/{}/artifacts", runs[0]);
    let put = app
        .send(
            Request::put(format!(
                "/api/2.0/mlflow-artifacts/artifacts/{root}/model/notes.txt"
            ))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::from("hello artifact"))
            .expect("request"),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{put:?}");

    let list = browser.get(&app, &format!("/orgs/{ORG}/experiments")).await;
    assert!(html(&list).contains("data-experiment=\"tuning\""));
    let table = browser
        .get(&app, &format!("/orgs/{ORG}/experiments/{exp}"))
        .await;
    assert_eq!(table.status, StatusCode::OK);
    for id in &runs {
        assert!(html(&table).contains(&format!("data-run=\"{id}\"")));
    }
    assert!(html(&table).contains(">lr</th>") && html(&table).contains(">loss</th>"));
    assert!(html(&table).contains(">0.01</td>"));
    // MLflow's search syntax filters and orders the runs; a bad filter gets the API's code.
    let filtered = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/experiments/{exp}?filter=params.lr+%3D+%270.1%27"),
        )
        .await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert!(html(&filtered).contains(&format!("data-run=\"{}\"", runs[1])));
    assert!(!html(&filtered).contains(&format!("data-run=\"{}\"", runs[0])));
    let ordered = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/experiments/{exp}?order=metrics.loss+ASC"),
        )
        .await;
    let (first, second) = (
        html(&ordered)
            .find(&format!("data-run=\"{}\"", runs[1]))
            .expect("fast"),
        html(&ordered)
            .find(&format!("data-run=\"{}\"", runs[0]))
            .expect("slow"),
    );
    assert!(first < second, "the lower loss first");
    let none = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/experiments/{exp}?filter=metrics.loss+%3E+1000"),
        )
        .await;
    assert!(html(&none).contains("No run matches"));
    let bad = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/experiments/{exp}?filter=metrics.loss+%3E"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(html(&bad).contains("invalid_request"));
    // A run's page: params, the metric's whole history as a chart, its artifacts.
    let run_page = browser
        .get(&app, &format!("/orgs/{ORG}/runs/{}", runs[0]))
        .await;
    assert_eq!(run_page.status, StatusCode::OK);
    let body = html(&run_page).to_owned();
    assert!(body.contains("data-param=\"lr\""));
    let loss = chart_data(&body, "chart-metric-0-data");
    assert_eq!(loss["x"], json!([0, 1, 2, 3, 4]));
    assert_eq!(loss["series"][0]["values"][0], json!(100.0));
    assert!(body.contains("data-artifact=\"model\""));
    let folder = browser
        .get(&app, &format!("/orgs/{ORG}/runs/{}?path=model", runs[0]))
        .await;
    assert!(text(&folder).contains("data-artifact=\"model/notes.txt\""));
    let file = browser
        .get(
            &app,
            &format!(
                "/orgs/{ORG}/runs/{}/artifact?path=model%2Fnotes.txt",
                runs[0]
            ),
        )
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(
        file.body,
        serde_json::Value::String("hello artifact".into())
    );
    let escape = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/runs/{}/artifact?path=..%2F..%2Fx", runs[0]),
        )
        .await;
    assert_eq!(escape.status, StatusCode::BAD_REQUEST);
    // Compare: side by side, the metric overlaid, one line per run.
    let compared = browser
        .get(
            &app,
            &format!("/orgs/{ORG}/compare?run={}&run={}", runs[0], runs[1]),
        )
        .await;
    assert_eq!(compared.status, StatusCode::OK);
    let overlaid = chart_data(html(&compared), "chart-metric-0-data");
    let labels: Vec<&str> = overlaid["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s["label"].as_str())
        .collect();
    assert_eq!(labels, ["slow", "fast"]);
    // A run name cannot break out of a chart's data block.
    let hostile = app
        .post(
            &format!("{MLFLOW}/runs/create"),
            &key,
            json!({ "experiment_id": exp, "run_name": "</script><script>alert(1)</script>", "start_time": 1000 }),
        )
        .await;
    let hostile = hostile.body["run"]["info"]["run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    app.post(
        &format!("{MLFLOW}/runs/log-batch"),
        &key,
        json!({ "run_id": hostile, "metrics": [{ "key": "loss", "value": 1.0, "timestamp": 1, "step": 0 }] }),
    )
    .await;
    let hostile_page = browser
        .get(&app, &format!("/orgs/{ORG}/runs/{hostile}"))
        .await;
    let hostile_html = html(&hostile_page).to_owned();
    assert!(!hostile_html.contains("<script>alert(1)"), "{hostile_html}");
    assert_eq!(
        chart_data(&hostile_html, "chart-metric-0-data")["series"][0]["label"],
        "</script><script>alert(1)</script>"
    );
    let one = browser
        .get(&app, &format!("/orgs/{ORG}/compare?run={}", runs[0]))
        .await;
    assert_eq!(one.status, StatusCode::BAD_REQUEST);
    // A model version logged from the run links to the run's page.
    app.model(&admin, ORG, "linked").await;
    let uploaded = app
        .send(
            Request::post(format!(
                "/v1/orgs/{ORG}/models/linked/versions?run_id={}",
                runs[0]
            ))
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(common::onnx_bytes("linked")))
            .expect("request"),
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{uploaded:?}");
    let model_page = browser
        .get(&app, &format!("/orgs/{ORG}/models/linked"))
        .await;
    assert!(text(&model_page).contains(&format!("href=\"/orgs/{ORG}/runs/{}\"", runs[0])));
    // Another organisation's runs and artifacts answer like missing ones, for a viewer too.
    app.org(&admin, "other").await;
    app.user_with_role(&admin, "other", "stranger@example.com", "viewer")
        .await;
    let mut stranger = Browser::default();
    stranger
        .sign_in(&app, "stranger@example.com", "password-123")
        .await;
    let missing = stranger.get(&app, "/orgs/other/runs/no-such-run").await;
    let crossed = stranger
        .get(&app, &format!("/orgs/other/runs/{}", runs[0]))
        .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    assert_eq!(
        html(&crossed).replace(&runs[0], "no-such-run"),
        html(&missing)
    );
    let crossed_file = stranger
        .get(
            &app,
            &format!(
                "/orgs/other/runs/{}/artifact?path=model%2Fnotes.txt",
                runs[0]
            ),
        )
        .await;
    assert_eq!(crossed_file.status, StatusCode::NOT_FOUND);
    let crossed_exp = stranger
        .get(&app, &format!("/orgs/other/experiments/{exp}"))
        .await;
    assert_eq!(crossed_exp.status, StatusCode::NOT_FOUND);
    let crossed_compare = stranger
        .get(
            &app,
            &format!("/orgs/other/compare?run={}&run={}", runs[0], runs[1]),
        )
        .await;
    assert_eq!(crossed_compare.status, StatusCode::NOT_FOUND);
    let other_list = stranger.get(&app, "/orgs/other/experiments").await;
    assert!(!html(&other_list).contains("tuning"));
}

#[tokio::test]
async fn the_monitoring_overview_pages_through_every_model() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    for i in 0..105 {
        app.model(&admin, ORG, &format!("m{i:03}")).await;
    }
    let mut browser = Browser::default();
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let first = browser.get(&app, &format!("/orgs/{ORG}/monitoring")).await;
    let first = text(&first);
    assert!(
        first.contains("/models/m099/monitoring") && !first.contains("/models/m100/monitoring")
    );
    let next = between(&first, "<a href=\"", "\" data-next-page>")
        .map(|href| href.rsplit('"').next().unwrap_or(href).to_owned())
        .expect("a next page");
    assert_eq!(next, format!("/orgs/{ORG}/monitoring?after=m099"));
    let second = browser.get(&app, &next).await;
    let second = text(&second);
    assert!(
        second.contains("/models/m104/monitoring") && !second.contains("/models/m099/monitoring")
    );
    assert!(!second.contains("data-next-page"));
}
