-- Admission: request rates per API key and per organisation, and concurrent calls per
-- organisation, from the plan; a result-cache TTL per deployment (0: no caching).
ALTER TABLE plans ADD COLUMN key_requests_per_second INTEGER NOT NULL DEFAULT 5;
ALTER TABLE plans ADD COLUMN org_requests_per_second INTEGER NOT NULL DEFAULT 10;
ALTER TABLE plans ADD COLUMN max_concurrent_calls INTEGER NOT NULL DEFAULT 4;
UPDATE plans SET key_requests_per_second = 50, org_requests_per_second = 200, max_concurrent_calls = 16 WHERE id = 'pro';
UPDATE plans SET key_requests_per_second = 1000, org_requests_per_second = 5000, max_concurrent_calls = 48 WHERE id = 'enterprise';

ALTER TABLE deployments ADD COLUMN cache_ttl_secs INTEGER NOT NULL DEFAULT 0;

-- Traffic splitting: weighted variants (A/B, canary) and a shadow version, as JSON.
-- NULL traffic: all calls go to `version`.
ALTER TABLE deployments ADD COLUMN traffic TEXT;
ALTER TABLE deployments ADD COLUMN shadow TEXT;
