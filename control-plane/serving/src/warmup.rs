//! Bringing a deployment from `pending` to `ready` or `failed`: load its component and
//! graph into the runtime, then record the outcome for the generation that asked.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::Serving;
use crate::db::Db;
use crate::deployments::{self, Failure};
use crate::error::Error;

pub use crate::domain::deployments::WarmUp;

/// Loads the version in the background and settles the deployment; the handle resolves
/// when the outcome is recorded (callers that `wait` await it).
pub fn spawn(db: Arc<Db>, serving: Serving, job: WarmUp) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut outcome = Ok(());
        for version in &job.versions {
            let model = serving.model_ref(&job.org_id, &job.model_name, version);
            match serving.runtime().warm_on(&model, job.backend).await {
                Ok(warmth) => {
                    tracing::info!(model = %job.model_name, version = version.version, ?warmth, "version loaded");
                }
                Err(error) => {
                    tracing::warn!(model = %job.model_name, version = version.version, %error, "deployment failed");
                    let api = Error::from(error.clone());
                    outcome = Err(Failure {
                        code: api.code().as_str().to_owned(),
                        message: format!("version {}: {error}", version.version),
                    });
                    break;
                }
            }
        }
        let conn = db.write().await;
        match deployments::settle(&conn, &job.model_id, job.generation, outcome).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(model = %job.model_name, "deployment changed during warm-up; outcome dropped")
            }
            Err(error) => tracing::error!(%error, "failed to record a deployment outcome"),
        }
    })
}
