-- The dashboard's sign-ins (issue 18): a browser's session cookie names one row here by
-- the sha256 of its secret, and the row names the real session of the sign-in, so logging
-- out everywhere or changing the password (which end the session) end the cookie too.
CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_session ON dashboard_sessions(session_id);
