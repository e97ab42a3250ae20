-- Batch inference jobs: an input file in the object store run row by row through a pinned
-- model version, in chunks whose results are blobs recorded in `batch_chunks`.
CREATE TABLE batch_jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    model_name TEXT NOT NULL,
    -- Pinned at creation, so every row (and every resumed chunk) runs the same version.
    version INTEGER NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('ndjson', 'csv')),
    input_sha256 TEXT NOT NULL,
    input_bytes INTEGER NOT NULL,
    chunk_rows INTEGER NOT NULL,
    rows_total INTEGER NOT NULL,
    -- Advanced only together with the insert of a chunk's row below, in one transaction.
    chunks_done INTEGER NOT NULL DEFAULT 0,
    rows_done INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    failure_code TEXT,
    failure_message TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX batch_jobs_org ON batch_jobs(org_id, created_at);
CREATE INDEX batch_jobs_status ON batch_jobs(status);
CREATE INDEX batch_jobs_input ON batch_jobs(input_sha256);

-- The results of one completed chunk: NDJSON lines for rows
-- [chunk_index * chunk_rows, chunk_index * chunk_rows + rows), stored as a blob.
CREATE TABLE batch_chunks (
    job_id TEXT NOT NULL REFERENCES batch_jobs(id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    PRIMARY KEY (job_id, chunk_index)
);
CREATE INDEX batch_chunks_blob ON batch_chunks(sha256);
