-- Users, sessions, refresh tokens and password-reset tokens.
-- Ids are 16-byte BLOBs (sqlx's Uuid encoding); times are INTEGER unix microseconds, so that
-- comparisons in SQL are numeric; booleans are 0/1.

CREATE TABLE users (
    user_id         BLOB    NOT NULL PRIMARY KEY,
    email           TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    display_name    TEXT,
    avatar_url      TEXT,
    credits_balance INTEGER NOT NULL,
    role            TEXT    NOT NULL,
    email_confirmed INTEGER NOT NULL,
    disabled        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
) STRICT;

CREATE INDEX users_created_at_user_id_idx ON users (created_at DESC, user_id DESC);

CREATE TABLE sessions (
    session_id        BLOB    NOT NULL PRIMARY KEY,
    user_id           BLOB    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at        INTEGER NOT NULL,
    last_refreshed_at INTEGER,
    expires_at        INTEGER NOT NULL,
    remember_me       INTEGER NOT NULL,
    user_agent        TEXT,
    ip                TEXT,
    revoked_at        INTEGER
) STRICT;

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash BLOB    NOT NULL PRIMARY KEY,
    session_id BLOB    NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
) STRICT;

CREATE INDEX refresh_tokens_session_id_generation_idx ON refresh_tokens (session_id, generation);

CREATE TABLE password_reset_tokens (
    token_hash BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX password_reset_tokens_user_id_idx ON password_reset_tokens (user_id);
