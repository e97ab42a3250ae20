//! Models, their versions and aliases: creating a model within the plan's models quota,
//! adding and updating a version, moving and deleting an alias (moving a deployment that
//! follows it), deleting a model; each audited.

use serde_json::{Value, json};

use super::Acting;
use super::deployments::{self, WarmUp};
use crate::db::{self, Writer};
use crate::error::{Error, ErrorCode, Result};
use crate::metering::quota::{self, QuotaKind};
use crate::plans;
use crate::registry::{self, Model, NewVersion, VersionPatch};

/// Creates model `name` in the acting organisation, if its plan has room for one more
/// model; `already_exists` if the name is taken. `details` go into the audit entry
/// (e.g. which edge created it).
pub async fn create(
    tx: &Writer,
    acting: &Acting<'_>,
    name: &str,
    description: &str,
    details: Value,
) -> Result<Model> {
    let plan = plans::of_org(tx, acting.org_id).await?;
    let models = registry::list_models(tx, acting.org_id).await?.len() as u64;
    quota::check(QuotaKind::Models, models, 1, plan.quotas.max_models)?;
    let model = registry::create_model(tx, acting.org_id, name, description, &acting.actor)
        .await
        .map_err(|e| {
            if db::is_unique_violation(&e) {
                Error::new(ErrorCode::AlreadyExists, "a model with this name exists")
            } else {
                e.into()
            }
        })?;
    acting
        .audit(tx, "model.created", &format!("model:{name}"), details)
        .await?;
    Ok(model)
}

/// The model `name`, created as [`create`] does if it does not exist yet.
pub async fn find_or_create(
    tx: &Writer,
    acting: &Acting<'_>,
    name: &str,
    description: &str,
    details: Value,
) -> Result<Model> {
    match registry::get_model(tx, acting.org_id, name).await? {
        Some(model) => Ok(model),
        None => create(tx, acting, name, description, details).await,
    }
}

/// Adds the next version of `model` (its blobs already committed and checked by the
/// caller); returns its number. `details` are added to the audit entry's.
pub async fn add_version(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    version: &NewVersion<'_>,
    details: Value,
) -> Result<i64> {
    let number = registry::insert_version(tx, version).await?;
    let mut entry = json!({
        "sha256": version.sha256,
        "size_bytes": version.size_bytes,
        "framework": version.framework,
    });
    if let (Some(entry), Value::Object(extra)) = (entry.as_object_mut(), details) {
        entry.extend(extra);
    }
    acting
        .audit(
            tx,
            "model.version.uploaded",
            &format!("model:{}/versions/{number}", model.name),
            entry,
        )
        .await?;
    Ok(number)
}

/// Deletes `model` and its versions (its aliases and deployment go with it); returns the
/// digests of the blobs nothing references any more, for the caller to delete while it
/// still holds the database (so no upload slips a new reference in between).
pub async fn delete(tx: &Writer, acting: &Acting<'_>, model: &Model) -> Result<Vec<String>> {
    let digests = registry::delete_model(tx, &model.id).await?;
    let details = json!({ "versions_deleted": digests.len() });
    acting
        .audit(
            tx,
            "model.deleted",
            &format!("model:{}", model.name),
            details,
        )
        .await?;
    Ok(registry::unreferenced(tx, &digests).await?)
}

/// Updates a version's description, tags, metrics or run id; `not_found` if it does not
/// exist.
pub async fn update_version(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    version: i64,
    patch: &VersionPatch,
) -> Result<()> {
    if !registry::update_version(tx, &model.id, version, patch).await? {
        return Err(Error::not_found("version"));
    }
    let target = format!("model:{}/versions/{version}", model.name);
    acting
        .audit(tx, "model.version.updated", &target, json!({}))
        .await
        .map_err(Into::into)
}

/// An alias moved by [`move_alias`].
#[derive(Debug)]
pub struct AliasMove {
    /// The version it pointed at before, if it existed.
    pub previous: Option<i64>,
    /// The warm-up of a deployment that follows the alias, to start after the commit.
    pub redeploy: Option<WarmUp>,
}

/// Points `alias` of `model` at `version` (which must exist), moving a deployment that
/// follows it.
pub async fn move_alias(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    alias: &str,
    version: i64,
) -> Result<AliasMove> {
    registry::get_version(tx, &model.id, version)
        .await?
        .ok_or_else(|| Error::not_found("version"))?;
    let previous = registry::set_alias(tx, &model.id, alias, version, &acting.actor).await?;
    let redeploy = deployments::follow_alias(tx, acting, model, alias).await?;
    let details = json!({
        "from": previous,
        "to": version,
        "redeployed": redeploy.is_some(),
    });
    let target = format!("model:{}/aliases/{alias}", model.name);
    acting
        .audit(tx, "model.alias.moved", &target, details)
        .await?;
    Ok(AliasMove { previous, redeploy })
}

/// Deletes `alias` of `model`: `alias_in_use` while the deployment follows it.
pub async fn delete_alias(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    alias: &str,
) -> Result<()> {
    if let Some(deployment) = wisp_core::deployments::get(tx, &model.id).await?
        && deployment.follow_alias.as_deref() == Some(alias)
    {
        return Err(Error::new(
            ErrorCode::AliasInUse,
            "the model's deployment follows this alias; deploy a version or another alias first",
        ));
    }
    let previous = registry::delete_alias(tx, &model.id, alias, &acting.actor)
        .await?
        .ok_or_else(|| Error::not_found("alias"))?;
    let target = format!("model:{}/aliases/{alias}", model.name);
    acting
        .audit(
            tx,
            "model.alias.deleted",
            &target,
            json!({ "from": previous }),
        )
        .await
        .map_err(Into::into)
}
