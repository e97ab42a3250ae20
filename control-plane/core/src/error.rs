//! The one error of the control plane: a closed set of stable, machine-readable codes.
//!
//! Every layer returns [`Error`]; its [`ErrorCode`] decides the `code` string clients
//! match on and the HTTP status the code documents (as a number: nothing here knows HTTP).
//! The edge encodes it in three wire formats — wisp's `{code, message}`, V2's `{"error"}`
//! and MLflow's `{error_code, message}` — from this one value. Internal failures are logged
//! with their cause and answered with a bare `internal` code, so nothing about the host
//! leaks to a caller.

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
    /// The ONNX graph uses operators no backend built into this wisp runs; `details`
    /// names them with their operator set.
    UnsupportedOperator,
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
    /// A platform operator suspended the organisation: its calls, keys and inference are
    /// refused until it is reinstated.
    OrgSuspended,
    /// The `Idempotency-Key` cannot run this request: it was used for a different request,
    /// its first request is still running, or that request's response was too large to
    /// replay (`details.reason`).
    IdempotencyConflict,
    /// The account's password is a one-time one: change it (`POST /v1/auth/password`)
    /// before doing anything else.
    PasswordChangeRequired,
    /// A feedback's `actual` does not fit the prediction: a classifier's is a label (a
    /// string or an integer), a regressor's a finite number.
    InvalidActual,
    /// A dashboard form or request that changes something came without the session's
    /// anti-forgery token (or with another session's).
    CsrfTokenInvalid,
    /// The database cannot be reached (an outage or a restart of the database server):
    /// retry after the `Retry-After` delay. Warm inference keeps answering meanwhile. A
    /// write that failed so may or may not have been applied.
    DatabaseUnavailable,
    /// Other writers kept the database locked past its busy timeout (many nodes writing to
    /// one database server at once): nothing was applied; retry after `Retry-After`.
    DatabaseBusy,
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
        Self::UnsupportedOperator,
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
        Self::OrgSuspended,
        Self::IdempotencyConflict,
        Self::PasswordChangeRequired,
        Self::InvalidActual,
        Self::CsrfTokenInvalid,
        Self::DatabaseUnavailable,
        Self::DatabaseBusy,
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
            Self::UnsupportedOperator => "unsupported_operator",
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
            Self::OrgSuspended => "org_suspended",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::PasswordChangeRequired => "password_change_required",
            Self::InvalidActual => "invalid_actual",
            Self::CsrfTokenInvalid => "csrf_token_invalid",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::DatabaseBusy => "database_busy",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthenticated
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::InvalidCredentials => 401,
            Self::Forbidden | Self::OrgSuspended => 403,
            Self::NotFound => 404,
            Self::AlreadyExists
            | Self::LastOwner
            | Self::NotDeployed
            | Self::DeploymentFailed
            | Self::AliasInUse
            | Self::JobFinished
            | Self::IdempotencyConflict => 409,
            Self::InvalidJson | Self::InvalidRequest | Self::EmptyUpload | Self::InvalidInput => {
                400
            }
            Self::UnsupportedMediaType => 415,
            Self::PayloadTooLarge | Self::OutputTooLarge => 413,
            Self::UnsupportedModelFormat
            | Self::InvalidModel
            | Self::UnsupportedOperator
            | Self::InvalidComponent
            | Self::FuelExhausted
            | Self::MemoryLimitExceeded
            | Self::GuestTrap
            | Self::InferenceFailed => 422,
            Self::DeadlineExceeded => 504,
            Self::Overloaded => 503,
            // 429, not 402: clients already back off on 429 with `Retry-After`, and the
            // `code` tells a quota from a rate limit. See the README's billing section.
            Self::RateLimited | Self::QuotaExceeded => 429,
            Self::Internal => 500,
            Self::PasswordChangeRequired => 403,
            Self::InvalidActual => 422,
            Self::CsrfTokenInvalid => 403,
            Self::DatabaseUnavailable | Self::DatabaseBusy => 503,
        }
    }
}

/// The one error: what went wrong, as a stable [`ErrorCode`] and a caller-facing message.
#[derive(Debug)]
pub struct Error {
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

impl From<Error> for ErrorBody {
    fn from(error: Error) -> Self {
        Self {
            code: error.code.as_str().to_owned(),
            message: error.message,
            details: error.details,
        }
    }
}

impl Error {
    /// An error with a code and a caller-facing message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after = match code {
            ErrorCode::Overloaded | ErrorCode::DatabaseBusy => Some(1),
            ErrorCode::DatabaseUnavailable => Some(DATABASE_RETRY_AFTER_SECS),
            _ => None,
        };
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

    /// An internal failure: logged here with its cause, answered without details. A
    /// failure caused by the database being unreachable is `database_unavailable`, by its
    /// staying locked by other writers `database_busy`.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        if crate::db::is_unavailable(error.as_ref()) {
            return Self::database_unavailable(&error);
        }
        if crate::db::is_busy(error.as_ref()) {
            return Self::database_busy(&error);
        }
        tracing::error!(error.type = "internal", error = format!("{error:#}"), "request failed");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// `database_unavailable`: logged here with its cause (at debug: an outage, which
    /// `Health` reports once, not a bug), answered with `Retry-After`.
    pub fn database_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::debug!(error.type = "database_unavailable", error = %cause, "request failed: the database is unavailable");
        Self::new(
            ErrorCode::DatabaseUnavailable,
            "the database is unavailable; retry later",
        )
    }

    /// `database_busy`: logged here with its cause, answered with `Retry-After`.
    pub fn database_busy(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error.type = "database_busy", error = %cause, "request failed: the database stayed locked by other writers");
        Self::new(
            ErrorCode::DatabaseBusy,
            "the database is busy with other writes; retry shortly",
        )
    }

    /// Adds structured detail for the caller.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a `Retry-After` of `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
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

/// Every runtime failure has its own code; the message is the runtime's, which only ever
/// describes the caller's own call.
impl From<wisp_host::RuntimeError> for Error {
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
            E::UnsupportedOperator(_) => ErrorCode::UnsupportedOperator,
            E::InvalidComponent(_) => ErrorCode::InvalidComponent,
            E::Overloaded(_) => ErrorCode::Overloaded,
            // A version whose file is gone from the object store is the platform's fault.
            E::ModelNotFound(_) | E::Internal => return Self::internal(error),
        };
        Self::new(code, error.to_string())
    }
}

impl From<crate::db::DbError> for Error {
    fn from(error: crate::db::DbError) -> Self {
        if error.is_unavailable() {
            return Self::database_unavailable(&error);
        }
        if error.is_busy() {
            return Self::database_busy(&error);
        }
        Self::internal(error)
    }
}

/// `Retry-After` of `database_unavailable`: a database restart takes about this long.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 2;

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/errors.md` is the documented contract: every code, with its status, exactly once.
    #[test]
    fn the_error_table_documents_every_code() {
        let table = include_str!("../../../docs/errors.md");
        for code in ErrorCode::ALL {
            let row = format!("| {} | `{}` |", code.http_status(), code.as_str());
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
