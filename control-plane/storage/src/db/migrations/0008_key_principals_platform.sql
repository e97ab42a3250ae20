-- Every API key acts for one human: the user who created it, or for a key minted by a key,
-- that key's human. A key loses its power with that person's membership.
ALTER TABLE api_keys ADD COLUMN principal_user_id TEXT;

-- Existing keys: follow `created_by` (`user:<id>` or `key:<id>`) down to a user. A key is
-- always created after its creator, so the chains end; a key whose chain ends nowhere keeps
-- NULL and is refused at authentication.
UPDATE api_keys SET principal_user_id = (
    WITH RECURSIVE chain(id, principal) AS (
        SELECT id, substr(created_by, 6) FROM api_keys AS k WHERE created_by LIKE 'user:%'
        UNION ALL
        SELECT k.id, chain.principal FROM api_keys AS k
            JOIN chain ON k.created_by = 'key:' || chain.id
    )
    SELECT principal FROM chain WHERE chain.id = api_keys.id
);
CREATE INDEX api_keys_principal ON api_keys(org_id, principal_user_id);

-- Suspension by a platform operator: the organisation's calls, keys and inference are
-- refused until it is reinstated.
ALTER TABLE orgs ADD COLUMN suspended_at INTEGER;
ALTER TABLE orgs ADD COLUMN suspended_reason TEXT;

-- The platform audit view reads entries by action (`platform.*`) across organisations.
CREATE INDEX audit_log_action ON audit_log(action, id);
