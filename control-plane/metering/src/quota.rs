//! Hard quotas: the calls-per-month counter every call reserves a slot in, and the checks
//! on models and storage.
//!
//! The calls counter lives in memory, one per organisation and month, started from the
//! database's daily rollups the first time the month is seen (the outbox is replayed before
//! serving, so the database is complete then: a restart starts from every call billed
//! before it). A call reserves a slot before it runs and commits it when it succeeds or
//! releases it when it fails, so concurrent calls can never exceed the quota: with a quota
//! of 1,000, exactly 1,000 succeed.
//!
//! Machines that share one database each count their own calls, so every
//! [`RESYNC_INTERVAL`] each counter is set again from the durable count plus this
//! machine's billed calls still in its outbox ([`CallQuotas::resync`]): a machine learns
//! what the others served. Across machines the quota can be exceeded by what the others
//! served since the last resync (and not yet drained); on one machine it is exact.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::period::Period;

/// Which quota a call or a change ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    CallsPerMonth,
    Models,
    StorageBytes,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::CallsPerMonth => "calls_per_month",
            QuotaKind::Models => "models",
            QuotaKind::StorageBytes => "storage_bytes",
        }
    }
}

/// A hard quota was reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} quota exceeded: {used} of {limit} used", kind.as_str())]
pub struct QuotaExceeded {
    pub kind: QuotaKind,
    pub limit: u64,
    pub used: u64,
    /// When the quota resets (Unix seconds); `None` for quotas that only freeing
    /// something (or a bigger plan) lifts.
    pub resets_at: Option<i64>,
}

#[derive(Debug, Default)]
struct Counter {
    /// Billed calls this month.
    used: u64,
    /// Calls running now that would be billed if they succeed.
    reserved: u64,
    /// Billed calls of this process not yet in the database (signed: the drainer may store
    /// an event an instant before its commit counts it here).
    undrained: i64,
}

/// How often counters are set again from the database ([`CallQuotas::resync`]).
pub const RESYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

type Slot = Arc<OnceCell<Mutex<Counter>>>;

/// The calls-per-month counters of every organisation.
#[derive(Debug, Default)]
pub struct CallQuotas {
    counters: Mutex<HashMap<(String, i64), Slot>>,
}

/// A reserved slot; released on drop unless committed.
#[derive(Debug)]
pub struct Reservation {
    slot: Slot,
    settled: bool,
}

impl CallQuotas {
    /// Reserves a slot for one call of `org_id` in `period` under `limit` (`None`:
    /// unlimited, still counted). `used_before` loads the month's billed calls from the
    /// database the first time the month is seen.
    pub async fn reserve<F, E>(
        &self,
        org_id: &str,
        period: Period,
        limit: Option<u64>,
        used_before: impl FnOnce() -> F,
    ) -> Result<Result<Reservation, QuotaExceeded>, E>
    where
        F: Future<Output = Result<u64, E>>,
    {
        let slot = {
            let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            // Months before the previous one will not be counted again.
            let oldest = period.previous().start;
            counters.retain(|(_, start), _| *start >= oldest);
            Arc::clone(
                counters
                    .entry((org_id.to_owned(), period.start))
                    .or_default(),
            )
        };
        slot.get_or_try_init(|| async {
            Ok(Mutex::new(Counter {
                used: used_before().await?,
                reserved: 0,
                undrained: 0,
            }))
        })
        .await?;
        {
            let mut counter = lock(&slot);
            if let Some(limit) = limit
                && counter.used + counter.reserved >= limit
            {
                return Ok(Err(QuotaExceeded {
                    kind: QuotaKind::CallsPerMonth,
                    limit,
                    used: counter.used,
                    resets_at: Some(period.end),
                }));
            }
            counter.reserved += 1;
        }
        Ok(Ok(Reservation {
            slot,
            settled: false,
        }))
    }
}

impl CallQuotas {
    /// The counters seen so far, as `(org_id, period start)`.
    pub fn counted(&self) -> Vec<(String, i64)> {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .filter(|(_, slot)| slot.initialized())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Sets the counter of `org_id` for the period starting at `period_start` to `durable`
    /// billed calls (read from the database while no drained batch could be stored) plus
    /// this process's billed calls not yet drained.
    pub fn resync(&self, org_id: &str, period_start: i64, durable: u64) {
        let slot = {
            let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            match counters.get(&(org_id.to_owned(), period_start)) {
                Some(slot) if slot.initialized() => Arc::clone(slot),
                _ => return,
            }
        };
        let mut counter = lock(&slot);
        counter.used = durable.saturating_add_signed(counter.undrained);
    }

    /// The drainer stored `billed` billed calls of `org_id` in the period starting at
    /// `period_start`: they are in the durable count now.
    pub fn drained(&self, org_id: &str, period_start: i64, billed: u64) {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = counters.get(&(org_id.to_owned(), period_start))
            && slot.initialized()
        {
            lock(slot).undrained -= i64::try_from(billed).unwrap_or(i64::MAX);
        }
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Counter> {
    slot.get()
        .expect("initialised before a reservation exists")
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl Reservation {
    /// The call succeeded: it now counts. Returns the month's billed calls.
    pub fn commit(mut self) -> u64 {
        self.settled = true;
        let mut counter = lock(&self.slot);
        counter.reserved -= 1;
        counter.used += 1;
        counter.undrained += 1;
        counter.used
    }

    /// The month's billed calls, without this one.
    pub fn used(&self) -> u64 {
        lock(&self.slot).used
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            lock(&self.slot).reserved -= 1;
        }
    }
}

/// A soft-limit warning, when `used` has reached `percent` of `limit`.
pub fn soft_warning(kind: QuotaKind, used: u64, limit: Option<u64>, percent: u8) -> Option<String> {
    let limit = limit?;
    (u128::from(used) * 100 >= u128::from(limit) * u128::from(percent)).then(|| {
        format!(
            "{} {used}/{limit} ({}%)",
            kind.as_str(),
            u128::from(used) * 100 / u128::from(limit.max(1))
        )
    })
}

/// `Err` if adding `adding` to `used` goes over `limit`.
pub fn check(
    kind: QuotaKind,
    used: u64,
    adding: u64,
    limit: Option<u64>,
) -> Result<(), QuotaExceeded> {
    match limit {
        Some(limit) if used.saturating_add(adding) > limit => Err(QuotaExceeded {
            kind,
            limit,
            used,
            resets_at: None,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVEMBER: i64 = 1_795_787_110;

    async fn reserve(quotas: &CallQuotas, limit: u64) -> Result<Reservation, QuotaExceeded> {
        quotas
            .reserve("org", Period::containing(NOVEMBER), Some(limit), || async {
                Ok::<_, ()>(7)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn reservations_never_exceed_the_limit_and_failures_give_slots_back() {
        let quotas = CallQuotas::default();
        // Seven calls were billed before this process started counting.
        let a = reserve(&quotas, 9).await.unwrap();
        let b = reserve(&quotas, 9).await.unwrap();
        let refused = reserve(&quotas, 9).await.unwrap_err();
        assert_eq!(refused.limit, 9);
        assert_eq!(refused.used, 7);
        assert_eq!(refused.resets_at, Some(Period::containing(NOVEMBER).end));
        assert_eq!(a.commit(), 8);
        drop(b); // failed
        let c = reserve(&quotas, 9).await.unwrap();
        assert_eq!(c.commit(), 9);
        assert!(reserve(&quotas, 9).await.is_err());
        // A raised limit (an override) applies at once.
        assert!(reserve(&quotas, 10).await.is_ok());
    }

    #[tokio::test]
    async fn concurrent_reservations_are_exact() {
        let quotas = Arc::new(CallQuotas::default());
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let quotas = Arc::clone(&quotas);
                tokio::spawn(async move {
                    let mut won = 0;
                    for _ in 0..40 {
                        if let Ok(r) = reserve(&quotas, 1_007).await {
                            r.commit();
                            won += 1;
                        }
                    }
                    won
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        assert_eq!(total, 1_000);
    }

    #[tokio::test]
    async fn a_resync_adds_what_other_machines_billed() {
        let quotas = CallQuotas::default();
        let start = Period::containing(NOVEMBER).start;
        // Seven before; this process bills one, which is not drained yet.
        reserve(&quotas, 100).await.unwrap().commit();
        // Another machine billed 80 more: the database holds 7 + 80.
        quotas.resync("org", start, 87);
        assert_eq!(reserve(&quotas, 100).await.unwrap().commit(), 89);
        // Both of this process's calls are drained: the database has them now.
        quotas.drained("org", start, 2);
        quotas.resync("org", start, 89);
        assert_eq!(reserve(&quotas, 100).await.unwrap().used(), 89);
        quotas.resync("org", start, 100);
        assert_eq!(reserve(&quotas, 100).await.unwrap_err().used, 100);
        assert_eq!(quotas.counted(), vec![("org".to_owned(), start)]);
    }

    #[test]
    fn soft_warnings_start_at_the_percentage() {
        assert_eq!(
            soft_warning(QuotaKind::CallsPerMonth, 79, Some(100), 80),
            None
        );
        assert_eq!(
            soft_warning(QuotaKind::CallsPerMonth, 80, Some(100), 80).as_deref(),
            Some("calls_per_month 80/100 (80%)")
        );
        assert_eq!(soft_warning(QuotaKind::CallsPerMonth, 80, None, 80), None);
        assert!(check(QuotaKind::Models, 1, 1, Some(1)).is_err());
        assert!(check(QuotaKind::Models, 0, 1, Some(1)).is_ok());
        assert!(check(QuotaKind::Models, 5, 1, None).is_ok());
    }
}
