//! API keys act for a person and never outlive that person's authority, and a caller
//! manages only the keys it could have created.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

/// The user id of the caller with `token`.
async fn user_id(app: &TestApp, token: &str) -> String {
    app.get("/v1/me", token).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn members() -> String {
    format!("/v1/orgs/{ORG}/members")
}

fn key_path(id: &str) -> String {
    format!("/v1/orgs/{ORG}/api-keys/{id}")
}

async fn rename(app: &TestApp, token: &str, id: &str) -> Reply {
    app.call(
        Method::PATCH,
        &key_path(id),
        Some(token),
        Some(json!({ "name": "renamed" })),
    )
    .await
}

async fn revoke(app: &TestApp, token: &str, id: &str) -> Reply {
    app.call(Method::DELETE, &key_path(id), Some(token), None)
        .await
}

#[tokio::test]
async fn keys_minted_by_keys_die_when_their_human_is_removed() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let u = app
        .user_with_role(&owner, ORG, "u@example.com", "admin")
        .await;
    let u_id = user_id(&app, &u).await;
    // U creates K1, K1 creates K2, K2 creates K3.
    let (_, k1) = app.api_key(&u, ORG, &["admin"]).await;
    let (k2_id, k2) = app.api_key(&k1, ORG, &["admin"]).await;
    let (k3_id, k3) = app.api_key(&k2, ORG, &["read"]).await;
    assert_eq!(app.get(&members(), &k3).await.status, StatusCode::OK);
    for id in [&k2_id, &k3_id] {
        let shown = app.get(&key_path(id), &owner).await;
        assert_eq!(shown.body["principal_user_id"], u_id.as_str(), "{shown:?}");
    }

    let removed = app
        .call(
            Method::DELETE,
            &format!("{}/{u_id}", members()),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    for key in [&k1, &k2, &k3] {
        assert_eq!(app.get(&members(), key).await.code(), "invalid_token");
    }
    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=member.removed"),
            &owner,
        )
        .await;
    let revoked = log.body["entries"][0]["details"]["revoked_keys"].clone();
    for id in [&k2_id, &k3_id] {
        assert!(
            revoked.as_array().expect("ids").contains(&json!(id)),
            "{revoked}"
        );
    }
}

#[tokio::test]
async fn keys_minted_by_keys_lose_what_a_demoted_human_may_no_longer_grant() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let u = app
        .user_with_role(&owner, ORG, "u@example.com", "admin")
        .await;
    let u_id = user_id(&app, &u).await;
    let (_, k1) = app.api_key(&u, ORG, &["admin"]).await;
    let (_, k2_admin) = app.api_key(&k1, ORG, &["admin"]).await;
    let (_, k2_predict) = app.api_key(&k1, ORG, &["predict"]).await;

    let demoted = app
        .call(
            Method::PATCH,
            &format!("{}/{u_id}", members()),
            Some(&owner),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK);
    assert_eq!(app.get(&members(), &k2_admin).await.code(), "invalid_token");
    // What a member may grant survives.
    let predict = format!("/v1/orgs/{ORG}/models/none/predict");
    let reply = app
        .post(&predict, &k2_predict, json!({ "inputs": {} }))
        .await;
    // Authenticated and allowed to predict: what fails is the missing model.
    assert!(
        !matches!(reply.code(), "invalid_token" | "forbidden"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_key_whose_human_left_is_refused_even_if_revocation_was_missed() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let u = app
        .user_with_role(&owner, ORG, "u@example.com", "admin")
        .await;
    let u_id = user_id(&app, &u).await;
    let (_, admin_and_read) = app.api_key(&u, ORG, &["admin", "read"]).await;
    let (_, k1) = app.api_key(&u, ORG, &["admin"]).await;
    let (_, k2) = app.api_key(&k1, ORG, &["read"]).await;
    for key in [&admin_and_read, &k1, &k2] {
        assert_eq!(app.get(&members(), key).await.status, StatusCode::OK);
    }
    let org = wisp::orgs::find_by_slug(&*app.state.db.read().await, ORG)
        .await
        .expect("read")
        .expect("org");

    // A demotion written without revoking (a missed revocation): the keys narrow to what
    // a viewer may grant.
    let conn = app.state.db.write().await;
    wisp::orgs::set_role(&conn, &org.id, &u_id, wisp::auth::Role::Viewer)
        .await
        .expect("demote");
    drop(conn);
    assert_eq!(app.get(&members(), &k1).await.code(), "invalid_token");
    let narrowed = app.get(&members(), &admin_and_read).await;
    assert_eq!(
        narrowed.status,
        StatusCode::OK,
        "read is left: {narrowed:?}"
    );
    let reply = app
        .get(&format!("/v1/orgs/{ORG}/audit"), &admin_and_read)
        .await;
    assert_eq!(reply.code(), "forbidden", "admin is gone");

    // A removal written without revoking: nothing is left.
    let conn = app.state.db.write().await;
    wisp::orgs::remove_member(&conn, &org.id, &u_id)
        .await
        .expect("remove");
    drop(conn);
    for key in [&admin_and_read, &k2] {
        assert_eq!(app.get(&members(), key).await.code(), "invalid_token");
    }
}

#[tokio::test]
async fn a_member_neither_sees_nor_manages_other_peoples_keys() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let admin = app
        .user_with_role(&owner, ORG, "a@example.com", "admin")
        .await;
    let member = app
        .user_with_role(&owner, ORG, "m@example.com", "member")
        .await;
    let other = app
        .user_with_role(&owner, ORG, "o@example.com", "member")
        .await;
    let (owner_key, _) = app.api_key(&owner, ORG, &["admin"]).await;
    let (admin_key, _) = app.api_key(&admin, ORG, &["admin"]).await;
    let (others_key, _) = app.api_key(&other, ORG, &["predict"]).await;
    let (own_key, _) = app.api_key(&member, ORG, &["predict"]).await;

    // The list shows only its own keys.
    let listed = app.get(&format!("/v1/orgs/{ORG}/api-keys"), &member).await;
    let ids: Vec<_> = listed
        .body
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(ids, [json!(own_key)]);

    for id in [&owner_key, &admin_key, &others_key] {
        for reply in [
            app.get(&key_path(id), &member).await,
            rename(&app, &member, id).await,
            revoke(&app, &member, id).await,
        ] {
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{id}: {reply:?}"
            );
        }
    }
    for id in [&owner_key, &admin_key, &others_key] {
        assert!(app.get(&key_path(id), &owner).await.body["revoked_at"].is_null());
        assert_eq!(
            app.get(&key_path(id), &owner).await.body["name"],
            "test key"
        );
    }
    // Its own key it manages.
    assert_eq!(rename(&app, &member, &own_key).await.status, StatusCode::OK);
    assert_eq!(
        revoke(&app, &member, &own_key).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn only_owners_manage_owners_keys() {
    let app = TestApp::new().await;
    let owner = app.admin().await;
    let admin = app
        .user_with_role(&owner, ORG, "a@example.com", "admin")
        .await;
    let member = app
        .user_with_role(&owner, ORG, "m@example.com", "member")
        .await;
    let (owner_key, _) = app.api_key(&owner, ORG, &["read"]).await;
    let (admin_key, _) = app.api_key(&admin, ORG, &["admin"]).await;
    let (_, admins_admin_key) = app.api_key(&admin, ORG, &["admin"]).await;
    let (members_key, _) = app.api_key(&member, ORG, &["predict"]).await;

    // An admin sees the owner's key but may not touch it, nor may its admin key.
    assert_eq!(
        app.get(&key_path(&owner_key), &admin).await.status,
        StatusCode::OK
    );
    for token in [&admin, &admins_admin_key] {
        for reply in [
            rename(&app, token, &owner_key).await,
            revoke(&app, token, &owner_key).await,
        ] {
            assert_eq!(
                (reply.status, reply.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{reply:?}"
            );
        }
    }
    assert!(app.get(&key_path(&owner_key), &owner).await.body["revoked_at"].is_null());
    // An admin (or its admin key) manages members' and other admins' keys; owners all.
    assert_eq!(
        revoke(&app, &admins_admin_key, &members_key).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rename(&app, &owner, &admin_key).await.status,
        StatusCode::OK
    );
    assert_eq!(
        revoke(&app, &owner, &owner_key).await.status,
        StatusCode::NO_CONTENT
    );
}
