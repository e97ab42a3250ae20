//! The rows several nodes on one database share to act as one fleet: the node registry
//! (who is alive, by heartbeat) and the invalidation log (which changes every node must
//! forget its memoised rows and cached results for).
//!
//! A change that a memo may hold is written with [`record_change`] in the transaction of
//! the change (the domain operations do it through their audit entry), so the log and the
//! data cannot disagree; every node polls [`changes_since`] the last sequence it saw.
//! Times are Unix milliseconds of the writing node's clock (nodes are expected to run NTP).

use libsql::params;

use crate::db::{self, DbError, Reader, Writer};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// Registers node `node_id` (or renews it): it is alive until `now_ms` plus the TTL the
/// readers apply.
pub async fn heartbeat(conn: &Writer, node_id: &str, now_ms: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO fleet_nodes (node_id, started_at, heartbeat_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (node_id) DO UPDATE SET heartbeat_at_ms = excluded.heartbeat_at_ms",
        params![node_id, db::now(), now_ms],
    )
    .await?;
    Ok(())
}

/// Removes node `node_id` (a clean stop) and nodes whose heartbeat is older than
/// `dead_before_ms`.
pub async fn leave(conn: &Writer, node_id: &str, dead_before_ms: i64) -> Result<(), DbError> {
    conn.execute(
        "DELETE FROM fleet_nodes WHERE node_id = ?1 OR heartbeat_at_ms < ?2",
        params![node_id, dead_before_ms],
    )
    .await?;
    Ok(())
}

/// How many nodes heartbeat at or after `alive_since_ms` (at least 1: the caller).
pub async fn live_nodes(conn: &Reader, alive_since_ms: i64) -> Result<u32, DbError> {
    let row = db::first_row(
        conn.query(
            "SELECT COUNT(*) FROM fleet_nodes WHERE heartbeat_at_ms >= ?1",
            params![alive_since_ms],
        )
        .await?,
    )
    .await?;
    let count = row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0);
    Ok(u32::try_from(count).unwrap_or(u32::MAX).max(1))
}

/// Records, in the caller's transaction, that `action` changed rows of `org_id` (`None`:
/// of no one organisation, e.g. a user's sessions) that other nodes may have memoised.
pub async fn record_change(
    conn: &Writer,
    org_id: Option<&str>,
    action: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO fleet_invalidations (org_id, action, at_ms) VALUES (?1, ?2, ?3)",
        params![org_id, action, now_ms()],
    )
    .await?;
    Ok(())
}

/// One entry of the invalidation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub org_id: Option<String>,
}

/// The last sequence in the log (0 when empty): where a starting node begins to poll.
pub async fn last_seq(conn: &Reader) -> Result<i64, DbError> {
    let row = db::first_row(
        conn.query("SELECT COALESCE(MAX(seq), 0) FROM fleet_invalidations", ())
            .await?,
    )
    .await?;
    Ok(row.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0))
}

/// Changes after `seq`, oldest first, at most `limit`.
pub async fn changes_since(conn: &Reader, seq: i64, limit: i64) -> Result<Vec<Change>, DbError> {
    let rows = conn
        .query(
            "SELECT seq, org_id FROM fleet_invalidations WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![seq, limit],
        )
        .await?;
    db::collect(rows, |row| {
        Ok(Change {
            seq: row.get(0)?,
            org_id: row.get(1)?,
        })
    })
    .await
}

/// Deletes log entries older than `before_ms` (every node has polled them long since).
pub async fn prune(conn: &Writer, before_ms: i64) -> Result<u64, DbError> {
    Ok(conn
        .execute(
            "DELETE FROM fleet_invalidations WHERE at_ms < ?1 AND seq < (SELECT MAX(seq) FROM fleet_invalidations)",
            params![before_ms],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[tokio::test]
    async fn nodes_count_while_their_heartbeat_is_fresh() {
        let db = Db::memory().await.expect("db");
        let conn = db.write_unmemoised().await;
        heartbeat(&conn, "a", 1_000).await.expect("a");
        heartbeat(&conn, "b", 5_000).await.expect("b");
        assert_eq!(live_nodes(&conn, 0).await.expect("count"), 2);
        assert_eq!(live_nodes(&conn, 2_000).await.expect("count"), 1);
        heartbeat(&conn, "a", 6_000).await.expect("renew");
        assert_eq!(live_nodes(&conn, 2_000).await.expect("count"), 2);
        leave(&conn, "b", 0).await.expect("leave");
        assert_eq!(live_nodes(&conn, 0).await.expect("count"), 1);
        leave(&conn, "a", 0).await.expect("leave");
        assert_eq!(
            live_nodes(&conn, 0).await.expect("count"),
            1,
            "at least the caller"
        );
    }

    #[tokio::test]
    async fn changes_are_read_in_order_after_a_sequence() {
        let db = Db::memory().await.expect("db");
        let conn = db.write_unmemoised().await;
        assert_eq!(last_seq(&conn).await.expect("seq"), 0);
        record_change(&conn, Some("o1"), "key.revoked")
            .await
            .expect("1");
        record_change(&conn, None, "session.revoked")
            .await
            .expect("2");
        let all = changes_since(&conn, 0, 10).await.expect("all");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].org_id.as_deref(), Some("o1"));
        let after = changes_since(&conn, all[0].seq, 10).await.expect("after");
        assert_eq!(after, vec![all[1].clone()]);
        assert_eq!(last_seq(&conn).await.expect("seq"), all[1].seq);
        // Pruning keeps the newest entry, so sequences never go back.
        prune(&conn, i64::MAX).await.expect("prune");
        assert_eq!(last_seq(&conn).await.expect("seq"), all[1].seq);
    }
}
