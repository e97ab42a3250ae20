//! The model registry: models, uploads and their validation, metadata, aliases, audit.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::json;

#[tokio::test]
async fn create_list_get_delete_model() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let created = app
        .post(
            &format!("/v1/orgs/{ORG}/models"),
            &admin,
            json!({ "name": "iris", "description": "flowers" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "iris");
    assert!(created.body["latest_version"].is_null());
    let dup = app.model(&admin, ORG, "iris").await;
    assert_eq!(
        (dup.status, dup.code()),
        (StatusCode::CONFLICT, "already_exists")
    );

    let list = app.get(&format!("/v1/orgs/{ORG}/models"), &admin).await;
    assert_eq!(list.body.as_array().expect("list").len(), 1);
    let one = app
        .get(&format!("/v1/orgs/{ORG}/models/iris"), &admin)
        .await;
    assert_eq!(one.body["description"], "flowers");

    assert_eq!(
        app.upload(ORG, "iris", &admin, onnx_bytes("v1"))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(app.blob_count(), 1);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/models/iris"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/models/iris"), &admin)
            .await
            .code(),
        "not_found"
    );
    assert_eq!(
        app.blob_count(),
        0,
        "the unreferenced file is deleted with the model"
    );
}

#[tokio::test]
async fn upload_raw_body_stores_content_addressed_version_with_signature() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    let bytes = onnx_bytes("iris v1");
    let reply = app.upload(ORG, "iris", &admin, bytes.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let v = &reply.body;
    assert_eq!(v["version"], 1);
    assert_eq!(v["framework"], "onnx");
    assert_eq!(v["size_bytes"], bytes.len());
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(v["sha256"], digest);
    assert_eq!(
        v["signature"]["inputs"][0],
        json!({ "name": "x", "dtype": "f32", "shape": [-1, 4] })
    );
    let stored = app
        .state
        .blobs
        .get(&digest)
        .await
        .expect("get")
        .expect("blob");
    assert_eq!(stored.as_ref(), bytes.as_slice());
    let download = Request::get(format!("/v1/orgs/{ORG}/models/iris/versions/1/file"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(app.app.clone(), download)
        .await
        .expect("infallible");
    assert_eq!(response.headers()["etag"], format!("\"{digest}\""));
    let downloaded = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(downloaded.as_ref(), bytes.as_slice());

    // The same bytes again: a new version, the same blob.
    let again = app.upload(ORG, "iris", &admin, bytes).await;
    assert_eq!(again.body["version"], 2);
    assert_eq!(app.blob_count(), 1);
    assert_eq!(app.staged_count(), 0);
    let versions = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/versions"), &admin)
        .await;
    assert_eq!(versions.body[0]["version"], 2);
    assert_eq!(
        app.get(&format!("/v1/orgs/{ORG}/models/iris"), &admin)
            .await
            .body["latest_version"],
        2
    );
}

#[tokio::test]
async fn upload_multipart_with_metadata_and_lineage() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    let boundary = "wisp-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{}\r\n",
        json!({ "description": "first", "tags": { "team": "ml" }, "metrics": { "accuracy": 0.97 }, "run_id": "run-42" })
    ).as_bytes());
    body.extend_from_slice(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"iris.onnx\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).as_bytes());
    body.extend_from_slice(&onnx_bytes("multipart"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = Request::post(format!("/v1/orgs/{ORG}/models/iris/versions"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request");
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["description"], "first");
    assert_eq!(reply.body["tags"], json!({ "team": "ml" }));
    assert_eq!(reply.body["metrics"], json!({ "accuracy": 0.97 }));
    assert_eq!(reply.body["run_id"], "run-42");

    let patched = app
        .call(
            Method::PATCH,
            &format!("/v1/orgs/{ORG}/models/iris/versions/1"),
            Some(&admin),
            Some(json!({ "metrics": { "f1": 0.9 }, "description": "patched" })),
        )
        .await;
    assert_eq!(patched.body["metrics"], json!({ "f1": 0.9 }));
    assert_eq!(patched.body["description"], "patched");
    assert_eq!(patched.body["run_id"], "run-42");
}

#[tokio::test]
async fn rejected_uploads_store_nothing_and_say_why() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "m").await;

    let empty = app.upload(ORG, "m", &admin, Vec::new()).await;
    assert_eq!(
        (empty.status, empty.code()),
        (StatusCode::BAD_REQUEST, "empty_upload")
    );

    let jpeg = app.upload(ORG, "m", &admin, JPEG.to_vec()).await;
    assert_eq!(
        (jpeg.status, jpeg.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_model_format")
    );

    let truncated = app.upload(ORG, "m", &admin, vec![0x08]).await;
    assert_eq!(
        (truncated.status, truncated.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model")
    );

    // Oversize, as a stream of chunks: refused once the limit is crossed.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..100)
        .map(|i| {
            let mut chunk = if i == 0 { onnx_bytes("") } else { Vec::new() };
            chunk.resize(4096, 0);
            Ok(bytes::Bytes::from(chunk))
        })
        .collect();
    let request = Request::post(format!("/v1/orgs/{ORG}/models/m/versions"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .expect("request");
    let big = app.send(request).await;
    assert_eq!(
        (big.status, big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    assert_eq!(app.blob_count(), 0, "no blob for any rejected upload");
    assert_eq!(app.staged_count(), 0, "no staged leftovers");
    let versions = app
        .get(&format!("/v1/orgs/{ORG}/models/m/versions"), &admin)
        .await;
    assert_eq!(versions.body, json!([]), "no version row");

    let missing_model = app.upload(ORG, "nope", &admin, onnx_bytes("x")).await;
    assert_eq!(missing_model.code(), "not_found");
}

#[tokio::test]
async fn bad_json_gets_specific_codes() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let uri = format!("/v1/orgs/{ORG}/models");
    let send = |content_type: Option<&'static str>, body: &'static str| {
        let mut builder =
            Request::post(uri.clone()).header(header::AUTHORIZATION, format!("Bearer {admin}"));
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(Body::from(body)).expect("request")
    };
    let syntax = app
        .send(send(Some("application/json"), "{\"name\": "))
        .await;
    assert_eq!(
        (syntax.status, syntax.code()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let no_type = app.send(send(None, "{\"name\": \"x\"}")).await;
    assert_eq!(
        (no_type.status, no_type.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let unknown_field = app
        .send(send(
            Some("application/json"),
            "{\"name\": \"x\", \"nmae\": 1}",
        ))
        .await;
    assert_eq!(
        (unknown_field.status, unknown_field.code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let wrong_type = app
        .send(send(Some("application/json"), "{\"name\": 5}"))
        .await;
    assert_eq!(wrong_type.code(), "invalid_request");
    let empty_name = app
        .send(send(Some("application/json"), "{\"name\": \"\"}"))
        .await;
    assert_eq!(empty_name.code(), "invalid_request");
    let bad_version = app
        .get(&format!("/v1/orgs/{ORG}/models/x/versions/latest"), &admin)
        .await;
    assert_eq!(
        (bad_version.status, bad_version.code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let no_route = app.get("/v1/nothing-here", &admin).await;
    assert_eq!(no_route.code(), "not_found");
}

#[tokio::test]
async fn hostile_names_are_stored_and_returned_literally() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let names = [
        "'; DROP TABLE models; --",
        "x' OR '1'='1",
        "../../etc/passwd",
        "..\\..\\windows\\system32",
        "%2e%2e%2f",
        "名前 with spaces",
    ];
    for name in names {
        let created = app.model(&admin, ORG, name).await;
        assert_eq!(created.status, StatusCode::CREATED, "{name}: {created:?}");
        assert_eq!(created.body["name"], name);
        let uploaded = app.upload(ORG, name, &admin, onnx_bytes(name)).await;
        assert_eq!(uploaded.status, StatusCode::CREATED, "{name}: {uploaded:?}");
        let fetched = app
            .get(&format!("/v1/orgs/{ORG}/models/{}", encode(name)), &admin)
            .await;
        assert_eq!(fetched.body["name"], name);
        assert_eq!(fetched.body["latest_version"], 1);
    }
    let list = app.get(&format!("/v1/orgs/{ORG}/models"), &admin).await;
    assert_eq!(list.body.as_array().expect("list").len(), names.len());
    // The files are where the store puts them, named by digest only.
    assert_eq!(app.blob_count(), names.len());
    assert!(!app.dir.path().join("etc").exists());
}

#[tokio::test]
async fn aliases_move_atomically_with_history() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    app.upload(ORG, "iris", &admin, onnx_bytes("1")).await;
    app.upload(ORG, "iris", &admin, onnx_bytes("2")).await;
    let alias_uri = format!("/v1/orgs/{ORG}/models/iris/aliases/production");

    let set = app
        .call(
            Method::PUT,
            &alias_uri,
            Some(&admin),
            Some(json!({ "version": 1 })),
        )
        .await;
    assert_eq!(
        set.body,
        json!({ "alias": "production", "version": 1, "previous_version": null, "redeployed": false })
    );
    let moved = app
        .call(
            Method::PUT,
            &alias_uri,
            Some(&admin),
            Some(json!({ "version": 2 })),
        )
        .await;
    assert_eq!(moved.body["previous_version"], 1);
    let missing = app
        .call(
            Method::PUT,
            &alias_uri,
            Some(&admin),
            Some(json!({ "version": 9 })),
        )
        .await;
    assert_eq!(missing.code(), "not_found");
    let numeric = app
        .call(
            Method::PUT,
            &format!("/v1/orgs/{ORG}/models/iris/aliases/3"),
            Some(&admin),
            Some(json!({ "version": 1 })),
        )
        .await;
    assert_eq!(numeric.code(), "invalid_request");

    let resolved = app.get(&alias_uri, &admin).await;
    assert_eq!(resolved.body["version"], 2);
    assert_eq!(resolved.body["aliases"], json!(["production"]));
    app.call(
        Method::PUT,
        &format!("/v1/orgs/{ORG}/models/iris/aliases/staging"),
        Some(&admin),
        Some(json!({ "version": 2 })),
    )
    .await;
    let v2 = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/versions/2"), &admin)
        .await;
    assert_eq!(v2.body["aliases"], json!(["production", "staging"]));

    let deleted = app
        .call(Method::DELETE, &alias_uri, Some(&admin), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&alias_uri, &admin).await.code(), "not_found");

    let history = app
        .get(
            &format!("/v1/orgs/{ORG}/models/iris/alias-history?alias=production"),
            &admin,
        )
        .await;
    let moves: Vec<_> = history
        .body
        .as_array()
        .expect("history")
        .iter()
        .map(|m| (m["from_version"].clone(), m["to_version"].clone()))
        .collect();
    assert_eq!(
        moves,
        vec![
            (json!(2), json!(null)),
            (json!(1), json!(2)),
            (json!(null), json!(1))
        ]
    );
    let aliases = app
        .get(&format!("/v1/orgs/{ORG}/models/iris/aliases"), &admin)
        .await;
    assert_eq!(aliases.body[0]["alias"], "staging");
}

#[tokio::test]
async fn audit_log_records_changes_with_request_ids_and_pages() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let request = Request::post(format!("/v1/orgs/{ORG}/models"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req-123")
        .body(Body::from(json!({ "name": "audited" }).to_string()))
        .expect("request");
    let reply = app.send(request).await;
    assert_eq!(reply.headers["x-request-id"], "req-123");
    app.upload(ORG, "audited", &admin, onnx_bytes("a")).await;
    app.call(
        Method::PUT,
        &format!("/v1/orgs/{ORG}/models/audited/aliases/production"),
        Some(&admin),
        Some(json!({ "version": 1 })),
    )
    .await;

    let log = app
        .get(
            &format!("/v1/orgs/{ORG}/audit?action=model.created"),
            &admin,
        )
        .await;
    let entry = &log.body["entries"][0];
    assert_eq!(entry["target"], "model:audited");
    assert_eq!(entry["request_id"], "req-123");
    assert!(entry["actor"].as_str().expect("actor").starts_with("user:"));
    assert!(entry["at"].as_str().expect("at").ends_with('Z'));

    let all = app.get(&format!("/v1/orgs/{ORG}/audit"), &admin).await;
    let actions: Vec<&str> = all.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("a"))
        .collect();
    assert_eq!(
        actions,
        vec![
            "model.alias.moved",
            "model.version.uploaded",
            "model.created",
            "org.created"
        ]
    );

    // Paging: two at a time, following the cursor, sees everything once.
    let mut seen = Vec::new();
    let mut uri = format!("/v1/orgs/{ORG}/audit?limit=2");
    loop {
        let page = app.get(&uri, &admin).await;
        for e in page.body["entries"].as_array().expect("entries") {
            seen.push(e["action"].as_str().expect("a").to_owned());
        }
        match page.body["next_cursor"].as_i64() {
            Some(cursor) => uri = format!("/v1/orgs/{ORG}/audit?limit=2&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, actions);
}

#[tokio::test]
async fn openapi_document_and_docs_page() {
    let app = TestApp::new().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.")
    );
    let paths = doc.body["paths"].as_object().expect("paths");
    for path in [
        "/v1/auth/login",
        "/v1/auth/logout",
        "/v1/auth/password",
        "/v1/invitations/accept",
        "/v1/orgs/{org}/invitations",
        "/v1/orgs/{org}/models/{model}/versions",
        "/v1/orgs/{org}/audit",
        "/v1/orgs/{org}/api-keys/{key_id}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    let page = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().expect("html");
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything from the network"
    );
}

#[tokio::test]
async fn concurrent_uploads_get_distinct_version_numbers() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "busy").await;
    let uploads = (0..8).map(|i| app.upload(ORG, "busy", &admin, onnx_bytes(&format!("v{i}"))));
    let replies = futures_util::future::join_all(uploads).await;
    let mut numbers: Vec<i64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            r.body["version"].as_i64().expect("version")
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_metadata_part_is_bounded_though_the_file_streams() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "iris").await;
    let metadata = json!({ "description": "d".repeat(2 << 20) }).to_string();
    let reply = app
        .upload_parts(
            ORG,
            "iris",
            &admin,
            &[
                ("metadata", metadata.as_bytes()),
                ("file", &onnx_bytes("m")),
            ],
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{reply:?}"
    );
    assert_eq!(app.blob_count(), 0);
}

#[tokio::test]
async fn a_schema_example_never_builds_a_huge_input() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    app.model(&admin, ORG, "cube").await;
    let upload = app.upload(ORG, "cube", &admin, onnx_bytes("cube")).await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    // An uploaded model declares its input shape; this one used to make `…/schema` build
    // a trillion zeros and abort the process.
    let signature = json!({
        "inputs": [{"name": "x", "dtype": "f32", "shape": [1024, 1024, 1024, 1024]}],
        "outputs": [{"name": "y", "dtype": "f32", "shape": [-1]}],
    });
    {
        let conn = app.state.db.write().await;
        conn.execute(
            "UPDATE model_versions SET signature = ?1",
            [signature.to_string()],
        )
        .await
        .unwrap();
    }
    let schema = app
        .get(&format!("/v1/orgs/{ORG}/models/cube/schema"), &admin)
        .await;
    assert_eq!(schema.status, StatusCode::OK, "{schema:?}");
    assert_eq!(
        schema.body["example_request"]["inputs"]["x"],
        json!({"dtype": "f32", "shape": [1024, 1024, 1024, 1024], "data": []})
    );
    assert!(
        schema.body["example_note"]
            .as_str()
            .is_some_and(|note| note.contains("\"x\"")),
        "{schema:?}"
    );
}
