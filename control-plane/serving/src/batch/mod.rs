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
//!
//! Across nodes, a job runs on the node holding its lease, renewed by heartbeat every third
//! of `batch.lease_ms`; every node looks for jobs whose lease expired (their node died) as
//! often, and takes them over from their last committed chunk. So a job runs on one node
//! at a time, and a dead node's job continues elsewhere within about `1.3 × lease_ms`,
//! redoing at most its chunk in flight.

pub mod input;
pub mod jobs;
pub mod runner;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

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

/// The per-process side of batch jobs: settings, the slots that bound how many jobs run,
/// this node's id (the owner of its leases) and the jobs it runs now.
#[derive(Debug, Clone)]
pub struct BatchJobs {
    settings: BatchConfig,
    slots: Arc<Semaphore>,
    node_id: Arc<str>,
    running: Arc<Mutex<HashSet<String>>>,
}

impl BatchJobs {
    /// Job slots and settings from configuration, leasing jobs under a new random node id.
    pub fn new(settings: BatchConfig) -> Self {
        Self::on_node(settings, &uuid::Uuid::new_v4().to_string())
    }

    /// Like [`BatchJobs::new`], leasing jobs as node `node_id` (the fleet's registry id).
    pub fn on_node(settings: BatchConfig, node_id: &str) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(settings.max_running_jobs)),
            settings,
            node_id: node_id.into(),
            running: Arc::default(),
        }
    }

    /// The id this node's leases are held under.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Notes that this node runs job `id`; `false` if it already does.
    fn enter(&self, id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned())
    }

    fn leave(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
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
    /// How long a node's lease on a running job lasts without a heartbeat (milliseconds):
    /// how soon another node takes over the job of a node that died.
    #[serde(default = "default_batch_lease_ms")]
    pub lease_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_running_jobs: default_batch_jobs(),
            row_concurrency: default_batch_row_concurrency(),
            chunk_rows: default_batch_chunk_rows(),
            lease_ms: default_batch_lease_ms(),
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
fn default_batch_lease_ms() -> u64 {
    10_000
}
