//! The prediction log: what each call answered, kept per prediction id for ground-truth
//! feedback, written off the request path.
//!
//! A call hands its record to a bounded channel and goes on; one background writer stores
//! what arrived in batches, each batch one transaction. When the channel is full (the
//! database is far behind) the record is dropped and counted, never waited for: the log
//! must not slow or fail a call. An hourly task deletes records older than the retention
//! window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::domain::ground_truth::{PredictionRecord, rows};

/// Records written per transaction, at most.
const BATCH: usize = 256;

/// How the log keeps records.
#[derive(Debug, Clone, Copy)]
pub struct PredictionLogSettings {
    /// Records older than this are deleted.
    pub retention: Duration,
    /// Records waiting for the writer, at most; more are dropped.
    pub queue: usize,
}

impl Default for PredictionLogSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 24 * 3600),
            queue: 10_000,
        }
    }
}

enum Message {
    Record(PredictionRecord),
    /// Answered once everything sent before it is stored.
    Flush(oneshot::Sender<()>),
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct PredictionLog {
    sender: Option<mpsc::Sender<Message>>,
    dropped: Arc<AtomicU64>,
}

impl PredictionLog {
    /// Starts the writer and the hourly pruning over `db`. Must be called inside a tokio
    /// runtime.
    pub fn start(db: Arc<Db>, settings: PredictionLogSettings) -> Self {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(Arc::clone(&db), receiver, Arc::clone(&dropped)));
        tokio::spawn(prune_hourly(Arc::downgrade(&db), settings.retention));
        Self {
            sender: Some(sender),
            dropped,
        }
    }

    /// A log that keeps nothing.
    pub fn disabled() -> Self {
        Self {
            sender: None,
            dropped: Arc::default(),
        }
    }

    /// Hands `record` to the writer; drops it if the queue is full.
    pub fn record(&self, record: PredictionRecord) {
        let Some(sender) = &self.sender else { return };
        if sender.try_send(Message::Record(record)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "prediction log queue full: records dropped");
            }
        }
    }

    /// Records not stored since the start: the queue was full, or more than
    /// [`MAX_WAITING`] waited for a failing database.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record handed over before this call is stored (or failed to be).
    pub async fn flush(&self) {
        let Some(sender) = &self.sender else { return };
        let (done, stored) = oneshot::channel();
        if sender.send(Message::Flush(done)).await.is_ok() {
            let _ = stored.await;
        }
    }
}

/// Records kept while the database fails, at most; older ones are dropped (and counted)
/// beyond. About 200 bytes each.
const MAX_WAITING: usize = 50_000;
/// How often records kept after a failure are tried again when no new one arrives.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Stores what arrives, a batch per transaction. When the database fails (an outage), the
/// batch is kept and tried again with the next records, or after [`RETRY_EVERY`], up to
/// [`MAX_WAITING`] records: a short outage loses no prediction, a long one the oldest
/// (counted). A run of failures is logged once, and the recovery once. A flush answers
/// after one attempt, stored or not.
async fn write(db: Arc<Db>, mut receiver: mpsc::Receiver<Message>, dropped: Arc<AtomicU64>) {
    let mut waiting: Vec<PredictionRecord> = Vec::new();
    let mut flushes = Vec::new();
    let mut failing = false;
    loop {
        let first = if waiting.is_empty() {
            receiver.recv().await
        } else {
            tokio::select! {
                message = receiver.recv() => message,
                () = tokio::time::sleep(RETRY_EVERY) => None,
            }
        };
        let closed = first.is_none() && receiver.is_closed();
        let mut next = first;
        let mut taken = 0;
        while let Some(message) = next.take() {
            match message {
                Message::Record(record) => {
                    waiting.push(record);
                    taken += 1;
                }
                Message::Flush(done) => flushes.push(done),
            }
            if taken < BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if !waiting.is_empty() {
            // No memo holds predictions: the hot path's memoised rows stay fresh. The
            // commit waits for `fsync`: not on an executor thread.
            let (stored, kept) = crate::db::on_blocking_thread({
                let (db, batch) = (Arc::clone(&db), std::mem::take(&mut waiting));
                async move {
                    let stored = db
                        .write_unmemoised()
                        .await
                        .transaction(async |tx| rows::insert(tx, &batch).await)
                        .await;
                    (stored, batch)
                }
            })
            .await;
            match stored {
                Ok(_) if failing => {
                    tracing::info!(
                        records = kept.len(),
                        "the prediction log stores records again"
                    );
                    failing = false;
                }
                Ok(_) => {}
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, records = kept.len(), "failed to store predictions; kept to try again");
                        failing = true;
                    }
                    waiting = kept;
                    if waiting.len() > MAX_WAITING {
                        let excess = waiting.len() - MAX_WAITING;
                        waiting.drain(..excess);
                        dropped.fetch_add(excess as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

async fn prune_hourly(db: std::sync::Weak<Db>, retention: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let Some(db) = db.upgrade() else { return };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(retention_ms);
        let pruned = db
            .write_unmemoised()
            .await
            .transaction(async |tx| rows::prune(tx, before).await)
            .await;
        match pruned {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned predictions past retention"),
            Err(error) => tracing::error!(%error, "failed to prune predictions"),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}
