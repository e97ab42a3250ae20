//! The CLI's HTTP client: bearer credentials, one transparent token refresh, and wisp's
//! error bodies turned into readable errors.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use super::session::{self, Session};

/// Where requests go and with which credentials.
pub struct Client {
    http: reqwest::Client,
    pub server: String,
    credentials: Credentials,
}

enum Credentials {
    /// An API key or access token given on the command line or in `WISP_TOKEN`.
    Token(String),
    /// The stored `wisp login` session, refreshed when its access token expires.
    Session(Session),
    None,
}

/// An error answered by the server, with its stable code.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub struct ServerError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl Client {
    /// A client for `server` (or the stored session's server) with `token` (or the stored
    /// session's tokens).
    pub fn new(server: Option<String>, token: Option<String>) -> anyhow::Result<Self> {
        let stored = session::load()?;
        let server = server
            .or_else(|| stored.as_ref().map(|s| s.server.clone()))
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let credentials = match (token, stored) {
            (Some(token), _) => Credentials::Token(token),
            (None, Some(session)) if session.server == server => Credentials::Session(session),
            _ => Credentials::None,
        };
        Ok(Self {
            http: reqwest::Client::builder()
                .user_agent(concat!("wisp-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
            server: server.trim_end_matches('/').to_owned(),
            credentials,
        })
    }

    /// The default organisation of the stored session.
    pub fn session_org(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::Session(session) => session.org.as_deref(),
            _ => None,
        }
    }

    /// Whether the stored `wisp login` session is in use.
    pub fn has_session(&self) -> bool {
        matches!(self.credentials, Credentials::Session(_))
    }

    /// Whether any credentials (session or token) are in use.
    pub fn has_credentials(&self) -> bool {
        !matches!(self.credentials, Credentials::None)
    }

    /// Replaces the stored session's tokens with those of a server answer (a password
    /// change ends the old session and answers a new one).
    pub fn store_tokens(&mut self, tokens: &Value) -> anyhow::Result<()> {
        if let Credentials::Session(session) = &mut self.credentials {
            session.access_token = string(tokens, "access_token")?;
            session.refresh_token = string(tokens, "refresh_token")?;
            session::save(session)?;
        }
        Ok(())
    }

    /// A request to `path` (starting with `/`), without credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.server))
    }

    fn token(&self) -> anyhow::Result<&str> {
        match &self.credentials {
            Credentials::Token(token) => Ok(token),
            Credentials::Session(session) => Ok(&session.access_token),
            Credentials::None => bail!(
                "not logged in to {}: run `wisp login`, or pass --token / WISP_TOKEN",
                self.server
            ),
        }
    }

    /// Sends an authenticated request built by `build`, refreshing an expired session once.
    pub async fn send(
        &mut self,
        build: impl Fn(&Self) -> anyhow::Result<RequestBuilder>,
    ) -> anyhow::Result<Response> {
        let response = build(self)?
            .bearer_auth(self.token()?)
            .send()
            .await
            .with_context(|| format!("cannot reach {}; is `wisp serve` running?", self.server))?;
        if response.status() == StatusCode::UNAUTHORIZED
            && matches!(self.credentials, Credentials::Session(_))
        {
            let error = server_error(response).await;
            if error.code != "token_expired" {
                return Err(error.into());
            }
            self.refresh().await?;
            let retried = build(self)?.bearer_auth(self.token()?).send().await?;
            return check(retried).await;
        }
        check(response).await
    }

    /// Sends a JSON request and decodes the JSON answer (`null` for an empty one).
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let response = self
            .send(|client| {
                let request = client.request(method.clone(), path);
                Ok(match &body {
                    Some(body) => request.json(body),
                    None => request,
                })
            })
            .await?;
        decode(response).await
    }

    async fn refresh(&mut self) -> anyhow::Result<()> {
        let Credentials::Session(session) = &mut self.credentials else {
            return Ok(());
        };
        let response = self
            .http
            .post(format!("{}/v1/auth/refresh", self.server))
            .json(&json!({ "refresh_token": session.refresh_token }))
            .send()
            .await?;
        let tokens =
            decode(check(response).await.context(
                "the session expired and could not be refreshed; run `wisp login` again",
            )?)
            .await?;
        session.access_token = string(&tokens, "access_token")?;
        session.refresh_token = string(&tokens, "refresh_token")?;
        session::save(session)
    }
}

/// The body of a successful response as JSON.
pub async fn decode(response: Response) -> anyhow::Result<Value> {
    let bytes = response.bytes().await?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).context("the server answered something other than JSON")
}

/// Turns an error status into a [`ServerError`].
pub async fn check(response: Response) -> anyhow::Result<Response> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(server_error(response).await.into())
    }
}

async fn server_error(response: Response) -> ServerError {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    ServerError {
        status,
        code: body["code"].as_str().unwrap_or("unknown").to_owned(),
        message: body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| status.to_string()),
    }
}

/// A string field of a JSON answer.
pub fn string(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the server's answer has no `{field}`"))
}
