//! The platform operator: a role above the organisations, held by the service owner's
//! people, never by an organisation role.
//!
//! Operators are named by email in configuration (`platform.operators`); a signed-in user
//! whose email is listed is one. API keys never are: a key belongs to one organisation.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AppState;
use super::extract::CurrentUser;
use crate::error::{ApiError, ErrorCode};

/// Proof that the caller is a platform operator (`403 forbidden` otherwise).
#[derive(Debug, Clone)]
pub struct PlatformOperator {
    pub user_id: String,
    pub email: String,
}

impl PlatformOperator {
    /// The actor recorded in the audit log, distinct from the same person acting as a
    /// member of an organisation.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.user_id)
    }
}

impl FromRequestParts<AppState> for PlatformOperator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let listed = state
            .settings
            .platform_operators
            .iter()
            .any(|operator| operator.eq_ignore_ascii_case(&user.email));
        if !listed {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "only platform operators may do this",
            ));
        }
        Ok(Self {
            user_id: user.id,
            email: user.email,
        })
    }
}
