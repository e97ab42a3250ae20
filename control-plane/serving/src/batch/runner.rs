//! The background task of a batch job: chunk after chunk, rows of a chunk concurrently,
//! results durable before progress, under this node's lease renewed by heartbeat; and
//! starting jobs no live node holds (at start, and then every third of the lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::Instrument;

use super::input::InputFile;
use super::store::{self, BatchJob, Chunk, JobFailure};
use super::{JobStatus, ResultLine, RowError};
use crate::access::Principal;
use crate::blob::ObjectStore;
use crate::blob::intents::Intent;
use crate::db::Db;
use crate::error::{Error, ErrorCode};
use crate::metering::storage;
use crate::pipeline::{Pipeline, Selector, Target};
use crate::tensors;

/// What the runner works with: storage, the jobs of this process and the serving pipeline
/// (the application state gives it these, `FromRef`).
#[derive(Clone)]
pub struct RunnerState {
    pub db: Arc<Db>,
    pub blobs: Arc<dyn ObjectStore>,
    /// Where result chunks are written before they are committed.
    pub staging: crate::blob::Staging,
    pub batch: super::BatchJobs,
    pub pipeline: Pipeline,
}

/// How often a row that found every execution slot busy is tried again before `overloaded`
/// becomes its error.
const OVERLOADED_RETRIES: u32 = 3;

/// Runs job `job_id` in the background once a job slot is free (unless this node runs it
/// already).
pub fn spawn(state: RunnerState, job_id: String) {
    if !state.batch.enter(&job_id) {
        return;
    }
    let span = tracing::info_span!("batch_job", job.id = %job_id);
    tokio::spawn(
        async move {
            if let Err(error) = run(&state, &job_id).await {
                // Progress so far is committed; the job resumes when its lease expires.
                tracing::error!(error = format!("{error:#}"), "batch job stopped");
            }
            state.batch.leave(&job_id);
        }
        .instrument(span),
    );
}

/// Starts every unfinished job no live node holds a lease on (jobs interrupted by a stop or
/// a crash continue from their last completed chunk), then keeps looking for such jobs
/// every third of the lease, in the background: a job whose node died is taken over.
/// Returns how many jobs it started now.
pub async fn resume(state: &RunnerState) -> anyhow::Result<usize> {
    let started = start_claimable(state).await?;
    if started > 0 {
        tracing::info!(jobs = started, "resuming batch jobs");
    }
    tokio::spawn(watch(state.clone()));
    Ok(started)
}

/// How often leases are renewed and expired ones looked for.
fn heartbeat_interval(state: &RunnerState) -> Duration {
    Duration::from_millis((state.batch.settings().lease_ms / 3).max(50))
}

fn lease_ms(state: &RunnerState) -> i64 {
    i64::try_from(state.batch.settings().lease_ms).unwrap_or(i64::MAX)
}

async fn start_claimable(state: &RunnerState) -> anyhow::Result<usize> {
    let ids = {
        let conn = state.db.read().await;
        store::claimable(&conn, state.batch.node_id(), crate::fleet::now_ms())
            .await
            .context("failed to list unfinished batch jobs")?
    };
    for id in &ids {
        spawn(state.clone(), id.clone());
    }
    Ok(ids.len())
}

async fn watch(state: RunnerState) {
    let mut ticks = tokio::time::interval(heartbeat_interval(&state));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match start_claimable(&state).await {
            Ok(0) => {}
            Ok(jobs) => tracing::info!(jobs, "taking over batch jobs whose lease expired"),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "failed to look for batch jobs to take over"
            ),
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews this node's lease on `job_id` until dropped; sets `lost` if another node has
/// taken the job over (this node's lease expired) or it finished.
fn heartbeat(state: &RunnerState, job_id: &str, lost: Arc<AtomicBool>) -> AbortOnDrop {
    let state = state.clone();
    let job_id = job_id.to_owned();
    AbortOnDrop(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(heartbeat_interval(&state));
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let renewed = {
                let conn = state.db.write_unmemoised().await;
                store::renew(
                    &conn,
                    &job_id,
                    state.batch.node_id(),
                    crate::fleet::now_ms(),
                    lease_ms(&state),
                )
                .await
            };
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    lost.store(true, Ordering::Release);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to renew a batch job's lease");
                }
            }
        }
    }))
}

async fn run(state: &RunnerState, job_id: &str) -> anyhow::Result<()> {
    let _slot = state.batch.slots().acquire_owned().await?;
    let job = {
        let conn = state.db.write_unmemoised().await;
        let claimed = store::claim(
            &conn,
            job_id,
            state.batch.node_id(),
            crate::fleet::now_ms(),
            lease_ms(state),
        )
        .await?;
        if !claimed {
            return Ok(()); // Cancelled while it waited, or another node runs it.
        }
        store::get_by_id(&conn, job_id)
            .await?
            .context("the job vanished")?
    };
    let lost = Arc::new(AtomicBool::new(false));
    let _heartbeat = heartbeat(state, job_id, Arc::clone(&lost));
    tracing::info!(
        rows_total = job.rows_total,
        chunks_done = job.chunks_done,
        "batch job running"
    );
    if let Err(failure) = run_chunks(state, &job, &lost).await {
        tracing::warn!(failure.code = %failure.code, failure.message = %failure.message, "batch job failed");
        let conn = state.db.write_unmemoised().await;
        store::fail(&conn, job_id, &failure).await?;
    }
    Ok(())
}

/// A failure of the whole job, from an API error (the model is gone, undeployed…).
fn job_failure(error: &Error) -> JobFailure {
    JobFailure {
        code: error.code().as_str().to_owned(),
        message: error.message().to_owned(),
    }
}

/// Fails the job with `org_suspended` while a platform operator has suspended its
/// organisation.
async fn refuse_if_suspended(state: &RunnerState, org_id: &str) -> Result<(), JobFailure> {
    let org = state
        .pipeline
        .lookups
        .org_by_id(org_id)
        .await
        .map_err(internal)?;
    if org.is_some_and(|org| org.suspended_at.is_some()) {
        return Err(job_failure(&Error::new(
            ErrorCode::OrgSuspended,
            "the organisation is suspended",
        )));
    }
    Ok(())
}

/// An internal failure: logged with its cause, recorded without details.
fn internal(error: impl Into<anyhow::Error>) -> JobFailure {
    job_failure(&Error::internal(error))
}

async fn run_chunks(
    state: &RunnerState,
    job: &BatchJob,
    lost: &AtomicBool,
) -> Result<(), JobFailure> {
    let caller = creator(job);
    let bytes = state
        .blobs
        .get(&job.input_sha256)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            internal(anyhow::anyhow!(
                "input blob {} is missing",
                job.input_sha256
            ))
        })?;
    let chunk_rows = usize::try_from(job.chunk_rows).map_err(internal)?;
    let total = usize::try_from(job.rows_total).map_err(internal)?;
    let file = {
        let target = state
            .pipeline
            .target(
                &job.org_id,
                &job.model,
                &Selector {
                    version: Some(job.version),
                    alias: None,
                },
            )
            .await
            .map_err(|e| job_failure(&e))?;
        InputFile::parse(bytes, job.format, &target.version.signature)
            .map(Arc::new)
            .map_err(|e| internal(anyhow::anyhow!("stored input no longer parses: {e}")))?
    };
    if file.len() != total {
        return Err(internal(anyhow::anyhow!(
            "stored input has {} rows, the job {total}",
            file.len()
        )));
    }
    let mut index = job.chunks_done;
    loop {
        // A chunk boundary: stop here if the job was cancelled (or finished elsewhere).
        let status = {
            let conn = state.db.read().await;
            store::get_by_id(&conn, &job.id)
                .await
                .map_err(internal)?
                .map(|j| j.status)
        };
        if status != Some(JobStatus::Running) {
            tracing::info!(?status, "batch job stopped at a chunk boundary");
            return Ok(());
        }
        if lost.load(Ordering::Acquire) {
            tracing::warn!("batch job taken over by another node; stopping here");
            return Ok(());
        }
        let start = usize::try_from(index).map_err(internal)? * chunk_rows;
        if start >= total {
            let conn = state.db.write_unmemoised().await;
            store::succeed(&conn, &job.id).await.map_err(internal)?;
            tracing::info!("batch job succeeded");
            return Ok(());
        }
        // A suspended organisation's inference stops here, as its API calls do.
        refuse_if_suspended(state, &job.org_id).await?;
        // Resolved once per chunk: an undeployed or deleted model stops the job here, and
        // the plan's current limits apply.
        let target = state
            .pipeline
            .target(
                &job.org_id,
                &job.model,
                &Selector {
                    version: Some(job.version),
                    alias: None,
                },
            )
            .await
            .map(Arc::new)
            .map_err(|e| job_failure(&e))?;
        let end = (start + chunk_rows).min(total);
        let lines: Vec<ResultLine> = futures_util::stream::iter(start..end)
            .map(|row| spawn_row(state, &caller, &target, &file, row))
            .buffered(state.batch.settings().row_concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for line in &lines {
            serde_json::to_writer(&mut out, line).map_err(internal)?;
            out.push(b'\n');
        }
        let staged = state
            .staging
            .write_bytes(Bytes::from(out))
            .await
            .map_err(internal)?;
        let chunk = Chunk {
            index,
            sha256: staged.sha256.clone(),
            rows: (end - start) as i64,
            errors: lines.iter().filter(|l| l.error.is_some()).count() as i64,
        };
        // Results count toward the plan's storage: a job that would go past it fails with
        // `quota_exceeded` before the chunk's blob is committed.
        let size = staged.size;
        let room = {
            let conn = state.db.write_unmemoised().await;
            storage::check_room(
                &conn,
                &job.org_id,
                target.plan.quotas.max_storage_bytes,
                &[(chunk.sha256.as_str(), size)],
            )
            .await
            .map_err(internal)?
        };
        if let Err(exceeded) = room {
            return Err(job_failure(&Error::from(exceeded)));
        }
        // Durable first, then counted: a crash in between leaves the intent, whose blob is
        // collected unless referenced, and this chunk to redo, never a counted chunk
        // without its results.
        let intent = Intent::record(&state.db, &[chunk.sha256.as_str()])
            .await
            .map_err(internal)?;
        if let Err(error) = state.blobs.commit(staged).await {
            intent.abandon(&state.db, &*state.blobs).await;
            return Err(internal(error));
        }
        let committed = {
            let conn = state.db.write_unmemoised().await;
            let committed =
                store::commit_chunk(&conn, &job.id, state.batch.node_id(), &chunk).await;
            if let Ok(true) = committed {
                storage::set_chunk_size(&conn, &job.id, chunk.index, size)
                    .await
                    .map_err(internal)?;
            }
            committed
        };
        let committed = match committed {
            Ok(true) => {
                intent.settle(&state.db).await;
                true
            }
            Ok(false) => {
                intent.abandon(&state.db, &*state.blobs).await;
                false
            }
            Err(error) => {
                intent.abandon(&state.db, &*state.blobs).await;
                return Err(internal(error));
            }
        };
        if !committed {
            tracing::info!(
                chunk = index,
                "batch job no longer running; chunk discarded"
            );
            return Ok(());
        }
        index += 1;
    }
}

/// The job's creator, whom its rows are metered to (`user:<id>` or `key:<id>`).
fn creator(job: &BatchJob) -> Principal {
    match job.created_by.strip_prefix("key:") {
        Some(id) => Principal::ApiKey {
            id: id.to_owned(),
            org_id: job.org_id.clone(),
            scopes: Vec::new(),
        },
        None => Principal::User {
            id: job
                .created_by
                .strip_prefix("user:")
                .unwrap_or(&job.created_by)
                .to_owned(),
            email: String::new(),
        },
    }
}

/// Runs one row as a task of its own: the runtime may run a short call in place, holding
/// its task's thread, so rows in one task would run one after another.
async fn spawn_row(
    state: &RunnerState,
    caller: &Principal,
    target: &Arc<Target>,
    file: &Arc<InputFile>,
    row: usize,
) -> Result<ResultLine, JobFailure> {
    let (state, caller) = (state.clone(), caller.clone());
    let (target, file) = (Arc::clone(target), Arc::clone(file));
    tokio::spawn(
        async move {
            let line = run_row(&state, &caller, &target, &file, row).await;
            if let Ok(line) = &line {
                state
                    .pipeline
                    .metrics
                    .record_batch_row(line.error.is_none());
            }
            line
        }
        .in_current_span(),
    )
    .await
    .map_err(|e| internal(anyhow::anyhow!("batch row {row} panicked: {e}")))?
}

/// Runs one row: its result line, or `Err` for a failure that is not the row's own.
async fn run_row(
    state: &RunnerState,
    caller: &Principal,
    target: &Target,
    file: &InputFile,
    row: usize,
) -> Result<ResultLine, JobFailure> {
    let row_error = |code: ErrorCode, message: String| ResultLine {
        row,
        outputs: None,
        error: Some(RowError {
            code: code.as_str().to_owned(),
            message,
        }),
        prediction_id: None,
    };
    let named = match file.row(row) {
        Ok(named) => named,
        Err(message) => return Ok(row_error(ErrorCode::InvalidInput, message)),
    };
    let mut retries = 0;
    loop {
        let inputs = match tensors::parse_inputs(&named, &target.version.signature) {
            Ok(inputs) => inputs,
            Err(e) => return Ok(row_error(ErrorCode::InvalidInput, e.to_string())),
        };
        match state.pipeline.run_noted(caller, target, inputs, None).await {
            Ok((prediction, id)) => {
                return Ok(ResultLine {
                    row,
                    outputs: Some(tensors::format_outputs(&prediction.outputs)),
                    error: None,
                    prediction_id: Some(id),
                });
            }
            Err(e) if e.code() == ErrorCode::Overloaded && retries < OVERLOADED_RETRIES => {
                retries += 1;
                tokio::time::sleep(Duration::from_secs(retries.into())).await;
            }
            // Already logged with its cause; the platform's fault, not the row's.
            Err(e) if e.code() == ErrorCode::Internal => return Err(job_failure(&e)),
            Err(e) => return Ok(row_error(e.code(), e.message().to_owned())),
        }
    }
}
