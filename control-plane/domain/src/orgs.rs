//! Organisations: creating one with its first owner, audited. The REST API and the first
//! start of `wisp serve` both create organisations through here.

use serde_json::Value;

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::auth::Role;
use crate::db::{self, Writer};
use crate::error::{Error, ErrorCode, Result};
use wisp_core::orgs::{self, Org};

/// Creates organisation `slug` (`already_exists` if taken) with `owner` as its owner.
/// `actor` is who did it (`user:<id>`, or `system` at first start); `details` go into the
/// audit entry.
pub async fn create(
    tx: &Writer,
    actor: &str,
    meta: &RequestMeta,
    slug: &str,
    name: &str,
    owner: &str,
    details: Value,
) -> Result<Org> {
    let org = orgs::insert(tx, slug, name).await.map_err(|e| {
        if db::is_unique_violation(&e) {
            Error::new(
                ErrorCode::AlreadyExists,
                "an organisation with this slug exists",
            )
        } else {
            e.into()
        }
    })?;
    orgs::add_member(tx, &org.id, owner, Role::Owner).await?;
    audit::record(
        tx,
        meta,
        AuditEvent {
            org_id: Some(&org.id),
            actor,
            action: "org.created",
            target: Some(&format!("org:{}", org.slug)),
            details,
        },
    )
    .await?;
    Ok(org)
}
