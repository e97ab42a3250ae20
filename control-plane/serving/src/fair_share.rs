//! Concurrent-call slots per organisation, sharing the machine's cores fairly between the
//! organisations that are busy.
//!
//! Inference is CPU-bound: a call that starts while every core is taken only slows the
//! calls already running. So an organisation alone may run as many calls at once as its
//! plan allows, up to the number of cores; while `n` organisations are busy, each may
//! *start* calls only while it runs fewer than `cores / n` (at least one). Calls already
//! running are never interrupted: a newcomer waits at most for the calls above its
//! neighbours' new share to finish, and its own first call starts at once.
//!
//! An organisation counts as busy while it runs or waits for a call, and for
//! [`FairShare::linger`] after its last call ends, so a tenant sending one request after
//! another keeps its share between them instead of losing it to the neighbour for a whole
//! call at every gap.
//!
//! Waiters queue first-in first-out per organisation, and a freed slot wakes exactly one
//! waiter. Every decision is taken under one mutex over the busy organisations only
//! (idle ones are forgotten), held for a few hundred nanoseconds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long an organisation keeps its share after its last call by default.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(50);

/// The slots of every organisation.
#[derive(Debug, Clone)]
pub struct FairShare {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    cores: u32,
    linger: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    orgs: HashMap<String, Org>,
    next_waiter: u64,
}

#[derive(Debug)]
struct Org {
    running: u32,
    /// The plan's limit, as of the organisation's latest request.
    limit: u32,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
    last_active: Instant,
}

impl Org {
    fn busy(&self, now: Instant, linger: Duration) -> bool {
        self.running > 0
            || !self.waiters.is_empty()
            || now.duration_since(self.last_active) < linger
    }
}

/// One running call's slot; dropping it frees the slot for the organisation's next waiter
/// (or another organisation's, when the shares change).
#[derive(Debug)]
#[must_use = "the slot is freed when dropped"]
pub struct Slot {
    share: Arc<Shared>,
    org: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share.release(&self.org);
    }
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The organisation's calls stayed busy for the whole wait.
    #[error("the organisation's concurrent calls stayed busy")]
    Busy,
}

impl FairShare {
    /// Slots sharing `cores` between busy organisations, each keeping its share for
    /// `linger` after its last call.
    pub fn new(cores: u32, linger: Duration) -> Self {
        Self {
            inner: Arc::new(Shared {
                cores: cores.max(1),
                linger,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// How many calls an organisation allowed `limit` by its plan may start now.
    pub fn share_of(&self, org: &str, limit: u32) -> u32 {
        let now = Instant::now();
        let state = self.inner.lock();
        self.inner
            .share(limit, self.inner.busy_with(&state, org, now))
    }

    /// Waits up to `wait` for one of the organisation's slots; its plan allows it `limit`
    /// calls at once (never more than the cores).
    pub async fn acquire(&self, org: &str, limit: u32, wait: Duration) -> Result<Slot, SlotError> {
        let limit = limit.max(1);
        let (id, receiver) = {
            let now = Instant::now();
            let mut state = self.inner.lock();
            let share = self
                .inner
                .share(limit, self.inner.busy_with(&state, org, now));
            state.next_waiter += 1;
            let id = state.next_waiter;
            let entry = state.orgs.entry(org.to_owned()).or_insert_with(|| Org {
                running: 0,
                limit,
                waiters: VecDeque::new(),
                last_active: now,
            });
            entry.limit = limit;
            entry.last_active = now;
            if entry.waiters.is_empty() && entry.running < share {
                entry.running += 1;
                return Ok(self.slot(org));
            }
            let (sender, receiver) = oneshot::channel();
            entry.waiters.push_back((id, sender));
            (id, receiver)
        };
        let mut waiting = Waiting {
            share: &self.inner,
            org,
            id,
            receiver,
            done: false,
        };
        // Whether or not the timer fired, the queue decides: under the lock, a waiter is
        // either still queued (not granted) or was given a slot.
        let _ = tokio::time::timeout(wait, &mut waiting.receiver).await;
        waiting.done = true;
        if self.inner.dequeue(org, id) {
            Err(SlotError::Busy)
        } else {
            Ok(self.slot(org))
        }
    }

    fn slot(&self, org: &str) -> Slot {
        Slot {
            share: self.inner.clone(),
            org: org.to_owned(),
        }
    }
}

/// A queued waiter; if its future is dropped (the client went away) it leaves the queue,
/// or gives back the slot it was granted meanwhile.
struct Waiting<'a> {
    share: &'a Arc<Shared>,
    org: &'a str,
    id: u64,
    receiver: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.share.dequeue(self.org, self.id) {
            self.share.release(self.org);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every unlock: a panic elsewhere cannot poison it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The busy organisations, counting `org` as one of them.
    fn busy_with(&self, state: &State, org: &str, now: Instant) -> u32 {
        let others = state
            .orgs
            .iter()
            .filter(|(name, o)| name.as_str() != org && o.busy(now, self.linger))
            .count();
        u32::try_from(others).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// Takes waiter `id` out of the organisation's queue; false if it is no longer queued,
    /// i.e. it was granted a slot.
    fn dequeue(&self, org: &str, id: u64) -> bool {
        let mut state = self.lock();
        state.orgs.get_mut(org).is_some_and(|entry| {
            let at = entry.waiters.iter().position(|(w, _)| *w == id);
            at.and_then(|at| entry.waiters.remove(at)).is_some()
        })
    }

    fn share(&self, limit: u32, busy: u32) -> u32 {
        let fair = (self.cores / busy.max(1)).max(1);
        limit.min(self.cores).min(fair).max(1)
    }

    /// Ends one call of `org` and starts every waiting call the shares now allow.
    fn release(&self, org: &str) {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(entry) = state.orgs.get_mut(org) {
            entry.running = entry.running.saturating_sub(1);
            entry.last_active = now;
        }
        // Forget organisations idle for longer than the linger: the rest are the busy ones.
        state.orgs.retain(|_, o| o.busy(now, self.linger));
        let busy = u32::try_from(state.orgs.len()).unwrap_or(u32::MAX);
        for entry in state.orgs.values_mut() {
            let share = self.share(entry.limit, busy);
            while entry.running < share {
                let Some((_, sender)) = entry.waiters.pop_front() else {
                    break;
                };
                // A queued waiter's receiver is alive: it leaves the queue (under this
                // lock) before its receiver is dropped.
                entry.running += 1;
                let _ = sender.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    const WAIT: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn alone_an_organisation_uses_every_core_its_plan_allows() {
        let share = FairShare::new(2, DEFAULT_LINGER);
        let _a = share.acquire("a", 48, WAIT).await.unwrap();
        let _b = share.acquire("a", 48, WAIT).await.unwrap();
        assert_eq!(
            share.acquire("a", 48, WAIT).await.unwrap_err(),
            SlotError::Busy
        );
        // A plan of one call means one.
        let _c = share.acquire("small", 1, WAIT).await.unwrap();
        assert_eq!(
            share.acquire("small", 1, WAIT).await.unwrap_err(),
            SlotError::Busy
        );
    }

    #[tokio::test]
    async fn a_newcomer_starts_at_once_and_the_busy_neighbour_shrinks_to_its_share() {
        let share = FairShare::new(2, DEFAULT_LINGER);
        let a1 = share.acquire("a", 48, WAIT).await.unwrap();
        let a2 = share.acquire("a", 48, WAIT).await.unwrap();
        // B's first call does not wait for A's calls.
        let b1 = share.acquire("b", 48, WAIT).await.unwrap();
        // A, now one of two busy organisations, may run one call: its next one waits even
        // after one of its two running calls ends.
        let waiting = tokio::spawn({
            let share = share.clone();
            async move { share.acquire("a", 48, Duration::from_secs(30)).await }
        });
        tokio::task::yield_now().await;
        drop(a1);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a2);
        let a3 = waiting.await.unwrap().unwrap();
        // B keeps its one slot too.
        assert_eq!(
            share.acquire("b", 48, WAIT).await.unwrap_err(),
            SlotError::Busy
        );
        drop((a3, b1));
    }

    #[tokio::test]
    async fn the_share_grows_back_once_the_neighbour_goes_quiet() {
        let share = FairShare::new(2, Duration::ZERO);
        let a1 = share.acquire("a", 48, WAIT).await.unwrap();
        let b1 = share.acquire("b", 48, WAIT).await.unwrap();
        assert_eq!(share.share_of("a", 48), 1);
        let waiting = tokio::spawn({
            let share = share.clone();
            async move { share.acquire("a", 48, Duration::from_secs(30)).await }
        });
        tokio::task::yield_now().await;
        // B ends its call and, with no linger, stops counting: A's waiter starts beside
        // A's running call.
        drop(b1);
        let a2 = waiting.await.unwrap().unwrap();
        assert_eq!(share.share_of("a", 48), 2);
        drop((a1, a2));
    }

    #[tokio::test]
    async fn waiters_are_served_in_order() {
        let share = FairShare::new(1, DEFAULT_LINGER);
        let held = share.acquire("a", 4, WAIT).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..5 {
            let (share, tx) = (share.clone(), tx.clone());
            tokio::spawn(async move {
                let slot = share
                    .acquire("a", 4, Duration::from_secs(30))
                    .await
                    .unwrap();
                tx.send(n).unwrap();
                drop(slot);
            });
            tokio::task::yield_now().await;
        }
        drop(held);
        for n in 0..5 {
            assert_eq!(rx.recv().await, Some(n));
        }
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_or_goes_away_leaks_no_slot() {
        let share = FairShare::new(1, DEFAULT_LINGER);
        let held = share.acquire("a", 1, WAIT).await.unwrap();
        // Timed out.
        assert_eq!(
            share.acquire("a", 1, WAIT).await.unwrap_err(),
            SlotError::Busy
        );
        // Cancelled while queued.
        let gone = tokio::spawn({
            let share = share.clone();
            async move { share.acquire("a", 1, Duration::from_secs(30)).await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let again = share.acquire("a", 1, WAIT).await.unwrap();
        drop(again);
        // Granted and dropped before it ran: the slot comes back.
        let held = share.acquire("a", 1, WAIT).await.unwrap();
        let granted_then_dropped = {
            let share = share.clone();
            async move { share.acquire("a", 1, Duration::from_secs(30)).await }
        };
        let mut granted_then_dropped = Box::pin(granted_then_dropped);
        assert!((&mut granted_then_dropped).now_or_never().is_none());
        drop(held); // grants the queued waiter
        drop(granted_then_dropped); // which never ran
        assert!(share.acquire("a", 1, WAIT).await.is_ok());
    }
}
