//! Sending one webhook message over HTTP: signed (Standard Webhooks), bounded in time,
//! never following redirects or proxies, and — unless the operator allows private
//! targets — connecting only to public addresses (the resolver drops the others, so a
//! name that resolves to a private address is refused at connection time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use wisp_monitoring::webhook::{self, WebhookSecret};

use crate::domain::alerts::targets::TargetPolicy;

/// Bytes of a response body kept in the delivery log.
pub const RESPONSE_PREFIX_BYTES: usize = 256;

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
    /// The first bytes of the body (lossy UTF-8).
    pub body_prefix: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Answer {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: impl Into<String>) -> Self {
        Self {
            status: None,
            body_prefix: None,
            error: Some(error.into()),
        }
    }
}

/// The HTTP client of webhooks.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: TargetPolicy,
}

/// A resolver that keeps only the addresses the policy allows.
#[derive(Debug)]
struct PublicOnly(TargetPolicy);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| policy.check_ip(addr.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl Sender {
    pub fn new(policy: TargetPolicy, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("wisp-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PublicOnly(policy)))
            .build()?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> TargetPolicy {
        self.policy
    }

    /// POSTs `body` to `url`, signed with `secret` as message `id` at `timestamp`.
    pub async fn send(
        &self,
        url: &str,
        secret: &str,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> Answer {
        let url = match self.policy.check_url(url) {
            Ok(url) => url,
            Err(refused) => return Answer::failed(format!("url refused: {refused}")),
        };
        let secret = match WebhookSecret::parse(secret) {
            Ok(secret) => secret,
            Err(e) => return Answer::failed(format!("stored secret unusable: {e}")),
        };
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in webhook::signed_headers(&secret, id, timestamp, body.as_bytes()) {
            request = request.header(name, value);
        }
        let mut response = match request.body(body.to_owned()).send().await {
            Ok(response) => response,
            Err(e) => return Answer::failed(describe(&e)),
        };
        let status = response.status().as_u16();
        let mut prefix = Vec::new();
        let mut error = None;
        while prefix.len() < RESPONSE_PREFIX_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    error = Some(describe(&e));
                    break;
                }
            }
        }
        prefix.truncate(RESPONSE_PREFIX_BYTES);
        let answer = Answer {
            status: Some(status),
            body_prefix: Some(String::from_utf8_lossy(&prefix).into_owned()),
            error,
        };
        if answer.delivered() || answer.error.is_some() {
            answer
        } else {
            Answer {
                error: Some(format!("HTTP {status}")),
                ..answer
            }
        }
    }
}

/// A transport error in a line, with its causes (the resolver's refusal is one).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
