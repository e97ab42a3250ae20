//! Versioned schema migrations, applied in order at start and recorded in `schema_migrations`.
//!
//! A migration is never edited once released: add a new one instead.

use libsql::Connection;

use super::DbError;

/// One schema change.
#[derive(Debug)]
pub struct Migration {
    /// Strictly increasing version number.
    pub version: i64,
    /// Short description, stored alongside the version.
    pub name: &'static str,
    /// SQL statements, run in one transaction.
    pub sql: &'static str,
}

/// All migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orgs, users, auth, registry, audit",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "plans, deployments",
        sql: include_str!("migrations/0002_serving.sql"),
    },
    Migration {
        version: 3,
        name: "mlflow tracking, registry, artifacts",
        sql: include_str!("migrations/0003_mlflow.sql"),
    },
];

/// Applies every migration newer than the recorded schema version.
pub async fn apply(conn: &Connection) -> Result<(), DbError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
        (),
    )
    .await?;
    let mut rows = conn
        .query(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            (),
        )
        .await?;
    let current: i64 = match rows.next().await? {
        Some(row) => row.get(0)?,
        None => 0,
    };
    drop(rows);
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction().await?;
        tx.execute_batch(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            libsql::params![migration.version, migration.name, super::now()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            migration.version,
            migration.name,
            "applied database migration"
        );
    }
    Ok(())
}
