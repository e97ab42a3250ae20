//! Concurrent inference calls per organisation, shared fairly between the organisations
//! that are busy right now.
//!
//! Inference is CPU-bound and one call cannot be preempted, so a tenant running long calls
//! on every core delays everyone else by a whole call. Alone, an organisation may run as
//! many calls as its plan and the machine's cores allow (nothing is left idle); as soon as
//! another organisation has a call running or waiting, each may start new calls only while
//! it runs fewer than `cores / busy organisations` (at least one). Calls already running
//! finish; the busy tenant simply starts fewer until the others are done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The organisations' calls in flight, and who is waiting for a slot.
#[derive(Debug)]
pub struct FairShare {
    cores: u32,
    orgs: Mutex<HashMap<String, Load>>,
    /// Signalled whenever a slot is freed or a waiter leaves: shares may have grown.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Load {
    running: u32,
    waiting: u32,
}

/// One running call of an organisation; the slot is freed on drop.
#[derive(Debug)]
pub struct OrgSlot {
    share: Arc<FairShare>,
    org: String,
}

impl FairShare {
    /// Shares `cores` between the organisations.
    pub fn new(cores: u32) -> Arc<Self> {
        Arc::new(Self {
            cores: cores.max(1),
            orgs: Mutex::default(),
            changed: Notify::new(),
        })
    }

    /// Waits until `org` may start one more call: it runs fewer than `cap` (its plan's
    /// limit) and fewer than its fair share. Cancelling the wait leaves nothing behind.
    pub async fn enter(self: &Arc<Self>, org: &str, cap: u32) -> OrgSlot {
        let waiter = Waiter::register(self, org);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.try_start(org, cap) {
                waiter.started();
                return OrgSlot {
                    share: Arc::clone(self),
                    org: org.to_owned(),
                };
            }
            changed.await;
        }
    }

    /// Starts a call of `org` (one of its waiters) if its share allows.
    fn try_start(&self, org: &str, cap: u32) -> bool {
        let mut orgs = self.lock();
        let busy = orgs.values().filter(|l| l.running + l.waiting > 0).count();
        let share = (self.cores / u32::try_from(busy).unwrap_or(u32::MAX)).max(1);
        let load = orgs.entry(org.to_owned()).or_default();
        if load.running >= cap.max(1).min(share) {
            return false;
        }
        load.running += 1;
        load.waiting -= 1;
        true
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Load>> {
        self.orgs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to `org`'s load, forgets idle organisations, and wakes the waiters.
    fn settle(&self, org: &str, change: impl FnOnce(&mut Load)) {
        {
            let mut orgs = self.lock();
            if let Some(load) = orgs.get_mut(org) {
                change(load);
                if load.running + load.waiting == 0 {
                    orgs.remove(org);
                }
            }
        }
        self.changed.notify_waiters();
    }
}

impl Drop for OrgSlot {
    fn drop(&mut self) {
        self.share.settle(&self.org, |load| load.running -= 1);
    }
}

/// A registered waiter; unregistered on drop unless its call started.
struct Waiter<'a> {
    share: &'a FairShare,
    org: &'a str,
    started: bool,
}

impl<'a> Waiter<'a> {
    fn register(share: &'a FairShare, org: &'a str) -> Self {
        share.lock().entry(org.to_owned()).or_default().waiting += 1;
        Self {
            share,
            org,
            started: false,
        }
    }

    /// `try_start` turned this waiter into a running call.
    fn started(mut self) {
        self.started = true;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if !self.started {
            self.share.settle(self.org, |load| load.waiting -= 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn enter_within(share: &Arc<FairShare>, org: &str, cap: u32) -> Option<OrgSlot> {
        tokio::time::timeout(Duration::from_millis(20), share.enter(org, cap))
            .await
            .ok()
    }

    #[tokio::test]
    async fn alone_an_organisation_may_use_every_core_up_to_its_plan() {
        let share = FairShare::new(2);
        let _a1 = enter_within(&share, "a", 48).await.expect("first");
        let _a2 = enter_within(&share, "a", 48).await.expect("second");
        assert!(enter_within(&share, "a", 48).await.is_none(), "two cores");
        let only = FairShare::new(2);
        let _b1 = enter_within(&only, "b", 1).await.expect("first");
        assert!(
            enter_within(&only, "b", 1).await.is_none(),
            "the plan's cap"
        );
    }

    #[tokio::test]
    async fn a_busy_organisation_starts_no_new_call_while_another_needs_its_share() {
        let share = FairShare::new(2);
        let a1 = enter_within(&share, "a", 48).await.expect("a1");
        let _a2 = enter_within(&share, "a", 48).await.expect("a2");
        // B arrives while A holds both cores: B starts at once, and A's share is now one.
        let b1 = enter_within(&share, "b", 48)
            .await
            .expect("b is never starved");
        drop(a1);
        assert!(
            enter_within(&share, "a", 48).await.is_none(),
            "A still runs its share"
        );
        // B done: A may use both cores again.
        drop(b1);
        assert!(enter_within(&share, "a", 48).await.is_some());
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_nothing_behind() {
        let share = FairShare::new(1);
        let a = enter_within(&share, "a", 1).await.expect("a");
        assert!(enter_within(&share, "b", 1).await.is_some());
        assert!(enter_within(&share, "a", 1).await.is_none());
        drop(a);
        assert!(share.lock().is_empty(), "{:?}", share.lock());
    }
}
