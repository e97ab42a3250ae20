//! [`PageError`]: what a dashboard page answers when it cannot render — an HTML error page
//! carrying the API's stable code, or a redirect to the sign-in or password page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use crate::error::{ApiError, ErrorCode};

/// A page that cannot be shown.
#[derive(Debug)]
pub enum PageError {
    /// The API's error, shown as a page with its status, code and message.
    Api(ApiError),
    /// Not signed in, or the session has ended: to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// The account's password is a one-time one: to the password page first.
    PasswordChange,
}

/// `Result` of page handlers.
pub type PageResult<T = Response> = Result<T, PageError>;

impl PageError {
    /// The refusal of a change without a valid anti-forgery token.
    pub fn csrf() -> Self {
        Self::Api(ApiError::new(
            ErrorCode::CsrfTokenInvalid,
            "this form is stale or did not come from this dashboard (missing or wrong anti-forgery token): reload the page and try again",
        ))
    }
}

/// `?` on anything the API's handlers `?` on.
macro_rules! through_the_api_error {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for PageError {
            fn from(error: $source) -> Self {
                Self::Api(error.into())
            }
        }
    )*};
}

through_the_api_error!(
    ApiError,
    crate::error::DomainError,
    crate::db::DbError,
    wisp_metering::MeteringError,
);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next } => {
                let target = if super::session::is_local_path(&next) && next != "/" {
                    format!(
                        "/sign-in?next={}",
                        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                    )
                } else {
                    "/sign-in".to_owned()
                };
                Redirect::to(&target).into_response()
            }
            Self::PasswordChange => Redirect::to("/account/password").into_response(),
            Self::Api(error) => {
                let code = error.code();
                if matches!(
                    code,
                    ErrorCode::Unauthenticated | ErrorCode::InvalidToken | ErrorCode::TokenExpired
                ) {
                    return Redirect::to("/sign-in").into_response();
                }
                if code == ErrorCode::Internal {
                    tracing::error!(error.type = "dashboard_internal", "{}", error.message());
                }
                let status = StatusCode::from_u16(code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = super::render::render_bare(
                    "error.html",
                    context! {
                        status => status.as_u16(),
                        reason => status.canonical_reason().unwrap_or("Error"),
                        code => code.as_str(),
                        message => error.message(),
                    },
                );
                let mut response = (status, body).into_response();
                if let Some(seconds) = error.retry_after() {
                    response.headers_mut().insert(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from(seconds),
                    );
                }
                response
            }
        }
    }
}
