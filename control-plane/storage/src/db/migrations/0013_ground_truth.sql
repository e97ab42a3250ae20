-- What a model answered, per prediction id (the call's usage event id, `wisp-usage-id`),
-- and the ground truth a client later sent for it. Written off the request path by the
-- serving layer's prediction log; rows older than `feedback.retention_days` are pruned.
-- One feedback per prediction: a second one replaces the first (the `actual_*` columns).
CREATE TABLE predictions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    -- Milliseconds since the Unix epoch, when the call began.
    at_ms INTEGER NOT NULL,
    -- `label` (a classifier: `label` set) or `value` (a regressor: `value` set).
    kind TEXT NOT NULL CHECK (kind IN ('label', 'value')),
    label TEXT,
    value REAL,
    -- A classifier's probability of its predicted label, when it returns probabilities.
    score REAL,
    -- The caller's segment attribute (`x-wisp-segment`, V2 `parameters.segment`).
    segment TEXT,
    actual_label TEXT,
    actual_value REAL,
    feedback_at_ms INTEGER
);
-- Pruning by age.
CREATE INDEX predictions_at ON predictions (at_ms);
-- Metrics read the predictions of one model with feedback, by time.
CREATE INDEX predictions_with_feedback ON predictions (org_id, model_id, at_ms)
    WHERE feedback_at_ms IS NOT NULL;
