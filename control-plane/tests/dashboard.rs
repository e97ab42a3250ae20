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
