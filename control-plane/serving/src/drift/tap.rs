//! The live side of drift: the pipeline hands a sampled call's tensors to a bounded queue
//! ([`DriftTap::observe`]: never waits, drops and counts when full), and one background
//! task turns them into per-window profiles and writes them to the database, every
//! `flush_interval_secs`, on demand ([`DriftTap::flush`]) and at shutdown.
//!
//! Only watched models (with a reference or drift settings) are sampled: for every other
//! model the hot path does one map lookup under a read lock and clones nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use wisp_host::NamedTensor;

use super::columns::{self, Column};
use super::profile::Profile;
use super::settings::DriftServerConfig;
use super::store::{self, Watch};
use crate::db::Db;

/// One call handed over for profiling.
struct Observation {
    org_id: String,
    model_id: String,
    at: i64,
    inputs: Vec<NamedTensor>,
    outputs: Vec<NamedTensor>,
}

enum Message {
    Observe(Observation),
    /// Write every pending window now.
    Flush(oneshot::Sender<()>),
    /// Flush, then read the watched models again.
    Refresh(oneshot::Sender<()>),
}

/// The hot path's handle; cheap to clone. The default is off.
#[derive(Clone, Default)]
pub struct DriftTap {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for DriftTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftTap")
            .field("enabled", &self.shared.is_some())
            .field("dropped", &self.dropped())
            .finish()
    }
}

struct Shared {
    sender: mpsc::Sender<Message>,
    dropped: AtomicU64,
    /// Sampling rate by model id, for the watched models.
    watched: RwLock<HashMap<String, f64>>,
}

impl DriftTap {
    /// Starts the background task over `db` (or returns a tap that does nothing when
    /// `config.enabled` is off). Must be called inside a tokio runtime.
    pub fn start(db: Arc<Db>, config: &DriftServerConfig) -> Self {
        if !config.enabled {
            return Self::default();
        }
        let (sender, receiver) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            sender,
            dropped: AtomicU64::new(0),
            watched: RwLock::default(),
        });
        let collector = Collector {
            db,
            shared: Arc::clone(&shared),
            models: HashMap::new(),
            windows: HashMap::new(),
            references: HashMap::new(),
        };
        tokio::spawn(collector.run(
            receiver,
            Duration::from_secs(config.flush_interval_secs.max(1)),
            Duration::from_secs(config.refresh_interval_secs.max(1)),
        ));
        Self {
            shared: Some(shared),
        }
    }

    /// Whether this call of `model_id` is profiled (the model is watched, and the coin
    /// of its sampling rate says so).
    pub fn sampled(&self, model_id: &str) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let rate = match shared.watched.read() {
            Ok(watched) => watched.get(model_id).copied(),
            Err(_) => None,
        };
        match rate {
            Some(rate) if rate >= 1.0 => true,
            Some(rate) => rand::random::<f64>() < rate,
            None => false,
        }
    }

    /// Queues a sampled call's tensors; drops them (counted) if the queue is full.
    pub fn observe(
        &self,
        org_id: &str,
        model_id: &str,
        inputs: Vec<NamedTensor>,
        outputs: Vec<NamedTensor>,
    ) {
        let Some(shared) = &self.shared else {
            return;
        };
        let observation = Observation {
            org_id: org_id.to_owned(),
            model_id: model_id.to_owned(),
            at: crate::db::now(),
            inputs,
            outputs,
        };
        if shared
            .sender
            .try_send(Message::Observe(observation))
            .is_err()
        {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls dropped from profiling because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// Writes every call queued so far to the database.
    pub async fn flush(&self) {
        self.ask(Message::Flush).await;
    }

    /// Flushes, then reads the watched models and their settings again: after a change
    /// of a reference or settings, so that it applies to the next call.
    pub async fn refresh(&self) {
        self.ask(Message::Refresh).await;
    }

    async fn ask(&self, message: impl FnOnce(oneshot::Sender<()>) -> Message) {
        let Some(shared) = &self.shared else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if shared.sender.send(message(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// A window being filled: its organisation, length and profile.
struct Pending {
    org_id: String,
    secs: i64,
    profile: Profile,
}

/// The background task's state.
struct Collector {
    db: Arc<Db>,
    shared: Arc<Shared>,
    models: HashMap<String, Watch>,
    /// By (model id, window start).
    windows: HashMap<(String, i64), Pending>,
    /// Rows collected for `from_calls` references, by model id.
    references: HashMap<String, Profile>,
}

impl Collector {
    async fn run(
        mut self,
        mut receiver: mpsc::Receiver<Message>,
        flush_every: Duration,
        refresh_every: Duration,
    ) {
        self.reload().await;
        let mut flush = tokio::time::interval(flush_every);
        let mut refresh = tokio::time::interval(refresh_every);
        loop {
            tokio::select! {
                message = receiver.recv() => match message {
                    Some(Message::Observe(observation)) => self.observe(observation),
                    Some(Message::Flush(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                    }
                    Some(Message::Refresh(done)) => {
                        self.flush().await;
                        self.reload().await;
                        let _ = done.send(());
                    }
                    None => {
                        self.flush().await;
                        return;
                    }
                },
                _ = flush.tick() => self.flush().await,
                _ = refresh.tick() => self.reload().await,
            }
        }
    }

    /// Reads the watched models; on failure keeps the ones it had.
    async fn reload(&mut self) {
        let conn = self.db.read().await;
        let watched = match store::watched(&conn).await {
            Ok(watched) => watched,
            Err(error) => {
                tracing::warn!(?error, "drift: failed to read the watched models");
                return;
            }
        };
        drop(conn);
        let rates = watched
            .iter()
            .map(|w| (w.model_id.clone(), w.settings.sample_rate))
            .collect();
        if let Ok(mut shared) = self.shared.watched.write() {
            *shared = rates;
        }
        self.models = watched
            .into_iter()
            .map(|w| (w.model_id.clone(), w))
            .collect();
    }

    fn observe(&mut self, observation: Observation) {
        let Some(watch) = self.models.get_mut(&observation.model_id) else {
            return;
        };
        let names = &watch.columns;
        let mut inputs = columns::columns(&observation.inputs, names);
        let mut outputs = columns::columns(&observation.outputs, names);
        let rows = inputs
            .iter()
            .chain(&outputs)
            .map(|c| c.values.len())
            .max()
            .unwrap_or(0);
        if rows == 0 {
            return;
        }
        let mut rng = rand::thread_rng();
        let secs = watch.settings.window_secs.max(1) as i64;
        let start = observation.at - observation.at.rem_euclid(secs);
        self.windows
            .entry((observation.model_id.clone(), start))
            .or_insert_with(|| Pending {
                org_id: observation.org_id.clone(),
                secs,
                profile: Profile::default(),
            })
            .profile
            .add(rows as u64, &inputs, &outputs, &mut rng);
        if let Some(remaining) = watch.collecting.as_mut().filter(|r| **r > 0) {
            let take = rows.min(*remaining as usize);
            *remaining -= take as u64;
            let cut = |columns: &mut Vec<Column>| {
                columns.iter_mut().for_each(|c| c.values.truncate(take));
            };
            cut(&mut inputs);
            cut(&mut outputs);
            self.references
                .entry(observation.model_id)
                .or_default()
                .add(take as u64, &inputs, &outputs, &mut rng);
        }
    }

    /// Writes the pending windows and collected reference rows in one transaction; on
    /// failure they are logged and dropped (profiling never holds memory unboundedly).
    async fn flush(&mut self) {
        if self.windows.is_empty() && self.references.is_empty() {
            return;
        }
        let windows = std::mem::take(&mut self.windows);
        let references = std::mem::take(&mut self.references);
        let db = Arc::clone(&self.db);
        let written = crate::db::on_blocking_thread(async move {
            db.write_unmemoised()
                .await
                .transaction(async |tx| -> crate::error::Result<()> {
                    for ((model_id, start), pending) in &windows {
                        store::merge_window(
                            tx,
                            &pending.org_id,
                            model_id,
                            *start,
                            pending.secs,
                            &pending.profile,
                        )
                        .await?;
                    }
                    for (model_id, profile) in &references {
                        store::merge_collected(tx, model_id, profile).await?;
                    }
                    Ok(())
                })
                .await
        })
        .await;
        if let Err(error) = written {
            tracing::warn!(?error, "drift: failed to write the windows");
        }
    }
}
