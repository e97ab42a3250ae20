-- MLflow tracking and registry (the REST API under /api/2.0/mlflow). Every row carries its
-- organisation; experiment ids are numbered per organisation (0 is its Default).

CREATE TABLE mlflow_experiments (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    creation_time INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL,
    PRIMARY KEY (org_id, experiment_id),
    UNIQUE (org_id, name)
);

CREATE TABLE mlflow_experiment_tags (
    org_id TEXT NOT NULL,
    experiment_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (org_id, experiment_id, key)
);

CREATE TABLE mlflow_runs (
    run_uuid TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    artifact_uri TEXT NOT NULL,
    deleted_time INTEGER,
    -- JSON arrays of the proto messages (DatasetInput, ModelInput, ModelOutput).
    dataset_inputs TEXT NOT NULL DEFAULT '[]',
    model_inputs TEXT NOT NULL DEFAULT '[]',
    model_outputs TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX mlflow_runs_experiment ON mlflow_runs(org_id, experiment_id, start_time);

CREATE TABLE mlflow_params (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

CREATE TABLE mlflow_tags (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

-- Every logged value; logging the same (key, timestamp, step, value) twice keeps one.
CREATE TABLE mlflow_metrics (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    is_nan INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step INTEGER NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_uuid, key, timestamp, step, value, is_nan)
);

-- The latest value of each metric of a run (highest step, then timestamp, then value):
-- what runs carry and what search filters and orders on.
CREATE TABLE mlflow_latest_metrics (
    run_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    is_nan INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX mlflow_latest_metrics_key ON mlflow_latest_metrics(key, value);

-- MLflow 3 logged models.
CREATE TABLE mlflow_logged_models (
    model_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    status TEXT NOT NULL,
    model_type TEXT NOT NULL DEFAULT '',
    source_run_id TEXT NOT NULL DEFAULT '',
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    creation_timestamp_ms INTEGER NOT NULL,
    last_updated_timestamp_ms INTEGER NOT NULL
);
CREATE INDEX mlflow_logged_models_org ON mlflow_logged_models(org_id, experiment_id);

CREATE TABLE mlflow_logged_model_tags (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE mlflow_logged_model_params (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE mlflow_registered_models (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT '',
    creation_timestamp INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE mlflow_registered_model_tags (
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (org_id, name, key)
);

CREATE TABLE mlflow_model_versions (
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT '',
    current_stage TEXT NOT NULL DEFAULT 'None',
    source TEXT NOT NULL,
    -- Where the files are: `source` with `models:/` and `runs:/` resolved.
    storage_location TEXT NOT NULL,
    run_id TEXT NOT NULL DEFAULT '',
    run_link TEXT NOT NULL DEFAULT '',
    model_id TEXT NOT NULL DEFAULT '',
    creation_timestamp INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    -- The wisp version made from its ONNX file, when it has one (the bridge to serving).
    wisp_version INTEGER,
    PRIMARY KEY (org_id, name, version)
);

CREATE TABLE mlflow_model_version_tags (
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (org_id, name, version, key)
);

CREATE TABLE mlflow_registered_model_aliases (
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (org_id, name, alias)
);

-- Artifact files by path (`<experiment>/<run>/artifacts/...`) within an organisation;
-- the bytes are an object-store blob, shared with any wisp version made from them.
CREATE TABLE mlflow_artifacts (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, path)
);
CREATE INDEX mlflow_artifacts_sha256 ON mlflow_artifacts(sha256);
