//! MLflow tracking and model registry, stored in wisp's database: the storage behind the
//! MLflow REST API (`crate::api::mlflow`), so the official `mlflow` client works unchanged.
//!
//! - [`filter`]: the search language (`filter_string`, `order_by`), pure.
//! - [`tracking`]: experiments, runs, params, metrics, tags, run search.
//! - [`registry`]: registered models, model versions, aliases.
//! - [`logged_models`]: MLflow 3 logged models.
//! - [`artifacts`]: artifact paths mapped onto object-store blobs.
//! - [`datasets`]: data sets logged on runs, and the artifacts holding their rows.
//!
//! Every function takes the organisation id; rows of other organisations are never read,
//! so their ids answer `RESOURCE_DOES_NOT_EXIST` like missing ones.

// The layers below, under the names the modules use (`crate::db`, …).
use wisp_storage::db;

pub mod artifacts;
pub mod datasets;
pub mod filter;
pub mod logged_models;
pub mod registry;
pub mod tracking;

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::db::DbError;

/// MLflow's error codes, as the client matches on them (`mlflow.exceptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    EndpointNotFound,
    InvalidState,
    BadRequest,
    Unauthenticated,
    PermissionDenied,
    RequestLimitExceeded,
    TemporarilyUnavailable,
    InternalError,
}

impl ErrorCode {
    /// The name in `databricks.proto`'s `ErrorCode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Self::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Self::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Self::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            Self::InvalidState => "INVALID_STATE",
            Self::BadRequest => "BAD_REQUEST",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            Self::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status, from MLflow's `ERROR_CODE_TO_HTTP_STATUS`.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidParameterValue | Self::ResourceAlreadyExists | Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::ResourceDoesNotExist | Self::EndpointNotFound => 404,
            Self::RequestLimitExceeded => 429,
            Self::InvalidState | Self::InternalError => 500,
            Self::TemporarilyUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the MLflow API: a code from MLflow's table and a message.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct MlflowError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for `Retry-After` (rate limits, overload).
    pub retry_after: Option<u64>,
}

impl MlflowError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `INVALID_PARAMETER_VALUE`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    /// `RESOURCE_DOES_NOT_EXIST`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }

    /// `RESOURCE_ALREADY_EXISTS`.
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }

    /// An internal failure: logged with its cause, answered without details.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        if crate::db::is_unavailable(error.as_ref()) {
            return wisp_core::error::Error::database_unavailable(&error).into();
        }
        if crate::db::is_busy(error.as_ref()) {
            return wisp_core::error::Error::database_busy(&error).into();
        }
        tracing::error!(error.type = "internal", error = format!("{error:#}"), "mlflow request failed");
        Self::new(ErrorCode::InternalError, "internal error")
    }
}

impl From<DbError> for MlflowError {
    fn from(error: DbError) -> Self {
        Self::internal(error)
    }
}

impl From<filter::FilterError> for MlflowError {
    fn from(error: filter::FilterError) -> Self {
        Self::invalid(error.0)
    }
}

/// The domain error (authentication, permissions, rate limits, …) in MLflow's terms: the
/// third wire format of the one error.
impl From<wisp_core::error::Error> for MlflowError {
    fn from(error: wisp_core::error::Error) -> Self {
        let code = match error.code() {
            wisp_core::error::ErrorCode::Unauthenticated
            | wisp_core::error::ErrorCode::InvalidToken
            | wisp_core::error::ErrorCode::TokenExpired
            | wisp_core::error::ErrorCode::InvalidCredentials => ErrorCode::Unauthenticated,
            wisp_core::error::ErrorCode::Forbidden
            | wisp_core::error::ErrorCode::OrgSuspended
            | wisp_core::error::ErrorCode::PasswordChangeRequired => ErrorCode::PermissionDenied,
            wisp_core::error::ErrorCode::NotFound => ErrorCode::ResourceDoesNotExist,
            wisp_core::error::ErrorCode::AlreadyExists => ErrorCode::ResourceAlreadyExists,
            wisp_core::error::ErrorCode::RateLimited
            | wisp_core::error::ErrorCode::QuotaExceeded => ErrorCode::RequestLimitExceeded,
            wisp_core::error::ErrorCode::Overloaded
            | wisp_core::error::ErrorCode::DatabaseUnavailable
            | wisp_core::error::ErrorCode::DatabaseBusy => ErrorCode::TemporarilyUnavailable,
            wisp_core::error::ErrorCode::Internal => ErrorCode::InternalError,
            wisp_core::error::ErrorCode::InvalidJson => ErrorCode::BadRequest,
            wisp_core::error::ErrorCode::AliasInUse | wisp_core::error::ErrorCode::LastOwner => {
                ErrorCode::InvalidState
            }
            _ => ErrorCode::InvalidParameterValue,
        };
        // MLflow has no quota code: the message starts with wisp's.
        let message = match error.code() {
            wisp_core::error::ErrorCode::QuotaExceeded => {
                format!("quota_exceeded: {}", error.message())
            }
            wisp_core::error::ErrorCode::DatabaseUnavailable
            | wisp_core::error::ErrorCode::DatabaseBusy => {
                format!("{}: {}", error.code().as_str(), error.message())
            }
            _ => error.message().to_owned(),
        };
        Self {
            code,
            message,
            retry_after: error.retry_after(),
        }
    }
}

/// `Result` of the MLflow layer.
pub type MlflowResult<T> = Result<T, MlflowError>;

/// Milliseconds since the Unix epoch: MLflow's timestamps.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A `{key, value}` pair: tags and params on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// Where a page starts: an opaque token for the client, an offset for us.
#[derive(Debug, Serialize, Deserialize)]
struct PageToken {
    offset: usize,
}

/// Reads a `page_token` (absent or empty: the first page).
pub fn page_offset(token: Option<&str>) -> MlflowResult<usize> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<PageToken>(&bytes).ok())
        .map(|t| t.offset)
        .ok_or_else(|| MlflowError::invalid(format!("invalid page_token {token:?}")))
}

/// The token of the page starting at `offset`.
pub fn page_token(offset: usize) -> String {
    let json = serde_json::to_vec(&PageToken { offset }).expect("serialisable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// Checks `max_results` against MLflow's bounds; `None` gives `default`.
pub fn max_results(requested: Option<i64>, default: usize, limit: usize) -> MlflowResult<usize> {
    match requested {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= limit => Ok(n as usize),
        Some(n) => Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied: it must be between 1 and {limit}"
        ))),
    }
}

/// Cuts one page out of `items` (already filtered and sorted), with the next token.
pub fn paginate<T>(items: Vec<T>, offset: usize, max: usize) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(max).collect();
    let next = (offset + max < total).then(|| page_token(offset + max));
    (page, next)
}

/// MLflow's own length limits (`mlflow/utils/validation.py`), in characters.
pub mod limits {
    /// Experiment names (`MAX_EXPERIMENT_NAME_LENGTH`).
    pub const EXPERIMENT_NAME: usize = 500;
    /// Experiment tag values (`MAX_EXPERIMENT_TAG_VAL_LENGTH`).
    pub const EXPERIMENT_TAG_VALUE: usize = 5000;
    /// Run param values (`MAX_PARAM_VAL_LENGTH`).
    pub const PARAM_VALUE: usize = 6000;
    /// Run (and logged model) tag values, run names included: a run's name is its
    /// `mlflow.runName` tag (`MAX_TAG_VAL_LENGTH`).
    pub const TAG_VALUE: usize = 8000;
    /// Registered model and model version tag values (`MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH`).
    pub const REGISTRY_TAG_VALUE: usize = 5000;
}

/// Refuses `value` longer than `max` characters, with MLflow's message.
pub fn validate_length(what: &str, value: &str, max: usize) -> MlflowResult<()> {
    // Bytes bound characters from above: most values are short, and counting them is not.
    if value.len() > max && value.chars().count() > max {
        return Err(MlflowError::invalid(format!(
            "{what} exceeds the maximum length of {max} characters"
        )));
    }
    Ok(())
}

/// Validates a key of a param, tag or metric the way MLflow does: not empty, at most 250
/// characters, and not a path escaping its directory.
pub fn validate_key(kind: &str, key: &str) -> MlflowResult<()> {
    if key.is_empty() || key.chars().count() > 250 {
        return Err(MlflowError::invalid(format!(
            "Invalid {kind} name: {key:?}. Names must be 1-250 characters."
        )));
    }
    if key.split('/').any(|part| part == "..") || key.starts_with('/') {
        return Err(MlflowError::invalid(format!(
            "Invalid {kind} name: {key:?}. Names may not be absolute or contain '..'."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_invalid() {
        assert_eq!(page_offset(Some(&page_token(42))).expect("valid"), 42);
        assert_eq!(page_offset(None).expect("first"), 0);
        assert_eq!(page_offset(Some("")).expect("first"), 0);
        let err = page_offset(Some("not a token")).expect_err("garbage");
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    }

    #[test]
    fn pages_end_without_a_token() {
        let (page, next) = paginate((0..5).collect(), 0, 2);
        assert_eq!(page, vec![0, 1]);
        let (page, next) = paginate((0..5).collect(), page_offset(next.as_deref()).unwrap(), 3);
        assert_eq!(page, vec![2, 3, 4]);
        assert!(next.is_none());
    }

    #[test]
    fn codes_have_mlflow_statuses() {
        assert_eq!(ErrorCode::ResourceDoesNotExist.http_status(), 404);
        assert_eq!(ErrorCode::ResourceAlreadyExists.http_status(), 400);
        assert_eq!(ErrorCode::InvalidParameterValue.http_status(), 400);
        assert_eq!(ErrorCode::RequestLimitExceeded.http_status(), 429);
    }
}
