//! Where a request came from ([`RequestMeta`], extracted as [`Meta`]), read from the connection
//! and the headers:
//! the client's address ([`crate::client_ip`]: the peer, or what a trusted proxy says) and
//! the `x-request-id`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::audit::RequestMeta;
use crate::client_ip::ClientIpPolicy;

/// The extractor of a request's [`RequestMeta`] (a domain type, so the edge wraps it).
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let source_ip = match parts.extensions.get::<Arc<ClientIpPolicy>>() {
            Some(policy) => policy.client_ip(peer, &parts.headers),
            None => peer,
        }
        .map(|ip| ip.to_string());
        let request_id = parts
            .headers
            .get(super::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self(RequestMeta {
            source_ip,
            request_id,
        }))
    }
}
