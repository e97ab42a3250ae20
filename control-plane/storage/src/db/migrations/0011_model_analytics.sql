-- Per-version analytics of inference calls: one row per organisation, model, resolution
-- (`minute`, `hour`, `day`), bucket and version, written by the metering drainer in the
-- transaction that inserts the usage events it counts. Sketches are wisp-monitoring's
-- `QuantileSketch` as JSON (seconds); `errors_by_code` a JSON object of counts.
CREATE TABLE model_analytics (
    org_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    resolution TEXT NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start INTEGER NOT NULL,
    version INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    errors_by_code TEXT NOT NULL,
    latency TEXT NOT NULL,
    inference TEXT NOT NULL,
    compute_units INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL,
    cold_starts INTEGER NOT NULL,
    PRIMARY KEY (org_id, model_id, resolution, bucket_start, version)
);
