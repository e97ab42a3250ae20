//! The hand-over from the outbox to the drainer: items in the order the outbox wrote them,
//! collected without waking the drainer for each one.
//!
//! Appending a usage event only pushes it onto a vector under a mutex: a call never pays
//! for waking another thread. The drainer is woken by the first item after it went idle,
//! by an item someone waits on (a flush, a sealed segment) and by a full batch; otherwise
//! it lingers after the first item, so events gather into one database transaction.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::outbox::Drained;

/// The queue between the outbox and its drainer.
#[derive(Debug)]
pub struct Handoff {
    state: Mutex<State>,
    wake: Notify,
    batch: usize,
}

#[derive(Debug)]
struct State {
    items: Vec<Drained>,
    /// The drainer waits for a wake-up (it found nothing to do).
    idle: bool,
    /// An item waits on the drainer, or a batch is full: no lingering.
    urgent: bool,
    /// The outbox is gone: drain what is left, then stop.
    closed: bool,
}

impl Handoff {
    /// A queue handing the drainer at most `batch` items at a time.
    pub fn new(batch: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: Vec::new(),
                idle: true,
                urgent: false,
                closed: false,
            }),
            wake: Notify::new(),
            batch: batch.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent: a panic cannot poison it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an item; wakes the drainer only when it must act.
    pub fn push(&self, item: Drained) {
        let waits = !matches!(item, Drained::Event(_));
        let wake = {
            let mut state = self.lock();
            state.items.push(item);
            let urgent = waits || state.items.len() >= self.batch;
            state.urgent |= urgent;
            let wake = urgent || state.idle;
            state.idle = false;
            wake
        };
        if wake {
            // A wake-up given while the drainer is busy is kept for its next wait.
            self.wake.notify_one();
        }
    }

    /// Events queued and not yet taken by the drainer.
    pub fn events(&self) -> usize {
        let state = self.lock();
        state
            .items
            .iter()
            .filter(|i| matches!(i, Drained::Event(_)))
            .count()
    }

    /// No more items will come: the drainer stops once it has taken the last ones.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The next items in order, at most a batch: waits for the first one, then lingers up
    /// to `linger` for more unless one is urgent. `None` once closed and empty.
    pub async fn next_batch(&self, linger: Duration) -> Option<Vec<Drained>> {
        loop {
            let (empty, hurry) = {
                let mut state = self.lock();
                let empty = state.items.is_empty();
                if empty {
                    if state.closed {
                        return None;
                    }
                    state.idle = true;
                }
                (empty, state.urgent || state.closed)
            };
            if empty {
                self.wake.notified().await;
                continue;
            }
            if !hurry {
                // Cut short by an urgent item (or a stale wake-up: harmless).
                let _ = tokio::time::timeout(linger, self.wake.notified()).await;
            }
            let mut state = self.lock();
            let take = state.items.len().min(self.batch);
            let items: Vec<Drained> = state.items.drain(..take).collect();
            state.urgent = state.items.len() >= self.batch
                || state.items.iter().any(|i| !matches!(i, Drained::Event(_)));
            return Some(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample;

    fn ids(items: &[Drained]) -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                Drained::Event(e) => e.id.clone(),
                Drained::Sealed(_) => "sealed".into(),
                Drained::Flush(_) => "flush".into(),
            })
            .collect()
    }

    /// Longer than any test runs: a batch that comes back at all was not left to linger.
    const FOREVER: Duration = Duration::from_secs(24 * 3600);

    /// `next_batch`, failing the test if it waits for the linger.
    async fn without_lingering(handoff: &Handoff) -> Vec<String> {
        let batch = tokio::time::timeout(Duration::from_secs(60), handoff.next_batch(FOREVER))
            .await
            .expect("the batch came without waiting for the linger");
        ids(&batch.unwrap())
    }

    #[tokio::test]
    async fn events_gather_for_the_linger_and_come_out_in_order() {
        let handoff = Handoff::new(100);
        for i in 0..3 {
            handoff.push(Drained::Event(sample(&format!("e{i}"), i)));
        }
        let batch = handoff.next_batch(Duration::from_millis(5)).await.unwrap();
        assert_eq!(ids(&batch), ["e0", "e1", "e2"]);
        // Nothing urgent: the drainer would have lingered.
        let lingering = tokio::time::timeout(Duration::from_millis(50), async {
            handoff.push(Drained::Event(sample("e3", 3)));
            handoff.next_batch(FOREVER).await
        });
        assert!(lingering.await.is_err());
    }

    #[tokio::test]
    async fn a_flush_or_a_full_batch_cuts_the_linger_short() {
        let handoff = Handoff::new(2);
        handoff.push(Drained::Event(sample("a", 0)));
        let (tx, _rx) = tokio::sync::oneshot::channel();
        handoff.push(Drained::Flush(tx));
        assert_eq!(without_lingering(&handoff).await, ["a", "flush"]);
        // Three events with batches of two: two at once, the third lingers.
        for id in ["b", "c", "d"] {
            handoff.push(Drained::Event(sample(id, 0)));
        }
        assert_eq!(without_lingering(&handoff).await, ["b", "c"]);
        let batch = handoff.next_batch(Duration::from_millis(5)).await.unwrap();
        assert_eq!(ids(&batch), ["d"]);
    }

    #[tokio::test]
    async fn an_idle_drainer_wakes_for_the_first_event_and_stops_when_closed() {
        let handoff = std::sync::Arc::new(Handoff::new(100));
        let drainer = tokio::spawn({
            let handoff = handoff.clone();
            async move {
                let mut seen = Vec::new();
                while let Some(batch) = handoff.next_batch(Duration::from_millis(1)).await {
                    seen.extend(ids(&batch));
                }
                seen
            }
        });
        tokio::task::yield_now().await;
        handoff.push(Drained::Event(sample("late", 0)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        handoff.push(Drained::Event(sample("last", 0)));
        handoff.close();
        assert_eq!(drainer.await.unwrap(), ["late", "last"]);
    }
}
