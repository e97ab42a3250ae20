//! Blobs on their way in: no committed blob becomes an orphan.
//!
//! A request records an [`Intent`] for the digests it is about to commit before it commits
//! them, and settles it once the row referencing them is in the database. While an intent
//! is pending its blobs count as referenced ([`super::references::unreferenced`]), so no
//! concurrent deletion collects them. A request refused after committing (a quota checked
//! again under the lock, a model deleted meanwhile) [`Intent::abandon`]s it: the blobs go
//! unless something else references them. An intent left by a crash is collected by
//! [`collect_stale`], at start and every hour.
//!
//! Blobs are content-addressed and shared between organisations, versions, artifacts and
//! batch jobs: a blob is only ever deleted when no row of any kind and no other pending
//! intent refers to its digest, checked under the database lock the references are written
//! under.

use crate::db::Writer;
use std::sync::Arc;
use std::time::Duration;

use libsql::params;

use super::ObjectStore;
use crate::db::{self, Db, DbError};

/// An intent older than this belongs to a request that died (uploads commit right before
/// recording their rows; a commit of the largest upload takes far less).
pub const STALE_AFTER: Duration = Duration::from_secs(3_600);

/// Digests a request is committing, counted as referenced until settled or abandoned.
#[derive(Debug)]
#[must_use = "an intent must be settled or abandoned"]
pub struct Intent {
    id: String,
    digests: Vec<String>,
}

impl Intent {
    /// Records the intent to commit `digests`, before committing them.
    pub async fn record(db: &Db, digests: &[&str]) -> Result<Self, DbError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = db::now();
        // Nothing a memo holds.
        let conn = db.write_unmemoised().await;
        for digest in digests {
            conn.execute(
                "INSERT OR IGNORE INTO blob_intents (id, sha256, created_at) VALUES (?1, ?2, ?3)",
                params![id.as_str(), *digest, now],
            )
            .await?;
        }
        Ok(Self {
            id,
            digests: digests.iter().map(|d| (*d).to_owned()).collect(),
        })
    }

    /// The rows referencing the blobs are committed: the intent is no longer needed.
    pub async fn settle(self, db: &Db) {
        if let Err(error) = forget(&*db.write_unmemoised().await, &self.id).await {
            // Harmless: the blobs are referenced; the stale intent is collected later.
            tracing::warn!(error = %error, "failed to settle a blob intent");
        }
    }

    /// The request failed after committing: deletes its blobs unless something else
    /// references them.
    pub async fn abandon(self, db: &Db, blobs: &dyn ObjectStore) {
        // Under the lock that references are recorded under, held through the deletion, so
        // that no request can start referencing a blob between the check and the delete.
        let conn = db.write_unmemoised().await;
        let result = async {
            forget(&conn, &self.id).await?;
            super::references::unreferenced(&conn, &self.digests).await
        }
        .await;
        match result {
            Ok(orphans) => delete_all(blobs, &orphans).await,
            Err(error) => tracing::warn!(error = %error, "failed to abandon a blob intent"),
        }
    }
}

async fn forget(conn: &Writer, id: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM blob_intents WHERE id = ?1", params![id])
        .await?;
    Ok(())
}

async fn delete_all(blobs: &dyn ObjectStore, digests: &[String]) {
    for digest in digests {
        if let Err(error) = blobs.delete(digest).await {
            tracing::warn!(error = %error, blob = digest, "failed to delete an unreferenced blob");
        }
    }
}

/// Collects intents older than `older_than` at `now`: deletes them, and their blobs that
/// nothing references. Returns the blobs deleted.
pub async fn collect_stale(
    db: &Db,
    blobs: &dyn ObjectStore,
    now: i64,
    older_than: Duration,
) -> Result<usize, DbError> {
    let before = now.saturating_sub(i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX));
    let conn = db.write_unmemoised().await;
    let rows = conn
        .query(
            "SELECT DISTINCT sha256 FROM blob_intents WHERE created_at <= ?1",
            params![before],
        )
        .await?;
    let digests = db::collect(rows, |row| Ok(row.get::<String>(0)?)).await?;
    if digests.is_empty() {
        return Ok(0);
    }
    conn.execute(
        "DELETE FROM blob_intents WHERE created_at <= ?1",
        params![before],
    )
    .await?;
    let orphans = super::references::unreferenced(&conn, &digests).await?;
    delete_all(blobs, &orphans).await;
    Ok(orphans.len())
}

/// Collects stale intents at start and every hour.
pub async fn collect_hourly(db: Arc<Db>, blobs: Arc<dyn ObjectStore>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(3_600));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (db, blobs) = (Arc::clone(&db), Arc::clone(&blobs));
        // Deletions wait for the file system or S3: not on an executor thread.
        crate::db::on_blocking_thread(async move {
            match collect_stale(&db, &*blobs, db::now(), STALE_AFTER).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "collected orphaned blobs"),
                Err(error) => tracing::warn!(error = %error, "failed to collect orphaned blobs"),
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{LocalStore, Staging};

    async fn stored(store: &LocalStore, staging: &Staging, bytes: &'static [u8]) -> String {
        let staged = staging
            .write_bytes(bytes::Bytes::from_static(bytes))
            .await
            .unwrap();
        let digest = staged.sha256.clone();
        store.commit(staged).await.unwrap();
        digest
    }

    #[tokio::test]
    async fn abandoned_and_stale_intents_delete_only_unreferenced_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("blobs")).unwrap();
        let staging = Staging::new(dir.path().join("tmp")).unwrap();
        let db = Db::memory().await.unwrap();
        let a = stored(&store, &staging, b"a").await;
        let shared = stored(&store, &staging, b"shared").await;
        // Another request is committing the shared bytes too.
        let other = Intent::record(&db, &[shared.as_str()]).await.unwrap();
        let mine = Intent::record(&db, &[a.as_str(), shared.as_str()])
            .await
            .unwrap();
        mine.abandon(&db, &store).await;
        assert!(!store.exists(&a).await.unwrap());
        assert!(
            store.exists(&shared).await.unwrap(),
            "the other intent holds it"
        );
        // The other request crashed: its intent goes stale and is collected.
        assert_eq!(
            collect_stale(&db, &store, db::now(), STALE_AFTER)
                .await
                .unwrap(),
            0,
            "not stale yet"
        );
        drop(other);
        let later = db::now() + STALE_AFTER.as_secs() as i64;
        assert_eq!(
            collect_stale(&db, &store, later, STALE_AFTER)
                .await
                .unwrap(),
            1
        );
        assert!(!store.exists(&shared).await.unwrap());
        // A settled intent leaves its (referenced) blob alone.
        let kept = stored(&store, &staging, b"kept").await;
        {
            let conn = db.write().await;
            conn.execute(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ('o', 'o', 'o', 0)",
                (),
            )
            .await
            .unwrap();
            conn.execute(
                "INSERT INTO mlflow_artifacts (org_id, path, sha256, size_bytes, created_at)
                 VALUES ('o', 'p', ?1, 4, 0)",
                params![kept.as_str()],
            )
            .await
            .unwrap();
        }
        Intent::record(&db, &[kept.as_str()])
            .await
            .unwrap()
            .abandon(&db, &store)
            .await;
        assert!(
            store.exists(&kept).await.unwrap(),
            "an artifact references it"
        );
    }
}
