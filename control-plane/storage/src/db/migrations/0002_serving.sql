-- Plans: what an organisation may use. Prices and quotas join them with metering.
CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    max_upload_bytes INTEGER NOT NULL,
    fuel_per_call INTEGER NOT NULL,
    max_memory_bytes INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    max_output_bytes INTEGER NOT NULL
);
INSERT INTO plans VALUES
    ('free', 'Free', 67108864, 2000000000, 268435456, 10000, 16777216),
    ('pro', 'Pro', 536870912, 20000000000, 1073741824, 30000, 67108864),
    ('enterprise', 'Enterprise', 4294967296, 100000000000, 1073741824, 60000, 268435456);

ALTER TABLE orgs ADD COLUMN plan_id TEXT NOT NULL DEFAULT 'free';

-- A custom component may bring the ONNX graph it runs through wasi-nn.
ALTER TABLE model_versions ADD COLUMN graph_sha256 TEXT;

-- What a model serves: at most one deployment per model, following a version or an alias.
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL UNIQUE REFERENCES models(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    follow_alias TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    failure_code TEXT,
    failure_message TEXT,
    -- Increments on every change, so a finished warm-up only updates the deployment it began.
    generation INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deployments_org ON deployments(org_id);

-- Append-only: every deploy, alias-driven redeploy, rollback and undeploy.
CREATE TABLE deployment_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    action TEXT NOT NULL,
    version INTEGER,
    follow_alias TEXT,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX deployment_history_model ON deployment_history(model_id, id);
