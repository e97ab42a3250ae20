//! Execution slots, and the calls that overstay theirs.
//!
//! A call takes one of a fixed number of slots to run an instance. Wasm code stops at the
//! deadline (epochs), WASI waits end there (`bounded_waits.rs`) and graph runs stop
//! between two nodes (`nn/guard.rs`); what can still run past the deadline is one long
//! backend node. Such a call is given up on (its caller hears `deadline_exceeded`) and
//! becomes *stuck*: its slot goes back to the pool so that other tenants are not starved,
//! while its thread finishes in the background. Stuck calls are bounded twice: per tenant
//! (a tenant with too many stuck calls gets `overloaded` until they end) and in all (past
//! that, a call given up on keeps its slot, as if it were still running). The engine's
//! instance pool is sized for both the slots and the stuck calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::RuntimeError;

/// The slots and the count of stuck calls.
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    stuck: Mutex<HashMap<String, u32>>,
    /// Stuck calls of every tenant: read without the lock on every call.
    stuck_total: AtomicU32,
    max_stuck: u32,
    max_stuck_per_tenant: u32,
}

impl Slots {
    pub(crate) fn new(slots: usize, max_stuck: u32, max_stuck_per_tenant: u32) -> Arc<Self> {
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(slots)),
            capacity: slots,
            stuck: Mutex::default(),
            stuck_total: AtomicU32::new(0),
            max_stuck,
            max_stuck_per_tenant,
        })
    }

    /// Takes a slot for `tenant`, waiting up to `queue_timeout`.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        tenant: &str,
        queue_timeout: Duration,
    ) -> Result<Slot, RuntimeError> {
        if self.stuck_total.load(Ordering::Relaxed) > 0
            && self.stuck_of(tenant) >= self.max_stuck_per_tenant
        {
            return Err(RuntimeError::Overloaded(
                "too many of this tenant's calls are still running past their deadline".into(),
            ));
        }
        let permit = match Arc::clone(&self.semaphore).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tokio::time::timeout(queue_timeout, Arc::clone(&self.semaphore).acquire_owned())
                    .await
                    .map_err(|_| {
                        RuntimeError::Overloaded("all execution slots stayed busy".into())
                    })?
                    .map_err(|e| RuntimeError::internal("execution pool closed", e))?
            }
        };
        Ok(Slot {
            shared: Arc::new(Mutex::new(SlotState::Held(permit))),
            slots: Arc::clone(self),
            tenant: tenant.to_owned(),
        })
    }

    /// Stuck calls of `tenant` now.
    pub(crate) fn stuck_of(&self, tenant: &str) -> u32 {
        self.lock().get(tenant).copied().unwrap_or(0)
    }

    /// The slots, and how many are held now.
    pub(crate) fn occupancy(&self) -> (usize, usize) {
        let free = self.semaphore.available_permits();
        (self.capacity.saturating_sub(free), self.capacity)
    }

    /// Stuck calls of every tenant now.
    pub(crate) fn stuck_total(&self) -> u32 {
        self.stuck_total.load(Ordering::Relaxed)
    }

    /// Counts one more stuck call of `tenant`, if the global cap allows it.
    fn try_add_stuck(&self, tenant: &str) -> bool {
        let mut stuck = self.lock();
        if self.stuck_total.load(Ordering::Relaxed) >= self.max_stuck {
            return false;
        }
        *stuck.entry(tenant.to_owned()).or_default() += 1;
        self.stuck_total.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn remove_stuck(&self, tenant: &str) {
        let mut stuck = self.lock();
        if let Some(count) = stuck.get_mut(tenant) {
            *count -= 1;
            if *count == 0 {
                stuck.remove(tenant);
            }
            self.stuck_total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.stuck
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

enum SlotState {
    /// The call runs and holds its slot.
    Held(
        #[allow(dead_code, reason = "held for its Drop: the slot is released with it")]
        OwnedSemaphorePermit,
    ),
    /// The call was given up on: its slot is free, it counts as stuck until it ends.
    Stuck,
    /// The call ended.
    Done,
}

/// One call's slot. The thread that runs the call keeps a [`Slot::runner`]; the caller
/// may give up on the call with [`Slot::give_up`].
pub(crate) struct Slot {
    shared: Arc<Mutex<SlotState>>,
    slots: Arc<Slots>,
    tenant: String,
}

impl Slot {
    /// The handle the running thread drops when the call ends, however it ends.
    pub(crate) fn runner(&self) -> SlotRunner {
        SlotRunner {
            shared: Arc::clone(&self.shared),
            slots: Arc::clone(&self.slots),
            tenant: self.tenant.clone(),
        }
    }

    /// The caller stops waiting for a call past its deadline: its slot is freed and it
    /// counts as stuck until its thread ends (unless the stuck calls are at their cap;
    /// then it keeps its slot).
    pub(crate) fn give_up(&self) {
        let mut state = lock(&self.shared);
        if matches!(*state, SlotState::Held(_)) && self.slots.try_add_stuck(&self.tenant) {
            *state = SlotState::Stuck;
        }
    }
}

/// Ends the call's hold on its slot when dropped.
pub(crate) struct SlotRunner {
    shared: Arc<Mutex<SlotState>>,
    slots: Arc<Slots>,
    tenant: String,
}

impl Drop for SlotRunner {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if matches!(*state, SlotState::Stuck) {
            self.slots.remove_stuck(&self.tenant);
        }
        *state = SlotState::Done;
    }
}

fn lock(state: &Mutex<SlotState>) -> MutexGuard<'_, SlotState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn a_call_given_up_on_frees_its_slot_and_counts_as_stuck_until_it_ends() {
        let slots = Slots::new(1, 4, 1);
        let slot = slots.acquire("a", WAIT).await.unwrap();
        let runner = slot.runner();
        assert!(
            slots.acquire("b", WAIT).await.is_err(),
            "the one slot is taken"
        );
        slot.give_up();
        assert_eq!(slots.stuck_of("a"), 1);
        let other = slots
            .acquire("b", WAIT)
            .await
            .expect("the slot is free again");
        let error = slots
            .acquire("a", WAIT)
            .await
            .err()
            .expect("a is at its cap");
        assert_eq!(error.code(), "overloaded");
        drop(other);
        drop(runner);
        assert_eq!(slots.stuck_total(), 0);
        slots
            .acquire("a", WAIT)
            .await
            .expect("a's stuck call ended");
    }

    #[tokio::test]
    async fn past_the_global_cap_a_call_given_up_on_keeps_its_slot() {
        let slots = Slots::new(2, 1, 4);
        let first = slots.acquire("a", WAIT).await.unwrap();
        let second = slots.acquire("b", WAIT).await.unwrap();
        let (_first_runner, second_runner) = (first.runner(), second.runner());
        first.give_up();
        second.give_up();
        assert_eq!(slots.stuck_total(), 1);
        let third = slots.acquire("c", WAIT).await.expect("a's slot was freed");
        assert!(slots.acquire("c", WAIT).await.is_err(), "b's was not");
        drop(second_runner);
        drop(third);
        slots.acquire("c", WAIT).await.expect("b's call ended");
    }

    #[tokio::test]
    async fn a_call_that_ends_normally_frees_its_slot() {
        let slots = Slots::new(1, 1, 1);
        let slot = slots.acquire("a", WAIT).await.unwrap();
        let runner = slot.runner();
        drop(runner);
        slot.give_up();
        drop(slot);
        assert_eq!(slots.stuck_total(), 0);
        slots.acquire("a", WAIT).await.unwrap();
    }
}
