//! Webhook endpoints: create (the `whsec_…` secret generated here, shown once), change,
//! rotate the secret, delete, queue a test message; each audited. Secrets never appear in
//! the audit log.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use wisp_monitoring::webhook::WebhookSecret;

use super::targets::TargetPolicy;
use super::{invalid_field, payload};
use crate::Acting;
use crate::alerts_rows::webhooks::{self, Webhook};
use crate::alerts_rows::{deliveries, rules};
use crate::db::{self, Reader, Writer};
use crate::error::{Error, Result};
use wisp_core::orgs;

/// A webhook endpoint as written by a user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `http(s)://…`, where wisp POSTs signed JSON.
    pub url: String,
    /// What it is for (up to 512 characters).
    #[serde(default)]
    pub description: String,
}

fn validate(policy: &TargetPolicy, request: &WebhookRequest) -> Result<()> {
    policy
        .check_url(&request.url)
        .map_err(|refused| invalid_field("url", format!("url refused: {refused}")))?;
    if request.description.len() > 512 || request.description.chars().any(char::is_control) {
        return Err(invalid_field(
            "description",
            "description must be at most 512 printable characters",
        ));
    }
    Ok(())
}

/// One endpoint of the organisation (`not_found` for another organisation's).
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<Webhook> {
    webhooks::get(conn, org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("webhook"))
}

/// Creates an endpoint; returns it with its secret, which is not shown again.
pub async fn create(
    tx: &Writer,
    acting: &Acting<'_>,
    policy: &TargetPolicy,
    request: &WebhookRequest,
) -> Result<(Webhook, String)> {
    validate(policy, request)?;
    let secret = WebhookSecret::generate().expose();
    let id = webhooks::insert(
        tx,
        acting.org_id,
        &request.url,
        &request.description,
        &secret,
        &acting.actor,
    )
    .await?;
    acting
        .audit(
            tx,
            "alert.webhook.created",
            &format!("webhook:{id}"),
            json!({ "url": request.url, "description": request.description }),
        )
        .await?;
    Ok((get(tx, acting.org_id, &id).await?, secret))
}

/// Changes an endpoint's URL and description (the secret stays).
pub async fn update(
    tx: &Writer,
    acting: &Acting<'_>,
    policy: &TargetPolicy,
    id: &str,
    request: &WebhookRequest,
) -> Result<Webhook> {
    get(tx, acting.org_id, id).await?;
    validate(policy, request)?;
    webhooks::update(tx, acting.org_id, id, &request.url, &request.description).await?;
    acting
        .audit(
            tx,
            "alert.webhook.updated",
            &format!("webhook:{id}"),
            json!({ "url": request.url, "description": request.description }),
        )
        .await?;
    get(tx, acting.org_id, id).await
}

/// Replaces an endpoint's secret; returns the new one (shown once). Messages sent from
/// now on, retries of earlier ones included, are signed with it.
pub async fn rotate_secret(
    tx: &Writer,
    acting: &Acting<'_>,
    id: &str,
) -> Result<(Webhook, String)> {
    get(tx, acting.org_id, id).await?;
    let secret = WebhookSecret::generate().expose();
    webhooks::set_secret(tx, acting.org_id, id, &secret).await?;
    acting
        .audit(
            tx,
            "alert.webhook.secret_rotated",
            &format!("webhook:{id}"),
            json!({}),
        )
        .await?;
    Ok((get(tx, acting.org_id, id).await?, secret))
}

/// Deletes an endpoint and takes it out of the rules that notified it (each such rule's
/// change is audited too). Its pending deliveries fail when they come due.
pub async fn delete(tx: &Writer, acting: &Acting<'_>, id: &str) -> Result<()> {
    get(tx, acting.org_id, id).await?;
    for rule in rules::list(tx, acting.org_id).await? {
        if rule.spec.channels.iter().any(|c| c == id) {
            let mut spec = rule.spec.clone();
            spec.channels.retain(|c| c != id);
            rules::update(tx, acting.org_id, &rule.id, &spec, false).await?;
            acting
                .audit(
                    tx,
                    "alert.rule.updated",
                    &format!("alert_rule:{}", rule.id),
                    json!({ "channels": spec.channels, "because": "webhook deleted" }),
                )
                .await?;
        }
    }
    webhooks::delete(tx, acting.org_id, id).await?;
    acting
        .audit(
            tx,
            "alert.webhook.deleted",
            &format!("webhook:{id}"),
            json!({}),
        )
        .await?;
    Ok(())
}

/// Queues an `alert.test` message to an endpoint, due now; returns the delivery's id.
pub async fn queue_test(tx: &Writer, acting: &Acting<'_>, id: &str) -> Result<String> {
    get(tx, acting.org_id, id).await?;
    let slug = orgs::find_by_id(tx, acting.org_id)
        .await?
        .map(|org| org.slug)
        .unwrap_or_default();
    let now = db::now();
    let body = payload::test(&slug, id, now).to_string();
    let delivery = format!("msg_{}", db::new_id().replace('-', ""));
    deliveries::enqueue(tx, &delivery, acting.org_id, id, "alert.test", &body, now).await?;
    acting
        .audit(
            tx,
            "alert.webhook.tested",
            &format!("webhook:{id}"),
            json!({ "delivery": delivery }),
        )
        .await?;
    Ok(delivery)
}
