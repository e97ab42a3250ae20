//! The two kinds of database handle, distinguished by type: a [`Reader`] can only query, a
//! [`Writer`] can also change rows and run transactions.
//!
//! Storage functions that only read take `&Reader`; those that change rows take `&Writer`.
//! A `&Writer` (and so a transaction) derefs to a `&Reader`, so reads run inside a
//! transaction unchanged, but a `&Reader` is never a `&Writer`: handing a write function
//! the read handle is a compile error. The one statement method a reader has is `query`,
//! and it refuses any statement that is not a read (an `INSERT … RETURNING` through
//! `query` included), so the type is not a convention.

use std::ops::Deref;
use std::sync::Arc;

use libsql::params::IntoParams;
use libsql::{Connection, Rows};

use super::DbError;
use super::link::Link;

/// A connection that only reads.
#[derive(Clone)]
pub struct Reader {
    link: Arc<Link>,
}

impl Reader {
    /// Runs a read-only statement (`SELECT`, a `WITH … SELECT`, `PRAGMA` reads).
    pub async fn query(&self, sql: &str, params: impl IntoParams) -> libsql::Result<Rows> {
        if !is_read(sql) {
            return Err(libsql::Error::Misuse(format!(
                "a statement that writes was run through a read handle: {}",
                sql.trim().chars().take(60).collect::<String>()
            )));
        }
        let params = params.into_params()?;
        // A read is safe to run again on a fresh connection.
        self.link
            .run(true, |conn| {
                let params = params.clone();
                async move { conn.query(sql, params).await }
            })
            .await
    }

    /// Whether the connection is outside any transaction.
    pub fn is_autocommit(&self) -> bool {
        self.link.current().is_autocommit()
    }

    /// How many times a lost connection was replaced.
    pub fn replacements(&self) -> u64 {
        self.link.replacements()
    }
}

/// A connection that reads and writes.
#[derive(Clone)]
pub struct Writer {
    reader: Reader,
}

impl Deref for Writer {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl Writer {
    pub(crate) fn new(link: Link) -> Self {
        Self {
            reader: Reader {
                link: Arc::new(link),
            },
        }
    }

    fn link(&self) -> &Link {
        &self.reader.link
    }

    fn conn(&self) -> Connection {
        self.link().current()
    }

    /// Runs a statement that changes rows; the number of rows changed. Retried on a fresh
    /// connection only when the lost one provably never ran it (see [`super::link`]).
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> libsql::Result<u64> {
        let params = params.into_params()?;
        self.link()
            .run(false, |conn| {
                let params = params.clone();
                async move { conn.execute(sql, params).await }
            })
            .await
    }

    /// Runs several statements separated by `;` (migrations).
    pub async fn execute_batch(&self, sql: &str) -> libsql::Result<()> {
        self.link()
            .run(false, |conn| async move {
                conn.execute_batch(sql).await.map(drop)
            })
            .await
    }

    /// Runs any statement and returns its rows: a write with `RETURNING`, or a read.
    pub async fn query_rows(&self, sql: &str, params: impl IntoParams) -> libsql::Result<Rows> {
        let params = params.into_params()?;
        self.link()
            .run(false, |conn| {
                let params = params.clone();
                async move { conn.query(sql, params).await }
            })
            .await
    }

    /// Prepares a statement to run many times (its writes included).
    pub async fn prepare(&self, sql: &str) -> libsql::Result<libsql::Statement> {
        self.link()
            .run(false, |conn| async move { conn.prepare(sql).await })
            .await
    }

    /// Rows changed by the last statement.
    pub fn changes(&self) -> u64 {
        self.conn().changes()
    }

    /// Runs `body` in a transaction: `BEGIN`, the body, `COMMIT`; an error from the body
    /// rolls everything back and is returned as is. The only way code here opens a
    /// transaction ([`super::Db::transaction`] is this on the main connection).
    ///
    /// `body` gets this same writer: its statements run inside the transaction, on the
    /// same connection (on a remote server too: the transaction is the stream's).
    ///
    /// A transaction that loses its connection is rolled back by the server with it; it is
    /// not retried here (the body runs once), and the error says the database is
    /// unavailable, which the caller can retry as a whole. A lost `COMMIT` whose answer
    /// never came back may or may not have committed: the same error, as for any write.
    pub async fn transaction<T, E>(
        &self,
        body: impl AsyncFnOnce(&Writer) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        // IMMEDIATE: the write lock is taken (or waited for) here, not at the first write.
        // With a deferred BEGIN, a transaction that reads and then writes while another
        // connection (another node, on a shared server) committed in between fails with
        // `SQLITE_BUSY_SNAPSHOT`, which no waiting cures.
        // BEGIN ran twice is harmless only before anything else: the retry runs on a new
        // connection, where nothing has begun.
        self.link()
            .run(true, |conn| async move {
                conn.execute("BEGIN IMMEDIATE", ()).await
            })
            .await
            .map_err(DbError::from)?;
        self.link().begin_transaction();
        match body(self).await {
            Ok(value) => {
                let committed = self.execute("COMMIT", ()).await;
                let lost = self.link().end_transaction();
                match committed {
                    Ok(_) => Ok(value),
                    Err(error) => {
                        if !lost {
                            self.roll_back_after_failed_commit().await;
                        }
                        Err(DbError::from(error).into())
                    }
                }
            }
            Err(error) => {
                if !self.link().end_transaction()
                    && let Err(e) = self.execute("ROLLBACK", ()).await
                {
                    tracing::warn!(error = %e, "rollback failed");
                }
                Err(error)
            }
        }
    }

    /// A failed `COMMIT` leaves the transaction open on a working connection (e.g.
    /// `SQLITE_BUSY`): roll it back so that the connection is usable again.
    async fn roll_back_after_failed_commit(&self) {
        if !self.conn().is_autocommit()
            && let Err(e) = self.execute("ROLLBACK", ()).await
        {
            tracing::warn!(error = %e, "rollback after a failed commit failed");
        }
    }

    /// Rolls back a transaction a cancelled request left open on this connection.
    pub(super) async fn roll_back_abandoned(&self) {
        // A request cancelled inside `transaction` never reached its end.
        if self.link().end_transaction() {
            return;
        }
        if !self.conn().is_autocommit() {
            tracing::warn!("rolling back a transaction abandoned by a cancelled request");
            if let Err(e) = self.execute("ROLLBACK", ()).await {
                tracing::error!(error = %e, "failed to roll back an abandoned transaction");
            }
        }
    }
}

/// Whether `sql` only reads: it starts with `SELECT`, `VALUES`, `EXPLAIN` or `PRAGMA`
/// (without an assignment), or is a `WITH` whose statement is a `SELECT`.
fn is_read(sql: &str) -> bool {
    let sql = sql.trim_start();
    let first = first_word(sql);
    match first.as_str() {
        "SELECT" | "VALUES" | "EXPLAIN" => true,
        "PRAGMA" => !sql.contains('='),
        "WITH" => !words(sql)
            .any(|word| matches!(word.as_str(), "INSERT" | "UPDATE" | "DELETE" | "REPLACE")),
        _ => false,
    }
}

fn first_word(sql: &str) -> String {
    words(sql).next().unwrap_or_default()
}

fn words(sql: &str) -> impl Iterator<Item = String> + '_ {
    sql.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|word| !word.is_empty())
        .map(|word| word.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_told_from_writes() {
        for read in [
            "SELECT 1",
            "  select id FROM orgs",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "PRAGMA table_info(orgs)",
            "VALUES (1)",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "INSERT INTO orgs VALUES (1)",
            "insert into orgs values (1) returning id",
            "UPDATE orgs SET name = 'x'",
            "DELETE FROM orgs",
            "WITH t AS (SELECT 1) INSERT INTO orgs SELECT * FROM t",
            "PRAGMA foreign_keys = OFF",
            "BEGIN",
            "CREATE TABLE x (a)",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    #[tokio::test]
    async fn a_reader_refuses_a_write_and_a_writer_rolls_back_a_failed_body() {
        let db = super::super::Db::memory().await.expect("open");
        let reader = db.read().await;
        let refused = reader
            .query(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ('1', 'a', 'a', 0) RETURNING id",
                (),
            )
            .await;
        assert!(matches!(refused, Err(libsql::Error::Misuse(_))));
        drop(reader);
        let failed: Result<(), DbError> = db
            .transaction(async |tx| {
                tx.execute(
                    "INSERT INTO orgs (id, slug, name, created_at) VALUES ('1', 'a', 'a', 0)",
                    (),
                )
                .await?;
                Err(DbError::Corrupt("the body fails".into()))
            })
            .await;
        assert!(failed.is_err());
        let mut rows = db
            .read()
            .await
            .query("SELECT COUNT(*) FROM orgs", ())
            .await
            .expect("count");
        let count: i64 = rows
            .next()
            .await
            .expect("row")
            .expect("one")
            .get(0)
            .expect("n");
        assert_eq!(count, 0);
    }
}
