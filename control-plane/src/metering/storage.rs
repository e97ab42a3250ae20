//! Storage accounting: the bytes each organisation's model files occupy in the object
//! store, sampled, and integrated over time into GB-months.
//!
//! A sample is taken at start and every hour while the server runs; between two samples
//! the earlier one's size is assumed. Model files only change through the API, so a
//! stopped server (scale-to-zero) sees no change it could have missed; a change is billed
//! from the next sample, which makes storage accurate to the hour.

use libsql::{Connection, params};

use super::period::{Period, hour_start};
use crate::db::{self, DbError};

/// Bytes in one GB, as object stores bill it.
pub const BYTES_PER_GB: u64 = 1_000_000_000;

/// Bytes of an organisation's model files in the object store. Files are stored once per
/// digest, so a file used by several versions counts once.
pub async fn org_bytes(conn: &Connection, org_id: &str) -> Result<u64, DbError> {
    let rows = conn
        .query(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM (
                SELECT DISTINCT v.sha256, v.size_bytes FROM model_versions v
                JOIN models m ON m.id = v.model_id WHERE m.org_id = ?1)",
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

/// Records every organisation's current bytes at the hour of `now`.
pub async fn sample_all(conn: &Connection, now: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO storage_samples (org_id, at, bytes)
         SELECT o.id, ?1, COALESCE((SELECT SUM(size_bytes) FROM (
             SELECT DISTINCT v.sha256, v.size_bytes FROM model_versions v
             JOIN models m ON m.id = v.model_id WHERE m.org_id = o.id)), 0)
         FROM orgs o WHERE true
         ON CONFLICT (org_id, at) DO UPDATE SET bytes = excluded.bytes",
        params![hour_start(now)],
    )
    .await?;
    Ok(())
}

/// Byte-seconds an organisation stored during `period`, up to `now`.
pub async fn byte_seconds(
    conn: &Connection,
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
        let conn = db.conn().await;
        crate::orgs::insert(&conn, "acme", "Acme").await.unwrap();
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
