//! The batch API's state changes as operations: creating a job (within the plan's storage,
//! its input still there) and cancelling one, each audited in its transaction like every
//! domain operation, so the REST API, the CLI and the dashboard share one copy.

use serde_json::json;

use super::Format;
use super::store::{self, BatchJob, NewJob};
use crate::blob::ObjectStore;
use crate::db::Writer;
use crate::domain::Acting;
use crate::error::{Error, ErrorCode, Result};
use crate::metering::storage;

/// A job to create: its model version and its input, already committed to the object
/// store (its blob is referenced from the moment the job row exists).
#[derive(Debug, Clone, Copy)]
pub struct JobRequest<'a> {
    pub model: &'a str,
    pub version: i64,
    pub format: Format,
    pub input_sha256: &'a str,
    pub input_bytes: i64,
    pub chunk_rows: i64,
    pub rows_total: i64,
    /// The plan's storage quota, which the input counts toward.
    pub storage_limit: Option<u64>,
}

/// Creates a job, audited as `batch_job.created`. Runs under the lock that deleting a
/// model's blobs takes, so the input cannot vanish between the check and the insert.
pub async fn create(
    tx: &Writer,
    acting: &Acting<'_>,
    blobs: &dyn ObjectStore,
    request: JobRequest<'_>,
) -> Result<BatchJob> {
    let input_blob = [(
        request.input_sha256,
        u64::try_from(request.input_bytes).unwrap_or(0),
    )];
    storage::check_room(tx, acting.org_id, request.storage_limit, &input_blob).await??;
    if !blobs
        .exists(request.input_sha256)
        .await
        .map_err(Error::internal)?
    {
        return Err(Error::internal(anyhow::anyhow!(
            "input blob {} was deleted concurrently",
            request.input_sha256
        )));
    }
    let id = store::insert(
        tx,
        &NewJob {
            org_id: acting.org_id,
            model: request.model,
            version: request.version,
            format: request.format,
            input_sha256: request.input_sha256,
            input_bytes: request.input_bytes,
            chunk_rows: request.chunk_rows,
            rows_total: request.rows_total,
            created_by: &acting.actor,
        },
    )
    .await?;
    acting
        .audit(
            tx,
            "batch_job.created",
            &format!("batch_job:{id}"),
            json!({
                "model": request.model,
                "version": request.version,
                "format": request.format,
                "rows_total": request.rows_total,
                "input_sha256": request.input_sha256,
            }),
        )
        .await?;
    store::get(tx, acting.org_id, &id)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("job vanished")))
}

/// Cancels a running or queued job, audited as `batch_job.cancelled`; a finished one is
/// `job_finished`, another organisation's `not_found`.
pub async fn cancel(tx: &Writer, acting: &Acting<'_>, id: &str) -> Result<BatchJob> {
    let job = store::get(tx, acting.org_id, id)
        .await?
        .ok_or_else(|| Error::not_found("batch job"))?;
    if !store::cancel(tx, acting.org_id, id).await? {
        return Err(Error::new(
            ErrorCode::JobFinished,
            format!("the batch job has already {}", job.status.as_str()),
        ));
    }
    acting
        .audit(
            tx,
            "batch_job.cancelled",
            &format!("batch_job:{id}"),
            json!({ "rows_done": job.rows_done, "rows_total": job.rows_total }),
        )
        .await?;
    store::get(tx, acting.org_id, id)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("job vanished")))
}
