-- Alerting (issue 17, item 5): webhook endpoints, alert rules with their current state,
-- the history of every state change, and the webhook deliveries (a durable queue: the
-- attempts of a delivery survive a restart).

-- Where notifications go. `secret` is the `whsec_…` signing key: kept, not hashed,
-- because every delivery is signed with it.
CREATE TABLE alert_webhooks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX alert_webhooks_org ON alert_webhooks(org_id);

-- A rule and its current state. `channels` is a JSON array of webhook ids. The state
-- columns change only in the evaluation that guards on `last_evaluated_at`, so an
-- evaluation at a given time happens once whichever node runs it.
CREATE TABLE alert_rules (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT,
    version INTEGER,
    metric TEXT NOT NULL,
    feature TEXT,
    comparison TEXT NOT NULL,
    threshold REAL NOT NULL,
    window_secs INTEGER NOT NULL,
    for_secs INTEGER NOT NULL,
    cooldown_secs INTEGER NOT NULL,
    channels TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'ok',
    state_since INTEGER,
    pending_since INTEGER,
    last_value REAL,
    last_reason TEXT,
    last_evaluated_at INTEGER,
    last_fired_at INTEGER,
    episode_notified INTEGER NOT NULL DEFAULT 0,
    UNIQUE (org_id, name)
);
CREATE INDEX alert_rules_enabled ON alert_rules(enabled);

-- Every state change of a rule, newest last. A rule's history outlives the rule.
CREATE TABLE alert_history (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    value REAL,
    threshold REAL NOT NULL,
    reason TEXT,
    notified INTEGER NOT NULL,
    at INTEGER NOT NULL,
    UNIQUE (rule_id, at)
);
CREATE INDEX alert_history_org_at ON alert_history(org_id, at);

-- One message to one webhook, and its attempts. `id` is the message's `webhook-id`
-- (the same across retries). A `pending` delivery is due at `next_attempt_at` (Unix
-- seconds); a sender claims it by moving that forward (a lease) before sending.
CREATE TABLE alert_deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    response_code INTEGER,
    response_prefix TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(status, next_attempt_at);
CREATE INDEX alert_deliveries_webhook ON alert_deliveries(org_id, webhook_id, created_at);
