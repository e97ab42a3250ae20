//! Read-through memos of rows read on every request, stale after any write, refreshed in
//! the background.
//!
//! A memoised row is stamped with the database's write generation read before the load's
//! first statement, and is served only while the generation has not moved: any
//! [`Db::conn`] (a possible write) in this process makes every memo miss once, so a
//! revoked key or a new deployment is seen by the very next request. Loads run on
//! [`Db::snapshot`], and so may run while a write is under way: the write bumps the
//! generation when it is released, which makes whatever they read meanwhile stale.
//!
//! Writes made by other processes sharing a database cannot bump the generation, so a row
//! is also read again once it is [`MEMO_TTL`] old. That read happens off the request path:
//! the request that finds the row old still gets it, and starts one background refresh
//! (one per row, however many requests find it old). A request therefore never waits for
//! the database on a warm row, even while the connection is held by a slow commit; only
//! a row older than [`MEMO_STALE_LIMIT`] (its refreshes kept failing, or nobody asked for
//! it) is read again on the request path.
//!
//! While the database is unreachable, a memoised row is served whatever its age or
//! generation, up to [`MEMO_OUTAGE_LIMIT`]: warm inference keeps answering through an
//! outage, instead of failing on the one read it would otherwise make. The request does not
//! even try the database once the last statement failed so ([`super::watch_health`] finds
//! it back); it does when the row's read fails for want of the database.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Reader;

use super::Db;

/// Age after which a memoised row is read again in the background: the usual bound on
/// staleness for changes made by other machines sharing the database.
pub const MEMO_TTL: Duration = Duration::from_secs(1);

/// Age after which a memoised row is never served: the request reads it itself. The bound
/// on staleness for changes made by other machines while refreshes fail.
pub const MEMO_STALE_LIMIT: Duration = Duration::from_secs(10);

/// Age up to which a memoised row is served while the database is unreachable: the bound
/// on staleness during an outage (nothing can change the row then, except on another
/// machine that still reaches the database).
pub const MEMO_OUTAGE_LIMIT: Duration = Duration::from_secs(5 * 60);

/// An error that may say the database was unreachable.
pub trait MaybeUnavailable {
    /// Whether the database could not be reached.
    fn is_unavailable(&self) -> bool;
}

impl MaybeUnavailable for super::DbError {
    fn is_unavailable(&self) -> bool {
        super::DbError::is_unavailable(self)
    }
}

impl MaybeUnavailable for libsql::Error {
    fn is_unavailable(&self) -> bool {
        super::link::lost(self).is_some()
    }
}

/// What a memo's `load` returns: the row's read, borrowing the connection and the key.
pub type LoadFuture<'c, V, E> = Pin<Box<dyn Future<Output = Result<Option<V>, E>> + Send + 'c>>;

/// Memoised rows of one kind, keyed by `K`.
pub struct Memo<K, V> {
    entries: moka::sync::Cache<K, Stamped<V>>,
}

#[derive(Clone)]
struct Stamped<V> {
    generation: u64,
    loaded: Instant,
    /// Set while a background refresh of this row runs.
    refreshing: Arc<AtomicBool>,
    value: V,
}

impl<V> Stamped<V> {
    fn new(generation: u64, value: V) -> Self {
        Self {
            generation,
            loaded: Instant::now(),
            refreshing: Arc::new(AtomicBool::new(false)),
            value,
        }
    }
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A memo holding at most `capacity` rows.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(MEMO_OUTAGE_LIMIT)
                .build(),
        }
    }

    /// The memoised row for `key`, or what `load` reads on [`Db::snapshot`] (which is
    /// read-only on an embedded file, so `load` must only read). Only rows that exist are
    /// memoised: a flood of unknown keys never evicts the known ones.
    pub async fn get_or_load<E, F>(&self, db: &Arc<Db>, key: K, load: F) -> Result<Option<V>, E>
    where
        F: for<'c> FnOnce(&'c Reader, &'c K) -> LoadFuture<'c, V, E> + Send + 'static,
        E: Display + MaybeUnavailable + Send + 'static,
    {
        let hit = self.entries.get(&key);
        if let Some(hit) = &hit
            && db.health().is_unavailable()
        {
            // An outage: serve the old row. `watch_health` finds the database back; reads
            // from here would only queue up behind an unreachable server.
            return Ok(Some(hit.value.clone()));
        }
        if let Some(hit) = hit.clone()
            && hit.generation == db.generation()
        {
            let age = hit.loaded.elapsed();
            if age < MEMO_TTL {
                return Ok(Some(hit.value));
            }
            if age < MEMO_STALE_LIMIT {
                if !hit.refreshing.swap(true, Ordering::AcqRel) {
                    self.refresh_in_background(db, key, load, hit.refreshing);
                }
                return Ok(Some(hit.value));
            }
        }
        let conn = db.snapshot().await;
        let generation = db.generation();
        let loaded = load(&conn, &key).await;
        drop(conn);
        let value = match loaded {
            Ok(value) => value,
            Err(error) if error.is_unavailable() && hit.is_some() => {
                tracing::debug!(error = %error, "the database is unavailable; serving a memoised row");
                return Ok(hit.map(|hit| hit.value));
            }
            Err(error) => return Err(error),
        };
        Self::store_in(&self.entries, key, generation, value.clone());
        Ok(value)
    }

    /// Reads `key` again on a task of its own; on failure the old row stays, and a later
    /// request tries again.
    fn refresh_in_background<E, F>(
        &self,
        db: &Arc<Db>,
        key: K,
        load: F,
        refreshing: Arc<AtomicBool>,
    ) where
        F: for<'c> FnOnce(&'c Reader, &'c K) -> LoadFuture<'c, V, E> + Send + 'static,
        E: Display + MaybeUnavailable + Send + 'static,
    {
        let entries = self.entries.clone();
        let db = Arc::clone(db);
        // Off the executor: without a snapshot connection of its own (`:memory:`, remote)
        // the load waits for the main one, and whatever commit holds it.
        tokio::spawn(super::on_blocking_thread(async move {
            let conn = db.snapshot().await;
            let generation = db.generation();
            let loaded = load(&conn, &key).await;
            drop(conn);
            match loaded {
                Ok(value) => Self::store_in(&entries, key, generation, value),
                Err(error) => {
                    tracing::warn!(error = %error, "failed to refresh a memoised row; serving the old one");
                    refreshing.store(false, Ordering::Release);
                }
            }
        }));
    }

    /// Memoises a row read under `generation`, or forgets one that is gone.
    fn store_in(
        entries: &moka::sync::Cache<K, Stamped<V>>,
        key: K,
        generation: u64,
        value: Option<V>,
    ) {
        match value {
            Some(value) => entries.insert(key, Stamped::new(generation, value)),
            // Gone (deleted, revoked): never serve the old row again.
            None => entries.invalidate(&key),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::db::Writer;

    /// Reads the number of organisations through the memo, counting the reads.
    async fn count_orgs(
        memo: &Memo<&'static str, i64>,
        db: &Arc<Db>,
        loads: &Arc<AtomicUsize>,
    ) -> i64 {
        let loads = Arc::clone(loads);
        memo.get_or_load(db, "k", move |conn: &Reader, _: &&'static str| {
            Box::pin(async move {
                loads.fetch_add(1, Ordering::SeqCst);
                let mut rows = conn.query("SELECT COUNT(*) FROM orgs", ()).await?;
                let row = rows.next().await?.expect("one row");
                Ok::<_, libsql::Error>(Some(row.get::<i64>(0)?))
            })
        })
        .await
        .expect("load")
        .expect("some")
    }

    async fn open() -> Arc<Db> {
        Arc::new(Db::memory().await.expect("open"))
    }

    /// A database file in `dir`: memos load through its snapshot connection.
    async fn open_file(dir: &tempfile::TempDir) -> Arc<Db> {
        let location = crate::db::DbLocation::File(dir.path().join("wisp.db"));
        Arc::new(Db::open(&location).await.expect("open"))
    }

    async fn insert_org(conn: &Writer, id: &str) -> libsql::Result<u64> {
        conn.execute(
            "INSERT INTO orgs (id, slug, name, created_at) VALUES (?1, ?1, ?1, 0)",
            [id],
        )
        .await
    }

    /// What another process sharing the database would do: a write this process's
    /// generation does not see.
    async fn insert_org_behind_the_memos_back(db: &Db, id: &str) {
        insert_org(&*db.write_unmemoised().await, id)
            .await
            .expect("insert");
    }

    /// Whether `done` comes true within a second: a background refresh lands shortly
    /// after it starts.
    async fn eventually(mut done: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..100 {
            if done().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Makes the memoised row look `age` old.
    fn age(memo: &Memo<&'static str, i64>, age: Duration) {
        let mut entry = memo.entries.get(&"k").expect("memoised");
        entry.loaded -= age;
        memo.entries.insert("k", entry);
    }

    #[tokio::test]
    async fn a_row_is_read_once_until_a_write_makes_it_stale() {
        let db = open().await;
        let memo = Memo::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        assert_eq!(count_orgs(&memo, &db, &loads).await, 0);
        assert_eq!(count_orgs(&memo, &db, &loads).await, 0);
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "the second read is memoised"
        );

        db.read().await.query("SELECT 1", ()).await.expect("read");
        assert_eq!(count_orgs(&memo, &db, &loads).await, 0);
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "a reader leaves memos valid"
        );

        insert_org(&*db.write().await, "1").await.expect("insert");
        assert_eq!(count_orgs(&memo, &db, &loads).await, 1, "the write is seen");
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn on_a_file_a_stale_row_is_read_while_a_write_holds_the_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_file(&dir).await;
        let memo = Memo::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        assert_eq!(count_orgs(&memo, &db, &loads).await, 0);
        // A committed write makes the row stale.
        insert_org(&*db.write().await, "1").await.expect("insert");

        // Another write under way, as an API call or the metering drainer waiting for its
        // commit: reading the stale row must not wait for it.
        let writing = db.write().await;
        writing.execute("BEGIN", ()).await.expect("begin");
        insert_org(&writing, "2").await.expect("insert");
        let read = tokio::time::timeout(Duration::from_secs(10), count_orgs(&memo, &db, &loads));
        assert_eq!(
            read.await.expect("read without the main connection"),
            1,
            "the last commit"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        writing.execute("COMMIT", ()).await.expect("commit");
        drop(writing);

        // What was read during the write is stale now that it is committed.
        assert_eq!(count_orgs(&memo, &db, &loads).await, 2, "the write is seen");
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_snapshot_connection_refuses_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_file(&dir).await;
        // A `Reader` has no `execute`; a write smuggled through `query` is refused too.
        let written = db
            .snapshot()
            .await
            .query(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ('1', 'a', 'a', 0) RETURNING id",
                (),
            )
            .await;
        assert!(written.is_err(), "a memo load must only read");
    }

    #[tokio::test]
    async fn an_old_row_is_served_while_one_background_refresh_reads_it_again() {
        let db = open().await;
        let memo = Memo::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        assert_eq!(count_orgs(&memo, &db, &loads).await, 0);
        insert_org_behind_the_memos_back(&db, "elsewhere").await;
        age(&memo, MEMO_TTL);

        // Hold the connection, as a slow commit would: the requests must not wait for it.
        let held = db.read().await;
        for _ in 0..5 {
            // A request that waited for the connection would wait forever here.
            let read =
                tokio::time::timeout(Duration::from_secs(10), count_orgs(&memo, &db, &loads));
            assert_eq!(read.await.expect("served without the connection"), 0);
        }
        drop(held);
        eventually(async || loads.load(Ordering::SeqCst) >= 2).await;
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "one refresh for five requests"
        );
        // The refresh stores the new row just after its read.
        let refreshed = eventually(async || count_orgs(&memo, &db, &loads).await == 1).await;
        assert!(refreshed, "the refreshed row is served");
        assert_eq!(loads.load(Ordering::SeqCst), 2, "and memoised");
    }

    #[tokio::test]
    async fn a_row_past_the_stale_limit_is_read_on_the_request_path() {
        let db = open().await;
        let memo = Memo::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        assert_eq!(count_orgs(&memo, &db, &loads).await, 0);
        insert_org_behind_the_memos_back(&db, "elsewhere").await;
        age(&memo, MEMO_STALE_LIMIT);
        assert_eq!(count_orgs(&memo, &db, &loads).await, 1);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_row_that_is_gone_is_never_served_again() {
        let db = open().await;
        let memo: Memo<&'static str, i64> = Memo::new(10);
        let present = Arc::new(AtomicBool::new(true));
        let read = |present: &Arc<AtomicBool>| {
            let present = Arc::clone(present);
            memo.get_or_load(&db, "k", move |_: &Reader, _: &&'static str| {
                Box::pin(async move {
                    Ok::<_, libsql::Error>(present.load(Ordering::SeqCst).then_some(7))
                })
            })
        };
        assert_eq!(read(&present).await.expect("load"), Some(7));
        present.store(false, Ordering::SeqCst);
        age(&memo, MEMO_TTL);
        assert_eq!(
            read(&present).await.expect("load"),
            Some(7),
            "old, while refreshing"
        );
        eventually(async || memo.entries.get(&"k").is_none()).await;
        assert_eq!(read(&present).await.expect("load"), None, "gone");
    }

    #[tokio::test]
    async fn missing_rows_are_not_memoised() {
        let db = open().await;
        let memo: Memo<&'static str, i64> = Memo::new(10);
        let loads = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let loads = Arc::clone(&loads);
            let found = memo
                .get_or_load(&db, "absent", move |_: &Reader, _: &&'static str| {
                    Box::pin(async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, libsql::Error>(None)
                    })
                })
                .await
                .expect("load");
            assert_eq!(found, None);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}
