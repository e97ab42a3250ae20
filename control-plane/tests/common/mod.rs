//! Test harness: a fresh application per test (in-memory libSQL with the real migrations,
//! blobs in a temp dir) driven through `tower::ServiceExt::oneshot`, no sockets; and for
//! end-to-end tests, [`server`] (the real `wisp serve` binary on a free port) and
//! [`clients`] (the real Python clients).

#![allow(dead_code)]

pub mod clients;
pub mod server;
pub mod sqld;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use wisp::AppState;
use wisp::auth::throttle::{LoginThrottle, Policy};
use wisp::cli::Bootstrap;
use wisp::config::Config;
use wisp::inspect::{DType, ModelInspector, ModelSignature, OnnxHeaderInspector, TensorSpec};
use wisp::onnx_inspector::OnnxInspector;
use wisp_test_artifacts::fixture;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery";
pub const ORG: &str = "acme";
/// Upload limit of test apps.
pub const MAX_UPLOAD: u64 = 64 * 1024;

/// The smallest byte string the test inspector accepts as ONNX: `ir_version = 8`, then
/// some bytes standing for the rest of a model.
pub fn onnx_bytes(tag: &str) -> Vec<u8> {
    let mut bytes = vec![0x08, 0x08, 0x3a];
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// The first bytes of a JPEG file.
pub const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
];

pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub dir: TempDir,
}

/// A response, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: axum::http::HeaderMap,
}

impl Reply {
    /// The `code` of an error response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("<no code>")
    }
}

/// The production inspector as `wisp serve` builds it from `config`: bounds checked
/// in-process, loads and compiles in children of the real `wisp` binary.
pub fn sandboxed_inspector(config: &Config) -> OnnxInspector {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_wisp"));
    let sandbox = wisp::sandbox::Sandbox::new(exe, config.inspection.clone());
    OnnxInspector::new(&config.runtime, Some(sandbox))
}

/// The header-only inspector, answering an iris-like signature for every upload.
pub fn test_inspector() -> OnnxHeaderInspector {
    OnnxHeaderInspector {
        signature: ModelSignature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![-1, 4],
                class_labels: None,
            }],
            outputs: vec![TensorSpec {
                name: "y".into(),
                dtype: DType::I64,
                shape: vec![-1],
                class_labels: None,
            }],
        },
    }
}

impl TestApp {
    /// A new app whose first start created `admin@example.com`, owner of `acme`. Uploads
    /// are checked by the header-only test inspector, up to [`MAX_UPLOAD`] bytes.
    pub async fn new() -> Self {
        Self::with(Arc::new(test_inspector()), MAX_UPLOAD).await
    }

    /// An app that inspects uploads with the real ONNX backend and serves them, for tests
    /// that deploy and predict real models.
    pub async fn serving() -> Self {
        Self::serving_with(|_| {}).await
    }

    /// A serving app whose configuration `tune` adjusts (bounds, inspection budget); the
    /// inspector is built from it as `wisp serve` builds its own.
    pub async fn serving_with(tune: impl FnOnce(&mut Config)) -> Self {
        Self::build(
            |config| Arc::new(sandboxed_inspector(config)),
            |config| {
                config.limits.max_upload_bytes = 64 << 20;
                tune(config);
            },
            Some(ADMIN_PASSWORD),
        )
        .await
    }

    async fn with(inspector: Arc<dyn ModelInspector>, max_upload: u64) -> Self {
        Self::build(
            move |_| inspector,
            move |config| config.limits.max_upload_bytes = max_upload,
            Some(ADMIN_PASSWORD),
        )
        .await
    }

    /// A test app whose configuration `adjust` changes first.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::build(
            |_| Arc::new(test_inspector()),
            move |config| {
                config.limits.max_upload_bytes = MAX_UPLOAD;
                adjust(config);
            },
            Some(ADMIN_PASSWORD),
        )
        .await
    }

    /// A test app whose first start generated the admin's password (as `wisp serve` does
    /// without `WISP_ADMIN_PASSWORD`); it is in `<dir>/admin-password`.
    pub async fn with_generated_admin_password() -> Self {
        Self::build(
            |_| Arc::new(test_inspector()),
            |config| config.limits.max_upload_bytes = MAX_UPLOAD,
            None,
        )
        .await
    }

    async fn build(
        inspector: impl FnOnce(&Config) -> Arc<dyn ModelInspector>,
        tune: impl FnOnce(&mut Config),
        admin_password: Option<&str>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.database.url = Some(":memory:".into());
        tune(&mut config);
        config.validate().expect("valid test config");
        let inspector = inspector(&config);
        let bootstrap = Bootstrap {
            admin_email: ADMIN_EMAIL.into(),
            admin_password: admin_password.map(str::to_owned),
            org_slug: ORG.into(),
        };
        let mut state = wisp::serve::state(&config, &bootstrap, inspector)
            .await
            .expect("state");
        // Login delays of a minute, so that a slow debug-build argon2 can never outlast one
        // and make throttling tests depend on timing.
        state.login_throttle = Arc::new(LoginThrottle::new(Policy {
            base_delay: std::time::Duration::from_secs(60),
            ..Policy::default()
        }));
        Self {
            app: wisp::app(state.clone()),
            state,
            dir,
        }
    }

    /// Sends a request.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("request")).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    /// Uploads raw bytes as a new version.
    pub async fn upload(&self, org: &str, model: &str, token: &str, bytes: Vec<u8>) -> Reply {
        let request = Request::post(format!("/v1/orgs/{org}/models/{}/versions", encode(model)))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes))
            .expect("request");
        self.send(request).await
    }

    /// Uploads a multipart form of `(field, bytes)` parts as a new version.
    pub async fn upload_parts(
        &self,
        org: &str,
        model: &str,
        token: &str,
        parts: &[(&str, &[u8])],
    ) -> Reply {
        let boundary = "wisp-test-boundary";
        let mut body = Vec::new();
        for (name, bytes) in parts {
            body.extend_from_slice(format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let request = Request::post(format!("/v1/orgs/{org}/models/{}/versions", encode(model)))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .expect("request");
        self.send(request).await
    }

    pub async fn put(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, uri, Some(token), Some(body)).await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login failed: {reply:?}");
        reply.body["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// A login attempt arriving from the socket address `peer` with extra `headers` (a proxy's
    /// `Fly-Client-IP`, `X-Forwarded-For`).
    pub async fn login_from(
        &self,
        peer: &str,
        headers: &[(&str, &str)],
        email: &str,
        password: &str,
    ) -> Reply {
        let mut builder =
            Request::post("/v1/auth/login").header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder
            .body(Body::from(
                json!({ "email": email, "password": password }).to_string(),
            ))
            .expect("request");
        let addr: std::net::SocketAddr = format!("{peer}:40000").parse().expect("peer address");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        self.send(request).await
    }

    /// The bootstrap admin's access token.
    pub async fn admin(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Invites `email` with `role` to `org` (as `admin_token`); returns the invitation token.
    pub async fn invite(&self, admin_token: &str, org: &str, email: &str, role: &str) -> String {
        let reply = self
            .post(
                &format!("/v1/orgs/{org}/members"),
                admin_token,
                json!({ "email": email, "role": role }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "invite failed: {reply:?}"
        );
        reply.body["token"].as_str().expect("token").to_owned()
    }

    /// Accepts an invitation with `token`: as the signed-in `session`, or for a new account
    /// with `password`.
    pub async fn accept(
        &self,
        token: &str,
        session: Option<&str>,
        password: Option<&str>,
    ) -> Reply {
        self.call(
            Method::POST,
            "/v1/invitations/accept",
            session,
            Some(json!({ "token": token, "password": password })),
        )
        .await
    }

    /// Creates a user with `role` in `org` (invited as `admin_token`, accepted with the
    /// password `password-123`) and returns their access token. An address that has an
    /// account already signs in and accepts.
    pub async fn user_with_role(
        &self,
        admin_token: &str,
        org: &str,
        email: &str,
        role: &str,
    ) -> String {
        let token = self.invite(admin_token, org, email, role).await;
        let accepted = self.accept(&token, None, Some("password-123")).await;
        if accepted.status == StatusCode::OK {
            return accepted.body["session"]["access_token"]
                .as_str()
                .expect("a new account's session")
                .to_owned();
        }
        assert_eq!(
            accepted.code(),
            "unauthenticated",
            "accept failed: {accepted:?}"
        );
        let session = self.login(email, "password-123").await;
        let joined = self.accept(&token, Some(&session), None).await;
        assert_eq!(joined.status, StatusCode::OK, "accept failed: {joined:?}");
        session
    }

    /// Creates an API key in `org` and returns its secret.
    pub async fn api_key(&self, token: &str, org: &str, scopes: &[&str]) -> (String, String) {
        let reply = self
            .post(
                &format!("/v1/orgs/{org}/api-keys"),
                token,
                json!({ "name": "test key", "scopes": scopes }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create key failed: {reply:?}"
        );
        (
            reply.body["id"].as_str().expect("id").to_owned(),
            reply.body["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Creates an organisation owned by the user of `token`.
    pub async fn org(&self, token: &str, slug: &str) {
        let reply = self.post("/v1/orgs", token, json!({ "slug": slug })).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create org failed: {reply:?}"
        );
    }

    /// Creates a model.
    pub async fn model(&self, token: &str, org: &str, name: &str) -> Reply {
        self.post(
            &format!("/v1/orgs/{org}/models"),
            token,
            json!({ "name": name }),
        )
        .await
    }

    /// Number of blobs in the local object store.
    pub fn blob_count(&self) -> usize {
        walk(&self.dir.path().join("blobs"))
    }

    /// Number of files left in upload staging.
    pub fn staged_count(&self) -> usize {
        walk(&self.dir.path().join("tmp"))
    }
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The onnxruntime outputs of the fixtures (`tests/fixtures/references.json`).
pub fn references() -> Value {
    serde_json::from_slice(&fixture("references.json")).unwrap()
}

/// Asserts two arrays of numbers are equal within 1e-5.
pub fn close(got: &Value, want: &Value) {
    let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
        assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
    }
}

/// `acme` with a model `name` whose version 1 is `file`, deployed and ready.
pub async fn deployed(app: &TestApp, token: &str, name: &str, file: &str) {
    app.model(token, ORG, name).await;
    let upload = app.upload(ORG, name, token, fixture(file)).await;
    assert_eq!(upload.status, StatusCode::CREATED, "{upload:?}");
    let deploy = app
        .put(
            &format!("/v1/orgs/{ORG}/models/{name}/deployment"),
            token,
            json!({ "version": 1, "wait": true }),
        )
        .await;
    assert_eq!(deploy.status, StatusCode::OK, "{deploy:?}");
    assert_eq!(deploy.body["status"], "ready", "{deploy:?}");
}
