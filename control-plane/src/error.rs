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
            Self::AlreadyExists | Self::LastOwner => StatusCode::CONFLICT,
            Self::InvalidJson | Self::InvalidRequest | Self::EmptyUpload => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedModelFormat | Self::InvalidModel => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
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
        Self {
            code,
            message: message.into(),
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.as_str().to_owned(),
            message: self.message,
        };
        (self.code.status(), Json(body)).into_response()
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
