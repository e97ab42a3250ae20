//! The live side of drift: the pipeline hands a sampled call's tensors to a bounded queue
//! ([`DriftTap::observe`]: never waits, drops and counts when full), and one background
//! task turns them into per-window profiles and writes them to the database, every
//! `flush_interval_secs`, on demand ([`DriftTap::flush`]) and at shutdown. A write that
//! fails (the database away) keeps the windows for the next one: profiles merge.
//!
//! Only watched models (with a reference or drift settings) are sampled: for every other
//! model the hot path does one map lookup under a read lock and clones nothing. A watched
//! model's calls are sampled at its `sample_rate`, then capped at the server's
//! `max_calls_per_sec` ([`CallCap`]): a busy model costs a bounded amount of profiling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    /// Sampling rate and cap by model id, for the watched models.
    watched: RwLock<HashMap<String, Sampling>>,
    /// The profiled calls per second per model (0: no cap).
    max_calls_per_sec: u32,
    /// The origin of [`CallCap`]'s clock.
    epoch: Instant,
}

/// How one watched model's calls are sampled.
struct Sampling {
    rate: f64,
    cap: CallCap,
}

/// At most `per_sec` calls per second, evenly spaced, with a burst of one second's worth
/// (the generic cell rate algorithm: one atomic, no lock on the hot path).
struct CallCap {
    /// Nanoseconds between two admitted calls; 0: no cap.
    interval_ns: u64,
    /// The theoretical time of the next admitted call, in nanoseconds since the epoch.
    next_ns: AtomicU64,
}

impl CallCap {
    fn new(per_sec: u32) -> Self {
        Self {
            interval_ns: if per_sec == 0 {
                0
            } else {
                1_000_000_000 / u64::from(per_sec)
            },
            next_ns: AtomicU64::new(0),
        }
    }

    /// Whether a call at `now_ns` is admitted (and if so, counts it).
    fn admit(&self, now_ns: u64) -> bool {
        if self.interval_ns == 0 {
            return true;
        }
        let burst_ns = 1_000_000_000;
        let mut next = self.next_ns.load(Ordering::Relaxed);
        loop {
            let base = next.max(now_ns.saturating_sub(burst_ns));
            if base > now_ns {
                return false;
            }
            match self.next_ns.compare_exchange_weak(
                next,
                base + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => next = seen,
            }
        }
    }
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
            max_calls_per_sec: config.max_calls_per_sec,
            epoch: Instant::now(),
        });
        let collector = Collector {
            db,
            shared: Arc::clone(&shared),
            models: HashMap::new(),
            windows: HashMap::new(),
            references: HashMap::new(),
            failing: false,
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

    /// Whether this call of `model_id` is profiled: the model is watched, the coin of its
    /// sampling rate says so, and the model is under the calls-per-second cap.
    pub fn sampled(&self, model_id: &str) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let Ok(watched) = shared.watched.read() else {
            return false;
        };
        let Some(sampling) = watched.get(model_id) else {
            return false;
        };
        if sampling.rate < 1.0 && rand::random::<f64>() >= sampling.rate {
            return false;
        }
        let now_ns = u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        sampling.cap.admit(now_ns)
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
    /// Whether the last write failed (logged once per run of failures).
    failing: bool,
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
        if let Ok(mut sampling) = self.shared.watched.write() {
            // A model still watched keeps its cap's state: a reload is no new burst.
            let mut previous = std::mem::take(&mut *sampling);
            *sampling = watched
                .iter()
                .map(|w| {
                    let cap = previous
                        .remove(&w.model_id)
                        .map_or_else(|| CallCap::new(self.shared.max_calls_per_sec), |s| s.cap);
                    let rate = w.settings.sample_rate;
                    (w.model_id.clone(), Sampling { rate, cap })
                })
                .collect();
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

    /// Writes the pending windows and collected reference rows in one transaction. On
    /// failure (the database away) they are kept and written with the next flush — the
    /// transaction wrote nothing, and profiles merge — unless more than
    /// [`MAX_PENDING_WINDOWS`] are waiting, which are then dropped (profiling never holds
    /// memory unboundedly).
    async fn flush(&mut self) {
        if self.windows.is_empty() && self.references.is_empty() {
            return;
        }
        let windows = std::mem::take(&mut self.windows);
        let references = std::mem::take(&mut self.references);
        let db = Arc::clone(&self.db);
        let (written, windows, references) = crate::db::on_blocking_thread(async move {
            let written = db
                .write_unmemoised()
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
                .await;
            (written, windows, references)
        })
        .await;
        let Err(error) = written else {
            if self.failing {
                tracing::info!("drift: windows are written again");
                self.failing = false;
            }
            return;
        };
        // Nothing was observed meanwhile: this task was here, awaiting the write.
        if windows.len() > MAX_PENDING_WINDOWS {
            tracing::warn!(
                ?error,
                windows = windows.len(),
                "drift: failed to write the windows; too many wait, dropped"
            );
            return;
        }
        if !self.failing {
            tracing::warn!(
                ?error,
                "drift: failed to write the windows; kept for the next try"
            );
            self.failing = true;
        }
        self.windows = windows;
        self.references = references;
    }
}

/// Windows kept in memory while the database fails, at most (one per watched model and
/// window: an hour's outage with hourly windows keeps two per model).
const MAX_PENDING_WINDOWS: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn the_cap_admits_its_rate_evenly_after_a_burst_of_one_second() {
        let cap = CallCap::new(50);
        // A call every millisecond for three seconds, from a start long after the epoch.
        let start = 10 * SECOND;
        let admitted: Vec<u64> = (0..3_000)
            .map(|ms| start + ms * 1_000_000)
            .filter(|&now| cap.admit(now))
            .collect();
        // One second's burst (50), then 50 a second.
        assert_eq!(admitted.len(), 50 + 3 * 50);
        let late: Vec<_> = admitted.iter().filter(|&&t| t >= start + SECOND).collect();
        let gaps: Vec<u64> = late.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&gap| gap == SECOND / 50), "{gaps:?}");
    }

    #[test]
    fn no_cap_admits_every_call() {
        let cap = CallCap::new(0);
        assert!((0..10_000).all(|n| cap.admit(n)));
    }
}
