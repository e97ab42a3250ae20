//! Signed alert webhooks, per Standard Webhooks (<https://www.standardwebhooks.com>).
//!
//! A secret is `whsec_` + base64 of random bytes. A message carries three headers:
//! `webhook-id` (unique per message, the same across retries), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature`: space-separated `v1,<base64>` signatures of
//! HMAC-SHA256(secret, `"{id}.{timestamp}.{body}"`). Receivers reject timestamps further
//! than a tolerance (5 minutes) from their clock, against replays.
//!
//! Nothing here reads the clock: callers pass the timestamp to sign with and the
//! current time to verify at.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Header with the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Header with the Unix timestamp in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header with the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Prefix of a serialised secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Default distance allowed between a message's timestamp and the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: u64 = 5 * 60;
/// Random bytes in a generated secret (the standard allows 24 to 64).
pub const SECRET_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Standard base64 that reads padded and unpadded text alike (the Python reference
/// library appends `==` before decoding, so unpadded secrets are in use).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret or a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The secret is not base64 (after an optional `whsec_`) or is empty.
    #[error("webhook secret is not `whsec_` followed by base64")]
    InvalidSecret,
    /// The timestamp header is not an integer.
    #[error("webhook-timestamp is not a Unix timestamp")]
    InvalidTimestamp,
    /// The message is older than the tolerance.
    #[error("message timestamp is too old")]
    TimestampTooOld,
    /// The message is further in the future than the tolerance.
    #[error("message timestamp is too new")]
    TimestampTooNew,
    /// No `v1` signature in the header matches.
    #[error("no matching signature")]
    NoMatchingSignature,
}

/// A webhook signing secret. Its `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// A new secret of [`SECRET_BYTES`] bytes from the operating system's generator.
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self { key }
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = LENIENT
            .decode(encoded)
            .map_err(|_| WebhookError::InvalidSecret)?;
        if key.is_empty() {
            return Err(WebhookError::InvalidSecret);
        }
        Ok(Self { key })
    }

    /// The secret as `whsec_<base64>`, to store or show to the endpoint's owner once.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` value for a message: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.mac(id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The three headers of a signed message, in order id, timestamp, signature.
pub fn signed_headers(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        (HEADER_ID, id.to_owned()),
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (HEADER_SIGNATURE, sign(secret, id, timestamp, body)),
    ]
}

/// Checks a received message: the timestamp within `tolerance_secs` of `now` (Unix
/// seconds), and one of the header's `v1` signatures matching (compared in constant
/// time). Other signature versions in the header are ignored.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), WebhookError> {
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| WebhookError::InvalidTimestamp)?;
    let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    if timestamp < now.saturating_sub(tolerance) {
        return Err(WebhookError::TimestampTooOld);
    }
    if timestamp > now.saturating_add(tolerance) {
        return Err(WebhookError::TimestampTooNew);
    }
    let matches = signature_header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| secret.mac(id, timestamp, body).verify_slice(&tag).is_ok());
    if matches {
        Ok(())
    } else {
        Err(WebhookError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks reference libraries; the signature is what
    // the `standardwebhooks` PyPI package (1.3.0) computes for it:
    //   Webhook(SECRET).sign(ID, datetime.fromtimestamp(TS, timezone.utc), BODY)
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_reference_vectors() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(sign(&secret, ID, TS, BODY.as_bytes()), SIGNATURE);
        // a wisp-shaped alert, signed by the same package
        let body = r#"{"type":"drift.detected","model":"churn","version":3}"#;
        assert_eq!(
            sign(
                &secret,
                "msg_2mWvYdQkqA0XgvJ8n4",
                1_764_892_800,
                body.as_bytes()
            ),
            "v1,oOAoIz+0r5Ip20XYHbnGXOjMcNF+H7tMDjbFd5LbkuE="
        );
    }

    #[test]
    fn verifies_within_the_tolerance_only() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let ok = |ts: &str, sig: &str, now| {
            verify(
                &secret,
                ID,
                ts,
                sig,
                BODY.as_bytes(),
                now,
                DEFAULT_TOLERANCE_SECS,
            )
        };
        assert_eq!(ok("1614265330", SIGNATURE, TS + 300), Ok(()));
        assert_eq!(ok("1614265330", &format!("v2,abc {SIGNATURE}"), TS), Ok(()));
        assert_eq!(
            ok("1614265330", SIGNATURE, TS + 301),
            Err(WebhookError::TimestampTooOld)
        );
        assert_eq!(
            ok("1614265330", SIGNATURE, TS - 301),
            Err(WebhookError::TimestampTooNew)
        );
        assert_eq!(
            ok("soon", SIGNATURE, TS),
            Err(WebhookError::InvalidTimestamp)
        );
        // another timestamp, body or secret breaks the signature
        assert_eq!(
            ok("1614265331", SIGNATURE, TS),
            Err(WebhookError::NoMatchingSignature)
        );
        let tampered = verify(
            &secret,
            ID,
            "1614265330",
            SIGNATURE,
            br#"{"test": 1}"#,
            TS,
            300,
        );
        assert_eq!(tampered, Err(WebhookError::NoMatchingSignature));
    }

    #[test]
    fn generated_secrets_round_trip() {
        let secret = WebhookSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), secret);
        assert_ne!(WebhookSecret::generate(), secret);
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
        assert_eq!(
            WebhookSecret::parse("whsec_!!").unwrap_err(),
            WebhookError::InvalidSecret
        );
        // 24 bytes unpadded and 31 bytes unpadded both parse
        assert_eq!(
            WebhookSecret::parse("whsec_AAAA").unwrap().expose(),
            "whsec_AAAA"
        );
        assert!(WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            WebhookError::InvalidSecret
        );
    }
}
