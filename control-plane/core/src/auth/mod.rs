//! Authentication (who is calling) and authorisation (what they may do).
//!
//! - [`password`]: argon2id hashing of user passwords.
//! - [`tokens`]: JWT access tokens (HS256 only) and opaque secrets (refresh tokens, API keys).
//! - [`rbac`]: the one permission table, action → roles and API-key scopes.
//! - [`throttle`]: login attempts per account and per address.
//! - [`input`]: bounds on every credential, checked before any work.

pub mod input;
pub mod password;
pub mod rbac;
pub mod throttle;
pub mod tokens;

pub use rbac::{Action, Role, Scope};
