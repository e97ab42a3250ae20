//! Read-through memos of rows read on every request, stale after any write.
//!
//! A memoised row is stamped with the database's write generation read under the
//! connection lock, and is served only while the generation has not moved: any
//! [`Db::conn`] (a possible write) in this process makes every memo miss once, so a
//! revoked key or a new deployment is seen by the very next request. Writes made by other
//! processes sharing a remote database are seen after at most [`MEMO_TTL`].

use std::hash::Hash;
use std::time::Duration;

use libsql::Connection;

use super::Db;

/// How long a memoised row is served at most, whatever this process writes: the bound on
/// staleness for changes made by other machines sharing the database.
pub const MEMO_TTL: Duration = Duration::from_secs(1);

/// Memoised rows of one kind, keyed by `K`.
pub struct Memo<K, V> {
    entries: moka::sync::Cache<K, Stamped<V>>,
}

#[derive(Clone)]
struct Stamped<V> {
    generation: u64,
    value: V,
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A memo holding at most `capacity` rows.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(MEMO_TTL)
                .build(),
        }
    }

    /// The memoised row for `key`, or what `load` reads on the connection (taken with
    /// [`Db::reader`], so `load` must not change anything a memo holds). Only rows that
    /// exist are memoised: a flood of unknown keys never evicts the known ones.
    pub async fn get_or_load<E>(
        &self,
        db: &Db,
        key: K,
        load: impl AsyncFnOnce(&Connection) -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E> {
        if let Some(hit) = self.entries.get(&key)
            && hit.generation == db.generation()
        {
            return Ok(Some(hit.value));
        }
        let conn = db.reader().await;
        let generation = db.generation();
        let value = load(&conn).await?;
        drop(conn);
        if let Some(value) = &value {
            let value = value.clone();
            self.entries.insert(key, Stamped { generation, value });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn count_loads(memo: &Memo<&'static str, i64>, db: &Db, loads: &AtomicUsize) -> i64 {
        memo.get_or_load(db, "k", async |conn: &Connection| {
            loads.fetch_add(1, Ordering::SeqCst);
            let mut rows = conn.query("SELECT COUNT(*) FROM orgs", ()).await?;
            let row = rows.next().await?.expect("one row");
            Ok::<_, libsql::Error>(Some(row.get::<i64>(0)?))
        })
        .await
        .expect("load")
        .expect("some")
    }

    #[tokio::test]
    async fn a_row_is_read_once_until_a_write_makes_it_stale() {
        let db = Db::memory().await.expect("open");
        let memo = Memo::new(10);
        let loads = AtomicUsize::new(0);
        assert_eq!(count_loads(&memo, &db, &loads).await, 0);
        assert_eq!(count_loads(&memo, &db, &loads).await, 0);
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "the second read is memoised"
        );

        db.reader().await.query("SELECT 1", ()).await.expect("read");
        assert_eq!(count_loads(&memo, &db, &loads).await, 0);
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "a reader leaves memos valid"
        );

        db.conn()
            .await
            .execute(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ('1', 'a', 'a', 0)",
                (),
            )
            .await
            .expect("insert");
        assert_eq!(
            count_loads(&memo, &db, &loads).await,
            1,
            "the write is seen"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn missing_rows_are_not_memoised() {
        let db = Db::memory().await.expect("open");
        let memo: Memo<&'static str, i64> = Memo::new(10);
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            let found = memo
                .get_or_load(&db, "absent", async |_: &Connection| {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, libsql::Error>(None)
                })
                .await
                .expect("load");
            assert_eq!(found, None);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}
