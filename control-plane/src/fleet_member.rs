//! This node's membership in the fleet of nodes sharing one database: it heartbeats in the
//! node registry (the per-second rates and the quota's block sizes are shared by the live
//! nodes), polls the invalidation log (another node's change to a deployment, key, role,
//! plan… makes this node's memoised rows stale and drops the organisation's cached
//! results), and on a clean stop gives back what it holds (its quota blocks, its batch
//! leases, its registry entry).
//!
//! Bounds, with the defaults: a change made on another node is seen here within
//! `fleet.invalidation_poll_ms` (250 ms) of its commit plus one poll's read; a node counts
//! as gone `3 × fleet.heartbeat_ms` (3 s) after its last heartbeat.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
// The registry and log rows; this module is the node's side of them.
use wisp_core::fleet as rows;

use crate::db::Db;
use crate::metering::Metering;
use crate::serving::admission::Admission;
use crate::serving::result_cache::ResultCache;

/// The fleet's timings (`[fleet]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// How often this node heartbeats and counts the live nodes (milliseconds); a node is
    /// gone after three missed heartbeats.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// How often this node reads the invalidation log (milliseconds): the bound on how long
    /// another node's change to a key, role or deployment may go unseen here.
    #[serde(default = "default_invalidation_poll_ms")]
    pub invalidation_poll_ms: u64,
}

fn default_heartbeat_ms() -> u64 {
    1_000
}

fn default_invalidation_poll_ms() -> u64 {
    250
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: default_heartbeat_ms(),
            invalidation_poll_ms: default_invalidation_poll_ms(),
        }
    }
}

impl FleetConfig {
    /// Checks the timings.
    pub fn validate(&self) -> Result<(), String> {
        if !(50..=60_000).contains(&self.heartbeat_ms) {
            return Err("fleet.heartbeat_ms must be between 50 and 60000".into());
        }
        if !(10..=60_000).contains(&self.invalidation_poll_ms) {
            return Err("fleet.invalidation_poll_ms must be between 10 and 60000".into());
        }
        Ok(())
    }

    /// How long after its last heartbeat a node counts as gone.
    pub fn node_ttl_ms(&self) -> i64 {
        i64::try_from(self.heartbeat_ms.saturating_mul(3)).unwrap_or(i64::MAX)
    }
}

/// This node's id: kept in `<data_dir>/node-id`, so that a node restarted on its data
/// directory takes its own batch jobs back at once; a new node gets a new id.
pub fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(id)
}

/// Invalidation log entries older than this are deleted (every node has long polled them).
const LOG_RETENTION_MS: i64 = 3_600_000;

/// What the fleet tasks act on.
#[derive(Clone)]
pub struct FleetMember {
    pub node_id: String,
    pub db: Arc<Db>,
    pub admission: Arc<Admission>,
    pub metering: Metering,
    pub result_cache: Arc<ResultCache>,
    pub config: FleetConfig,
}

impl FleetMember {
    /// Registers this node and starts its heartbeat and invalidation polling.
    pub async fn join(self) -> anyhow::Result<()> {
        let seq = {
            let conn = self.db.write_unmemoised().await;
            rows::heartbeat(&conn, &self.node_id, rows::now_ms()).await?;
            rows::last_seq(&conn).await?
        };
        self.beat().await;
        tokio::spawn(self.clone().heartbeats());
        tokio::spawn(self.poll_changes(seq));
        Ok(())
    }

    /// A clean stop: gives back the quota blocks and batch leases this node holds and leaves
    /// the registry, so the others take over at once.
    pub async fn leave(&self) {
        match self.metering.give_back_quota().await {
            Ok(calls) if calls > 0 => tracing::info!(calls, "gave the calls quota held back"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "failed to give the calls quota back"),
        }
        let conn = self.db.write_unmemoised().await;
        if let Err(error) = crate::batch::store::release_leases(&conn, &self.node_id).await {
            tracing::warn!(%error, "failed to release batch job leases");
        }
        if let Err(error) = rows::leave(&conn, &self.node_id, 0).await {
            tracing::warn!(%error, "failed to leave the node registry");
        }
    }

    async fn heartbeats(self) {
        let mut ticks = tokio::time::interval(Duration::from_millis(self.config.heartbeat_ms));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut beats: u64 = 0;
        loop {
            ticks.tick().await;
            self.beat().await;
            beats += 1;
            // Now and then: forget long-dead nodes and old log entries.
            if beats.is_multiple_of(600) {
                let now = rows::now_ms();
                let conn = self.db.write_unmemoised().await;
                let pruned = async {
                    rows::prune(&conn, now - LOG_RETENTION_MS).await?;
                    rows::leave(&conn, &self.node_id, now - LOG_RETENTION_MS).await
                };
                if let Err(error) = pruned.await {
                    tracing::warn!(%error, "failed to prune the fleet's tables");
                }
            }
        }
    }

    /// One heartbeat, and the live nodes counted into the shared limits.
    async fn beat(&self) {
        let now = rows::now_ms();
        let live = {
            let conn = self.db.write_unmemoised().await;
            match rows::heartbeat(&conn, &self.node_id, now).await {
                Ok(()) => rows::live_nodes(&conn, now - self.config.node_ttl_ms()).await,
                Err(error) => Err(error),
            }
        };
        match live {
            Ok(nodes) => {
                self.admission.set_fleet_size(nodes);
                self.metering.set_fleet_size(nodes);
            }
            Err(error) => tracing::warn!(%error, "failed to heartbeat in the node registry"),
        }
    }

    async fn poll_changes(self, mut seq: i64) {
        let mut ticks =
            tokio::time::interval(Duration::from_millis(self.config.invalidation_poll_ms));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let changes = {
                let conn = self.db.snapshot().await;
                rows::changes_since(&conn, seq, 1_000).await
            };
            let changes = match changes {
                Ok(changes) => changes,
                Err(error) => {
                    tracing::warn!(%error, "failed to read the invalidation log");
                    continue;
                }
            };
            let Some(last) = changes.last() else {
                continue;
            };
            seq = last.seq;
            self.db.invalidate_memos();
            // Cached results belong to an organisation; changes of none (sessions) leave them.
            let orgs: BTreeSet<&str> = changes.iter().filter_map(|c| c.org_id.as_deref()).collect();
            for org in orgs {
                self.result_cache.invalidate_org(Some(org));
            }
            tracing::debug!(
                changes = changes.len(),
                seq,
                "applied the fleet's invalidations"
            );
        }
    }
}
