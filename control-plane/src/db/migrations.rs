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
    // Version 3 is taken by another branch (rate limits); `apply` fills gaps.
    Migration {
        version: 4,
        name: "metering, quotas, prices, invoices",
        sql: include_str!("migrations/0004_metering.sql"),
    },
];

/// Applies, oldest first, every migration not yet recorded. Versions may have gaps (branches
/// reserve numbers), so a database that has 4 still gets 3 when 3 arrives later.
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
        .query("SELECT version FROM schema_migrations", ())
        .await?;
    let mut applied = std::collections::HashSet::new();
    while let Some(row) = rows.next().await? {
        applied.insert(row.get::<i64>(0)?);
    }
    drop(rows);
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
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
