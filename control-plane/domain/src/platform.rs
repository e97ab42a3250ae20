//! The platform operator's changes, above the organisations: moving an organisation to
//! another plan or replacing its quota overrides, suspending and reinstating it. Each is
//! audited in the log of the organisation it concerns, as a `platform.*` action.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::db::{self, Reader, Writer};
use crate::error::{Error, Result};
use crate::plans::{self, Overrides};
use wisp_core::orgs::{self, Org};

/// A platform operator acting, and from where.
#[derive(Debug, Clone, Copy)]
pub struct Operating<'a> {
    /// `operator:<user id>`.
    pub actor: &'a str,
    pub meta: &'a RequestMeta,
}

impl Operating<'_> {
    /// Records `action` in the audit log of organisation `org_id` (`None`: the platform's
    /// own log, for what concerns no one organisation).
    pub async fn audit(
        &self,
        tx: &Writer,
        org_id: Option<&str>,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> Result<()> {
        audit::record(
            tx,
            self.meta,
            AuditEvent {
                org_id,
                actor: self.actor,
                action,
                target,
                details,
            },
        )
        .await?;
        Ok(())
    }
}

/// Records that an operator read platform-wide data (`platform.orgs_listed`,
/// `platform.usage_read`): operators' reads across organisations are audited too.
pub async fn record_read(
    tx: &Writer,
    operating: Operating<'_>,
    action: &str,
    details: serde_json::Value,
) -> Result<()> {
    operating.audit(tx, None, action, None, details).await
}

/// An organisation as the platform operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformOrg {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// The plan's id: `free`, `pro`, `enterprise`.
    pub plan: String,
    /// The organisation's overrides of its plan's quotas (absent fields keep the plan's).
    pub overrides: Overrides,
    /// RFC 3339; present while the organisation is suspended.
    pub suspended_at: Option<String>,
}

/// A new plan and/or new quota overrides.
#[derive(Debug, Clone, Copy)]
pub struct PlanChange<'a> {
    /// The plan's id; `None` keeps the current plan.
    pub plan: Option<&'a str>,
    /// Replaces every override; `None` keeps them.
    pub overrides: Option<&'a Overrides>,
}

pub async fn platform_org(conn: &Reader, org: Org, plan: String) -> Result<PlatformOrg> {
    let overrides = plans::overrides_of(conn, &org.id).await?;
    Ok(PlatformOrg {
        id: org.id,
        slug: org.slug,
        name: org.name,
        plan,
        overrides,
        suspended_at: org.suspended_at.map(db::rfc3339),
    })
}

/// The organisation `slug` and its plan id, read in the transaction.
async fn find_org(conn: &Reader, slug: &str) -> Result<(Org, String)> {
    let org = orgs::find_by_slug(conn, slug)
        .await?
        .ok_or_else(|| Error::not_found("organisation"))?;
    let plan = plans::of_org(conn, &org.id).await?.id;
    Ok((org, plan))
}

/// Moves organisation `slug` to another plan and/or replaces its quota overrides; takes
/// effect on its next call.
pub async fn set_plan(
    tx: &Writer,
    operating: Operating<'_>,
    slug: &str,
    change: PlanChange<'_>,
) -> Result<PlatformOrg> {
    if change.plan.is_none() && change.overrides.is_none() {
        return Err(Error::invalid("give a plan, overrides, or both"));
    }
    let (org, from) = find_org(tx, slug).await?;
    let before = plans::overrides_of(tx, &org.id).await?;
    if let Some(plan) = change.plan
        && !plans::assign(tx, &org.id, plan).await?
    {
        return Err(Error::invalid(format!("no plan {plan:?}")));
    }
    if let Some(overrides) = change.overrides {
        plans::set_overrides(tx, &org.id, overrides).await?;
    }
    let (org, to) = find_org(tx, slug).await?;
    let after = platform_org(tx, org, to.clone()).await?;
    operating
        .audit(
            tx,
            Some(&after.id),
            "platform.plan_changed",
            Some(&format!("org:{}", after.slug)),
            json!({
                "from": { "plan": from, "overrides": before },
                "to": { "plan": to, "overrides": after.overrides },
            }),
        )
        .await?;
    Ok(after)
}

/// Suspends organisation `slug` (with `Some(reason)`): every call in it is refused with
/// `org_suspended`, nothing is deleted; or reinstates it (`None`).
pub async fn set_suspended(
    tx: &Writer,
    operating: Operating<'_>,
    slug: &str,
    reason: Option<&str>,
) -> Result<PlatformOrg> {
    let (org, _) = find_org(tx, slug).await?;
    orgs::set_suspended(tx, &org.id, reason).await?;
    let (org, plan) = find_org(tx, slug).await?;
    let (action, details) = match reason {
        Some(reason) => ("platform.org_suspended", json!({ "reason": reason })),
        None => ("platform.org_reinstated", json!({})),
    };
    operating
        .audit(
            tx,
            Some(&org.id),
            action,
            Some(&format!("org:{}", org.slug)),
            details,
        )
        .await?;
    platform_org(tx, org, plan).await
}
