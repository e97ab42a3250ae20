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
    Migration {
        version: 4,
        name: "metering, quotas, prices, invoices",
        sql: include_str!("migrations/0004_metering.sql"),
    },
    Migration {
        version: 5,
        name: "batch jobs",
        sql: include_str!("migrations/0005_batch.sql"),
    },
    Migration {
        version: 6,
        name: "rate limits, concurrency, result cache, traffic splitting",
        sql: include_str!("migrations/0006_admission.sql"),
    },
    Migration {
        version: 7,
        name: "invitations, sessions, sign-in history, forced password change",
        sql: include_str!("migrations/0007_accounts.sql"),
    },
];

/// Applies, oldest first, every migration not yet recorded in `schema_migrations`.
///
/// Not "every version above the highest recorded": migrations numbered on parallel branches
/// may be released out of order, and one with a lower number than an applied one must still
/// run.
pub async fn apply(conn: &Connection) -> Result<(), DbError> {
    apply_list(conn, MIGRATIONS).await
}

async fn apply_list(conn: &Connection, migrations: &[Migration]) -> Result<(), DbError> {
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
    let mut applied = std::collections::BTreeSet::new();
    while let Some(row) = rows.next().await? {
        applied.insert(row.get::<i64>(0)?);
    }
    drop(rows);
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(version: i64, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql }
    }

    #[tokio::test]
    async fn a_migration_numbered_below_an_applied_one_still_runs() {
        let db = libsql::Builder::new_local(":memory:")
            .build()
            .await
            .expect("db");
        let conn = db.connect().expect("connect");
        let one = table(1, "one", "CREATE TABLE one (x)");
        let five = table(5, "five", "CREATE TABLE five (x)");
        apply_list(&conn, &[one, five]).await.expect("1 and 5");
        // Version 3 lands later (merged from another branch): it is applied, 1 and 5 are not
        // applied again (they would fail: their tables exist).
        let all = [
            table(1, "one", "CREATE TABLE one (x)"),
            table(3, "three", "CREATE TABLE three (x)"),
            table(5, "five", "CREATE TABLE five (x)"),
        ];
        apply_list(&conn, &all).await.expect("3");
        let mut rows = conn
            .query("SELECT version FROM schema_migrations ORDER BY version", ())
            .await
            .expect("query");
        let mut versions = Vec::new();
        while let Some(row) = rows.next().await.expect("row") {
            versions.push(row.get::<i64>(0).expect("version"));
        }
        assert_eq!(versions, [1, 3, 5]);
    }

    #[test]
    fn versions_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
