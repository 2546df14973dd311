-- Users, sessions, refresh tokens and password-reset tokens.

CREATE TABLE users (
    user_id         uuid        NOT NULL PRIMARY KEY,
    email           text        NOT NULL,
    password_hash   text        NOT NULL,
    display_name    text,
    avatar_url      text,
    credits_balance bigint      NOT NULL,
    role            text        NOT NULL,
    email_confirmed boolean     NOT NULL,
    disabled        boolean     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE INDEX users_created_at_user_id_idx ON users (created_at DESC, user_id DESC);

CREATE TABLE sessions (
    session_id        uuid        NOT NULL PRIMARY KEY,
    user_id           uuid        NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL,
    last_refreshed_at timestamptz,
    expires_at        timestamptz NOT NULL,
    remember_me       boolean     NOT NULL,
    user_agent        text,
    ip                text,
    revoked_at        timestamptz
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash bytea       NOT NULL PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    generation integer     NOT NULL,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);

CREATE INDEX refresh_tokens_session_id_generation_idx ON refresh_tokens (session_id, generation);

CREATE TABLE password_reset_tokens (
    token_hash bytea       NOT NULL PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX password_reset_tokens_user_id_idx ON password_reset_tokens (user_id);
