//! The one error type at the HTTP edge: a closed set of stable, machine-readable codes.
//!
//! Handlers return [`ApiError`]; its [`ErrorCode`] decides the HTTP status and the `code`
//! string clients match on. Internal failures are logged with their cause and answered with
//! a bare `internal` code, so nothing about the host leaks to a caller.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error code the API can answer with. The string form is part of the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No `Authorization: Bearer` credentials were sent.
    Unauthenticated,
    /// The bearer token is malformed, forged, revoked or of the wrong kind.
    InvalidToken,
    /// The bearer token (or refresh token / API key) has expired.
    TokenExpired,
    /// Wrong email or password.
    InvalidCredentials,
    /// Authenticated and a member of the organisation, but the role or scope does not allow it.
    Forbidden,
    /// The resource does not exist, or belongs to an organisation the caller cannot see.
    NotFound,
    /// A resource with the same unique name already exists.
    AlreadyExists,
    /// The request body is not valid JSON.
    InvalidJson,
    /// The request is well-formed but a field is missing or has an invalid value.
    InvalidRequest,
    /// The request has a content type this endpoint does not accept.
    UnsupportedMediaType,
    /// The upload has no bytes.
    EmptyUpload,
    /// The upload exceeds the size limit.
    PayloadTooLarge,
    /// The uploaded file is not a model format wisp understands.
    UnsupportedModelFormat,
    /// The uploaded file looks like a supported format but is corrupt or cannot be loaded.
    InvalidModel,
    /// The change would leave the organisation without an owner.
    LastOwner,
    /// The model has no deployment, so nothing serves it.
    NotDeployed,
    /// The model's deployment failed to load; its `failure` says why.
    DeploymentFailed,
    /// The alias is followed by a deployment; deploy something else first.
    AliasInUse,
    /// The batch job has already finished (succeeded, failed or cancelled).
    JobFinished,
    /// The inputs do not match the model: a missing or unknown name, a wrong dtype or shape.
    InvalidInput,
    /// The call used its whole fuel budget.
    FuelExhausted,
    /// The model tried to use more memory than the plan allows.
    MemoryLimitExceeded,
    /// The call did not finish within the plan's deadline.
    DeadlineExceeded,
    /// The model's code trapped (a panic, `unreachable`, stack exhaustion…).
    GuestTrap,
    /// The model's outputs are larger than the plan allows one call to return.
    OutputTooLarge,
    /// The model's inference failed on inputs that matched its signature.
    InferenceFailed,
    /// The uploaded component is not a valid `wisp:model` component.
    InvalidComponent,
    /// Every execution slot stayed busy; retry after the `Retry-After` delay.
    Overloaded,
    /// Too many requests (login attempts, calls); retry after the `Retry-After` delay.
    RateLimited,
    /// A hard quota of the plan is reached (calls this month, models, storage). `details`
    /// has the `quota`, its `limit`, what is `used` and when it `resets_at` (RFC 3339, for
    /// the calls quota; `Retry-After` says the same in seconds).
    QuotaExceeded,
    /// Something failed inside wisp; details are in the server log.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and its test.
    pub const ALL: &[ErrorCode] = &[
        Self::Unauthenticated,
        Self::InvalidToken,
        Self::TokenExpired,
        Self::InvalidCredentials,
        Self::Forbidden,
        Self::NotFound,
        Self::AlreadyExists,
        Self::InvalidJson,
        Self::InvalidRequest,
        Self::UnsupportedMediaType,
        Self::EmptyUpload,
        Self::PayloadTooLarge,
        Self::UnsupportedModelFormat,
        Self::InvalidModel,
        Self::LastOwner,
        Self::NotDeployed,
        Self::DeploymentFailed,
        Self::AliasInUse,
        Self::JobFinished,
        Self::InvalidInput,
        Self::FuelExhausted,
        Self::MemoryLimitExceeded,
        Self::DeadlineExceeded,
        Self::GuestTrap,
        Self::OutputTooLarge,
        Self::InferenceFailed,
        Self::InvalidComponent,
        Self::Overloaded,
        Self::RateLimited,
        Self::QuotaExceeded,
        Self::Internal,
    ];

    /// The stable string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::EmptyUpload => "empty_upload",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedModelFormat => "unsupported_model_format",
            Self::InvalidModel => "invalid_model",
            Self::LastOwner => "last_owner",
            Self::NotDeployed => "not_deployed",
            Self::DeploymentFailed => "deployment_failed",
            Self::AliasInUse => "alias_in_use",
            Self::JobFinished => "job_finished",
            Self::InvalidInput => "invalid_input",
            Self::FuelExhausted => "fuel_exhausted",
            Self::MemoryLimitExceeded => "memory_limit_exceeded",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::GuestTrap => "guest_trap",
            Self::OutputTooLarge => "output_too_large",
            Self::InferenceFailed => "inference_failed",
            Self::InvalidComponent => "invalid_component",
            Self::Overloaded => "overloaded",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::AlreadyExists
            | Self::LastOwner
            | Self::NotDeployed
            | Self::DeploymentFailed
            | Self::AliasInUse
            | Self::JobFinished => StatusCode::CONFLICT,
            Self::InvalidJson | Self::InvalidRequest | Self::EmptyUpload | Self::InvalidInput => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge | Self::OutputTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedModelFormat
            | Self::InvalidModel
            | Self::InvalidComponent
            | Self::FuelExhausted
            | Self::MemoryLimitExceeded
            | Self::GuestTrap
            | Self::InferenceFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            // 429, not 402: clients already back off on 429 with `Retry-After`, and the
            // `code` tells a quota from a rate limit. See the README's billing section.
            Self::RateLimited | Self::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// Seconds for `Retry-After`, on errors that a later retry can cure.
    retry_after: Option<u64>,
    /// Structured detail for the caller (the numbers of a `quota_exceeded`).
    details: Option<serde_json::Value>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// Human-readable explanation; may change between releases.
    pub message: String,
    /// Structured detail of some codes (`quota_exceeded`: `quota`, `limit`, `used`,
    /// `resets_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a code and a caller-facing message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after = (code == ErrorCode::Overloaded).then_some(1);
        Self {
            code,
            message: message.into(),
            retry_after,
            details: None,
        }
    }

    /// `rate_limited`, to be retried after `wait` (rounded up to whole seconds).
    pub fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    /// The resource is missing (or invisible to this caller: the same answer by design).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// A field of the request is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// An internal failure: logged here with its cause, answered without details.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        tracing::error!(error.type = "internal", error = format!("{error:#}"), "request failed");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The same error with structured detail for the caller (`details` in the body).
    pub fn with_details(self, details: serde_json::Value) -> Self {
        Self {
            details: Some(details),
            ..self
        }
    }

    /// The code of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The caller-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds for `Retry-After`, if a later retry can cure the error.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self
            .retry_after
            .map(|seconds| [(axum::http::header::RETRY_AFTER, seconds.to_string())]);
        let body = ErrorBody {
            code: self.code.as_str().to_owned(),
            message: self.message,
            details: self.details,
        };
        (self.code.status(), retry, Json(body)).into_response()
    }
}

/// Every runtime failure has its own code; the message is the runtime's, which only ever
/// describes the caller's own call.
impl From<wisp_host::RuntimeError> for ApiError {
    fn from(error: wisp_host::RuntimeError) -> Self {
        use wisp_host::RuntimeError as E;
        let code = match &error {
            E::InvalidInput(_) => ErrorCode::InvalidInput,
            E::FuelExhausted { .. } => ErrorCode::FuelExhausted,
            E::MemoryLimitExceeded { .. } => ErrorCode::MemoryLimitExceeded,
            E::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            E::GuestTrap(_) => ErrorCode::GuestTrap,
            E::OutputTooLarge { .. } => ErrorCode::OutputTooLarge,
            E::InferenceFailed(_) => ErrorCode::InferenceFailed,
            E::InvalidModel(_) => ErrorCode::InvalidModel,
            E::InvalidComponent(_) => ErrorCode::InvalidComponent,
            E::Overloaded(_) => ErrorCode::Overloaded,
            // A version whose file is gone from the object store is the platform's fault.
            E::ModelNotFound(_) | E::Internal => return Self::internal(error),
        };
        Self::new(code, error.to_string())
    }
}

impl From<crate::metering::QuotaExceeded> for ApiError {
    fn from(exceeded: crate::metering::QuotaExceeded) -> Self {
        let resets_at = exceeded.resets_at.map(crate::db::rfc3339);
        let message = match &resets_at {
            Some(at) => format!("{exceeded}; it resets at {at}"),
            None => format!("{exceeded}; free some up or move to a bigger plan"),
        };
        let retry_after = exceeded
            .resets_at
            .map(|at| u64::try_from(at - crate::db::now()).unwrap_or(0).max(1));
        Self {
            retry_after,
            details: Some(serde_json::json!({
                "quota": exceeded.kind.as_str(),
                "limit": exceeded.limit,
                "used": exceeded.used,
                "resets_at": resets_at,
            })),
            ..Self::new(ErrorCode::QuotaExceeded, message)
        }
    }
}

impl From<crate::metering::Refusal> for ApiError {
    fn from(refusal: crate::metering::Refusal) -> Self {
        match refusal {
            crate::metering::Refusal::Quota(exceeded) => exceeded.into(),
            crate::metering::Refusal::Failed(error) => Self::internal(error),
        }
    }
}

impl From<crate::metering::MeteringError> for ApiError {
    fn from(error: crate::metering::MeteringError) -> Self {
        Self::internal(error)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(error: crate::db::DbError) -> Self {
        Self::internal(error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::JsonSyntaxError(_) => ErrorCode::InvalidJson,
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::BytesRejection(_) => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::InvalidRequest,
        };
        Self::new(code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

/// `Result` for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/errors.md` is the documented contract: every code, with its status, exactly once.
    #[test]
    fn the_error_table_documents_every_code() {
        let table = include_str!("../../docs/errors.md");
        for code in ErrorCode::ALL {
            let row = format!("| {} | `{}` |", code.status().as_u16(), code.as_str());
            assert_eq!(
                table.matches(&row).count(),
                1,
                "docs/errors.md must have the row {row}"
            );
        }
        let rows = table
            .lines()
            .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
            .count();
        assert_eq!(
            rows,
            ErrorCode::ALL.len(),
            "docs/errors.md lists codes that do not exist"
        );
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
    }
}
