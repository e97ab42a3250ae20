//! Authorisation: the role × endpoint matrix, tenant isolation, member management.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

/// One probe per permission-table action, each with a body that would succeed.
fn probes(org: &str) -> Vec<(&'static str, Method, String, Option<Value>)> {
    vec![
        ("ReadOrg", Method::GET, format!("/v1/orgs/{org}"), None),
        (
            "ReadMembers",
            Method::GET,
            format!("/v1/orgs/{org}/members"),
            None,
        ),
        (
            "ManageMembers",
            Method::POST,
            format!("/v1/orgs/{org}/members"),
            Some(json!({ "email": "new@example.com", "role": "viewer" })),
        ),
        (
            "ReadKeys",
            Method::GET,
            format!("/v1/orgs/{org}/api-keys"),
            None,
        ),
        (
            "ManageKeys",
            Method::POST,
            format!("/v1/orgs/{org}/api-keys"),
            Some(json!({ "name": "k", "scopes": ["read"] })),
        ),
        (
            "ReadModels",
            Method::GET,
            format!("/v1/orgs/{org}/models"),
            None,
        ),
        (
            "WriteModels",
            Method::POST,
            format!("/v1/orgs/{org}/models"),
            Some(json!({ "name": "probe" })),
        ),
        (
            "DeleteModels",
            Method::DELETE,
            format!("/v1/orgs/{org}/models/existing"),
            None,
        ),
        (
            "ReadAudit",
            Method::GET,
            format!("/v1/orgs/{org}/audit"),
            None,
        ),
    ]
}

fn allowed(role: &str, action: &str) -> bool {
    let everyone = ["ReadOrg", "ReadMembers", "ReadModels"];
    let contributors = ["ReadKeys", "ManageKeys", "WriteModels"];
    match role {
        "owner" | "admin" => true,
        "member" => everyone.contains(&action) || contributors.contains(&action),
        "viewer" => everyone.contains(&action),
        _ => false,
    }
}

#[tokio::test]
async fn role_by_endpoint_matrix() {
    for role in ["owner", "admin", "member", "viewer"] {
        // A fresh app per role, so one role's successful writes do not disturb the next.
        let app = TestApp::new().await;
        let admin = app.admin().await;
        assert_eq!(
            app.model(&admin, ORG, "existing").await.status,
            StatusCode::CREATED
        );
        let token = if role == "owner" {
            admin.clone()
        } else {
            app.user_with_role(&admin, ORG, &format!("{role}-user@example.com"), role)
                .await
        };
        for (action, method, uri, body) in probes(ORG) {
            let reply = app.call(method.clone(), &uri, Some(&token), body).await;
            if allowed(role, action) {
                assert!(
                    reply.status.is_success(),
                    "{role} should {action}: {reply:?}"
                );
            } else {
                assert_eq!(
                    (reply.status, reply.code()),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{role} must not {action}"
                );
            }
        }
    }
}

#[tokio::test]
async fn scope_by_endpoint_matrix() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let expectations: &[(&str, &[&str])] = &[
        ("read", &["ReadOrg", "ReadMembers", "ReadModels"]),
        ("models:write", &["ReadOrg", "ReadModels", "WriteModels"]),
        ("predict", &["ReadOrg"]),
        (
            "admin",
            &[
                "ReadOrg",
                "ReadMembers",
                "ManageMembers",
                "ReadKeys",
                "ManageKeys",
                "ReadModels",
                "WriteModels",
                "DeleteModels",
                "ReadAudit",
            ],
        ),
    ];
    for (scope, allowed_actions) in expectations {
        let (_, key) = app.api_key(&admin, ORG, &[scope]).await;
        // The admin key deletes the model in its round; the others need it to exist.
        let created = app.model(&admin, ORG, "existing").await;
        assert!(matches!(
            created.status,
            StatusCode::CREATED | StatusCode::CONFLICT
        ));
        for (action, method, uri, body) in probes(ORG) {
            let body = body.map(|mut b| {
                if let Some(email) = b.get_mut("email") {
                    *email = json!(format!("{}-{scope}@example.com", action));
                }
                if let Some(name) = b.get_mut("name") {
                    *name = json!(format!("probe-{scope}"));
                }
                b
            });
            let reply = app.call(method.clone(), &uri, Some(&key), body).await;
            if allowed_actions.contains(&action) {
                assert!(
                    reply.status.is_success(),
                    "{scope} key should {action}: {reply:?}"
                );
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{scope} key must not {action}: {reply:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn other_orgs_resources_are_not_found_never_forbidden() {
    let app = TestApp::new().await;
    let alice = app.admin().await;
    assert_eq!(
        app.model(&alice, ORG, "secret-model").await.status,
        StatusCode::CREATED
    );
    let (key_id, _) = app.api_key(&alice, ORG, &["read"]).await;
    let me = app.get("/v1/me", &alice).await;
    let alice_id = me.body["id"].as_str().expect("id").to_owned();

    // Bob signs up through an admin of another org: a member of `acme`? No: his own org.
    let bob = app
        .user_with_role(&alice, ORG, "bob@example.com", "viewer")
        .await;
    app.org(&bob, "bobco").await;
    // Remove Bob from acme so he is a pure outsider.
    let bob_id = app.get("/v1/me", &bob).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let removed = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/members/{bob_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let (_, bob_key) = app.api_key(&bob, "bobco", &["admin"]).await;

    let reads = [
        format!("/v1/orgs/{ORG}"),
        format!("/v1/orgs/{ORG}/models"),
        format!("/v1/orgs/{ORG}/models/secret-model"),
        format!("/v1/orgs/{ORG}/models/secret-model/versions"),
        format!("/v1/orgs/{ORG}/models/secret-model/versions/1/file"),
        format!("/v1/orgs/{ORG}/members"),
        format!("/v1/orgs/{ORG}/members/{alice_id}"),
        format!("/v1/orgs/{ORG}/api-keys"),
        format!("/v1/orgs/{ORG}/api-keys/{key_id}"),
        format!("/v1/orgs/{ORG}/audit"),
        "/v1/orgs/no-such-org/models".to_owned(),
    ];
    let writes = [
        (
            Method::POST,
            format!("/v1/orgs/{ORG}/models"),
            Some(json!({ "name": "x" })),
        ),
        (
            Method::DELETE,
            format!("/v1/orgs/{ORG}/models/secret-model"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/orgs/{ORG}/models/secret-model/versions"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{ORG}/models/secret-model/aliases/production"),
            Some(json!({ "version": 1 })),
        ),
        (
            Method::DELETE,
            format!("/v1/orgs/{ORG}/api-keys/{key_id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/orgs/{ORG}/members/{alice_id}"),
            Some(json!({ "role": "viewer" })),
        ),
        (
            Method::DELETE,
            format!("/v1/orgs/{ORG}/members/{alice_id}"),
            None,
        ),
    ];
    for token in [&bob, &bob_key] {
        for uri in &reads {
            let reply = app.get(uri, token).await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::NOT_FOUND, "not_found"),
                "GET {uri}"
            );
            assert!(!reply.body.to_string().contains("secret-model"));
        }
        for (method, uri, body) in &writes {
            let reply = app
                .call(method.clone(), uri, Some(token), body.clone())
                .await;
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{method} {uri}"
            );
        }
    }
    // Nothing changed.
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/models/secret-model"), &alice)
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        app.get(&format!("/v1/orgs/{ORG}/api-keys/{key_id}"), &alice)
            .await
            .body["revoked_at"]
            .is_null()
    );
}

#[tokio::test]
async fn member_management_roles_and_last_owner() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let owner_id = app.get("/v1/me", &owner).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Adding an email invites it: the person sets their own password when accepting.
    let added = app
        .post(
            &format!("/v1/orgs/{ORG}/members"),
            &owner,
            json!({ "email": "eve@example.com", "role": "admin" }),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{added:?}");
    assert_eq!(added.body["status"], "pending");
    assert!(added.body.get("initial_password").is_none());
    let token = added.body["token"].as_str().expect("token");
    let accepted = app.accept(token, None, Some("eve's own password")).await;
    assert_eq!(accepted.status, StatusCode::OK, "{accepted:?}");
    let eve = app.login("eve@example.com", "eve's own password").await;
    let eve_id = accepted.body["user_id"].as_str().expect("id").to_owned();

    let duplicate = app
        .post(
            &format!("/v1/orgs/{ORG}/members"),
            &owner,
            json!({ "email": "EVE@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (StatusCode::CONFLICT, "already_exists")
    );

    // An admin cannot touch owners or create them.
    let reply = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/members/{owner_id}"),
            Some(&eve),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .post(
            &format!("/v1/orgs/{ORG}/members"),
            &eve,
            json!({ "email": "o2@example.com", "role": "owner" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // The last owner cannot be demoted or removed.
    let reply = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/members/{owner_id}"),
            Some(&owner),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "last_owner")
    );
    let reply = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/members/{owner_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(reply.code(), "last_owner");

    // Role changes take effect on the next request (no re-login).
    let reply = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/members/{eve_id}"),
            Some(&owner),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(reply.body["role"], "viewer");
    let reply = app.get(&format!("/v1/orgs/{ORG}/audit"), &eve).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let reply = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/members/nobody"),
            Some(&owner),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(reply.code(), "not_found");
    let bad_role = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/members/{eve_id}"),
            Some(&owner),
            Some(json!({ "role": "god" })),
        )
        .await;
    assert_eq!(bad_role.code(), "invalid_request");

    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=member.role_changed"),
            &owner,
        )
        .await;
    let entry = &log.body["entries"][0];
    assert_eq!(
        entry["details"],
        json!({ "from": "admin", "to": "viewer", "revoked_keys": [] })
    );
    assert_eq!(entry["actor"], format!("user:{owner_id}"));
}

#[tokio::test]
async fn keys_never_outlive_their_creators_authority() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let eve = app
        .user_with_role(&owner, ORG, "eve@example.com", "admin")
        .await;
    let eve_id = app.get("/v1/me", &eve).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (admin_key_id, admin_key) = app.api_key(&eve, ORG, &["admin"]).await;
    let (_, read_key) = app.api_key(&eve, ORG, &["read"]).await;
    let members = format!("/v1/orgs/{ORG}/members");
    assert_eq!(app.get(&members, &admin_key).await.status, StatusCode::OK);

    // Demoted to member: the admin key dies, the read key lives.
    let demoted = app
        .call(
            Method::PATCH,
            &format!("{members}/{eve_id}"),
            Some(&owner),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK);
    assert_eq!(app.get(&members, &admin_key).await.code(), "invalid_token");
    assert_eq!(app.get(&members, &read_key).await.status, StatusCode::OK);
    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=member.role_changed"),
            &owner,
        )
        .await;
    assert_eq!(
        log.body["entries"][0]["details"]["revoked_keys"],
        json!([admin_key_id])
    );

    // Removed: every key she made dies.
    let removed = app
        .call(
            Method::DELETE,
            &format!("{members}/{eve_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&members, &read_key).await.code(), "invalid_token");
}
