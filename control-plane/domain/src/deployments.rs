//! Deployments: deploy a version, an alias to follow or a traffic split (with a shadow),
//! undeploy, roll back, promote, and follow an alias when it moves. Each change is audited
//! in the caller's transaction (but for an alias move, which the alias change audits) and
//! returns the [`WarmUp`] to start once that transaction commits.

use serde_json::json;
use wisp_host::OnnxBackend;

use super::Acting;
use crate::db::Writer;
use crate::error::{Error, ErrorCode, Result};
use crate::registry::{self, Model, ModelVersion};
use wisp_core::deployments::{self, Backend, Shadow, Target, Variant, validate};

/// What to warm up after a deployment changed: every version it serves or shadows.
#[derive(Debug, Clone)]
pub struct WarmUp {
    pub org_id: String,
    pub model_id: String,
    pub model_name: String,
    /// Every version the deployment serves or shadows.
    pub versions: Vec<ModelVersion>,
    pub generation: i64,
    /// The engine the deployment runs its graphs on.
    pub backend: OnnxBackend,
}

/// What a deploy asks for: exactly one of `version`, `alias` and `traffic`.
#[derive(Debug, Clone, Copy)]
pub struct Deploy<'a> {
    pub version: Option<i64>,
    pub alias: Option<&'a str>,
    pub traffic: Option<&'a [Variant]>,
    pub shadow: Option<&'a Shadow>,
    pub cache_ttl_secs: u32,
    pub backend: Backend,
}

/// Points `model`'s deployment at what `request` asks for.
pub async fn deploy(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    request: Deploy<'_>,
) -> Result<WarmUp> {
    let version = match (request.version, request.alias, request.traffic) {
        (Some(version), None, None) => version,
        (None, Some(alias), None) => registry::alias_target(tx, &model.id, alias)
            .await?
            .ok_or_else(|| Error::not_found("alias"))?,
        (None, None, Some(traffic)) => {
            validate(traffic, request.shadow).map_err(|e| Error::invalid(e.to_string()))?
        }
        _ => {
            return Err(Error::invalid(
                "give exactly one of `version`, `alias` and `traffic`",
            ));
        }
    };
    if let Some(shadow) = request.shadow {
        let only = [Variant {
            version,
            weight: 100,
        }];
        validate(&only, Some(shadow)).map_err(|e| Error::invalid(e.to_string()))?;
    }
    let target = Target {
        org_id: acting.org_id,
        model_id: &model.id,
        version,
        follow_alias: request.alias,
        cache_ttl_secs: request.cache_ttl_secs,
        traffic: request.traffic,
        shadow: request.shadow,
        backend: request.backend,
    };
    let job = change(tx, model, &target, "deployed", &acting.actor).await?;
    let details = json!({
        "version": version,
        "follow_alias": request.alias,
        "traffic": request.traffic,
        "shadow": request.shadow,
        "backend": request.backend,
    });
    acting
        .audit(
            tx,
            "model.deployed",
            &format!("model:{}", model.name),
            details,
        )
        .await?;
    Ok(job)
}

/// Stops serving `model`; its versions stay. `not_found` if it is not deployed.
pub async fn undeploy(tx: &Writer, acting: &Acting<'_>, model: &Model) -> Result<()> {
    if !deployments::remove(tx, acting.org_id, &model.id, &acting.actor).await? {
        return Err(Error::not_found("deployment"));
    }
    acting
        .audit(
            tx,
            "model.undeployed",
            &format!("model:{}", model.name),
            json!({}),
        )
        .await?;
    Ok(())
}

/// Goes back to `to`, or to the version served before the current one; the deployment
/// then pins it (it stops following an alias).
pub async fn rollback(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    to: Option<i64>,
) -> Result<WarmUp> {
    let current = deployments::get(tx, &model.id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let version = match to {
        Some(version) => version,
        None => deployments::previous_version(tx, &model.id, current.version)
            .await?
            .ok_or_else(|| Error::not_found("an earlier deployed version"))?,
    };
    let target = Target {
        org_id: acting.org_id,
        model_id: &model.id,
        version,
        follow_alias: None,
        cache_ttl_secs: current.cache_ttl_secs,
        traffic: None,
        shadow: None,
        backend: current.backend,
    };
    let job = change(tx, model, &target, "rolled_back", &acting.actor).await?;
    let details = json!({ "from": current.version, "to": version });
    acting
        .audit(
            tx,
            "model.rolled_back",
            &format!("model:{}", model.name),
            details,
        )
        .await?;
    Ok(job)
}

/// Makes `version` the only one served, ending any traffic split and shadow.
pub async fn promote(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    version: i64,
) -> Result<WarmUp> {
    let current = deployments::get(tx, &model.id)
        .await?
        .ok_or_else(|| Error::not_found("deployment"))?;
    let target = Target {
        org_id: acting.org_id,
        model_id: &model.id,
        version,
        follow_alias: None,
        cache_ttl_secs: current.cache_ttl_secs,
        traffic: None,
        shadow: None,
        backend: current.backend,
    };
    let job = change(tx, model, &target, "promoted", &acting.actor).await?;
    let details = json!({
        "from": current.version,
        "to": version,
        "traffic": current.traffic,
        "shadow": current.shadow,
    });
    acting
        .audit(
            tx,
            "model.promoted",
            &format!("model:{}", model.name),
            details,
        )
        .await?;
    Ok(job)
}

/// After `alias` of `model` moved (inside the same transaction): if the deployment follows
/// that alias, point it at the alias's new version and return the warm-up. Audited by the
/// alias change that caused it.
pub async fn follow_alias(
    tx: &Writer,
    acting: &Acting<'_>,
    model: &Model,
    alias: &str,
) -> Result<Option<WarmUp>> {
    let Some(current) = deployments::get(tx, &model.id).await? else {
        return Ok(None);
    };
    if current.follow_alias.as_deref() != Some(alias) {
        return Ok(None);
    }
    let version = registry::alias_target(tx, &model.id, alias)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::AliasInUse, "a deployment follows this alias"))?;
    let target = Target {
        org_id: acting.org_id,
        model_id: &model.id,
        version,
        follow_alias: Some(alias),
        cache_ttl_secs: current.cache_ttl_secs,
        traffic: None,
        shadow: current.shadow.as_ref(),
        backend: current.backend,
    };
    change(tx, model, &target, "alias_moved", &acting.actor)
        .await
        .map(Some)
}

/// Points the deployment at `target` (checking every version it names exists) and returns
/// the warm-up to start once the transaction commits.
async fn change(
    tx: &Writer,
    model: &Model,
    target: &Target<'_>,
    action: &str,
    actor: &str,
) -> Result<WarmUp> {
    let mut numbers = vec![target.version];
    numbers.extend(target.traffic.unwrap_or_default().iter().map(|v| v.version));
    numbers.extend(target.shadow.map(|s| s.version));
    let mut versions: Vec<ModelVersion> = Vec::new();
    for number in numbers {
        if versions.iter().any(|v| v.version == number) {
            continue;
        }
        versions.push(
            registry::get_version(tx, &model.id, number)
                .await?
                .ok_or_else(|| Error::not_found(&format!("version {number}")))?,
        );
    }
    let generation = deployments::set(tx, target, action, actor).await?;
    Ok(WarmUp {
        org_id: target.org_id.to_owned(),
        model_id: model.id.clone(),
        model_name: model.name.clone(),
        versions,
        generation,
        backend: target.backend.onnx(),
    })
}
