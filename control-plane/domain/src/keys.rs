//! API keys: who may see and manage which key, and creating, renaming and revoking them,
//! each audited.
//!
//! A caller sees and manages only the keys it could have created ([`rbac::key_access`]):
//! a key it may not see answers `404`, one it may see but not manage `403`. A new key acts
//! for the caller's person, so that it dies with their membership.

use serde_json::json;

use super::Acting;
use crate::access::{OrgAccess, Principal};
use crate::auth::Scope;
use crate::auth::rbac::{self, KeyAccess};
use crate::auth::tokens::GeneratedSecret;
use crate::db::{Reader, Writer};
use crate::error::{Error, ErrorCode, Result};
use wisp_core::keys::{self, ApiKey, ManagedKey, NewKey};

/// The user the caller acts for: a signed-in user, or the person its key acts for.
pub async fn caller_principal(conn: &Reader, access: &OrgAccess) -> Result<Option<String>> {
    Ok(match &access.principal {
        Principal::User { id, .. } => Some(id.clone()),
        Principal::ApiKey { id, .. } => keys::principal_of(conn, &access.org.id, id).await?,
    })
}

/// What the caller, acting for `me`, may do with `key`.
pub fn access_to(access: &OrgAccess, me: Option<&str>, key: &ManagedKey) -> KeyAccess {
    let own = me.is_some() && key.key.principal_user_id.as_deref() == me;
    rbac::key_access(
        access.acting_role(),
        own,
        &key.key.scopes,
        key.principal_role,
    )
}

/// The key `key_id` if the caller may manage it: `404` if it may not even see it, `403` if
/// it sees it but could not have created it.
pub async fn managed(conn: &Reader, access: &OrgAccess, key_id: &str) -> Result<ApiKey> {
    let me = caller_principal(conn, access).await?;
    let key = keys::get(conn, &access.org.id, key_id)
        .await?
        .ok_or_else(|| Error::not_found("API key"))?;
    match access_to(access, me.as_deref(), &key) {
        KeyAccess::Manage => Ok(key.key),
        KeyAccess::ReadOnly => Err(Error::new(
            ErrorCode::Forbidden,
            "you can only manage keys you could have created",
        )),
        KeyAccess::Hidden => Err(Error::not_found("API key")),
    }
}

/// What a new key is.
#[derive(Debug, Clone, Copy)]
pub struct NewKeyRequest<'a> {
    pub name: &'a str,
    /// Without duplicates; at least one.
    pub scopes: &'a [Scope],
    pub expires_at: Option<i64>,
}

/// Creates a key with `secret`'s hash: only with scopes the caller's role may grant, and
/// acting for the caller's person (a key that acts for nobody cannot create keys).
pub async fn create(
    tx: &Writer,
    acting: &Acting<'_>,
    access: &OrgAccess,
    request: NewKeyRequest<'_>,
    secret: &GeneratedSecret,
) -> Result<ApiKey> {
    if request.scopes.is_empty() {
        return Err(Error::invalid("a key needs at least one scope"));
    }
    let role = access.acting_role();
    if let Some(scope) = request
        .scopes
        .iter()
        .find(|s| !rbac::role_may_grant(role, **s))
    {
        return Err(Error::new(
            ErrorCode::Forbidden,
            format!(
                "a {role} cannot create a key with the {} scope",
                scope.as_str()
            ),
        ));
    }
    let principal = caller_principal(tx, access).await?.ok_or_else(|| {
        Error::new(
            ErrorCode::Forbidden,
            "this key acts for nobody and cannot create keys",
        )
    })?;
    let id = keys::insert(
        tx,
        &NewKey {
            org_id: acting.org_id,
            name: request.name,
            prefix: &secret.display_prefix,
            key_hash: &secret.hash,
            scopes: request.scopes,
            created_by: &acting.actor,
            principal_user_id: &principal,
            expires_at: request.expires_at,
        },
    )
    .await?;
    let details = json!({
        "name": request.name,
        "scopes": request.scopes,
        "prefix": secret.display_prefix,
    });
    acting
        .audit(tx, "apikey.created", &format!("apikey:{id}"), details)
        .await?;
    keys::get(tx, acting.org_id, &id)
        .await?
        .map(|key| key.key)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("key vanished")))
}

/// Renames a key the caller may manage.
pub async fn rename(
    tx: &Writer,
    acting: &Acting<'_>,
    access: &OrgAccess,
    key_id: &str,
    name: &str,
) -> Result<ApiKey> {
    managed(tx, access, key_id).await?;
    if !keys::rename(tx, acting.org_id, key_id, name).await? {
        return Err(Error::not_found("API key"));
    }
    acting
        .audit(
            tx,
            "apikey.renamed",
            &format!("apikey:{key_id}"),
            json!({ "name": name }),
        )
        .await?;
    keys::get(tx, acting.org_id, key_id)
        .await?
        .map(|key| key.key)
        .ok_or_else(|| Error::not_found("API key"))
}

/// Revokes a key the caller may manage: the next request made with it is refused.
pub async fn revoke(
    tx: &Writer,
    acting: &Acting<'_>,
    access: &OrgAccess,
    key_id: &str,
) -> Result<()> {
    managed(tx, access, key_id).await?;
    if !keys::revoke(tx, acting.org_id, key_id).await? {
        return Err(Error::not_found("API key"));
    }
    acting
        .audit(tx, "apikey.revoked", &format!("apikey:{key_id}"), json!({}))
        .await?;
    Ok(())
}
