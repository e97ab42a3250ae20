-- Idempotency keys: the first request made under a key (per organisation and credential)
-- and its stored response, replayed to retries of the same request within the TTL.
-- `state` is 'running' while the first request executes, 'done' once its response is
-- stored, 'too_large' when the response was over the replay bound (not stored).
CREATE TABLE idempotency_keys (
    org_id TEXT NOT NULL,
    credential TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    usage_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, credential, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Storage counts every blob an organisation references: model files, custom components'
-- graphs, MLflow artifacts, batch inputs and results. Graph and result sizes were not
-- recorded before; rows from before this migration count 0 for them.
ALTER TABLE model_versions ADD COLUMN graph_size_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batch_chunks ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;

-- Blobs being committed to the object store by a request that has not yet recorded the row
-- referencing them. A pending intent counts as a reference (nothing deletes the blob); an
-- intent left by a crashed or refused request is collected with its blob if nothing else
-- references it.
CREATE TABLE blob_intents (
    id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (id, sha256)
);
CREATE INDEX blob_intents_sha256 ON blob_intents (sha256);
CREATE INDEX blob_intents_by_age ON blob_intents (created_at);
