//! Storage accounting: the bytes each organisation's blobs (model files, graphs, MLflow
//! artifacts, batch inputs and results) occupy in the object store, checked against the
//! plan's quota before anything is committed, sampled, and integrated over time into
//! GB-months.
//!
//! A sample is taken at start and every hour while the server runs; between two samples
//! the earlier one's size is assumed. Model files only change through the API, so a
//! stopped server (scale-to-zero) sees no change it could have missed; a change is billed
//! from the next sample, which makes storage accurate to the hour.

use crate::db::{Reader, Writer};
use libsql::params;

use super::period::{Period, hour_start};
use crate::db::{self, DbError};

/// Bytes in one GB, as object stores bill it.
pub const BYTES_PER_GB: u64 = 1_000_000_000;

/// Every blob an organisation references, with its size: model files, custom components'
/// graphs, MLflow artifacts, batch inputs and batch results. `?1` is the organisation.
const ORG_BLOBS: &str = "
    SELECT v.sha256 AS sha256, v.size_bytes AS size_bytes FROM model_versions v
        JOIN models m ON m.id = v.model_id WHERE m.org_id = ?1
    UNION ALL SELECT v.graph_sha256, v.graph_size_bytes FROM model_versions v
        JOIN models m ON m.id = v.model_id WHERE m.org_id = ?1 AND v.graph_sha256 IS NOT NULL
    UNION ALL SELECT sha256, size_bytes FROM mlflow_artifacts WHERE org_id = ?1
    UNION ALL SELECT input_sha256, input_bytes FROM batch_jobs WHERE org_id = ?1
    UNION ALL SELECT c.sha256, c.size_bytes FROM batch_chunks c
        JOIN batch_jobs j ON j.id = c.job_id WHERE j.org_id = ?1";

/// Bytes an organisation stores in the object store: its model files, custom components'
/// graphs, MLflow artifacts, batch inputs and results. Blobs are stored once per digest,
/// so a blob used several times (by versions, an artifact and the version made from it)
/// counts once.
pub async fn org_bytes(conn: &Reader, org_id: &str) -> Result<u64, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT COALESCE(SUM(size_bytes), 0) FROM (
                    SELECT MAX(size_bytes) AS size_bytes FROM ({ORG_BLOBS}) GROUP BY sha256)"
            ),
            params![org_id],
        )
        .await?;
    let bytes: i64 = db::first_row(rows)
        .await?
        .map(|r| r.get(0))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// Bytes that storing `blobs` (digest, size) would add to what the organisation stores:
/// those it does not reference yet, each once.
pub async fn added_bytes(
    conn: &Reader,
    org_id: &str,
    blobs: &[(&str, u64)],
) -> Result<u64, DbError> {
    let mut added = 0u64;
    let mut seen = Vec::new();
    for &(digest, size) in blobs {
        if seen.contains(&digest) {
            continue;
        }
        seen.push(digest);
        let rows = conn
            .query(
                &format!("SELECT 1 FROM ({ORG_BLOBS}) WHERE sha256 = ?2 LIMIT 1"),
                params![org_id, digest],
            )
            .await?;
        if db::first_row(rows).await?.is_none() {
            added = added.saturating_add(size);
        }
    }
    Ok(added)
}

/// `Err(quota_exceeded)` if storing `blobs` would take the organisation past its plan's
/// storage quota. Callers check before committing the blobs, so a refusal leaves nothing.
pub async fn check_room(
    conn: &Reader,
    org_id: &str,
    limit: Option<u64>,
    blobs: &[(&str, u64)],
) -> Result<Result<(), super::QuotaExceeded>, DbError> {
    if limit.is_none() {
        return Ok(Ok(()));
    }
    let stored = org_bytes(conn, org_id).await?;
    let adding = added_bytes(conn, org_id, blobs).await?;
    Ok(super::quota::check(
        super::quota::QuotaKind::StorageBytes,
        stored,
        adding,
        limit,
    ))
}

/// Records the size of a custom component's graph, which its version row does not carry.
pub async fn set_graph_size(
    conn: &Writer,
    model_id: &str,
    version: i64,
    bytes: u64,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE model_versions SET graph_size_bytes = ?3 WHERE model_id = ?1 AND version = ?2",
        params![model_id, version, i64::try_from(bytes).unwrap_or(i64::MAX)],
    )
    .await?;
    Ok(())
}

/// Records the size of a batch job's result chunk.
pub async fn set_chunk_size(
    conn: &Writer,
    job_id: &str,
    chunk_index: i64,
    bytes: u64,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE batch_chunks SET size_bytes = ?3 WHERE job_id = ?1 AND chunk_index = ?2",
        params![
            job_id,
            chunk_index,
            i64::try_from(bytes).unwrap_or(i64::MAX)
        ],
    )
    .await?;
    Ok(())
}

/// Records every organisation's current bytes at the hour of `now`.
pub async fn sample_all(conn: &Writer, now: i64) -> Result<(), DbError> {
    let rows = conn.query("SELECT id FROM orgs", ()).await?;
    let orgs = db::collect(rows, |row| Ok(row.get::<String>(0)?)).await?;
    for org_id in orgs {
        let bytes = org_bytes(conn, &org_id).await?;
        conn.execute(
            "INSERT INTO storage_samples (org_id, at, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (org_id, at) DO UPDATE SET bytes = excluded.bytes",
            params![
                org_id,
                hour_start(now),
                i64::try_from(bytes).unwrap_or(i64::MAX)
            ],
        )
        .await?;
    }
    Ok(())
}

/// Byte-seconds an organisation stored during `period`, up to `now`.
pub async fn byte_seconds(
    conn: &Reader,
    org_id: &str,
    period: Period,
    now: i64,
) -> Result<u128, DbError> {
    let until = now.min(period.end);
    // The last sample before the period carries into it.
    let rows = conn
        .query(
            "SELECT at, bytes FROM storage_samples WHERE org_id = ?1 AND at < ?2 AND at >= (
                SELECT COALESCE(MAX(at), ?3) FROM storage_samples
                WHERE org_id = ?1 AND at <= ?3)
             ORDER BY at",
            params![org_id, until, period.start],
        )
        .await?;
    let samples = db::collect(rows, |row| {
        Ok((
            row.get::<i64>(0)?,
            u64::try_from(row.get::<i64>(1)?).unwrap_or(0),
        ))
    })
    .await?;
    Ok(integrate(&samples, period.start, until))
}

/// The integral over `[from, to)` of the step function the samples describe.
pub fn integrate(samples: &[(i64, u64)], from: i64, to: i64) -> u128 {
    let mut total = 0u128;
    for (i, &(at, bytes)) in samples.iter().enumerate() {
        let start = at.max(from);
        let end = samples.get(i + 1).map_or(to, |&(next, _)| next).min(to);
        if end > start {
            total += u128::from(bytes) * u128::try_from(end - start).unwrap_or(0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_integrates_as_a_step_function() {
        // 2 GB carried in from before the period, 4 GB from the middle.
        let samples = [(-50, 2 * BYTES_PER_GB), (50, 4 * BYTES_PER_GB)];
        let total = integrate(&samples, 0, 100);
        assert_eq!(total, u128::from(BYTES_PER_GB) * (2 * 50 + 4 * 50));
        assert_eq!(integrate(&[], 0, 100), 0);
        assert_eq!(integrate(&[(200, 1)], 0, 100), 0);
    }

    /// The sampling statement runs on libSQL (an `INSERT … SELECT … ON CONFLICT` needs a
    /// `WHERE` to parse) and resampling the same hour replaces the sample.
    #[tokio::test]
    async fn sampling_records_each_organisation_once_per_hour() {
        let db = crate::db::Db::memory().await.unwrap();
        let conn = db.write().await;
        wisp_core::orgs::insert(&conn, "acme", "Acme")
            .await
            .unwrap();
        sample_all(&conn, 7_200).await.unwrap();
        sample_all(&conn, 7_300).await.unwrap();
        let rows = conn
            .query("SELECT COUNT(*), SUM(bytes) FROM storage_samples", ())
            .await
            .unwrap();
        let row = crate::db::first_row(rows).await.unwrap().unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(row.get::<i64>(1).unwrap(), 0);
    }
}
