-- Data drift per model (docs/monitoring.md): the reference profile, the model's drift
-- settings, and the live profile of each time window. Profiles are JSON documents of
-- mergeable sketches (wisp-monitoring), merged in place when a window is flushed again.

CREATE TABLE drift_settings (
    model_id TEXT PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- {"window_secs", "sample_rate", "tests": DriftConfig}
    settings TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE drift_references (
    model_id TEXT PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- {"kind": "upload" | "mlflow" | "from_calls", …}
    source TEXT NOT NULL,
    -- 'collecting' (from_calls, until target_rows) or 'ready'
    status TEXT NOT NULL CHECK (status IN ('collecting', 'ready')),
    target_rows INTEGER,
    rows INTEGER NOT NULL,
    -- the names of a 2-D input's columns, by input: {"input": ["sepal_length", …]}
    columns TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE drift_windows (
    model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- Unix seconds, a multiple of window_secs
    window_start INTEGER NOT NULL,
    window_secs INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    profile TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (model_id, window_start)
);
CREATE INDEX drift_windows_org ON drift_windows (org_id, model_id, window_start);
