//! Bearer credentials: JWT access tokens and opaque random secrets.
//!
//! Access tokens are HS256 JWTs whose algorithm is pinned on both sides; `iss`, `aud`,
//! `exp` and `nbf` are required and checked. Refresh tokens and API keys are random
//! secrets with a recognisable prefix; only their sha256 is stored.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `iss` of every access token.
pub const ISSUER: &str = "wisp";
/// `aud` of every access token.
pub const AUDIENCE: &str = "wisp-api";
/// Prefix of API keys, so they can be recognised (and found by secret scanners).
pub const API_KEY_PREFIX: &str = "wisp_";
/// Prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "wisprt_";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The session (sign-in) the token belongs to: revoking the session revokes the token.
    /// Empty in tokens issued before sessions existed, which are refused as expired so that
    /// clients refresh them.
    #[serde(default)]
    pub sid: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

/// Signs and verifies access tokens with one HMAC secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Lifetime of issued access tokens, in seconds.
    pub access_ttl_secs: i64,
}

impl JwtKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8], access_ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
        }
    }

    /// Issues an access token for a user's session, valid from `now` for the configured
    /// lifetime.
    pub fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        now: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = AccessClaims {
            sid: session_id.to_owned(),
            sub: user_id.to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl_secs,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it to mint expired or not-yet-valid tokens).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Verifies signature, algorithm, issuer, audience and validity window.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// A freshly generated secret: the value shown once, and what is stored.
#[derive(Debug, Clone)]
pub struct GeneratedSecret {
    /// The full secret, returned to the caller exactly once.
    pub secret: String,
    /// sha256 of the secret, hex: what the database keeps.
    pub hash: String,
    /// The first characters, kept in clear so people can tell their keys apart.
    pub display_prefix: String,
}

/// Generates a random secret with a prefix (`wisp_…` for API keys).
pub fn generate_secret(prefix: &str) -> GeneratedSecret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", hex::encode(bytes));
    let display_prefix = secret.chars().take(prefix.len() + 8).collect();
    GeneratedSecret {
        hash: hash_secret(&secret),
        secret,
        display_prefix,
    }
}

/// The stored form of a secret. Secrets are 256 random bits, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes, hex encoded (a new JWT signing secret).
pub fn random_hex_32() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", 900)
    }

    #[test]
    fn round_trip() {
        let keys = keys();
        let token = keys.issue("user-1", "s", crate::db::now()).expect("sign");
        assert_eq!(keys.verify(&token).expect("verify").sub, "user-1");
    }

    #[test]
    fn expired_and_not_yet_valid_are_rejected() {
        let keys = keys();
        let now = crate::db::now();
        let mut claims = AccessClaims {
            sub: "u".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now - 3600,
            nbf: now - 3600,
            exp: now - 1800,
            sid: "s".into(),
        };
        let expired = keys.sign(&claims).expect("sign");
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
        claims.nbf = now + 3600;
        claims.exp = now + 7200;
        let early = keys.sign(&claims).expect("sign");
        assert_eq!(keys.verify(&early), Err(TokenError::Invalid));
    }

    #[test]
    fn wrong_secret_issuer_audience_and_alg_none_are_rejected() {
        let keys = keys();
        let other = JwtKeys::new(b"another secret of thirty-two bytes!", 900);
        let forged = other.issue("u", "s", crate::db::now()).expect("sign");
        assert_eq!(keys.verify(&forged), Err(TokenError::Invalid));

        let now = crate::db::now();
        let wrong_aud = keys
            .sign(&AccessClaims {
                sub: "u".into(),
                iss: ISSUER.into(),
                aud: "someone-else".into(),
                iat: now,
                nbf: now,
                exp: now + 60,
                sid: "s".into(),
            })
            .expect("sign");
        assert_eq!(keys.verify(&wrong_aud), Err(TokenError::Invalid));

        let none = unsigned_token("u", now);
        assert_eq!(keys.verify(&none), Err(TokenError::Invalid));
    }

    /// An `alg: none` token with valid-looking claims, as an attacker would send it.
    pub(crate) fn unsigned_token(sub: &str, now: i64) -> String {
        use base64_url as b64;
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64(format!(
            r#"{{"sub":"{sub}","iss":"wisp","aud":"wisp-api","iat":{now},"nbf":{now},"exp":{}}}"#,
            now + 600
        )
        .as_bytes());
        format!("{header}.{claims}.")
    }

    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn secrets_have_prefix_and_stable_hash() {
        let generated = generate_secret(API_KEY_PREFIX);
        assert!(generated.secret.starts_with("wisp_"));
        assert_eq!(generated.secret.len(), 5 + 64);
        assert_eq!(hash_secret(&generated.secret), generated.hash);
        assert!(generated.secret.starts_with(&generated.display_prefix));
    }
}
