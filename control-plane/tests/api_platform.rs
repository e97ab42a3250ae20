//! The platform operator: above the organisations, named in configuration, every use
//! audited; organisation members, owners included, are refused.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

const OPERATOR: &str = "ops@example.com";
const OPERATOR_PASSWORD: &str = "the operator's own password";

/// A test app whose configuration names [`OPERATOR`] a platform operator, and the
/// operator's access token (its account made by the service owner, a member of no org).
async fn app_with_operator() -> (TestApp, String) {
    let app = TestApp::with_config(|config| {
        config.platform.operators = vec!["Ops@Example.com".into()];
    })
    .await;
    // The operator's account is one the service owner made and controls (as the bootstrap
    // admin is): an invitation never creates it (see below).
    {
        let hash = wisp::auth::password::hash(OPERATOR_PASSWORD).expect("hash");
        let conn = app.state.db.write().await;
        wisp::users::insert(&conn, OPERATOR, &hash)
            .await
            .expect("operator account");
    }
    let operator = app.login(OPERATOR, OPERATOR_PASSWORD).await;
    (app, operator)
}

/// One request per platform endpoint.
fn platform_calls() -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/platform/orgs".into(), None),
        (
            Method::PUT,
            format!("/v1/platform/orgs/{ORG}/plan"),
            Some(json!({ "plan": "enterprise" })),
        ),
        (
            Method::POST,
            format!("/v1/platform/orgs/{ORG}/suspend"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/platform/orgs/{ORG}/reinstate"),
            None,
        ),
        (Method::GET, "/v1/platform/usage".into(), None),
        (Method::GET, "/v1/platform/audit".into(), None),
    ]
}

#[tokio::test]
async fn org_members_even_owners_are_refused_platform_endpoints() {
    let (app, _) = app_with_operator().await;
    let owner = app.admin().await;
    let (_, admin_key) = app.api_key(&owner, ORG, &["admin"]).await;
    for token in [&owner, &admin_key] {
        for (method, uri, body) in platform_calls() {
            let reply = app.call(method.clone(), &uri, Some(token), body).await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{method} {uri}"
            );
        }
    }
    let plan = app.get(&format!("/v1/orgs/{ORG}/usage"), &owner).await;
    // The bootstrap organisation starts on Enterprise; no member moved it.
    assert_eq!(plan.body["plan"]["id"], "enterprise", "nothing changed");
    // Without configured operators, nobody is one.
    let plain = TestApp::new().await;
    let owner = plain.admin().await;
    let reply = plain.get("/v1/platform/orgs", &owner).await;
    assert_eq!(reply.code(), "forbidden");
}

#[tokio::test]
async fn an_operator_changes_an_orgs_plan_and_quotas_audited() {
    let (app, operator) = app_with_operator().await;
    let owner = app.admin().await;
    let usage = format!("/v1/orgs/{ORG}/usage");
    // The plan is memoised by this read; the change must be seen by the next one.
    assert_eq!(
        app.get(&usage, &owner).await.body["plan"]["id"],
        "enterprise"
    );

    let changed = app
        .put(
            &format!("/v1/platform/orgs/{ORG}/plan"),
            &operator,
            json!({ "plan": "pro", "overrides": { "max_models": 3 } }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["plan"], "pro");
    assert_eq!(changed.body["overrides"]["max_models"], 3);
    let report = app.get(&usage, &owner).await;
    assert_eq!(report.body["plan"]["id"], "pro");
    assert_eq!(report.body["plan"]["quotas"]["max_models"], 3);

    let unknown = app
        .put(
            &format!("/v1/platform/orgs/{ORG}/plan"),
            &operator,
            json!({ "plan": "platinum" }),
        )
        .await;
    assert_eq!(unknown.code(), "invalid_request");
    let missing = app
        .put(
            "/v1/platform/orgs/no-such-org/plan",
            &operator,
            json!({ "plan": "pro" }),
        )
        .await;
    assert_eq!(missing.code(), "not_found");

    // In the organisation's log, with the operator as actor, and in the platform view.
    let operator_id = app.get("/v1/me", &operator).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=platform.plan_changed"),
            &owner,
        )
        .await;
    let entry = &log.body["entries"][0];
    assert_eq!(entry["actor"], format!("operator:{operator_id}"));
    assert_eq!(entry["details"]["from"]["plan"], "enterprise");
    assert_eq!(entry["details"]["to"]["plan"], "pro");
    let platform = app.get("/v1/platform/audit", &operator).await;
    let actions: Vec<_> = platform.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        actions.contains(&"platform.plan_changed".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.iter().all(|a| a.starts_with("platform.")),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_suspended_org_is_refused_until_reinstated() {
    let (app, operator) = app_with_operator().await;
    let owner = app.admin().await;
    let (_, key) = app.api_key(&owner, ORG, &["predict", "read"]).await;
    app.org(&owner, "other").await;
    let models = format!("/v1/orgs/{ORG}/models");
    let predict = format!("/v1/orgs/{ORG}/models/iris/predict");
    // Warm the memoised rows: suspension must not wait for them to age.
    assert_eq!(app.get(&models, &owner).await.status, StatusCode::OK);
    assert_eq!(app.get(&models, &key).await.status, StatusCode::OK);

    let suspended = app
        .post(
            &format!("/v1/platform/orgs/{ORG}/suspend"),
            &operator,
            json!({ "reason": "unpaid invoices" }),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{suspended:?}");
    assert!(suspended.body["suspended_at"].is_string());

    let refused = [
        app.get(&models, &owner).await,
        app.get(&models, &key).await,
        app.post(&predict, &key, json!({ "inputs": {} })).await,
        app.post(
            &format!("/v1/orgs/{ORG}/api-keys"),
            &owner,
            json!({ "name": "k", "scopes": ["read"] }),
        )
        .await,
    ];
    for reply in refused {
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::FORBIDDEN, "org_suspended"),
            "{reply:?}"
        );
    }
    // The inference protocols answer in their own format, with the same status.
    let v2 = app.get("/v2/models/iris", &key).await;
    assert_eq!(v2.status, StatusCode::FORBIDDEN, "{v2:?}");
    assert!(
        v2.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("suspended"))
    );
    // Other organisations are untouched.
    let other = app.get("/v1/orgs/other/models", &owner).await;
    assert_eq!(other.status, StatusCode::OK);
    let listed = app.get("/v1/platform/orgs", &operator).await;
    let acme = listed
        .body
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["slug"] == ORG)
        .cloned();
    assert!(acme.expect("acme listed")["suspended_at"].is_string());

    let reinstated = app
        .post(
            &format!("/v1/platform/orgs/{ORG}/reinstate"),
            &operator,
            json!(null),
        )
        .await;
    assert_eq!(reinstated.status, StatusCode::OK, "{reinstated:?}");
    assert_eq!(app.get(&models, &owner).await.status, StatusCode::OK);
    assert_eq!(app.get(&models, &key).await.status, StatusCode::OK);

    let log = app.get(&format!("/v1/orgs/{ORG}/audit"), &owner).await;
    let actions: Vec<_> = log.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert!(actions.contains(&json!("platform.org_suspended")));
    assert!(actions.contains(&json!("platform.org_reinstated")));
}

#[tokio::test]
async fn an_operator_reads_every_orgs_usage_audited() {
    let (app, operator) = app_with_operator().await;
    let owner = app.admin().await;
    app.org(&owner, "other").await;
    let usage = app.get("/v1/platform/usage", &operator).await;
    assert_eq!(usage.status, StatusCode::OK, "{usage:?}");
    let slugs: Vec<_> = usage.body["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .map(|o| o["slug"].clone())
        .collect();
    assert_eq!(slugs, [json!(ORG), json!("other")]);
    assert_eq!(usage.body["orgs"][0]["calls"], 0);
    let bad = app
        .get("/v1/platform/usage?period=2026-13", &operator)
        .await;
    assert_eq!(bad.code(), "invalid_request");

    let log = app
        .get("/v1/platform/audit?action=platform.usage_read", &operator)
        .await;
    assert_eq!(
        log.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{log:?}"
    );
}

/// The inviting admin holds the invitation link, so accepting it must never create the
/// account of an operator's address: that would make any org admin a platform operator.
#[tokio::test]
async fn an_invitation_never_creates_an_operators_account() {
    let app = TestApp::with_config(|config| {
        config.platform.operators = vec!["root@example.com".into()];
    })
    .await;
    let owner = app.admin().await;
    let token = app.invite(&owner, ORG, "Root@example.com", "viewer").await;
    let accepted = app
        .accept(&token, None, Some("the admin's chosen password"))
        .await;
    assert_eq!(accepted.status, StatusCode::FORBIDDEN, "{accepted:?}");
    let login = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({ "email": "root@example.com", "password": "the admin's chosen password" })),
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{login:?}");
}
