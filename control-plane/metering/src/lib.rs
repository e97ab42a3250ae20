//! Usage metering: one durable event per inference call, quotas, storage accounting and
//! invoices.
//!
//! Every inference protocol runs a call through [`Metering::admit`] (the calls quota: a
//! slot is reserved or the call is refused with `quota_exceeded`) and
//! [`MeteredCall::finish`] (the event is written to the [`outbox`] before the response
//! goes out; the slot is committed if the call is billed). A background drainer moves
//! events from the outbox into libSQL ([`store`]), idempotently by event id, maintaining
//! hourly and daily rollups; at start, whatever a previous process left in the outbox is
//! replayed before serving.
//!
//! - [`event`]: the usage event. [`compute`]: the compute unit.
//! - [`quota`]: hard quotas and soft-limit warnings. [`storage`]: GB-months.
//! - [`invoice`]: line items; [`billing`]: invoices of periods from the database.
//! - [`export`]: CSV and Stripe meter events. [`context`]: request headers in and out.
//! - [`idempotency`]: `Idempotency-Key` claims and stored responses for replay.
//! - [`analytics`]: per-version minute, hour and day rollups of the calls (latency
//!   sketches, errors by code, cold starts) and the query over them.

// The layers below, under the names the modules use (`crate::orgs`, `crate::db`, …).
use wisp_core::{access, error, plans};
use wisp_storage::db;

pub mod analytics;
pub mod billing;
pub mod compute;
pub mod context;
pub mod event;
pub mod export;
mod handoff;
pub mod idempotency;
pub mod invoice;
pub mod outbox;
pub mod period;
pub mod quota;
pub mod storage;
pub mod store;
pub mod window;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wisp_host::UsageRecord;

use crate::db::{Db, DbError};
use crate::error::{Error, ErrorCode};
use crate::plans::Plan;
pub use event::{Caller, UsageEvent, Variant};
use handoff::Handoff;
use outbox::{Drained, Outbox, OutboxError};
use period::Period;
pub use quota::QuotaExceeded;
use quota::{CallQuotas, QuotaKind, Reservation};

/// Most events the drainer inserts in one transaction.
const DRAIN_BATCH: usize = 1_024;
/// How long the drainer waits for more events before a transaction (a flush cuts it short).
const DRAIN_LINGER: Duration = Duration::from_millis(250);

/// Errors of metering.
#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Not transparent: the `DbError` must be in the error's chain, where
    /// `Error::internal` finds an outage or a busy database and answers `503`, not `500`.
    #[error("metering: {0}")]
    Db(#[from] DbError),
}

/// Why a call was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error(transparent)]
    Failed(#[from] MeteringError),
}

/// The metering of the process: cheap to clone.
#[derive(Clone)]
pub struct Metering {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    outbox: Outbox,
    quotas: Arc<CallQuotas>,
    db: Arc<Db>,
}

/// What a call is about, as resolved before it runs.
#[derive(Debug, Clone, Copy)]
pub struct CallSubject<'a> {
    pub org_id: &'a str,
    pub model_id: &'a str,
    pub model_name: &'a str,
    pub version: i64,
    pub variant: Variant,
}

impl Metering {
    /// Opens the outbox in `dir`, replays what a previous process left in it into the
    /// database, and starts the drainer and the hourly storage sampler.
    pub async fn start(dir: &Path, fsync: bool, db: Arc<Db>) -> Result<Self, MeteringError> {
        let (outbox, leftovers, drained) = Outbox::open(dir, fsync, DRAIN_BATCH)?;
        let mut replayed = 0;
        for chunk in leftovers.events.chunks(DRAIN_BATCH) {
            replayed += store::insert(&*db.write_unmemoised().await, chunk).await?;
        }
        for segment in &leftovers.segments {
            std::fs::remove_file(segment).map_err(|source| OutboxError::Io {
                path: segment.clone(),
                source,
            })?;
        }
        if !leftovers.events.is_empty() {
            tracing::info!(
                found = leftovers.events.len(),
                replayed,
                "replayed usage events left in the outbox"
            );
        }
        let quotas = Arc::new(CallQuotas::default());
        tokio::spawn(drain(drained, Arc::clone(&db)));
        tokio::spawn(hourly(Arc::clone(&db)));
        Ok(Self {
            inner: Some(Arc::new(Inner { outbox, quotas, db })),
        })
    }

    /// How many live nodes share the database: the calls quota is claimed in blocks sized
    /// for them ([`quota`]).
    pub fn set_fleet_size(&self, nodes: u32) {
        if let Some(inner) = &self.inner {
            inner.quotas.set_fleet_size(nodes);
        }
    }

    /// Gives the calls quota this node holds back to the fleet (a clean stop). Returns how
    /// many calls.
    pub async fn give_back_quota(&self) -> Result<u64, MeteringError> {
        match &self.inner {
            Some(inner) => Ok(inner.quotas.give_back(&inner.db).await?),
            None => Ok(0),
        }
    }

    /// No metering at all: no events, no quotas. Only for measuring metering's own cost.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Admits a call under `plan`'s calls quota, reserving its slot. A refused call is
    /// itself recorded (outcome `quota_exceeded`, not billed).
    pub async fn admit(
        &self,
        caller: Caller,
        subject: CallSubject<'_>,
        plan: &Plan,
    ) -> Result<MeteredCall, Refusal> {
        let started = Instant::now();
        let event = new_event(caller, subject);
        let Some(inner) = &self.inner else {
            return Ok(MeteredCall {
                inner: None,
                event,
                reservation: None,
                started,
                limit: None,
                soft_limit_percent: 100,
            });
        };
        let period = Period::containing(event.at_ms.div_euclid(1_000));
        let limit = plan.quotas.calls_per_month;
        let reserved = inner
            .quotas
            .reserve(&inner.db, subject.org_id, period, limit, || async {
                let conn = inner.db.read().await;
                Ok::<_, DbError>(
                    store::totals(&conn, subject.org_id, period.start, period.end)
                        .await?
                        .billed_calls,
                )
            })
            .await
            .map_err(MeteringError::from)?;
        match reserved {
            Ok(reservation) => Ok(MeteredCall {
                inner: Some(Arc::clone(inner)),
                event,
                reservation: Some(reservation),
                started,
                limit,
                soft_limit_percent: plan.quotas.soft_limit_percent,
            }),
            Err(exceeded) => {
                let mut event = event;
                event.outcome = crate::error::ErrorCode::QuotaExceeded.as_str().to_owned();
                event.wall_us = micros(started.elapsed());
                let id = event.id.clone();
                inner
                    .outbox
                    .append(event)
                    .await
                    .map_err(MeteringError::from)?;
                context::note(&id, None, false);
                Err(exceeded.into())
            }
        }
    }

    /// Usage events in the outbox not yet taken into the database (for metrics; the
    /// drainer takes them every 250 ms or sooner).
    pub fn backlog(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.outbox.backlog())
    }

    /// Waits until every event recorded so far is in the database.
    pub async fn flush(&self) -> Result<(), MeteringError> {
        match &self.inner {
            Some(inner) => Ok(inner.outbox.flush().await?),
            None => Ok(()),
        }
    }
}

/// A call admitted by [`Metering::admit`], to be finished exactly once. Dropping it
/// unfinished (the request was cancelled) releases its quota slot and records nothing.
#[must_use = "a metered call must be finished to record its event"]
pub struct MeteredCall {
    inner: Option<Arc<Inner>>,
    event: UsageEvent,
    reservation: Option<Reservation>,
    started: Instant,
    limit: Option<u64>,
    soft_limit_percent: u8,
}

impl MeteredCall {
    /// The id of the call's usage event.
    pub fn id(&self) -> &str {
        &self.event.id
    }

    /// Records the call: `outcome` is `Ok` or the error code the caller gets; `usage` is
    /// the runtime's record when the model ran; `cache_hit` when a stored result was served
    /// instead (billed as a call, with no compute). The event is in the outbox when this
    /// returns `Ok`; if it cannot be written the caller must not be told the call succeeded.
    pub async fn finish(
        mut self,
        outcome: Result<(), crate::error::ErrorCode>,
        usage: Option<&UsageRecord>,
        cache_hit: bool,
    ) -> Result<(), MeteringError> {
        let Some(inner) = self.inner.take() else {
            return Ok(());
        };
        let mut event = self.event;
        match usage {
            Some(usage) => event.measure(usage),
            None => event.wall_us = micros(self.started.elapsed()),
        }
        event.cache_hit = cache_hit;
        if cache_hit {
            event.compute_units = 0;
        }
        event.outcome = match outcome {
            Ok(()) => event::OK.to_owned(),
            Err(code) => code.as_str().to_owned(),
        };
        let billable = event.billable();
        let id = event.id.clone();
        inner.outbox.append(event).await?;
        // No await between the append and the commit: a cancelled request cannot leave a
        // billed event whose slot was given back.
        let warning = match (billable, self.reservation.take()) {
            (true, Some(reservation)) => {
                let used = reservation.commit();
                quota::soft_warning(
                    QuotaKind::CallsPerMonth,
                    used,
                    self.limit,
                    self.soft_limit_percent,
                )
            }
            _ => None,
        };
        context::note(&id, warning, true);
        Ok(())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A new event for a call, with a random id: every call that runs is billed once. A retry
/// under an `Idempotency-Key` that must not run again never gets here: `api::idempotency`
/// replays the first call's response instead.
fn new_event(caller: Caller, subject: CallSubject<'_>) -> UsageEvent {
    UsageEvent {
        id: uuid::Uuid::new_v4().to_string(),
        org_id: subject.org_id.to_owned(),
        caller,
        model_id: subject.model_id.to_owned(),
        model_name: subject.model_name.to_owned(),
        version: subject.version,
        variant: subject.variant,
        outcome: event::OK.to_owned(),
        cache_hit: false,
        compute_units: 0,
        fuel: 0,
        wall_us: 0,
        inference_us: 0,
        peak_memory_bytes: 0,
        bytes_in: 0,
        bytes_out: 0,
        at_ms: i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX),
        cold_start: false,
        cold_load_us: 0,
    }
}

/// Moves events from the outbox into the database in batches, in order; deletes sealed
/// segments once their events are committed; answers flushes.
async fn drain(drained: Arc<Handoff>, db: Arc<Db>) {
    // Linger unless someone waits: every commit syncs the database, so fewer, bigger
    // transactions cost less per event.
    while let Some(items) = drained.next_batch(DRAIN_LINGER).await {
        // The commit waits for `fsync`, and a deletion for the file system: neither may
        // hold up an executor thread.
        crate::db::on_blocking_thread(commit_batch(Arc::clone(&db), items)).await;
    }
}

/// The longest wait between two attempts to store a batch while the database fails.
const DRAIN_RETRY_MAX: Duration = Duration::from_secs(2);

/// Stores a batch's events, retrying until they are stored (they stay in the outbox file
/// meanwhile, and they are the bill); then deletes the segments and answers the flushes
/// that came after them.
async fn commit_batch(db: Arc<Db>, items: Vec<Drained>) {
    let mut events = Vec::new();
    let mut after = Vec::new();
    for item in items {
        match item {
            Drained::Event(event) => events.push(event),
            other => after.push(other),
        }
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        // Usage events and rollups are nothing a memo holds: the memoised rows stay valid.
        let conn = db.write_unmemoised().await;
        match store::insert(&conn, &events).await {
            Ok(_) => break,
            Err(error) => {
                drop(conn);
                if error.is_unavailable() {
                    // An outage: the events wait in the outbox; `/healthz` says so too.
                    tracing::warn!(error = %error, events = events.len(), "the database is unavailable; usage events wait in the outbox");
                } else {
                    tracing::error!(error = %error, events = events.len(), "failed to store usage events; retrying");
                }
                tokio::time::sleep(backoff).await;
                // Short: events wait in the outbox meanwhile, and a database back from a
                // restart should see them within a couple of seconds.
                backoff = (backoff * 2).min(DRAIN_RETRY_MAX);
            }
        }
    }
    for item in after {
        match item {
            Drained::Sealed(path) => {
                if let Err(error) = std::fs::remove_file(&path) {
                    tracing::warn!(error = %error, segment = %path.display(), "failed to delete a drained outbox segment");
                }
            }
            Drained::Flush(done) => {
                let _ = done.send(());
            }
            Drained::Event(_) => unreachable!("events were taken out above"),
        }
    }
}

/// Samples storage every hour (and at start) and finalises the invoices of closed periods.
async fn hourly(db: Arc<Db>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(3_600));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // These commit, and so wait for `fsync`.
        crate::db::on_blocking_thread(sample_and_finalize(Arc::clone(&db))).await;
    }
}

/// One hourly round: samples every organisation's storage and finalises closed periods.
async fn sample_and_finalize(db: Arc<Db>) {
    let now = crate::db::now();
    // Storage samples and invoices: nothing a memo holds.
    let conn = db.write_unmemoised().await;
    if let Err(error) = storage::sample_all(&conn, now).await {
        tracing::warn!(error = %error, "failed to sample storage");
    }
    if let Err(error) = billing::finalize_all(&conn, now).await {
        tracing::warn!(error = %error, "failed to finalise invoices");
    }
}

impl From<QuotaExceeded> for Error {
    fn from(exceeded: QuotaExceeded) -> Self {
        let resets_at = exceeded.resets_at.map(crate::db::rfc3339);
        let message = match &resets_at {
            Some(at) => format!("{exceeded}; it resets at {at}"),
            None => format!("{exceeded}; free some up or move to a bigger plan"),
        };
        let retry_after = exceeded
            .resets_at
            .map(|at| u64::try_from(at - crate::db::now()).unwrap_or(0).max(1));
        let error = Self::new(ErrorCode::QuotaExceeded, message).with_details(serde_json::json!({
            "quota": exceeded.kind.as_str(),
            "limit": exceeded.limit,
            "used": exceeded.used,
            "resets_at": resets_at,
        }));
        match retry_after {
            Some(seconds) => error.with_retry_after(seconds),
            None => error,
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Quota(exceeded) => exceeded.into(),
            Refusal::Failed(error) => Self::internal(error),
        }
    }
}

impl From<MeteringError> for Error {
    fn from(error: MeteringError) -> Self {
        Self::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_in_metering_is_a_503_not_a_500() {
        let busy = MeteringError::Db(DbError::Busy(libsql::Error::SqliteFailure(
            5,
            "database is locked".into(),
        )));
        assert_eq!(
            Error::from(busy).code(),
            crate::error::ErrorCode::DatabaseBusy
        );
        let refused = Refusal::Failed(MeteringError::Db(DbError::Busy(
            libsql::Error::SqliteFailure(517, "database is locked".into()),
        )));
        assert_eq!(
            Error::from(refused).code(),
            crate::error::ErrorCode::DatabaseBusy
        );
    }
}
