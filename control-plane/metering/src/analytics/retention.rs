//! How long minute rollups are kept: an hourly task deletes minute rows older than the
//! retention (`metering.analytics_minute_retention_days`). Hour and day rows are kept;
//! a day of one version is 1,440 minute rows but 24 hour rows and one day row.

use std::sync::Weak;
use std::time::Duration;

use libsql::params;

use super::Resolution;
use crate::db::{Db, DbError, Writer};

/// Deletes `resolution` rows whose bucket starts before `before` (Unix seconds); returns
/// how many.
pub async fn prune(conn: &Writer, resolution: Resolution, before: i64) -> Result<u64, DbError> {
    Ok(conn
        .execute(
            "DELETE FROM model_analytics WHERE resolution = ?1 AND bucket_start < ?2",
            params![resolution.as_str(), before],
        )
        .await?)
}

/// Prunes minute rows past `retention` every hour (the first time at once), until the
/// database is dropped.
pub fn spawn_minute_pruning(db: Weak<Db>, retention: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Some(db) = db.upgrade() else { return };
            let keep = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            let before = crate::db::now().saturating_sub(keep);
            match prune(&*db.write_unmemoised().await, Resolution::Minute, before).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "pruned minute analytics past retention"),
                Err(error) => tracing::error!(%error, "failed to prune minute analytics"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::series::{self, AnalyticsQuery};
    use crate::event::sample;
    use crate::store;

    // 2026-11-27T13:00:00Z.
    const HOUR: i64 = 1_795_784_400;

    async fn points(db: &Db, step: Resolution) -> usize {
        let query = AnalyticsQuery {
            org_id: "org-1",
            model_id: "model-1",
            from: HOUR,
            to: HOUR + 2 * 3_600,
            step,
            version: None,
        };
        series::query(&*db.read().await, query)
            .await
            .unwrap()
            .points
            .len()
    }

    #[tokio::test]
    async fn minute_rows_before_the_cut_go_and_hours_stay() {
        let db = Db::memory().await.unwrap();
        // One call per minute for two hours.
        let events: Vec<_> = (0..120)
            .map(|i| sample(&format!("e{i}"), (HOUR + i * 60) * 1_000))
            .collect();
        store::insert(&*db.write().await, &events).await.unwrap();
        assert_eq!(points(&db, Resolution::Minute).await, 120);
        let cut = HOUR + 3_600 + 30 * 60;
        let deleted = prune(&*db.write().await, Resolution::Minute, cut)
            .await
            .unwrap();
        assert_eq!(deleted, 90);
        assert_eq!(points(&db, Resolution::Minute).await, 30);
        assert_eq!(points(&db, Resolution::Hour).await, 2);
    }
}
