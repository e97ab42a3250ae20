//! The HTTP edge's error: the one domain error ([`wisp_core::error::Error`]) in a type this
//! crate owns, so that the edge can answer it (`IntoResponse`, in `api::error_response`) and
//! build it from axum's rejections. The domain error stays the only source of codes and
//! messages; this wrapper adds nothing to it.

use wisp_core::error::Error;
pub use wisp_core::error::{Error as DomainError, ErrorBody, ErrorCode, Result as DomainResult};

/// The domain error at the HTTP edge.
#[derive(Debug)]
pub struct ApiError(Error);

/// `Result` for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a caller-facing message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(Error::new(code, message))
    }

    /// `rate_limited`, to be retried after `wait`.
    pub fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> Self {
        Self(Error::rate_limited(message, wait))
    }

    /// The resource is missing (or invisible to this caller: the same answer by design).
    pub fn not_found(what: &str) -> Self {
        Self(Error::not_found(what))
    }

    /// A field of the request is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(Error::invalid(message))
    }

    /// An internal failure: logged with its cause, answered without details.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self(Error::internal(error))
    }

    /// Adds structured detail for the caller.
    pub fn with_details(self, details: serde_json::Value) -> Self {
        Self(self.0.with_details(details))
    }

    /// Adds a `Retry-After` of `seconds`.
    pub fn with_retry_after(self, seconds: u64) -> Self {
        Self(self.0.with_retry_after(seconds))
    }

    /// The code of this error.
    pub fn code(&self) -> ErrorCode {
        self.0.code()
    }

    /// The caller-facing message.
    pub fn message(&self) -> &str {
        self.0.message()
    }

    /// Seconds for `Retry-After`, if a later retry can cure the error.
    pub fn retry_after(&self) -> Option<u64> {
        self.0.retry_after()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        error.0
    }
}

impl From<ApiError> for ErrorBody {
    fn from(error: ApiError) -> Self {
        error.0.into()
    }
}

/// Every error the lower layers convert into the domain error converts into this one too,
/// so `?` works at the edge exactly as below it.
macro_rules! through_the_domain_error {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for ApiError {
            fn from(error: $source) -> Self {
                Self(error.into())
            }
        }
    )*};
}

through_the_domain_error!(
    wisp_host::RuntimeError,
    crate::db::DbError,
    wisp_metering::QuotaExceeded,
    wisp_metering::Refusal,
    wisp_metering::MeteringError,
    wisp_serving::v2_codec::CodecError,
);
