//! Authentication (who is calling) and authorisation (what they may do).
//!
//! - [`password`]: argon2id hashing of user passwords.
//! - [`tokens`]: JWT access tokens (HS256 only) and opaque secrets (refresh tokens, API keys).
//! - [`rbac`]: the one permission table, action → roles and API-key scopes.
//! - [`extract`]: the axum extractors that apply it to every request.
//! - [`throttle`]: login attempts per account and per address.
//! - [`operator`]: the platform operator, above the organisations.
//! - [`input`]: bounds on every credential, checked before any work.

pub mod extract;
pub mod input;
pub mod operator;
pub mod password;
pub mod rbac;
pub mod throttle;
pub mod tokens;

pub use extract::{Authorized, CredentialOrg, CurrentSession, CurrentUser, OrgAccess, Principal};
pub use operator::PlatformOperator;
pub use rbac::{Action, Role, Scope};
