//! Who is calling: a user or an API key ([`Principal`]), and with what standing in an
//! organisation ([`OrgAccess`]). The HTTP edge establishes both for every request
//! (`api::extract`); everything below it only reads them.

use crate::auth::rbac::{Role, Scope};
use crate::orgs::Org;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A user signed in with a password (JWT access token).
    User { id: String, email: String },
    /// An API key; it belongs to exactly one organisation.
    ApiKey {
        id: String,
        org_id: String,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// The API key's id, if the caller is one.
    pub fn api_key_id(&self) -> Option<&str> {
        match self {
            Principal::ApiKey { id, .. } => Some(id),
            Principal::User { .. } => None,
        }
    }

    /// The actor recorded in the audit log: `user:<id>` or `key:<id>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { id, .. } => format!("user:{id}"),
            Principal::ApiKey { id, .. } => format!("key:{id}"),
        }
    }
}

/// The caller and the organisation it acts in.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    pub org: Org,
    pub principal: Principal,
    /// The user's role; `None` for API keys.
    pub role: Option<Role>,
}

impl OrgAccess {
    /// The actor string for the audit log.
    pub fn actor(&self) -> String {
        self.principal.actor()
    }

    /// The role the caller acts with when granting roles or scopes: a user's own role, or
    /// for an API key the least role that covers its scopes.
    pub fn acting_role(&self) -> Role {
        match (&self.principal, self.role) {
            (_, Some(role)) => role,
            (Principal::ApiKey { scopes, .. }, None) if scopes.contains(&Scope::Admin) => {
                Role::Admin
            }
            (Principal::ApiKey { scopes, .. }, None)
                if scopes
                    .iter()
                    .any(|s| matches!(s, Scope::ModelsWrite | Scope::Predict)) =>
            {
                Role::Member
            }
            _ => Role::Viewer,
        }
    }
}
