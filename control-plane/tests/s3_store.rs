//! The S3 object store against a real S3-compatible server (s3s-fs, SigV4 checked),
//! started in-process on 127.0.0.1 for each test.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;
use wisp::blob::{ObjectStore, S3Settings, S3Store, Staging};

const ACCESS_KEY: &str = "AKIAWISPTEST";
const SECRET_KEY: &str = "wisp-test-secret-access-key";
const BUCKET: &str = "models";

struct S3Server {
    address: SocketAddr,
    root: TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_s3() -> S3Server {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join(BUCKET)).expect("bucket dir");
    let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    S3Server {
        address,
        root,
        task,
    }
}

fn settings(server: &S3Server, secret: &str) -> S3Settings {
    S3Settings {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        endpoint: Some(format!("http://{}", server.address)),
        force_path_style: true,
        prefix: "wisp/".into(),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(secret.into()),
    }
}

#[tokio::test]
async fn s3_store_commits_reads_deduplicates_and_deletes() {
    let server = start_s3().await;
    let store = S3Store::new(&settings(&server, SECRET_KEY)).expect("store");
    let staging_dir = tempfile::tempdir().expect("tempdir");
    let staging = Staging::new(staging_dir.path()).expect("staging");

    let payload = Bytes::from(vec![7u8; 300 * 1024]);
    let staged = staging.write_bytes(payload.clone()).await.expect("stage");
    let digest = staged.sha256.clone();
    assert!(!store.exists(&digest).await.expect("exists"));
    store.commit(staged).await.expect("commit");
    assert!(store.exists(&digest).await.expect("exists"));
    assert_eq!(
        store.get(&digest).await.expect("get"),
        Some(payload.clone())
    );
    // Streamed in chunks, as MLflow artifacts are served.
    let (size, chunks) = store.open(&digest).await.expect("open").expect("present");
    assert_eq!(size, payload.len() as u64);
    let chunks: Vec<Bytes> = futures_util::TryStreamExt::try_collect(chunks)
        .await
        .expect("stream");
    assert_eq!(chunks.concat(), payload.as_ref());

    // Stored under the prefix and the content address, in the server's own files.
    let on_disk = server
        .root
        .path()
        .join(BUCKET)
        .join(format!("wisp/sha256/{}/{digest}", &digest[..2]));
    assert_eq!(
        std::fs::read(&on_disk).expect("object file"),
        payload.as_ref()
    );

    // Committing the same bytes again is a no-op.
    let again = staging.write_bytes(payload).await.expect("stage");
    store.commit(again).await.expect("commit again");

    store.delete(&digest).await.expect("delete");
    assert!(!store.exists(&digest).await.expect("exists"));
    assert_eq!(store.get(&digest).await.expect("get"), None);
    assert!(store.open(&digest).await.expect("open").is_none());
}

#[tokio::test]
async fn s3_store_with_wrong_credentials_is_refused() {
    let server = start_s3().await;
    let store = S3Store::new(&settings(&server, "not-the-secret")).expect("store");
    let digest = "0".repeat(64);
    let error = store
        .get(&digest)
        .await
        .expect_err("signature must not verify");
    assert!(
        format!("{error:?}").contains("Signature") || format!("{error:?}").contains("403"),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_api_stores_uploads_in_s3_when_configured() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let server = start_s3().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = wisp::config::Config {
        data_dir: data.path().to_owned(),
        object_store: wisp::config::ObjectStoreConfig::S3(settings(&server, SECRET_KEY)),
        ..Default::default()
    };
    config.database.url = Some(":memory:".into());
    config.validate().expect("valid");
    let bootstrap = wisp::cli::Bootstrap {
        admin_email: "admin@example.com".into(),
        admin_password: Some("password-123".into()),
        org_slug: "acme".into(),
    };
    let inspector = std::sync::Arc::new(wisp::inspect::OnnxHeaderInspector::default());
    let state = wisp::serve::state(&config, &bootstrap, inspector)
        .await
        .expect("state");
    let app = wisp::app(state);
    let call = |request: Request<Body>| {
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.expect("infallible");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
            )
        }
    };
    let json = |uri: &str, token: Option<&str>, body: serde_json::Value| {
        let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Body::from(body.to_string())).expect("request")
    };
    let (_, login) = call(json(
        "/v1/auth/login",
        None,
        serde_json::json!({ "email": "admin@example.com", "password": "password-123" }),
    ))
    .await;
    let token = login["access_token"].as_str().expect("token").to_owned();
    let (status, _) = call(json(
        "/v1/orgs/acme/models",
        Some(&token),
        serde_json::json!({ "name": "iris" }),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let upload = Request::post("/v1/orgs/acme/models/iris/versions")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(vec![0x08u8, 0x08, 0x3a, 1, 2, 3]))
        .expect("request");
    let (status, version) = call(upload).await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    let digest = version["sha256"].as_str().expect("sha256");
    let object = server
        .root
        .path()
        .join(BUCKET)
        .join(format!("wisp/sha256/{}/{digest}", &digest[..2]));
    assert_eq!(
        std::fs::read(object).expect("object in the bucket"),
        [0x08, 0x08, 0x3a, 1, 2, 3]
    );
    assert!(
        !data.path().join("blobs").exists(),
        "nothing written to the local store"
    );
}
