//! Members: inviting an address with a role, changing a member's role, removing a member,
//! each audited. Only owners give or take the owner role, the last owner stays, and a
//! member's API keys never have more power than the member has now (a demotion or a
//! removal revokes the keys acting for them beyond their new role).

use serde_json::json;

use super::Acting;
use crate::auth::Role;
use crate::auth::rbac;
use crate::auth::tokens::GeneratedSecret;
use crate::db::Writer;
use crate::error::{Error, ErrorCode, Result};
use crate::invitations::{self, Invitation};
use crate::users;
use wisp_core::keys;
use wisp_core::orgs::{self, Member};

/// `forbidden` unless `actor` may give or take `role`.
pub fn forbid_assign(actor: Role, role: Role) -> Result<()> {
    if rbac::role_may_assign(actor, role) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::Forbidden,
            format!("a {actor} cannot give or take the {role} role"),
        ))
    }
}

/// Invites `email` with `role`: a pending membership only the holder of the returned
/// token can accept, valid for `ttl_secs`. The inviter learns nothing about whether the
/// address has an account, only whether it is a member here already.
pub async fn invite(
    tx: &Writer,
    acting: &Acting<'_>,
    acting_role: Role,
    email: &str,
    role: Role,
    ttl_secs: i64,
) -> Result<(Invitation, GeneratedSecret)> {
    forbid_assign(acting_role, role)?;
    if let Some(user) = users::find_by_email(tx, email).await?
        && orgs::role_in(tx, acting.org_id, &user.id).await?.is_some()
    {
        return Err(Error::new(ErrorCode::AlreadyExists, "already a member"));
    }
    let now = crate::db::now();
    let (invitation, token) =
        invitations::create(tx, acting.org_id, email, role, &acting.actor, ttl_secs, now).await?;
    let details = json!({ "email": email, "role": role });
    acting
        .audit(
            tx,
            "member.invited",
            &format!("invitation:{}", invitation.id),
            details,
        )
        .await?;
    Ok((invitation, token))
}

/// Gives member `user_id` the role `role`, revoking their keys beyond it.
pub async fn change_role(
    tx: &Writer,
    acting: &Acting<'_>,
    acting_role: Role,
    user_id: &str,
    role: Role,
) -> Result<Member> {
    let current = orgs::role_in(tx, acting.org_id, user_id)
        .await?
        .ok_or_else(|| Error::not_found("member"))?;
    forbid_assign(acting_role, current)?;
    forbid_assign(acting_role, role)?;
    if current == Role::Owner
        && role != Role::Owner
        && orgs::owner_count(tx, acting.org_id).await? <= 1
    {
        return Err(Error::new(
            ErrorCode::LastOwner,
            "the organisation needs an owner",
        ));
    }
    orgs::set_role(tx, acting.org_id, user_id, role).await?;
    let revoked_keys =
        keys::revoke_beyond_role(tx, acting.org_id, &format!("user:{user_id}"), Some(role)).await?;
    let details = json!({ "from": current, "to": role, "revoked_keys": revoked_keys });
    acting
        .audit(
            tx,
            "member.role_changed",
            &format!("user:{user_id}"),
            details,
        )
        .await?;
    orgs::member(tx, acting.org_id, user_id)
        .await?
        .ok_or_else(|| Error::not_found("member"))
}

/// Removes member `user_id` (the account stays) and revokes the keys acting for them.
pub async fn remove(
    tx: &Writer,
    acting: &Acting<'_>,
    acting_role: Role,
    user_id: &str,
) -> Result<()> {
    let current = orgs::role_in(tx, acting.org_id, user_id)
        .await?
        .ok_or_else(|| Error::not_found("member"))?;
    forbid_assign(acting_role, current)?;
    if current == Role::Owner && orgs::owner_count(tx, acting.org_id).await? <= 1 {
        return Err(Error::new(
            ErrorCode::LastOwner,
            "the organisation needs an owner",
        ));
    }
    orgs::remove_member(tx, acting.org_id, user_id).await?;
    let revoked_keys =
        keys::revoke_beyond_role(tx, acting.org_id, &format!("user:{user_id}"), None).await?;
    let details = json!({ "role": current, "revoked_keys": revoked_keys });
    acting
        .audit(tx, "member.removed", &format!("user:{user_id}"), details)
        .await?;
    Ok(())
}
