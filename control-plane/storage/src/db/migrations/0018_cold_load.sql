-- How long a cold start's load took (microseconds), NULL for warm calls: the alert metric
-- `cold_load_ms` reads it. Events stored before this column read as warm.
ALTER TABLE usage_events ADD COLUMN cold_load_us INTEGER;
CREATE INDEX usage_events_cold_loads ON usage_events (org_id, at_ms) WHERE cold_load_us IS NOT NULL;

-- Minute analytics past their retention are deleted hourly by age, across organisations.
CREATE INDEX model_analytics_by_age ON model_analytics (resolution, bucket_start);
