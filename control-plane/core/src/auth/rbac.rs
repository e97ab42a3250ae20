//! The permission table: which roles and which API-key scopes may perform each action.
//!
//! This is the only place that decides authorisation. Handlers name the action they perform
//! through the [`Authorized`](super::Authorized) extractor (`Authorized<can::WriteModels>`);
//! the extractor looks the action up here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in an organisation, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// Call inference endpoints.
    #[serde(rename = "predict")]
    Predict,
    /// Create models and upload versions.
    #[serde(rename = "models:write")]
    ModelsWrite,
    /// Read everything the organisation's viewers can read.
    #[serde(rename = "read")]
    Read,
    /// Everything an organisation admin can do.
    #[serde(rename = "admin")]
    Admin,
}

/// Everything a caller can do inside an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadOrg,
    ReadMembers,
    ManageMembers,
    ReadKeys,
    ManageKeys,
    ReadModels,
    /// Read what a caller needs to call a model: its signature and whether it is ready
    /// (the V2 model metadata and readiness endpoints, which clients query before infer).
    DescribeModel,
    WriteModels,
    DeleteModels,
    Deploy,
    Predict,
    ReadAudit,
    /// Usage, quotas, invoices and exports.
    ReadUsage,
    /// Read MLflow experiments, runs and artifacts.
    ReadExperiments,
    /// Create and log to MLflow experiments and runs, upload artifacts.
    WriteExperiments,
    /// Send ground truth (the actual outcome) for a model's predictions.
    WriteFeedback,
}

/// Who may perform an action.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Roles of users (signed in with a password) that are allowed.
    pub roles: &'static [Role],
    /// API key scopes of which at least one is required.
    pub scopes: &'static [Scope],
}

const EVERYONE: &[Role] = &[Role::Owner, Role::Admin, Role::Member, Role::Viewer];
const CONTRIBUTORS: &[Role] = &[Role::Owner, Role::Admin, Role::Member];
const ADMINS: &[Role] = &[Role::Owner, Role::Admin];
const ANY_SCOPE: &[Scope] = &[
    Scope::Read,
    Scope::ModelsWrite,
    Scope::Predict,
    Scope::Admin,
];
const READ_SCOPES: &[Scope] = &[Scope::Read, Scope::ModelsWrite, Scope::Admin];

/// The permission table.
pub const fn rule(action: Action) -> Rule {
    use Action::*;
    let (roles, scopes): (&[Role], &[Scope]) = match action {
        ReadOrg => (EVERYONE, ANY_SCOPE),
        ReadMembers => (EVERYONE, &[Scope::Read, Scope::Admin]),
        ManageMembers => (ADMINS, &[Scope::Admin]),
        ReadKeys => (CONTRIBUTORS, &[Scope::Admin]),
        ManageKeys => (CONTRIBUTORS, &[Scope::Admin]),
        ReadModels => (EVERYONE, READ_SCOPES),
        DescribeModel => (EVERYONE, ANY_SCOPE),
        WriteModels => (CONTRIBUTORS, &[Scope::ModelsWrite, Scope::Admin]),
        DeleteModels => (ADMINS, &[Scope::Admin]),
        Deploy => (CONTRIBUTORS, &[Scope::ModelsWrite, Scope::Admin]),
        Predict => (CONTRIBUTORS, &[Scope::Predict, Scope::Admin]),
        ReadAudit => (ADMINS, &[Scope::Admin]),
        ReadUsage => (ADMINS, &[Scope::Admin]),
        // Tracking is part of producing models: the same people and keys as the registry.
        ReadExperiments => (EVERYONE, READ_SCOPES),
        WriteExperiments => (CONTRIBUTORS, &[Scope::ModelsWrite, Scope::Admin]),
        // Whoever calls a model may report how its answers turned out: the application
        // that predicts (a `predict` key) usually learns the outcome later.
        WriteFeedback => (
            CONTRIBUTORS,
            &[Scope::Predict, Scope::ModelsWrite, Scope::Admin],
        ),
    };
    Rule { roles, scopes }
}

/// Whether a user with `role` may perform `action`.
pub fn role_allows(role: Role, action: Action) -> bool {
    rule(action).roles.contains(&role)
}

/// Whether an API key with `scopes` may perform `action`.
pub fn scopes_allow(scopes: &[Scope], action: Action) -> bool {
    rule(action).scopes.iter().any(|s| scopes.contains(s))
}

/// The scopes a key created by someone with `role` may carry: nobody mints a key more
/// powerful than themselves.
pub fn role_may_grant(role: Role, scope: Scope) -> bool {
    match scope {
        Scope::Admin => matches!(role, Role::Owner | Role::Admin),
        Scope::ModelsWrite | Scope::Predict => role <= Role::Member,
        Scope::Read => true,
    }
}

/// Whether an actor with `actor` role may give or take `target` role: only owners manage owners.
pub fn role_may_assign(actor: Role, target: Role) -> bool {
    match target {
        Role::Owner => actor == Role::Owner,
        _ => matches!(actor, Role::Owner | Role::Admin),
    }
}

/// What a caller may do with an existing API key of its organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    /// Not even shown: it answers `404`, so its existence does not leak.
    Hidden,
    /// Shown (without its secret), but renaming or revoking it is `403`.
    ReadOnly,
    /// Shown, renamed, revoked.
    Manage,
}

/// Who manages which API key: a caller manages only keys it could have created.
///
/// | caller (acting role) | sees | renames and revokes |
/// |---|---|---|
/// | owner | every key | every key |
/// | admin | every key | keys it acts for, and keys of admins, members and viewers (not of owners) |
/// | member | only keys it acts for | those, when their scopes are ones a member may grant |
/// | viewer | none | none |
///
/// `own`: the key acts for the caller's own person. `principal_role`: the current role of
/// the person the key acts for (`None`: they left, the key is dead; admins may clean it
/// up). Every case also requires that `role` could grant each of the key's scopes
/// ([`role_may_grant`]), so a member never touches an `admin` key, even one of its own left
/// over from before a demotion.
pub fn key_access(
    role: Role,
    own: bool,
    key_scopes: &[Scope],
    principal_role: Option<Role>,
) -> KeyAccess {
    let visible = match role {
        Role::Owner | Role::Admin => true,
        Role::Member => own,
        Role::Viewer => false,
    };
    if !visible {
        return KeyAccess::Hidden;
    }
    let grantable = key_scopes.iter().all(|scope| role_may_grant(role, *scope));
    let principal_ok = own || principal_role.is_none_or(|p| role_may_assign(role, p));
    if grantable && principal_ok {
        KeyAccess::Manage
    } else {
        KeyAccess::ReadOnly
    }
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

impl Scope {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Predict => "predict",
            Scope::ModelsWrite => "models:write",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a space-separated scope list as stored in the database.
    pub fn parse_list(stored: &str) -> Result<Vec<Scope>, String> {
        stored.split_whitespace().map(str::parse).collect()
    }

    /// Formats scopes for storage.
    pub fn format_list(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "predict" => Ok(Scope::Predict),
            "models:write" => Ok(Scope::ModelsWrite),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope {other:?}")),
        }
    }
}

/// Type-level names of actions, for `Authorized<can::…>` in handler signatures.
pub mod can {
    use super::Action;

    /// An action named at the type level.
    pub trait Permission: Send + Sync + 'static {
        const ACTION: Action;
    }

    macro_rules! permissions {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("The `", stringify!($name), "` action.")]
            #[derive(Debug)]
            pub struct $name;
            impl Permission for $name {
                const ACTION: Action = Action::$name;
            }
        )*};
    }

    permissions!(
        ReadOrg,
        ReadMembers,
        ManageMembers,
        ReadKeys,
        ManageKeys,
        ReadModels,
        DescribeModel,
        WriteModels,
        DeleteModels,
        Deploy,
        Predict,
        ReadAudit,
        ReadUsage,
        ReadExperiments,
        WriteExperiments,
        WriteFeedback,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_read_but_do_not_write() {
        assert!(role_allows(Role::Viewer, Action::ReadModels));
        assert!(!role_allows(Role::Viewer, Action::WriteModels));
        assert!(!role_allows(Role::Member, Action::ReadAudit));
        assert!(role_allows(Role::Admin, Action::ReadAudit));
    }

    #[test]
    fn scopes_are_narrow() {
        assert!(scopes_allow(&[Scope::Predict], Action::Predict));
        assert!(!scopes_allow(&[Scope::Predict], Action::ReadModels));
        // A predict key may ask what it is about to call, as V2 clients do before infer.
        assert!(scopes_allow(&[Scope::Predict], Action::DescribeModel));
        assert!(role_allows(Role::Viewer, Action::DescribeModel));
        assert!(!scopes_allow(&[Scope::Read], Action::WriteModels));
        assert!(scopes_allow(&[Scope::Admin], Action::ManageMembers));
    }

    #[test]
    fn nobody_grants_more_than_they_have() {
        assert!(!role_may_grant(Role::Member, Scope::Admin));
        assert!(!role_may_grant(Role::Viewer, Scope::Predict));
        assert!(role_may_assign(Role::Owner, Role::Owner));
        assert!(!role_may_assign(Role::Admin, Role::Owner));
    }

    #[test]
    fn a_caller_manages_only_keys_it_could_have_created() {
        use KeyAccess::*;
        let admin_key = &[Scope::Admin];
        let predict_key = &[Scope::Predict];
        // Members see and manage only their own keys, never an admin key.
        assert_eq!(
            key_access(Role::Member, false, predict_key, Some(Role::Member)),
            Hidden
        );
        assert_eq!(
            key_access(Role::Member, false, admin_key, Some(Role::Admin)),
            Hidden
        );
        assert_eq!(
            key_access(Role::Member, true, predict_key, Some(Role::Member)),
            Manage
        );
        assert_eq!(
            key_access(Role::Member, true, admin_key, Some(Role::Member)),
            ReadOnly
        );
        // Admins manage everyone's keys but the owners'.
        assert_eq!(
            key_access(Role::Admin, false, admin_key, Some(Role::Admin)),
            Manage
        );
        assert_eq!(
            key_access(Role::Admin, false, predict_key, Some(Role::Owner)),
            ReadOnly
        );
        assert_eq!(
            key_access(Role::Admin, true, admin_key, Some(Role::Admin)),
            Manage
        );
        assert_eq!(key_access(Role::Admin, false, admin_key, None), Manage);
        assert_eq!(
            key_access(Role::Owner, false, admin_key, Some(Role::Owner)),
            Manage
        );
        assert_eq!(
            key_access(Role::Viewer, true, &[Scope::Read], Some(Role::Viewer)),
            Hidden
        );
    }

    #[test]
    fn scope_lists_round_trip() {
        let scopes = vec![Scope::Predict, Scope::ModelsWrite];
        assert_eq!(Scope::parse_list(&Scope::format_list(&scopes)), Ok(scopes));
    }
}
