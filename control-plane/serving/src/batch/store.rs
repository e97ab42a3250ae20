//! Storage of batch jobs and of their completed chunks.
//!
//! Progress only moves in [`commit_chunk`]: the chunk's row and the job's counters change in
//! one transaction, and only if the job is still `running` at exactly that chunk. So a chunk
//! is counted once even if two runners race (a restart while an old process lingers, two
//! machines on one database), and a cancelled job never advances again.
//!
//! A job runs on the one node holding its lease (`lease_owner`, `lease_expires_at_ms`):
//! [`claim`] takes it when it is free or expired, [`renew`] extends it while the node
//! works, and a chunk commits only under the lease. Another node takes over a job only
//! once its lease has expired ([`claimable`]).

use crate::db::{Reader, Writer};
use libsql::params;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Format, JobStatus};
use crate::db::{self, DbError};

/// Why a job failed as a whole (a row's own failure is only that row's error).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobFailure {
    /// A stable error code (`docs/errors.md`), e.g. `not_deployed`.
    pub code: String,
    pub message: String,
}

/// A batch job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchJob {
    pub id: String,
    pub model: String,
    /// The model version every row runs, fixed when the job was created.
    pub version: i64,
    pub format: Format,
    pub status: JobStatus,
    /// Rows in the input.
    pub rows_total: i64,
    /// Rows whose results are stored (outputs or a row error).
    pub rows_done: i64,
    /// Rows done whose result is an error.
    pub errors: i64,
    /// Rows per chunk: progress moves, and a restart resumes, a chunk at a time.
    pub chunk_rows: i64,
    /// The input file in the object store; give it as `input_sha256` to run it again.
    pub input_sha256: String,
    pub input_bytes: i64,
    /// Set when `status` is `failed`.
    pub failure: Option<JobFailure>,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub org_id: String,
    #[serde(skip)]
    pub chunks_done: i64,
}

/// What a new job is made of.
#[derive(Debug)]
pub struct NewJob<'a> {
    pub org_id: &'a str,
    pub model: &'a str,
    pub version: i64,
    pub format: Format,
    pub input_sha256: &'a str,
    pub input_bytes: i64,
    pub chunk_rows: i64,
    pub rows_total: i64,
    pub created_by: &'a str,
}

/// A completed chunk's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub index: i64,
    /// The blob holding its NDJSON lines.
    pub sha256: String,
    pub rows: i64,
    pub errors: i64,
}

const COLUMNS: &str = "id, org_id, model_name, version, format, status, rows_total, rows_done,
    errors, chunk_rows, chunks_done, input_sha256, input_bytes, failure_code, failure_message,
    created_by, created_at, started_at, finished_at";

fn from_row(row: &libsql::Row) -> Result<BatchJob, DbError> {
    let failure = match (
        row.get::<Option<String>>(13)?,
        row.get::<Option<String>>(14)?,
    ) {
        (Some(code), message) => Some(JobFailure {
            code,
            message: message.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(BatchJob {
        id: row.get(0)?,
        org_id: row.get(1)?,
        model: row.get(2)?,
        version: row.get(3)?,
        format: Format::parse(&row.get::<String>(4)?)
            .ok_or_else(|| DbError::Corrupt("batch job format".into()))?,
        status: JobStatus::parse(&row.get::<String>(5)?)
            .ok_or_else(|| DbError::Corrupt("batch job status".into()))?,
        rows_total: row.get(6)?,
        rows_done: row.get(7)?,
        errors: row.get(8)?,
        chunk_rows: row.get(9)?,
        chunks_done: row.get(10)?,
        input_sha256: row.get(11)?,
        input_bytes: row.get(12)?,
        failure,
        created_by: row.get(15)?,
        created_at: db::rfc3339(row.get(16)?),
        started_at: row.get::<Option<i64>>(17)?.map(db::rfc3339),
        finished_at: row.get::<Option<i64>>(18)?.map(db::rfc3339),
    })
}

/// Records a new `queued` job; returns its id.
pub async fn insert(conn: &Writer, job: &NewJob<'_>) -> Result<String, DbError> {
    let id = db::new_id();
    conn.execute(
        "INSERT INTO batch_jobs (id, org_id, model_name, version, format, input_sha256,
             input_bytes, chunk_rows, rows_total, status, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'queued', ?10, ?11)",
        params![
            id.as_str(),
            job.org_id,
            job.model,
            job.version,
            job.format.as_str(),
            job.input_sha256,
            job.input_bytes,
            job.chunk_rows,
            job.rows_total,
            job.created_by,
            db::now()
        ],
    )
    .await?;
    Ok(id)
}

/// A job of the organisation.
pub async fn get(conn: &Reader, org_id: &str, id: &str) -> Result<Option<BatchJob>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM batch_jobs WHERE id = ?1 AND org_id = ?2"),
            params![id, org_id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// A job of any organisation (for its runner).
pub(crate) async fn get_by_id(conn: &Reader, id: &str) -> Result<Option<BatchJob>, DbError> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM batch_jobs WHERE id = ?1"),
            params![id],
        )
        .await?;
    db::first_row(rows)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The organisation's jobs, newest first.
pub async fn list(conn: &Reader, org_id: &str, limit: i64) -> Result<Vec<BatchJob>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM batch_jobs WHERE org_id = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2"
            ),
            params![org_id, limit],
        )
        .await?;
    db::collect(rows, from_row).await
}

/// Whether the organisation has run a job over the input `sha256`: the only inputs it may
/// name by digest (knowing a digest is not the same as having the bytes).
pub async fn org_has_input(conn: &Reader, org_id: &str, sha256: &str) -> Result<bool, DbError> {
    let rows = conn
        .query(
            "SELECT 1 FROM batch_jobs WHERE org_id = ?1 AND input_sha256 = ?2 LIMIT 1",
            params![org_id, sha256],
        )
        .await?;
    Ok(db::first_row(rows).await?.is_some())
}

/// Ids of jobs that are `queued` or `running`, oldest first.
pub async fn unfinished(conn: &Reader) -> Result<Vec<String>, DbError> {
    let rows = conn
        .query(
            "SELECT id FROM batch_jobs WHERE status IN ('queued', 'running')
             ORDER BY created_at, rowid",
            (),
        )
        .await?;
    db::collect(rows, |row| Ok(row.get(0)?)).await
}

/// Ids of unfinished jobs no other node than `node_id` holds a live lease on at `now_ms`,
/// oldest first: the ones for `node_id` to start, take back or take over.
pub async fn claimable(conn: &Reader, node_id: &str, now_ms: i64) -> Result<Vec<String>, DbError> {
    let rows = conn
        .query(
            "SELECT id FROM batch_jobs WHERE status IN ('queued', 'running')
               AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_expires_at_ms < ?2)
             ORDER BY created_at, rowid",
            params![node_id, now_ms],
        )
        .await?;
    db::collect(rows, |row| Ok(row.get(0)?)).await
}

/// Marks a `queued` (or taken over `running`) job `running` under `node_id`'s lease until
/// `now_ms + lease_ms`. `false` if it has meanwhile finished or been cancelled, or another
/// node holds a lease that has not expired. A node restarted under the same id (its data
/// directory kept) takes its own jobs back at once.
pub async fn claim(
    conn: &Writer,
    id: &str,
    node_id: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE batch_jobs SET status = 'running', started_at = COALESCE(started_at, ?2),
                 lease_owner = ?3, lease_expires_at_ms = ?4 + ?5
             WHERE id = ?1 AND status IN ('queued', 'running')
               AND (lease_owner IS NULL OR lease_owner = ?3 OR lease_expires_at_ms < ?4)",
            params![id, db::now(), node_id, now_ms, lease_ms],
        )
        .await?;
    Ok(changed == 1)
}

/// Extends `node_id`'s lease on job `id` to `now_ms + lease_ms` (the heartbeat). `false`
/// if the node no longer holds it (it expired and another node took the job over, or the
/// job finished).
pub async fn renew(
    conn: &Writer,
    id: &str,
    node_id: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE batch_jobs SET lease_expires_at_ms = ?3 + ?4
             WHERE id = ?1 AND lease_owner = ?2 AND status IN ('queued', 'running')",
            params![id, node_id, now_ms, lease_ms],
        )
        .await?;
    Ok(changed == 1)
}

/// Lets go of every lease `node_id` holds (a clean stop): other nodes take the jobs over
/// at once instead of after the lease expires.
pub async fn release_leases(conn: &Writer, node_id: &str) -> Result<u64, DbError> {
    Ok(conn
        .execute(
            "UPDATE batch_jobs SET lease_expires_at_ms = 0
             WHERE lease_owner = ?1 AND status IN ('queued', 'running')",
            params![node_id],
        )
        .await?)
}

/// Records chunk `chunk.index` as done and advances the job's progress, in one transaction.
/// `false` (and nothing changed) if the job is no longer `running` at that chunk under
/// `node_id`'s lease: cancelled, failed, taken over, or advanced by another runner.
pub async fn commit_chunk(
    conn: &Writer,
    job_id: &str,
    node_id: &str,
    chunk: &Chunk,
) -> Result<bool, DbError> {
    conn.transaction(async |tx| -> Result<bool, DbError> {
        let changed = tx
            .execute(
                "UPDATE batch_jobs SET chunks_done = chunks_done + 1, rows_done = rows_done + ?3,
                 errors = errors + ?4
             WHERE id = ?1 AND chunks_done = ?2 AND status = 'running' AND lease_owner = ?5",
                params![job_id, chunk.index, chunk.rows, chunk.errors, node_id],
            )
            .await?;
        if changed != 1 {
            // Nothing was changed: committing the empty transaction is a rollback.
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO batch_chunks (job_id, chunk_index, sha256, rows, errors)
         VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                job_id,
                chunk.index,
                chunk.sha256.as_str(),
                chunk.rows,
                chunk.errors
            ],
        )
        .await?;
        Ok(true)
    })
    .await
}

/// Marks a `running` job `succeeded`.
pub async fn succeed(conn: &Writer, id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE batch_jobs SET status = 'succeeded', finished_at = ?2
             WHERE id = ?1 AND status = 'running'",
            params![id, db::now()],
        )
        .await?;
    Ok(changed == 1)
}

/// Marks an unfinished job `failed` with a reason.
pub async fn fail(conn: &Writer, id: &str, failure: &JobFailure) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE batch_jobs SET status = 'failed', failure_code = ?2, failure_message = ?3,
                 finished_at = ?4
             WHERE id = ?1 AND status IN ('queued', 'running')",
            params![
                id,
                failure.code.as_str(),
                failure.message.as_str(),
                db::now()
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// Cancels an unfinished job of the organisation. `false` if it had already finished.
pub async fn cancel(conn: &Writer, org_id: &str, id: &str) -> Result<bool, DbError> {
    let changed = conn
        .execute(
            "UPDATE batch_jobs SET status = 'cancelled', finished_at = ?3
             WHERE id = ?1 AND org_id = ?2 AND status IN ('queued', 'running')",
            params![id, org_id, db::now()],
        )
        .await?;
    Ok(changed == 1)
}

/// The completed chunks of a job, in row order.
pub async fn chunks(conn: &Reader, job_id: &str) -> Result<Vec<Chunk>, DbError> {
    let rows = conn
        .query(
            "SELECT chunk_index, sha256, rows, errors FROM batch_chunks WHERE job_id = ?1
             ORDER BY chunk_index",
            params![job_id],
        )
        .await?;
    db::collect(rows, |row| {
        Ok(Chunk {
            index: row.get(0)?,
            sha256: row.get(1)?,
            rows: row.get(2)?,
            errors: row.get(3)?,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    async fn job(db: &Db) -> String {
        let conn = db.write().await;
        conn.execute(
            "INSERT INTO orgs (id, slug, name, created_at) VALUES ('o', 'o', 'o', 0)",
            (),
        )
        .await
        .expect("org");
        insert(
            &conn,
            &NewJob {
                org_id: "o",
                model: "iris",
                version: 1,
                format: Format::Ndjson,
                input_sha256: &"a".repeat(64),
                input_bytes: 10,
                chunk_rows: 2,
                rows_total: 3,
                created_by: "user:u",
            },
        )
        .await
        .expect("insert")
    }

    fn chunk(index: i64, rows: i64) -> Chunk {
        Chunk {
            index,
            sha256: format!("{index:064}"),
            rows,
            errors: 1,
        }
    }

    #[tokio::test]
    async fn a_chunk_counts_once_and_only_while_running() {
        let db = Db::memory().await.expect("db");
        let id = job(&db).await;
        let conn = db.write().await;
        // Queued: not started, so nothing advances.
        assert!(!commit_chunk(&conn, &id, "n", &chunk(0, 2)).await.unwrap());
        assert!(claim(&conn, &id, "n", 0, 1_000).await.unwrap());
        assert!(commit_chunk(&conn, &id, "n", &chunk(0, 2)).await.unwrap());
        // The same chunk again (a second runner, a redo after restart): refused.
        assert!(!commit_chunk(&conn, &id, "n", &chunk(0, 2)).await.unwrap());
        assert!(cancel(&conn, "o", &id).await.unwrap());
        assert!(!commit_chunk(&conn, &id, "n", &chunk(1, 1)).await.unwrap());
        // Cancelling twice, or resuming a cancelled job, does nothing.
        assert!(!cancel(&conn, "o", &id).await.unwrap());
        assert!(!claim(&conn, &id, "n", 5_000, 1_000).await.unwrap());
        let job = get(&conn, "o", &id).await.unwrap().expect("job");
        assert_eq!(job.status, JobStatus::Cancelled);
        assert_eq!((job.chunks_done, job.rows_done, job.errors), (1, 2, 1));
        assert_eq!(chunks(&conn, &id).await.unwrap(), vec![chunk(0, 2)]);
        assert!(unfinished(&conn).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_job_is_taken_over_only_once_its_lease_expired() {
        let db = Db::memory().await.expect("db");
        let id = job(&db).await;
        let conn = db.write().await;
        assert_eq!(claimable(&conn, "a", 0).await.unwrap(), vec![id.clone()]);
        assert!(claim(&conn, &id, "a", 0, 1_000).await.unwrap());
        // Node b sees it held, and cannot take it nor commit under it.
        assert!(claimable(&conn, "b", 500).await.unwrap().is_empty());
        assert!(!claim(&conn, &id, "b", 500, 1_000).await.unwrap());
        assert!(!commit_chunk(&conn, &id, "b", &chunk(0, 2)).await.unwrap());
        // a's heartbeat keeps it.
        assert!(renew(&conn, &id, "a", 900, 1_000).await.unwrap());
        assert!(!claim(&conn, &id, "b", 1_500, 1_000).await.unwrap());
        assert!(commit_chunk(&conn, &id, "a", &chunk(0, 2)).await.unwrap());
        // a stops beating: after expiry b takes over where a left off, and a is out.
        assert_eq!(
            claimable(&conn, "b", 2_000).await.unwrap(),
            vec![id.clone()]
        );
        assert!(claim(&conn, &id, "b", 2_000, 1_000).await.unwrap());
        assert!(!renew(&conn, &id, "a", 2_100, 1_000).await.unwrap());
        assert!(!commit_chunk(&conn, &id, "a", &chunk(1, 1)).await.unwrap());
        assert!(commit_chunk(&conn, &id, "b", &chunk(1, 1)).await.unwrap());
        // A clean stop lets go at once.
        assert_eq!(release_leases(&conn, "b").await.unwrap(), 1);
        assert_eq!(
            claimable(&conn, "a", 2_100).await.unwrap(),
            vec![id.clone()]
        );
        // b restarted under its id takes its job back at once, lease or not.
        assert!(claim(&conn, &id, "b", 2_100, 1_000).await.unwrap());
        assert!(claim(&conn, &id, "b", 2_200, 1_000).await.unwrap());
    }

    #[tokio::test]
    async fn jobs_are_scoped_by_organisation() {
        let db = Db::memory().await.expect("db");
        let id = job(&db).await;
        let conn = db.write().await;
        assert!(get(&conn, "other", &id).await.unwrap().is_none());
        assert!(!cancel(&conn, "other", &id).await.unwrap());
        assert!(
            !org_has_input(&conn, "other", &"a".repeat(64))
                .await
                .unwrap()
        );
        assert!(org_has_input(&conn, "o", &"a".repeat(64)).await.unwrap());
        assert_eq!(unfinished(&conn).await.unwrap(), vec![id]);
    }
}
