//! The MLflow REST API (`/api/2.0/mlflow/...`, `/api/2.0/mlflow-artifacts/...`), so that
//! the official client works with `MLFLOW_TRACKING_URI` pointed at wisp.
//!
//! The wire rules are MLflow's: `GET` fields come in the query string, the others as a
//! JSON body; success is `200` with a JSON object; errors are
//! `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": ...}` with the status of MLflow's
//! table. The organisation is the credential's ([`CredentialOrg`]): an API key's own, or
//! the one a user names with `X-Wisp-Org` (or their only one). Everything is scoped by
//! it, so another organisation's ids do not exist.
//!
//! [`MlflowError`] is the one error type here; wisp's [`ApiError`] (from the auth
//! extractors) converts into it at this edge only.

mod artifacts;
mod experiments;
mod logged_models;
mod registry;
mod runs;

use std::ops::Deref;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::AppState;
use crate::access::OrgAccess;
use crate::api::CredentialOrg;
use crate::auth::rbac::can::Permission;
use crate::error::{ApiError, DomainError};
use crate::mlflow::ErrorCode;
use crate::serving::admission::Caller;

/// An MLflow error at the HTTP edge: the MLflow layer's [`crate::mlflow::MlflowError`] in
/// a type this crate owns, so that it can be answered.
#[derive(Debug)]
pub(crate) struct MlflowError(crate::mlflow::MlflowError);

/// `Result` of MLflow handlers.
pub(crate) type MlflowResult<T> = Result<T, MlflowError>;

impl MlflowError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(crate::mlflow::MlflowError::new(code, message))
    }

    /// `INVALID_PARAMETER_VALUE`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self(crate::mlflow::MlflowError::invalid(message))
    }

    /// `RESOURCE_DOES_NOT_EXIST`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self(crate::mlflow::MlflowError::not_found(message))
    }

    /// An internal failure: logged with its cause, answered without details.
    pub(crate) fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self(crate::mlflow::MlflowError::internal(error))
    }
}

/// Every error the MLflow layer converts converts here too, so `?` works in handlers.
macro_rules! through_the_mlflow_error {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for MlflowError {
            fn from(error: $source) -> Self {
                Self(error.into())
            }
        }
    )*};
}

through_the_mlflow_error!(
    crate::mlflow::MlflowError,
    DomainError,
    crate::db::DbError,
    crate::mlflow::filter::FilterError,
);

impl From<MlflowError> for crate::mlflow::MlflowError {
    fn from(error: MlflowError) -> Self {
        error.0
    }
}

/// The MLflow routes, with a JSON `ENDPOINT_NOT_FOUND` for unknown MLflow paths (the
/// client falls back between endpoint versions on that code).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .merge(experiments::routes())
        .merge(runs::routes())
        .merge(registry::routes())
        .merge(logged_models::routes())
        .merge(artifacts::routes())
        .route(
            "/api/2.0/mlflow/{*rest}",
            axum::routing::any(endpoint_not_found),
        )
        .route(
            "/ajax-api/2.0/mlflow/{*rest}",
            axum::routing::any(endpoint_not_found),
        )
        .route(
            "/api/3.0/mlflow/{*rest}",
            axum::routing::any(endpoint_not_found),
        )
}

async fn endpoint_not_found(request: Request) -> MlflowError {
    MlflowError::new(
        ErrorCode::EndpointNotFound,
        format!(
            "{} {} is not an MLflow endpoint wisp implements",
            request.method(),
            request.uri().path()
        ),
    )
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let Self(error) = self;
        let status = StatusCode::from_u16(error.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = error
            .retry_after
            .map(|seconds| [(header::RETRY_AFTER, seconds.to_string())]);
        let body =
            serde_json::json!({ "error_code": error.code.as_str(), "message": error.message });
        (status, retry, axum::Json(body)).into_response()
    }
}

/// The domain error in MLflow's terms (the mapping is the MLflow layer's).
impl From<ApiError> for MlflowError {
    fn from(error: ApiError) -> Self {
        Self(DomainError::from(error).into())
    }
}

/// A page of a search answer: `{field: items}`, plus `next_page_token` when more follow.
pub(crate) fn page_body<T: serde::Serialize>(
    field: &str,
    page: Vec<T>,
    next: Option<String>,
) -> Value {
    let mut body = serde_json::json!({ field: page });
    if let Some(next) = next {
        body["next_page_token"] = serde_json::json!(next);
    }
    body
}

/// The caller may perform `P` in its credential's organisation; rejections are MLflow
/// errors.
#[derive(Debug)]
pub(crate) struct Access<P>(CredentialOrg<P>);

impl<P> Deref for Access<P> {
    type Target = OrgAccess;
    fn deref(&self) -> &OrgAccess {
        &self.0
    }
}

impl<P: Permission> FromRequestParts<AppState> for Access<P> {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, MlflowError> {
        let access = CredentialOrg::<P>::from_request_parts(parts, state).await?;
        // The plan's rate limits: `429 REQUEST_LIMIT_EXCEEDED` with `Retry-After`, which the
        // MLflow client waits for and retries.
        // From the memoised rows: an MLflow call, like any other, reads its plan without
        // touching the database when the row is warm, and never makes memos stale.
        let plan = state
            .lookups
            .plan(&access.org.id)
            .await
            .map_err(ApiError::from)?;
        let caller = Caller {
            org_id: &access.org.id,
            key_id: access.principal.api_key_id(),
        };
        state.admission.check_tracking_rate(caller, &plan)?;
        Ok(Access(access))
    }
}

/// A request's fields: the query string of a `GET` (a repeated key is a list), the JSON
/// body otherwise (an empty body is no field).
#[derive(Debug)]
pub(crate) struct Fields<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Fields<T> {
    type Rejection = MlflowError;

    async fn from_request(request: Request, state: &S) -> Result<Self, MlflowError> {
        let query = query_object(request.uri().query().unwrap_or(""))?;
        let value = if request.method() == Method::GET {
            query
        } else {
            let bytes = Bytes::from_request(request, state)
                .await
                .map_err(|e| MlflowError::new(ErrorCode::BadRequest, e.body_text()))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                query
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    MlflowError::new(ErrorCode::BadRequest, format!("malformed JSON body: {e}"))
                })?
            }
        };
        serde_json::from_value(value)
            .map(Fields)
            .map_err(|e| MlflowError::invalid(format!("invalid request: {e}")))
    }
}

/// A query string as a JSON object of strings, repeated keys as arrays of strings.
fn query_object(query: &str) -> MlflowResult<Value> {
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
    let mut object = Map::new();
    for (key, value) in pairs {
        match object.get_mut(&key) {
            None => {
                object.insert(key, Value::String(value));
            }
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
        }
    }
    Ok(Value::Object(object))
}

fn serde_urlencoded_pairs(query: &str) -> MlflowResult<Vec<(String, String)>> {
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|_| MlflowError::invalid("malformed query string"))?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| MlflowError::invalid(e.body_text()))
}

/// A required field, or MLflow's error for its absence.
pub(crate) fn required<T>(value: Option<T>, name: &str) -> MlflowResult<T> {
    value.ok_or_else(|| {
        MlflowError::invalid(format!("Missing value for required parameter '{name}'."))
    })
}

/// A required string field that must not be empty.
pub(crate) fn required_str(value: Option<String>, name: &str) -> MlflowResult<String> {
    required(value.filter(|v| !v.is_empty()), name)
}

/// Lenient decoding of protobuf JSON, where 64-bit integers may come as strings and query
/// strings carry only strings.
pub(crate) mod wire {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Int(i64),
        Float(f64),
        String(String),
    }

    /// An optional integer given as a number or a string.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        use serde::de::Error;
        match Option::<NumberOrString>::deserialize(d)? {
            None => Ok(None),
            Some(NumberOrString::Int(n)) => Ok(Some(n)),
            Some(NumberOrString::Float(f)) if f.fract() == 0.0 => Ok(Some(f as i64)),
            Some(NumberOrString::Float(f)) => {
                Err(D::Error::custom(format!("{f} is not an integer")))
            }
            Some(NumberOrString::String(s)) if s.is_empty() => Ok(None),
            Some(NumberOrString::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{s:?} is not an integer"))),
        }
    }

    /// A double given as a number or a string (`"NaN"`, `"Infinity"` included).
    pub fn f64_value<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        use serde::de::Error;
        match NumberOrString::deserialize(d)? {
            NumberOrString::Int(n) => Ok(n as f64),
            NumberOrString::Float(f) => Ok(f),
            NumberOrString::String(s) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                other => other
                    .trim()
                    .parse()
                    .map_err(|_| D::Error::custom(format!("{other:?} is not a number"))),
            },
        }
    }

    /// A boolean given as a JSON boolean or `"true"`/`"false"`.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum BoolOrString {
            Bool(bool),
            String(String),
        }
        match Option::<BoolOrString>::deserialize(d)? {
            None => Ok(None),
            Some(BoolOrString::Bool(b)) => Ok(Some(b)),
            Some(BoolOrString::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" | "" => Ok(Some(false)),
                _ => Err(D::Error::custom(format!("{s:?} is not a boolean"))),
            },
        }
    }

    /// A list of strings given as an array or, from a query string, a single string.
    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        })
    }

    /// An enum given by name or number, as a string.
    pub fn opt_enum<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<NumberOrString>::deserialize(d)? {
            None => None,
            Some(NumberOrString::Int(n)) => Some(n.to_string()),
            Some(NumberOrString::Float(f)) => Some(f.to_string()),
            Some(NumberOrString::String(s)) => Some(s),
        })
    }
}

/// `{}`: the body of MLflow's empty responses.
pub(crate) fn empty() -> axum::Json<Value> {
    axum::Json(Value::Object(Map::new()))
}

/// A wisp model name may hold anything but control characters, so a registered model's
/// name always carries over; this keeps the check in one place should that change.
pub(crate) fn wisp_name_of(name: &str) -> Option<&str> {
    super::models::validate_model_name(name).ok().map(|()| name)
}
