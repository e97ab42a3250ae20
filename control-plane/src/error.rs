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
    /// Something failed inside wisp; details are in the server log.
    Internal,
}

impl ErrorCode {
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
            | Self::AliasInUse => StatusCode::CONFLICT,
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
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
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
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// Human-readable explanation; may change between releases.
    pub message: String,
}

impl ApiError {
    /// An error with a code and a caller-facing message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after = (code == ErrorCode::Overloaded).then_some(1);
        Self {
            code,
            message: message.into(),
            retry_after,
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

    /// The code of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The caller-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds the caller should wait before retrying, if a retry can help.
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
