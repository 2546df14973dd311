-- Indexes for the purge: it finds sessions that ended (revoked or expired) and reset tokens
-- that were used or expired before a cutoff, one small batch at a time, without scanning the
-- tables. Partial where most rows have NULL (live sessions, unused tokens).

CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE INDEX password_reset_tokens_used_at_idx ON password_reset_tokens (used_at)
    WHERE used_at IS NOT NULL;

CREATE INDEX password_reset_tokens_expires_at_idx ON password_reset_tokens (expires_at);
