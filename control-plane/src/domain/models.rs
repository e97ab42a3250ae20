//! Models and their versions: creating a model within the plan's models quota, adding a
//! version, each audited.

use serde_json::{Value, json};

use super::Acting;
use crate::db::{self, Writer};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::metering::quota::{self, QuotaKind};
use crate::plans;
use crate::registry::{self, Model, NewVersion};

/// Creates model `name` in the acting organisation, if its plan has room for one more
/// model; `already_exists` if the name is taken. `details` go into the audit entry
/// (e.g. which edge created it).
pub async fn create(
    tx: &Writer,
    acting: Acting<'_>,
    name: &str,
    description: &str,
    details: Value,
) -> ApiResult<Model> {
    let plan = plans::of_org(tx, acting.org_id).await?;
    let models = registry::list_models(tx, acting.org_id).await?.len() as u64;
    quota::check(QuotaKind::Models, models, 1, plan.quotas.max_models)?;
    let model = registry::create_model(tx, acting.org_id, name, description, acting.actor)
        .await
        .map_err(|e| {
            if db::is_unique_violation(&e) {
                ApiError::new(ErrorCode::AlreadyExists, "a model with this name exists")
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
    acting: Acting<'_>,
    name: &str,
    description: &str,
    details: Value,
) -> ApiResult<Model> {
    match registry::get_model(tx, acting.org_id, name).await? {
        Some(model) => Ok(model),
        None => create(tx, acting, name, description, details).await,
    }
}

/// Adds the next version of `model` (its blobs already committed and checked by the
/// caller); returns its number. `details` are added to the audit entry's.
pub async fn add_version(
    tx: &Writer,
    acting: Acting<'_>,
    model: &Model,
    version: &NewVersion<'_>,
    details: Value,
) -> ApiResult<i64> {
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
