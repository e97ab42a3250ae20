-- Accounts and sessions: invitations instead of admin-chosen passwords, sessions (refresh
-- token families) with reuse detection, a forced password change, per-user sign-in history.

-- The bootstrap admin's generated password must be replaced before the account does
-- anything else.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;

-- One row per sign-in: every refresh token rotated from it belongs to it, and every access
-- token names it (`sid`). Revoking it ends the whole family at once.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source_ip TEXT,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    revoked_at INTEGER,
    -- `logout`, `logout_all`, `password_changed`, `refresh_token_reused`.
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

ALTER TABLE refresh_tokens ADD COLUMN session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE;
-- Refresh tokens issued before sessions existed each become a session of their own, so
-- nobody is signed out by the upgrade.
INSERT INTO sessions (id, user_id, source_ip, created_at, last_used_at, revoked_at, revoked_reason)
    SELECT id, user_id, NULL, created_at, created_at, revoked_at, NULL FROM refresh_tokens;
UPDATE refresh_tokens SET session_id = id;
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

-- A user's own sign-in history (successes and failures), never shown to an organisation.
CREATE TABLE sign_ins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    succeeded INTEGER NOT NULL,
    source_ip TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX sign_ins_user ON sign_ins(user_id, id);

-- A pending membership: only the holder of the token (sha256 stored) can accept it.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    email TEXT NOT NULL COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    accepted_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX invitations_org ON invitations(org_id, email);
