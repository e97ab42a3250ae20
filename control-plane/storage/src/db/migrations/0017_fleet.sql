-- Several nodes on one database: what they share so that limits, quotas, batch jobs and
-- memoised rows hold for the whole fleet (see docs/ARCHITECTURE.md, "Across nodes").

-- Live nodes: each `wisp serve` registers under a random id at start and heartbeats; a node
-- whose heartbeat is older than its TTL counts as gone (per-second rates are divided by the
-- number of live nodes).
CREATE TABLE fleet_nodes (
    node_id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    -- Unix milliseconds.
    heartbeat_at_ms INTEGER NOT NULL
);

-- Changes that make memoised rows or cached results stale, written in the transaction of
-- the change (by the domain operations' audit); every node polls for rows past the last
-- sequence it saw.
CREATE TABLE fleet_invalidations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT,
    action TEXT NOT NULL,
    -- Unix milliseconds.
    at_ms INTEGER NOT NULL
);

-- The calls-per-month quota, claimed by nodes in blocks with a conditional update: the
-- calls every node may still start plus those already served never exceed the quota.
CREATE TABLE quota_claims (
    org_id TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    claimed INTEGER NOT NULL,
    PRIMARY KEY (org_id, period_start)
);

-- A batch job runs on the node holding its lease, renewed by heartbeat; another node takes
-- it over once the lease has expired.
ALTER TABLE batch_jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE batch_jobs ADD COLUMN lease_expires_at_ms INTEGER;
