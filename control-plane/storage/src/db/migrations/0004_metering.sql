-- Metering: usage events, their hourly and daily rollups, storage samples, quotas, prices,
-- per-organisation overrides and finalised invoices.

-- The per-call compute budget is in compute units (1 CU = 1,000 fuel = 1 µs of inference
-- backend time), the unit calls are metered and billed in; fuel is derived from it.
ALTER TABLE plans ADD COLUMN compute_units_per_call INTEGER NOT NULL DEFAULT 2000000;
UPDATE plans SET compute_units_per_call = fuel_per_call / 1000;
ALTER TABLE plans DROP COLUMN fuel_per_call;

-- Hard quotas (NULL: unlimited), the share of a quota past which calls carry a warning,
-- and prices in micro-dollars (1,000,000 = 1 USD).
ALTER TABLE plans ADD COLUMN max_models INTEGER;
ALTER TABLE plans ADD COLUMN calls_per_month INTEGER;
ALTER TABLE plans ADD COLUMN max_storage_bytes INTEGER;
ALTER TABLE plans ADD COLUMN soft_limit_percent INTEGER NOT NULL DEFAULT 80;
ALTER TABLE plans ADD COLUMN base_fee_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE plans ADD COLUMN price_per_1000_calls_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE plans ADD COLUMN price_per_million_compute_units_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE plans ADD COLUMN price_per_gb_month_micros INTEGER NOT NULL DEFAULT 0;

UPDATE plans SET max_models = 1, calls_per_month = 1000, max_storage_bytes = 104857600
    WHERE id = 'free';
UPDATE plans SET max_models = 50, calls_per_month = 1000000, max_storage_bytes = 53687091200,
    base_fee_micros = 49000000, price_per_1000_calls_micros = 400000,
    price_per_million_compute_units_micros = 20000, price_per_gb_month_micros = 100000
    WHERE id = 'pro';
UPDATE plans SET base_fee_micros = 499000000, price_per_1000_calls_micros = 200000,
    price_per_million_compute_units_micros = 10000, price_per_gb_month_micros = 50000
    WHERE id = 'enterprise';

-- Per-organisation overrides of a plan's quotas and per-call budget: NULL keeps the plan's.
CREATE TABLE org_plan_overrides (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    max_models INTEGER,
    calls_per_month INTEGER,
    max_storage_bytes INTEGER,
    compute_units_per_call INTEGER,
    updated_at INTEGER NOT NULL
);

-- One row per inference call, whatever its outcome. The id is minted before the call and
-- written through the outbox, so replays and retries insert it at most once.
CREATE TABLE usage_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    api_key_id TEXT,
    user_id TEXT,
    model_id TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    variant TEXT NOT NULL,
    outcome TEXT NOT NULL,
    billable INTEGER NOT NULL,
    cache_hit INTEGER NOT NULL,
    compute_units INTEGER NOT NULL,
    fuel INTEGER NOT NULL,
    wall_us INTEGER NOT NULL,
    inference_us INTEGER NOT NULL,
    peak_memory_bytes INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX usage_events_org_time ON usage_events(org_id, at_ms);

-- Sums of events per organisation, hour or day, model and caller (`key:<id>`/`user:<id>`),
-- maintained in the transaction that inserts the events.
CREATE TABLE usage_rollups (
    org_id TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket_start INTEGER NOT NULL,
    model_name TEXT NOT NULL,
    caller TEXT NOT NULL,
    calls INTEGER NOT NULL,
    billed_calls INTEGER NOT NULL,
    failed_calls INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL,
    compute_units INTEGER NOT NULL,
    fuel INTEGER NOT NULL,
    wall_us INTEGER NOT NULL,
    inference_us INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    PRIMARY KEY (org_id, granularity, bucket_start, model_name, caller)
);

-- Bytes an organisation's model files occupy in the object store, sampled; storage is
-- billed by integrating these over time (GB-months).
CREATE TABLE storage_samples (
    org_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (org_id, at)
);

-- Invoices of closed billing periods: written once, never recomputed.
CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    plan_id TEXT NOT NULL,
    total_micros INTEGER NOT NULL,
    body TEXT NOT NULL,
    finalized_at INTEGER NOT NULL,
    UNIQUE (org_id, period_start)
);
