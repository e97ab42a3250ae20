//! Versioned schema migrations, applied in order at start and recorded in `schema_migrations`.
//!
//! A migration is never edited once released: add a new one instead.

use super::Writer;

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
    Migration {
        version: 8,
        name: "key principals, org suspension, platform audit",
        sql: include_str!("migrations/0008_key_principals_platform.sql"),
    },
    Migration {
        version: 9,
        name: "idempotency keys, storage of artifacts and batch files",
        sql: include_str!("migrations/0009_billing_integrity.sql"),
    },
    Migration {
        version: 10,
        name: "backend per deployment",
        sql: include_str!("migrations/0010_deployment_backend.sql"),
    },
    Migration {
        version: 11,
        name: "per-version model analytics",
        sql: include_str!("migrations/0011_model_analytics.sql"),
    },
    Migration {
        version: 12,
        name: "data drift: references, settings, windows",
        sql: include_str!("migrations/0012_drift.sql"),
    },
    Migration {
        version: 13,
        name: "predictions and ground-truth feedback",
        sql: include_str!("migrations/0013_ground_truth.sql"),
    },
    Migration {
        version: 14,
        name: "alert rules, webhooks, history, deliveries",
        sql: include_str!("migrations/0014_alerts.sql"),
    },
    Migration {
        version: 15,
        name: "dashboard session cookies",
        sql: include_str!("migrations/0015_dashboard_sessions.sql"),
    },
    Migration {
        version: 17,
        name: "fleet: nodes, invalidations, quota claims, batch leases",
        sql: include_str!("migrations/0017_fleet.sql"),
    },
    Migration {
        version: 18,
        name: "cold-load time of usage events, analytics by age",
        sql: include_str!("migrations/0018_cold_load.sql"),
    },
];

/// Applies, oldest first, every migration not yet recorded in `schema_migrations`.
///
/// Not "every version above the highest recorded": migrations numbered on parallel branches
/// may be released out of order, and one with a lower number than an applied one must still
/// run.
pub async fn apply(conn: &Writer) -> Result<(), DbError> {
    apply_list(conn, MIGRATIONS).await
}

async fn apply_list(conn: &Writer, migrations: &[Migration]) -> Result<(), DbError> {
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
        conn.transaction(async |tx| -> Result<(), DbError> {
            tx.execute_batch(migration.sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                libsql::params![migration.version, migration.name, super::now()],
            )
            .await?;
            Ok(())
        })
        .await?;
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

    /// An in-memory database without migrations.
    async fn bare_memory() -> Writer {
        let db = libsql::Builder::new_local(":memory:")
            .build()
            .await
            .expect("db");
        let conn = db.connect().expect("connect");
        Writer::new(super::super::link::Link::new(
            std::sync::Arc::default(),
            std::sync::Arc::new(db),
            conn,
        ))
    }

    fn table(version: i64, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql }
    }

    #[tokio::test]
    async fn a_migration_numbered_below_an_applied_one_still_runs() {
        let conn = bare_memory().await;
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

    #[tokio::test]
    async fn existing_keys_get_the_human_at_the_end_of_their_creator_chain() {
        let conn = bare_memory().await;
        let before: Vec<_> = MIGRATIONS.iter().filter(|m| m.version < 8).collect();
        for migration in before {
            let copy = table(migration.version, migration.name, migration.sql);
            apply_list(&conn, &[copy]).await.expect("earlier migration");
        }
        conn.execute_batch(
            "INSERT INTO orgs (id, slug, name, created_at) VALUES ('o', 'o', 'o', 0);
             INSERT INTO api_keys (id, org_id, name, prefix, key_hash, scopes, created_by, created_at)
             VALUES ('k1', 'o', 'k', 'p', 'h1', 'admin', 'user:u', 1),
                    ('k2', 'o', 'k', 'p', 'h2', 'admin', 'key:k1', 2),
                    ('k3', 'o', 'k', 'p', 'h3', 'read', 'key:k2', 3),
                    ('k4', 'o', 'k', 'p', 'h4', 'read', 'key:gone', 4);",
        )
        .await
        .expect("keys");
        apply_list(&conn, MIGRATIONS).await.expect("the rest");
        let mut rows = conn
            .query("SELECT id, principal_user_id FROM api_keys ORDER BY id", ())
            .await
            .expect("query");
        let mut principals = Vec::new();
        while let Some(row) = rows.next().await.expect("row") {
            principals.push((
                row.get::<String>(0).expect("id"),
                row.get::<Option<String>>(1).expect("principal"),
            ));
        }
        let user = Some("u".to_owned());
        assert_eq!(
            principals,
            [
                ("k1".to_owned(), user.clone()),
                ("k2".to_owned(), user.clone()),
                ("k3".to_owned(), user),
                ("k4".to_owned(), None),
            ]
        );
    }

    #[test]
    fn versions_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
