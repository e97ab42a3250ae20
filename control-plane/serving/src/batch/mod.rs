//! Batch inference: a file of rows (NDJSON or CSV) run through a model in the background,
//! with progress, cancellation, per-row errors and an NDJSON result file.
//!
//! - [`input`]: reading an input file into rows of named inputs (pure).
//! - [`jobs`]: creating and cancelling a job, audited (the operations every edge uses).
//! - [`store`]: jobs and their completed chunks in libSQL.
//! - [`runner`]: the background task of a job, and resuming unfinished jobs at start.
//!
//! A job pins a model version when it is created and stores its input in the object store.
//! Rows run in chunks of `chunk_rows`; a chunk's result lines become a blob first, and only
//! then do the chunk's row and the job's progress commit, together. A restart therefore
//! redoes at most the chunk in flight and never writes a row twice; the result file is the
//! chunks' blobs concatenated in order. Every row is one call through the pipeline's
//! `target` + `run` ([`crate::pipeline`]), the path of every inference protocol.

pub mod input;
pub mod jobs;
pub mod runner;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

pub use store::{BatchJob, JobFailure};

use crate::tensors::JsonTensor;

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object of named inputs per line.
    Ndjson,
    /// A header line, then comma-separated numbers.
    Csv,
}

impl Format {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
        }
    }

    /// The format named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The format a `Content-Type` announces, if any.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/jsonlines" => Some(Self::Ndjson),
            "text/csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a free job slot.
    Queued,
    /// Rows are being run (or will be again, after a restart).
    Running,
    /// Every row has a result (outputs or that row's error).
    Succeeded,
    /// The job stopped as a whole; `failure` says why.
    Failed,
    /// Cancelled; it stopped at a chunk boundary, and the results done so far remain.
    Cancelled,
}

impl JobStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// One line of a result file: a row's outputs, or that row's error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResultLine {
    /// The row's index in the input, from 0 (blank lines and a CSV header not counted).
    pub row: usize,
    /// Named outputs, each `{dtype, shape, data}` as in a predict response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<BTreeMap<String, JsonTensor>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RowError>,
    /// The row's call's prediction id (its usage event id), for ground-truth feedback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction_id: Option<String>,
}

/// Why a row has no outputs: the error a predict call with that row would have answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowError {
    /// A stable error code (`docs/errors.md`), e.g. `invalid_input`.
    pub code: String,
    pub message: String,
}

/// The per-process side of batch jobs: settings and the slots that bound how many jobs run.
#[derive(Debug, Clone)]
pub struct BatchJobs {
    settings: BatchConfig,
    slots: Arc<Semaphore>,
}

impl BatchJobs {
    /// Job slots and settings from configuration.
    pub fn new(settings: BatchConfig) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(settings.max_running_jobs)),
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BatchConfig {
        &self.settings
    }

    /// The slots a job holds while it runs. Tests hold them all to keep jobs `queued`.
    pub fn slots(&self) -> Arc<Semaphore> {
        Arc::clone(&self.slots)
    }
}

/// Batch inference jobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Jobs this process runs at once; more wait their turn (`queued`).
    #[serde(default = "default_batch_jobs")]
    pub max_running_jobs: usize,
    /// Rows of one job in flight at once, each a call under the organisation's plan limits.
    #[serde(default = "default_batch_row_concurrency")]
    pub row_concurrency: usize,
    /// Rows per chunk: the unit of progress, of durable results and of redone work after a
    /// restart. Fixed per job when it is created.
    #[serde(default = "default_batch_chunk_rows")]
    pub chunk_rows: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_running_jobs: default_batch_jobs(),
            row_concurrency: default_batch_row_concurrency(),
            chunk_rows: default_batch_chunk_rows(),
        }
    }
}

fn default_batch_jobs() -> usize {
    2
}
fn default_batch_row_concurrency() -> usize {
    4
}
fn default_batch_chunk_rows() -> u32 {
    64
}
