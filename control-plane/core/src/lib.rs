//! wisp's core: the one domain error, credentials and permissions, what an uploaded model
//! looks like, and the records of each domain.
//!
//! - [`error`]: the one error every layer returns ([`error::Error`], a stable
//!   [`error::ErrorCode`] and message); the HTTP edge encodes it in three wire formats.
//! - [`auth`]: passwords, tokens, the permission table; [`access`]: who is calling.
//! - [`inspect`]: the validation hook models pass before a version is accepted.
//! - [`orgs`], [`users`], [`keys`], [`registry`], [`deployments`], [`plans`], [`audit`]:
//!   storage of each domain; [`invitations`], [`sessions`], [`sign_ins`]: how people join
//!   organisations and sign in; [`lookups`]: the rows every request reads, memoised.
//! - [`fleet`]: the node registry and the invalidation log several nodes share.
//!
//! Invariant: every query is scoped by an organisation id taken from [`access::OrgAccess`],
//! never from a request body; another organisation's resource answers exactly like a
//! missing one.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod dashboard_sessions;
pub mod deployments;
pub mod error;
pub mod fleet;
pub mod inspect;
pub mod invitations;
pub mod keys;
pub mod lookups;
pub mod onboarding;
pub mod orgs;
pub mod plans;
pub mod registry;
pub mod sessions;
pub mod sign_ins;
pub mod users;

// The storage layer, under the names the modules use (`crate::db`, `crate::blob`).
use wisp_storage::{blob, db};
