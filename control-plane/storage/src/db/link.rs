//! A connection that replaces itself when the database server lost it, and retries a
//! statement once where that cannot apply it twice.
//!
//! A remote connection is a Hrana stream: the server keeps its state under a baton. A
//! server restart, a network cut or the stream's expiry invalidates the baton, and every
//! later statement on it fails ("Received an invalid baton") although the server is up.
//! So when a statement fails because the connection is lost ([`lost`]), the connection is
//! replaced by a fresh one (which costs no round trip: a stream opens with its first
//! statement) and the statement runs once more on it when that is safe:
//!
//! - a read, always: running it twice changes nothing;
//! - anything else, only when the failure proves the server never ran it ([`Lost::NotSent`]:
//!   the connection was refused, or the server rejected the stale baton before running
//!   anything). A write whose answer was lost in flight may or may not be applied: it is
//!   not retried, and its error says the database is unavailable.
//!
//! Inside a transaction nothing is replaced or retried: the server dropped the transaction
//! with the stream, and running the rest of its statements on a new connection would commit
//! half of it. The link is marked broken instead; every statement fails until the
//! transaction ends, and the connection is replaced then ([`Link::end_transaction`]).
//!
//! A network cut drops packets without closing anything, and the driver has no timeout of
//! its own: a statement would wait for minutes. On a remote database every statement has a
//! deadline ([`Link::with_statement_timeout`], `database.statement_timeout_secs`); one
//! that gets no answer in time counts as a connection lost in flight. While the database
//! is unavailable, statements do not queue up behind one another's timeouts: after an
//! attempt that got no answer, statements fail at once for [`RETRY_PAUSE`], then one
//! tries again with at most [`TRIAL_TIMEOUT`]. (A refused connection or a stale baton
//! fails at once by itself: no pause then.)
//!
//! An embedded file or `:memory:` never loses its connection: [`lost`] never matches its
//! errors, so nothing here applies to them.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libsql::{Connection, Database};

/// How a statement lost its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The server never ran it: it could not be reached, or it refused the stream.
    NotSent,
    /// The connection failed while the statement was in flight: it may have run.
    InFlight,
}

/// Whether `error` says the connection to the database is lost (rather than that the
/// statement failed on a working connection), and how.
pub fn lost(error: &libsql::Error) -> Option<Lost> {
    use libsql::Error as E;
    let text = error.to_string();
    let not_sent = [
        "error trying to connect",
        "Connection refused",
        "connection refused",
        "invalid baton",
        "baton that has already been used",
        "Stream for this baton was closed",
        "STREAM_EXPIRED",
        "stream has expired",
        "dns error",
        "tcp connect error",
    ]
    .iter()
    .any(|needle| text.contains(needle));
    let how = if not_sent {
        Lost::NotSent
    } else {
        Lost::InFlight
    };
    match error {
        E::ConnectionFailed(_) => Some(how),
        // Hrana errors carry the server's SQL errors as `stream error`s (a constraint, a
        // syntax error): those are answers from a working connection.
        E::Hrana(_) if text.contains("stream error") => None,
        E::Hrana(_) => Some(how),
        // An embedded replica: writes go to the primary over gRPC, syncs pull from it.
        // SQL errors of delegated writes come back as `RemoteSqliteFailure`.
        E::WriteDelegation(_) | E::Replication(_) | E::Sync(_) => Some(how),
        _ => None,
    }
}

/// Whether `error` is `SQLITE_BUSY` (any extended code): the lock stayed with other
/// writers past the busy timeout, on a working connection.
pub fn busy(error: &libsql::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    match error {
        libsql::Error::SqliteFailure(code, _) => code & 0xff == SQLITE_BUSY,
        // A delegated write's error: (the protocol's error kind, SQLite's extended code).
        libsql::Error::RemoteSqliteFailure(_, extended, _) => extended & 0xff == SQLITE_BUSY,
        // Over Hrana the server's error arrives as text: `SQLITE_BUSY` or its message.
        libsql::Error::Hrana(_) | libsql::Error::WriteDelegation(_) => {
            let text = error.to_string();
            text.contains("SQLITE_BUSY") || text.contains("database is locked")
        }
        _ => false,
    }
}

/// While the database is unavailable: how long after a failed attempt statements fail at
/// once, without trying.
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// While the database is unavailable: the longest a statement waits for an answer.
pub const TRIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database answered the last statement, shared by a database's connections.
#[derive(Debug, Default)]
pub struct Health {
    /// A statement lost its connection, and none has succeeded since.
    unavailable: AtomicBool,
    /// Statements that lost their connection, since the start.
    failures: AtomicU64,
    /// While unavailable: statements fail at once until then.
    paused_until: std::sync::Mutex<Option<Instant>>,
}

impl Health {
    /// Whether the last statement that ran failed for want of the database.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Acquire)
    }

    /// How many statements lost their connection since the start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether a statement should fail now without trying: the database is unavailable and
    /// the last attempt failed less than [`RETRY_PAUSE`] ago.
    fn paused(&self) -> bool {
        self.is_unavailable()
            && self
                .paused_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|until| Instant::now() < until)
    }

    fn answered(&self) {
        if self.unavailable.swap(false, Ordering::AcqRel) {
            tracing::info!("the database is reachable again");
        }
    }

    /// A statement got no answer in time: the next ones fail at once for [`RETRY_PAUSE`].
    fn pause(&self) {
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_PAUSE);
    }

    fn lost(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if !self.unavailable.swap(true, Ordering::AcqRel) {
            tracing::warn!("the database is unreachable");
        }
    }
}

/// One connection of a [`Database`], replaced when lost.
pub struct Link {
    health: Arc<Health>,
    database: Arc<Database>,
    conn: std::sync::Mutex<Connection>,
    /// Set while [`super::Writer::transaction`] runs on this link.
    in_transaction: AtomicBool,
    /// The connection was lost inside the running transaction.
    broken: AtomicBool,
    /// How long a statement may wait for its answer (remote databases).
    statement_timeout: Option<Duration>,
    /// How many times the connection was replaced (for logs and tests).
    replaced: AtomicU64,
}

impl Link {
    pub fn new(health: Arc<Health>, database: Arc<Database>, conn: Connection) -> Self {
        Self {
            health,
            database,
            conn: std::sync::Mutex::new(conn),
            in_transaction: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            statement_timeout: None,
            replaced: AtomicU64::new(0),
        }
    }

    /// Gives every statement `timeout` to answer (`None`: no limit, for embedded files).
    pub fn with_statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Runs one attempt of `op` within the statement timeout.
    async fn attempt<T, Fut>(&self, op: Fut) -> libsql::Result<T>
    where
        Fut: Future<Output = libsql::Result<T>>,
    {
        let limit = match self.statement_timeout {
            Some(limit) if self.health.is_unavailable() => Some(limit.min(TRIAL_TIMEOUT)),
            other => other,
        };
        match limit {
            None => op.await,
            Some(limit) => tokio::time::timeout(limit, op).await.unwrap_or_else(|_| {
                self.health.pause();
                Err(no_answer(limit))
            }),
        }
    }

    /// The connection now.
    pub fn current(&self) -> Connection {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times the connection was replaced.
    pub fn replacements(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Runs `op` on the connection; on a lost connection, replaces it and runs `op` once
    /// more if `idempotent` or the failure proves `op` never ran (see the module docs).
    pub async fn run<T, F, Fut>(&self, idempotent: bool, op: F) -> libsql::Result<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = libsql::Result<T>>,
    {
        if self.broken.load(Ordering::Acquire) {
            return Err(transaction_lost());
        }
        if self.health.paused() {
            return Err(paused());
        }
        let error = match self.observe(self.attempt(op(self.current())).await) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(how) = lost(&error) else {
            return Err(error);
        };
        if self.in_transaction.load(Ordering::Acquire) {
            tracing::debug!(error = %error, "the database connection was lost inside a transaction; it is rolled back");
            self.broken.store(true, Ordering::Release);
            return Err(error);
        }
        self.replace(&error);
        if !(idempotent || how == Lost::NotSent) {
            return Err(error);
        }
        match self.observe(self.attempt(op(self.current())).await) {
            Err(error) if lost(&error).is_some() => {
                // Still unreachable: start the next statement on a fresh connection too.
                self.replace(&error);
                Err(error)
            }
            other => other,
        }
    }

    /// Notes in [`Health`] whether the database answered.
    fn observe<T>(&self, outcome: libsql::Result<T>) -> libsql::Result<T> {
        match &outcome {
            Err(error) if lost(error).is_some() => self.health.lost(),
            _ => self.health.answered(),
        }
        outcome
    }

    /// Marks the start of a transaction: until [`Link::end_transaction`], a lost connection
    /// is not replaced.
    pub fn begin_transaction(&self) {
        self.in_transaction.store(true, Ordering::Release);
    }

    /// Marks the end of a transaction (committed or not); replaces the connection if it
    /// was lost meanwhile. Whether the connection was lost.
    pub fn end_transaction(&self) -> bool {
        self.in_transaction.store(false, Ordering::Release);
        let broken = self.broken.swap(false, Ordering::AcqRel);
        if broken {
            self.replace(&transaction_lost());
        }
        broken
    }

    fn replace(&self, cause: &libsql::Error) {
        match self.database.connect() {
            Ok(fresh) => {
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                let n = self.replaced.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(error = %cause, replacements = n, "the database connection was lost; replaced it");
            }
            // Only a local database can fail here, and it never loses its connection.
            Err(error) => {
                tracing::error!(error = %error, "failed to open a new database connection")
            }
        }
    }
}

/// The error of a statement that got no answer within `limit`: the connection is treated
/// as lost while the statement was in flight (it may have run).
fn no_answer(limit: Duration) -> libsql::Error {
    libsql::Error::ConnectionFailed(format!(
        "the database did not answer within {} ms (database.statement_timeout_secs)",
        limit.as_millis()
    ))
}

/// The error of a statement not tried because the database is unavailable.
fn paused() -> libsql::Error {
    libsql::Error::ConnectionFailed(
        "the database is unavailable (the last attempt failed just now); not tried".into(),
    )
}

/// The error of a statement run after its transaction lost the connection.
pub fn transaction_lost() -> libsql::Error {
    libsql::Error::ConnectionFailed(
        "the database connection was lost during this transaction; it was rolled back".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_answer_in_time_is_a_connection_lost_in_flight() {
        assert_eq!(
            lost(&no_answer(Duration::from_secs(1))),
            Some(Lost::InFlight)
        );
    }

    #[test]
    fn busy_is_told_by_its_code_or_the_servers_text() {
        use libsql::Error as E;
        let busy_snapshot = E::RemoteSqliteFailure(3, 517, "database is locked".into());
        assert!(busy(&busy_snapshot));
        assert!(busy(&E::SqliteFailure(5, "database is locked".into())));
        assert!(!busy(&E::SqliteFailure(
            19,
            "UNIQUE constraint failed".into()
        )));
        assert!(!busy(&E::RemoteSqliteFailure(3, 2067, "UNIQUE".into())));
        assert!(
            lost(&busy_snapshot).is_none(),
            "busy is an answer, not a lost link"
        );
    }

    #[test]
    fn connection_failures_are_told_from_statement_failures() {
        let refused = libsql::Error::Hrana(
            "http error: `error trying to connect: tcp connect error: Connection refused (os error 111)`".into(),
        );
        assert_eq!(lost(&refused), Some(Lost::NotSent));
        let baton = libsql::Error::Hrana(
            "api error: `status=400 Bad Request, body={\"error\":\"Received an invalid baton\"}`"
                .into(),
        );
        assert_eq!(lost(&baton), Some(Lost::NotSent));
        let reset =
            libsql::Error::Hrana("http error: `connection closed before message completed`".into());
        assert_eq!(lost(&reset), Some(Lost::InFlight));
        let constraint = libsql::Error::Hrana(
            "stream error: `Error { message: \"UNIQUE constraint failed: orgs.slug\", code: \"SQLITE_CONSTRAINT\" }`".into(),
        );
        assert_eq!(lost(&constraint), None);
        let local = libsql::Error::SqliteFailure(2067, "UNIQUE constraint failed".into());
        assert_eq!(lost(&local), None);
        assert_eq!(lost(&transaction_lost()), Some(Lost::InFlight));
    }
}
