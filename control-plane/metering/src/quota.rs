//! Hard quotas: the calls-per-month quota every call reserves a slot in, exact for the whole
//! fleet of nodes sharing one database, and the checks on models and storage.
//!
//! The quota is claimed from the database in blocks (`quota_claims`, one row per
//! organisation and month, started from the month's billed calls the first time the month
//! is seen): a node takes a block with a conditional update (compare-and-set on the claimed
//! total, which never goes past the limit) and starts calls only from what it holds. A call
//! reserves a slot of the node's holding before it runs, and commits it when it is billed
//! or gives it back to the holding when it fails. So however many nodes serve, the calls
//! started never exceed the quota: with a quota of 1,000, exactly 1,000 succeed.
//!
//! A node claims its next block ahead, in the background, when a call finds its holding
//! down to half of the last block ([`CallQuotas::reserve`]): calls wait for the database
//! only when a burst empties the holding before that claim is back (or the quota is out).
//! A node so holds at most one and a half blocks. Near the quota's end, when blocks are
//! smaller than [`CLAIM_AHEAD_MIN_BLOCK`], nothing is claimed ahead.
//!
//! Blocks shrink as the quota runs out: a quarter of what is left divided by the live nodes
//! ([`CallQuotas::set_fleet_size`]), at most [`MAX_BLOCK`], at least one call. A node
//! refuses when the database has nothing left to claim and it holds nothing: calls other
//! nodes hold then may still be served by them (at most their last blocks, a quarter of
//! what was left when they claimed). A clean stop gives back what the node holds
//! ([`CallQuotas::give_back`]); a node that dies keeps its holding claimed (what it served
//! since its last claim is unknown, and counting it as used is what keeps the quota from
//! ever being overrun), at most one block per dead node. Plans without a calls quota never
//! touch the database here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use libsql::params;
use tokio::sync::OnceCell;

use super::period::Period;
use crate::db::{self, Db, DbError};

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

/// The smallest block after which the next one is claimed ahead. Blocks shrink as the
/// quota runs out; near its end (or with a small quota) a node claims only when its
/// holding is empty, so that what it holds ahead does not refuse another node's calls.
const CLAIM_AHEAD_MIN_BLOCK: u64 = 64;

/// The largest block of calls a node claims at once.
pub const MAX_BLOCK: u64 = 4096;

#[derive(Debug, Default)]
struct Counter {
    /// Calls this node may still start: claimed, not yet reserved.
    held: u64,
    /// Calls running now that reserved a slot.
    reserved: u64,
    /// The fleet's claimed total at this node's last claim.
    claimed: u64,
    /// The size of the last block granted (0: the last claim found nothing left, so none
    /// is claimed ahead until a call must claim again).
    last_block: u64,
    /// A claim ahead is running.
    refilling: bool,
}

/// One organisation's month on this node.
#[derive(Debug, Default)]
struct Slot {
    counter: Mutex<Counter>,
    /// The `quota_claims` row exists.
    row: OnceCell<()>,
    /// One claim at a time per slot: concurrent calls that find the holding empty wait for
    /// it rather than each claiming a block.
    claiming: tokio::sync::Mutex<()>,
}

impl Slot {
    fn counter(&self) -> std::sync::MutexGuard<'_, Counter> {
        self.counter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The calls-per-month holdings of this node.
#[derive(Debug)]
pub struct CallQuotas {
    slots: Mutex<HashMap<(String, i64), Arc<Slot>>>,
    /// Live nodes sharing the database (the fleet's registry), for block sizes.
    fleet_size: AtomicU32,
}

impl Default for CallQuotas {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
            fleet_size: AtomicU32::new(1),
        }
    }
}

/// A reserved slot; given back to the holding on drop unless committed.
#[derive(Debug)]
pub struct Reservation {
    slot: Option<Arc<Slot>>,
    settled: bool,
}

impl CallQuotas {
    /// How many live nodes share the database (from the node registry).
    pub fn set_fleet_size(&self, nodes: u32) {
        self.fleet_size.store(nodes.max(1), Ordering::Relaxed);
    }

    /// Reserves a slot for one call of `org_id` in `period` under `limit` (`None`:
    /// unlimited, nothing to claim). `billed_before` reads the month's billed calls, where
    /// the fleet's claims start the first time any node sees the month.
    pub async fn reserve<F>(
        &self,
        db: &Arc<Db>,
        org_id: &str,
        period: Period,
        limit: Option<u64>,
        billed_before: impl FnOnce() -> F,
    ) -> Result<Result<Reservation, QuotaExceeded>, DbError>
    where
        F: Future<Output = Result<u64, DbError>>,
    {
        let Some(limit) = limit else {
            return Ok(Ok(Reservation {
                slot: None,
                settled: false,
            }));
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Months before the previous one will not be claimed from again.
            let oldest = period.previous().start;
            slots.retain(|(_, start), _| *start >= oldest);
            Arc::clone(slots.entry((org_id.to_owned(), period.start)).or_default())
        };
        slot.row
            .get_or_try_init(|| async {
                let billed = billed_before().await?;
                let conn = db.write_unmemoised().await;
                conn.execute(
                    "INSERT OR IGNORE INTO quota_claims (org_id, period_start, claimed)
                     VALUES (?1, ?2, ?3)",
                    params![
                        org_id,
                        period.start,
                        i64::try_from(billed).unwrap_or(i64::MAX)
                    ],
                )
                .await?;
                Ok::<_, DbError>(())
            })
            .await?;
        let nodes = u64::from(self.fleet_size.load(Ordering::Relaxed));
        loop {
            if let Some(reservation) = take_held(&slot) {
                claim_ahead(db, &slot, org_id, period.start, limit, nodes);
                return Ok(Ok(reservation));
            }
            let _claiming = slot.claiming.lock().await;
            if let Some(reservation) = take_held(&slot) {
                return Ok(Ok(reservation));
            }
            let (granted, claimed) = claim(db, org_id, period.start, limit, nodes).await?;
            let mut counter = slot.counter();
            counter.claimed = claimed;
            counter.last_block = granted;
            if granted == 0 {
                return Ok(Err(QuotaExceeded {
                    kind: QuotaKind::CallsPerMonth,
                    limit,
                    used: claimed.saturating_sub(counter.held),
                    resets_at: Some(period.end),
                }));
            }
            counter.held += granted;
        }
    }

    /// Gives every call this node holds back to the database (a clean stop): other nodes
    /// may claim them. Returns how many.
    pub async fn give_back(&self, db: &Db) -> Result<u64, DbError> {
        let slots: Vec<_> = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .iter()
                .map(|((org, start), slot)| (org.clone(), *start, Arc::clone(slot)))
                .collect()
        };
        let mut returned = 0;
        for (org_id, start, slot) in slots {
            let held = std::mem::take(&mut slot.counter().held);
            if held == 0 {
                continue;
            }
            let conn = db.write_unmemoised().await;
            conn.execute(
                "UPDATE quota_claims SET claimed = MAX(0, claimed - ?3)
                 WHERE org_id = ?1 AND period_start = ?2",
                params![org_id, start, i64::try_from(held).unwrap_or(i64::MAX)],
            )
            .await?;
            returned += held;
        }
        Ok(returned)
    }
}

/// A slot from the holding, if it has one.
fn take_held(slot: &Arc<Slot>) -> Option<Reservation> {
    let mut counter = slot.counter();
    if counter.held == 0 {
        return None;
    }
    counter.held -= 1;
    counter.reserved += 1;
    Some(Reservation {
        slot: Some(Arc::clone(slot)),
        settled: false,
    })
}

/// Claims the next block in the background when the holding is down to half of the last
/// block and no such claim runs yet. A failed claim is only logged: the next call that
/// finds the holding empty claims in the foreground and answers its error.
fn claim_ahead(
    db: &Arc<Db>,
    slot: &Arc<Slot>,
    org_id: &str,
    period_start: i64,
    limit: u64,
    nodes: u64,
) {
    {
        let mut counter = slot.counter();
        if counter.refilling
            || counter.last_block < CLAIM_AHEAD_MIN_BLOCK
            || counter.held > counter.last_block / 2
        {
            return;
        }
        counter.refilling = true;
    }
    let (db, slot, org_id) = (Arc::clone(db), Arc::clone(slot), org_id.to_owned());
    tokio::spawn(async move {
        let _claiming = slot.claiming.lock().await;
        let claimed = claim(&db, &org_id, period_start, limit, nodes).await;
        let mut counter = slot.counter();
        counter.refilling = false;
        match claimed {
            Ok((granted, claimed)) => {
                counter.claimed = claimed;
                counter.last_block = granted;
                counter.held += granted;
            }
            Err(error) => tracing::debug!(%error, "claiming quota ahead failed"),
        }
    });
}

/// Claims a block of calls under `limit`: compare-and-set on the claimed total, so
/// concurrent claims by any number of nodes never go past it. Returns the calls granted (0:
/// nothing left) and the claimed total after the claim.
async fn claim(
    db: &Db,
    org_id: &str,
    period_start: i64,
    limit: u64,
    nodes: u64,
) -> Result<(u64, u64), DbError> {
    loop {
        let conn = db.write_unmemoised().await;
        // The row is dropped before the UPDATE: a live row keeps its statement, and with it
        // a read transaction, open on the connection, and the UPDATE would then have to
        // upgrade that snapshot — which fails at once with `SQLITE_BUSY` (no waiting) when
        // another connection (another node) committed in between. Without it the UPDATE
        // starts fresh, waits for the lock, and the compare-and-set below decides.
        let claimed = {
            let row = db::first_row(
                conn.query(
                    "SELECT claimed FROM quota_claims WHERE org_id = ?1 AND period_start = ?2",
                    params![org_id, period_start],
                )
                .await?,
            )
            .await?
            .ok_or_else(|| DbError::Corrupt("the quota_claims row is gone".into()))?;
            u64::try_from(row.get::<i64>(0)?).unwrap_or(0)
        };
        let block = block_size(limit.saturating_sub(claimed), nodes);
        if block == 0 {
            return Ok((0, claimed));
        }
        let to = claimed + block;
        let changed = conn
            .execute(
                "UPDATE quota_claims SET claimed = ?4
                 WHERE org_id = ?1 AND period_start = ?2 AND claimed = ?3",
                params![
                    org_id,
                    period_start,
                    i64::try_from(claimed).unwrap_or(i64::MAX),
                    i64::try_from(to).unwrap_or(i64::MAX)
                ],
            )
            .await?;
        if changed == 1 {
            return Ok((block, to));
        }
        // Another node claimed in between: read again.
    }
}

/// How many calls to claim when `left` remain for a fleet of `nodes`: a quarter of each
/// node's share of what is left, at most [`MAX_BLOCK`], at least one while any is left.
pub fn block_size(left: u64, nodes: u64) -> u64 {
    if left == 0 {
        return 0;
    }
    (left / (4 * nodes.max(1))).clamp(1, MAX_BLOCK).min(left)
}

impl Reservation {
    /// The call succeeded: it now counts. Returns the month's calls as this node knows them
    /// (claimed by the fleet, less what this node still holds or runs).
    pub fn commit(mut self) -> u64 {
        self.settled = true;
        let Some(slot) = &self.slot else {
            return 0;
        };
        let mut counter = slot.counter();
        counter.reserved -= 1;
        counter
            .claimed
            .saturating_sub(counter.held + counter.reserved)
    }

    /// The month's calls as this node knows them, without this one.
    pub fn used(&self) -> u64 {
        self.slot.as_ref().map_or(0, |slot| {
            let counter = slot.counter();
            counter
                .claimed
                .saturating_sub(counter.held + counter.reserved)
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled
            && let Some(slot) = &self.slot
        {
            // Not billed: the slot goes back to the holding.
            let mut counter = slot.counter();
            counter.reserved -= 1;
            counter.held += 1;
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

    async fn reserve(
        quotas: &CallQuotas,
        db: &Arc<Db>,
        limit: u64,
    ) -> Result<Reservation, QuotaExceeded> {
        quotas
            .reserve(
                db,
                "org",
                Period::containing(NOVEMBER),
                Some(limit),
                || async { Ok(7) },
            )
            .await
            .unwrap()
    }

    async fn claimed(db: &Db) -> i64 {
        let conn = db.read().await;
        let row = db::first_row(
            conn.query("SELECT claimed FROM quota_claims", ())
                .await
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        row.get(0).unwrap()
    }

    #[tokio::test]
    async fn reservations_never_exceed_the_limit_and_failures_give_slots_back() {
        let db = Arc::new(Db::memory().await.unwrap());
        let quotas = CallQuotas::default();
        // Seven calls were billed before this month was first claimed from.
        let a = reserve(&quotas, &db, 9).await.unwrap();
        let b = reserve(&quotas, &db, 9).await.unwrap();
        let refused = reserve(&quotas, &db, 9).await.unwrap_err();
        assert_eq!(refused.limit, 9);
        assert_eq!(refused.used, 9);
        assert_eq!(refused.resets_at, Some(Period::containing(NOVEMBER).end));
        assert_eq!(a.commit(), 8);
        drop(b); // failed
        let c = reserve(&quotas, &db, 9).await.unwrap();
        assert_eq!(c.commit(), 9);
        assert!(reserve(&quotas, &db, 9).await.is_err());
        // A raised limit (an override) applies at once.
        assert!(reserve(&quotas, &db, 10).await.is_ok());
    }

    #[tokio::test]
    async fn nodes_sharing_a_database_never_overrun_the_quota_together() {
        let dir = tempfile::tempdir().unwrap();
        let location = db::DbLocation::File(dir.path().join("wisp.db"));
        // Three nodes: three processes' worth of holdings on one database file.
        let db = Arc::new(Db::open(&location).await.unwrap());
        let nodes: Vec<_> = (0..3)
            .map(|_| {
                let quotas = Arc::new(CallQuotas::default());
                quotas.set_fleet_size(3);
                quotas
            })
            .collect();
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let quotas = Arc::clone(&nodes[i % 3]);
                let db = Arc::clone(&db);
                tokio::spawn(async move {
                    let mut won = 0;
                    for _ in 0..80 {
                        if let Ok(r) = reserve(&quotas, &db, 1_007).await {
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
        assert_eq!(claimed(&db).await, 1_007);
    }

    #[tokio::test]
    async fn a_clean_stop_gives_back_what_the_node_holds() {
        let db = Arc::new(Db::memory().await.unwrap());
        let first = CallQuotas::default();
        reserve(&first, &db, 1_007).await.unwrap().commit();
        // The first claim took a block: a quarter of the 1,000 left, capped.
        assert_eq!(claimed(&db).await, 7 + 250);
        assert_eq!(first.give_back(&db).await.unwrap(), 249);
        assert_eq!(claimed(&db).await, 8);
        // Another node finds every call the first did not use.
        let second = CallQuotas::default();
        let mut won = 0;
        while let Ok(r) = reserve(&second, &db, 1_007).await {
            r.commit();
            won += 1;
        }
        assert_eq!(won, 999);
    }

    #[tokio::test]
    async fn the_next_block_is_claimed_before_the_holding_runs_out() {
        let db = Arc::new(Db::memory().await.unwrap());
        let quotas = CallQuotas::default();
        let limit = 1_000_000;
        reserve(&quotas, &db, limit).await.unwrap().commit();
        assert_eq!(claimed(&db).await, 7 + MAX_BLOCK as i64);
        // Down to half of the block: the call that gets there starts the next claim.
        for _ in 1..MAX_BLOCK / 2 {
            reserve(&quotas, &db, limit).await.unwrap().commit();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while claimed(&db).await != 7 + 2 * MAX_BLOCK as i64 {
            assert!(std::time::Instant::now() < deadline, "no claim ahead");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The holding now has what was left of the first block and the whole second one,
        // and the calls' count of the month is unchanged by the claim ahead.
        let next = reserve(&quotas, &db, limit).await.unwrap();
        assert_eq!(next.used(), 7 + MAX_BLOCK / 2);
        assert_eq!(next.commit(), 7 + MAX_BLOCK / 2 + 1);
        assert_eq!(
            quotas.give_back(&db).await.unwrap(),
            MAX_BLOCK + MAX_BLOCK / 2 - 1
        );
    }

    #[tokio::test]
    async fn another_organisation_s_quota_is_its_own() {
        let db = Arc::new(Db::memory().await.unwrap());
        let quotas = CallQuotas::default();
        let period = Period::containing(NOVEMBER);
        let reserve_for = async |org: &str| {
            quotas
                .reserve(&db, org, period, Some(1), || async { Ok(0) })
                .await
                .unwrap()
        };
        reserve_for("org-a").await.unwrap().commit();
        assert!(
            reserve_for("org-a").await.is_err(),
            "org-a used its one call"
        );
        // Another organisation's claims start from its own billed calls.
        reserve_for("org-b").await.unwrap().commit();
        assert!(reserve_for("org-b").await.is_err());
    }

    #[test]
    fn blocks_shrink_as_the_quota_runs_out() {
        assert_eq!(block_size(1_000_000, 1), MAX_BLOCK);
        assert_eq!(block_size(400, 2), 50);
        assert_eq!(block_size(3, 4), 1);
        assert_eq!(block_size(1, 1), 1);
        assert_eq!(block_size(0, 1), 0);
    }

    #[tokio::test]
    async fn unlimited_plans_claim_nothing() {
        let db = Arc::new(Db::memory().await.unwrap());
        let quotas = CallQuotas::default();
        let period = Period::containing(NOVEMBER);
        let free = quotas
            .reserve(&db, "org", period, None, || async { Ok(7) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(free.commit(), 0);
        let conn = db.read().await;
        let rows = db::first_row(
            conn.query("SELECT COUNT(*) FROM quota_claims", ())
                .await
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(rows.get::<i64>(0).unwrap(), 0);
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
