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

use libsql::params::IntoParams;
use libsql::{Connection, Rows};

use super::DbError;

/// A connection that only reads.
#[derive(Clone)]
pub struct Reader {
    conn: Connection,
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
        self.conn.query(sql, params).await
    }

    /// Whether the connection is outside any transaction.
    pub fn is_autocommit(&self) -> bool {
        self.conn.is_autocommit()
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
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            reader: Reader { conn },
        }
    }

    fn conn(&self) -> &Connection {
        &self.reader.conn
    }

    /// Runs a statement that changes rows; the number of rows changed.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> libsql::Result<u64> {
        self.conn().execute(sql, params).await
    }

    /// Runs several statements separated by `;` (migrations).
    pub async fn execute_batch(&self, sql: &str) -> libsql::Result<()> {
        self.conn().execute_batch(sql).await.map(drop)
    }

    /// Runs any statement and returns its rows: a write with `RETURNING`, or a read.
    pub async fn query_rows(&self, sql: &str, params: impl IntoParams) -> libsql::Result<Rows> {
        self.conn().query(sql, params).await
    }

    /// Prepares a statement to run many times (its writes included).
    pub async fn prepare(&self, sql: &str) -> libsql::Result<libsql::Statement> {
        self.conn().prepare(sql).await
    }

    /// Rows changed by the last statement.
    pub fn changes(&self) -> u64 {
        self.conn().changes()
    }

    /// Runs `body` in a transaction: `BEGIN`, the body, `COMMIT`; an error from the body
    /// rolls everything back and is returned as is. The only way code here opens a
    /// transaction ([`super::Db::transaction`] is this on the main connection).
    ///
    /// `body` gets this same writer: its statements run inside the transaction.
    pub async fn transaction<T, E>(
        &self,
        body: impl AsyncFnOnce(&Writer) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let tx = self.conn().transaction().await.map_err(DbError::from)?;
        match body(self).await {
            Ok(value) => {
                tx.commit().await.map_err(DbError::from)?;
                Ok(value)
            }
            Err(error) => {
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(error = %e, "rollback failed");
                }
                Err(error)
            }
        }
    }

    /// Rolls back a transaction a cancelled request left open on this connection.
    pub(super) async fn roll_back_abandoned(&self) {
        if !self.conn().is_autocommit() {
            tracing::warn!("rolling back a transaction abandoned by a cancelled request");
            if let Err(e) = self.conn().execute("ROLLBACK", ()).await {
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
