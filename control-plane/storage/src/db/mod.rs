//! libSQL access: opening the database in any of its modes and serialising access to it.
//!
//! The same code runs on an embedded file, on `:memory:`, on a remote libSQL server
//! (`libsql://…` or `https://…` with an auth token) and on an embedded replica of a remote
//! primary (a local file kept in sync; reads are local, writes go to the primary).
//!
//! All statements go through one connection behind an async mutex. SQLite has a single
//! writer anyway, and holding the lock for the whole of a transaction is what keeps two
//! requests from interleaving statements inside each other's transaction. Never hold it
//! across anything slow that is not the database (uploads, password hashing).
//!
//! Hot rows read on every request (API keys, organisations, plans, deployments) are kept in
//! [`Memo`]s. Every [`Db::write`] (and [`Db::transaction`]) counts as a change to them and
//! makes every memoised row stale when it is released (after the commit), including rows
//! read while it was held; [`Db::read`] and [`Db::write_unmemoised`] (for rows no memo
//! holds) leave them be. So a change made by this process is seen by its very next request.
//! Which one a caller takes is checked by type ([`handles`]): a [`Reader`] cannot write.
//!
//! Memos read through [`Db::snapshot`]: on an embedded file, a second connection that only
//! reads. Under WAL it reads the last commit while the main connection is inside a
//! transaction or waiting for a commit's `fsync`, so a request whose rows went stale does
//! not queue behind the metering drainer's batch or an API write.

pub mod handles;
pub mod link;
mod memo;
mod migrations;

use std::future::Future;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libsql::{Builder, Database};
use tokio::sync::{Mutex, MutexGuard};

pub use handles::{Reader, Writer};
pub use memo::{LoadFuture, MEMO_OUTAGE_LIMIT, MEMO_STALE_LIMIT, MEMO_TTL, MaybeUnavailable, Memo};
pub use migrations::{MIGRATIONS, Migration};

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The libSQL driver failed.
    #[error("libsql: {0}")]
    Libsql(libsql::Error),
    /// The database cannot be reached (an outage, a restart, a network cut): a retry later
    /// can succeed. A write that failed so may or may not have been applied.
    #[error("database unavailable: {0}")]
    Unavailable(libsql::Error),
    /// Other writers kept the database locked past the server's busy timeout
    /// (`SQLITE_BUSY`): nothing of the statement was applied, and a retry can succeed.
    #[error("database busy: {0}")]
    Busy(libsql::Error),
    /// A stored value did not have the expected shape.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<libsql::Error> for DbError {
    fn from(error: libsql::Error) -> Self {
        if link::lost(&error).is_some() {
            Self::Unavailable(error)
        } else if link::busy(&error) {
            Self::Busy(error)
        } else {
            Self::Libsql(error)
        }
    }
}

impl DbError {
    /// Whether the database could not be reached: the error is the outage, not the
    /// statement, and a retry later can succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether other writers held the database's lock too long: a retry can succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy(_))
    }
}

/// Whether `error`, or any error it was caused by, is the database being unreachable.
pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by(error, DbError::is_unavailable, |e| link::lost(e).is_some())
}

/// Whether `error`, or any error it was caused by, is the database being busy.
pub fn is_busy(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by(error, DbError::is_busy, link::busy)
}

/// Whether `error` or one of its sources is a [`DbError`] matching `db` or a libSQL error
/// matching `driver`.
fn caused_by(
    error: &(dyn std::error::Error + 'static),
    db: impl Fn(&DbError) -> bool,
    driver: impl Fn(&libsql::Error) -> bool,
) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.downcast_ref::<DbError>().is_some_and(&db)
            || error.downcast_ref::<libsql::Error>().is_some_and(&driver)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq)]
pub enum DbLocation {
    /// A private in-memory database (tests).
    Memory,
    /// An embedded database file.
    File(PathBuf),
    /// A remote libSQL server (`libsql://`, `https://`, `http://`).
    Remote {
        url: String,
        auth_token: String,
        /// How long a statement may wait for the server's answer (`None`: no limit).
        statement_timeout: Option<Duration>,
    },
    /// A local file replicating a remote primary; writes are forwarded to the primary.
    Replica {
        path: PathBuf,
        url: String,
        auth_token: String,
        sync_interval: Option<Duration>,
        /// As for [`DbLocation::Remote`].
        statement_timeout: Option<Duration>,
    },
}

/// The control plane's database.
pub struct Db {
    conn: Mutex<Writer>,
    /// Read-only (`query_only`) on an embedded file; it is a `Writer` only to share the
    /// guard types, and is handed out as a [`ReadGuard`].
    snapshot: Option<Mutex<Writer>>,
    generation: AtomicU64,
    health: Arc<link::Health>,
    _database: Arc<Database>,
}

impl Db {
    pub async fn open(location: &DbLocation) -> Result<Self, DbError> {
        let database = match location {
            DbLocation::Memory => Builder::new_local(":memory:").build().await?,
            DbLocation::File(path) => Builder::new_local(path).build().await?,
            DbLocation::Remote {
                url, auth_token, ..
            } => {
                Builder::new_remote(url.clone(), auth_token.clone())
                    .build()
                    .await?
            }
            DbLocation::Replica {
                path,
                url,
                auth_token,
                sync_interval,
                ..
            } => {
                let mut builder =
                    Builder::new_remote_replica(path, url.clone(), auth_token.clone())
                        .read_your_writes(true);
                if let Some(interval) = sync_interval {
                    builder = builder.sync_interval(*interval);
                }
                builder.build().await?
            }
        };
        if matches!(location, DbLocation::Replica { .. }) {
            // Start from the primary's current state, not from whatever the file held.
            database.sync().await?;
        }
        let database = Arc::new(database);
        let conn = database.connect()?;
        if matches!(location, DbLocation::File(_) | DbLocation::Memory) {
            conn.execute("PRAGMA foreign_keys = ON", ()).await?;
            if matches!(location, DbLocation::File(_)) {
                let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await?;
                while rows.next().await?.is_some() {}
                conn.busy_timeout(Duration::from_secs(5))?;
            }
        }
        let health = Arc::new(link::Health::default());
        let statement_timeout = match location {
            DbLocation::Remote {
                statement_timeout, ..
            }
            | DbLocation::Replica {
                statement_timeout, ..
            } => *statement_timeout,
            DbLocation::Memory | DbLocation::File(_) => None,
        };
        let conn = Writer::new(
            link::Link::new(Arc::clone(&health), Arc::clone(&database), conn)
                .with_statement_timeout(statement_timeout),
        );
        migrations::apply(&conn).await?;
        let snapshot = match location {
            DbLocation::File(_) => Some(Mutex::new(open_snapshot(&health, &database).await?)),
            _ => None,
        };
        Ok(Self {
            conn: Mutex::new(conn),
            snapshot,
            generation: AtomicU64::new(0),
            health,
            _database: database,
        })
    }

    /// A fresh in-memory database (tests).
    pub async fn memory() -> Result<Self, DbError> {
        Self::open(&DbLocation::Memory).await
    }

    /// The connection, to read. Reads leave memoised rows be.
    pub async fn read(&self) -> ReadGuard<'_> {
        ReadGuard(self.lock().await)
    }

    /// The connection, to write rows a memo may hold (organisations, keys, plans, models,
    /// deployments, …): when it is released, every memoised row is stale, so this
    /// process's next request sees the change.
    pub async fn write(&self) -> WriteGuard<'_> {
        WriteGuard {
            conn: self.lock().await,
            generation: Some(&self.generation),
        }
    }

    /// The connection, to write only rows no memo holds (usage events, idempotency
    /// records, batch progress, blob intents, audit entries on their own): memoised rows
    /// stay fresh, so the hot path keeps skipping the database.
    pub async fn write_unmemoised(&self) -> WriteGuard<'_> {
        WriteGuard {
            conn: self.lock().await,
            generation: None,
        }
    }

    /// Runs `body` in a transaction on [`Db::write`]'s connection (see
    /// [`Writer::transaction`]).
    pub async fn transaction<T, E>(
        &self,
        body: impl AsyncFnOnce(&Writer) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.write().await.transaction(body).await
    }

    /// The read-only snapshot connection (on an embedded file), or else the main one.
    pub async fn snapshot(&self) -> ReadGuard<'_> {
        match &self.snapshot {
            Some(snapshot) => ReadGuard(snapshot.lock().await),
            None => self.read().await,
        }
    }

    async fn lock(&self) -> MutexGuard<'_, Writer> {
        let conn = self.conn.lock().await;
        conn.roll_back_abandoned().await;
        conn
    }

    /// The connections and how many are held now (for metrics): the main one, and the
    /// read-only snapshot on an embedded file. A held one is taken by a request or a
    /// background task; others wait for it.
    pub fn connections(&self) -> (usize, usize) {
        let held = |conn: &Mutex<Writer>| usize::from(conn.try_lock().is_err());
        let snapshot = self.snapshot.as_ref();
        (
            held(&self.conn) + snapshot.map_or(0, held),
            1 + usize::from(snapshot.is_some()),
        )
    }

    /// Whether the database answered the last statement.
    pub fn health(&self) -> &link::Health {
        &self.health
    }

    /// The write generation: how many accesses that may change a memoised row
    /// ([`Db::write`], [`Db::transaction`]) this process has released. A memoised row is
    /// served only while it is unchanged.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Makes every memoised row stale, as a write of this process would: another node
    /// sharing the database changed something (its entry in the invalidation log).
    pub fn invalidate_memos(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// How often [`watch_health`] asks the database whether it answers: while it does not, and
/// while it does.
pub const HEALTH_PROBE_UNAVAILABLE: Duration = Duration::from_secs(1);
pub const HEALTH_PROBE_AVAILABLE: Duration = Duration::from_secs(10);

/// Keeps [`Db::health`] current while nothing else runs a statement: an idle node notices
/// an outage within [`HEALTH_PROBE_AVAILABLE`], and its end within
/// [`HEALTH_PROBE_UNAVAILABLE`]. Runs as long as `db` lives.
pub async fn watch_health(db: std::sync::Weak<Db>) {
    loop {
        let Some(strong) = db.upgrade() else {
            return;
        };
        let wait = if strong.health().is_unavailable() {
            HEALTH_PROBE_UNAVAILABLE
        } else {
            HEALTH_PROBE_AVAILABLE
        };
        // `try_lock`: a busy connection is an answering one; the probe only matters when
        // nothing else runs.
        if let Ok(conn) = strong.conn.try_lock()
            && let Err(error) = conn.query("SELECT 1", ()).await
        {
            tracing::debug!(error = %error, "the database health probe failed");
        }
        drop(strong);
        tokio::time::sleep(wait).await;
    }
}

/// The connection held to read; derefs to a [`Reader`].
pub struct ReadGuard<'a>(MutexGuard<'a, Writer>);

impl Deref for ReadGuard<'_> {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.0
    }
}

/// The connection held to write; derefs to a [`Writer`]. Released, it makes memoised rows
/// stale (unless taken with [`Db::write_unmemoised`]).
pub struct WriteGuard<'a> {
    conn: MutexGuard<'a, Writer>,
    generation: Option<&'a AtomicU64>,
}

impl Deref for WriteGuard<'_> {
    type Target = Writer;

    fn deref(&self) -> &Writer {
        &self.conn
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(generation) = self.generation {
            generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn open_snapshot(
    health: &Arc<link::Health>,
    database: &Arc<Database>,
) -> Result<Writer, DbError> {
    let conn = database.connect()?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut rows = conn.query("PRAGMA query_only = ON", ()).await?;
    while rows.next().await?.is_some() {}
    // An embedded file: never lost, so never replaced (which would drop `query_only`).
    Ok(Writer::new(link::Link::new(
        Arc::clone(health),
        Arc::clone(database),
        conn,
    )))
}

/// Runs `work` on a thread of the blocking pool and waits for it there.
///
/// An embedded database runs each statement on the thread that polls it, and a commit
/// waits for `fsync`, which a slow disk can stretch to hundreds of milliseconds: work that
/// writes in the background (the metering drainer, memo refreshes, the hourly jobs) runs
/// here, so that no executor thread, and none of the requests queued on it, waits for the
/// disk. The runtime's I/O and timers keep working inside `work`.
pub async fn on_blocking_thread<T, F>(work: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || runtime.block_on(work)).await {
        Ok(output) => output,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // The runtime is shutting down and dropped `work` before it started; so is this
        // task's caller, at its next await.
        Err(_) => std::future::pending().await,
    }
}

/// Seconds since the Unix epoch: the one time representation stored in the database.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Formats a stored timestamp as RFC 3339 for the API.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A new random identifier for a row.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads the first row of a query, if any.
pub async fn first_row(mut rows: libsql::Rows) -> Result<Option<libsql::Row>, DbError> {
    Ok(rows.next().await?)
}

/// Reads all rows of a query through `map`.
pub async fn collect<T>(
    mut rows: libsql::Rows,
    mut map: impl FnMut(&libsql::Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(map(&row)?);
    }
    Ok(out)
}

/// Whether a libSQL error is a UNIQUE constraint violation.
pub fn is_unique_violation(error: &DbError) -> bool {
    matches!(error, DbError::Libsql(e) if e.to_string().contains("UNIQUE constraint failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(db: &Db, sql: &str) -> i64 {
        let conn = db.write().await;
        let row = first_row(conn.query(sql, ()).await.expect("query"))
            .await
            .expect("row")
            .expect("one row");
        row.get(0).expect("count")
    }

    #[tokio::test]
    async fn migrations_are_recorded_once_and_reopening_is_a_no_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = DbLocation::File(dir.path().join("wisp.db"));
        let db = Db::open(&location).await.expect("open");
        let applied = count(&db, "SELECT COUNT(*) FROM schema_migrations").await;
        assert_eq!(applied, MIGRATIONS.len() as i64);
        drop(db);
        let db = Db::open(&location).await.expect("reopen");
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM schema_migrations").await,
            applied
        );
    }

    #[tokio::test]
    async fn an_abandoned_transaction_is_rolled_back_before_the_next_caller() {
        let db = Db::memory().await.expect("open");
        {
            let conn = db.write().await;
            conn.execute("BEGIN", ()).await.expect("begin");
            conn.execute(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ('1', 'a', 'a', 0)",
                (),
            )
            .await
            .expect("insert");
            // Dropped here without COMMIT or ROLLBACK, as a cancelled request would.
        }
        assert!(db.write().await.is_autocommit());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM orgs").await, 0);
    }

    #[tokio::test]
    async fn memory_databases_are_independent() {
        let a = Db::memory().await.expect("a");
        let b = Db::memory().await.expect("b");
        a.write()
            .await
            .execute(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ('1', 'a', 'a', 0)",
                (),
            )
            .await
            .expect("insert");
        assert_eq!(count(&b, "SELECT COUNT(*) FROM orgs").await, 0);
    }
}
