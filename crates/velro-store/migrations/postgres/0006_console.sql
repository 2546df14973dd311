-- Operators' console: server-side sessions (shared by every instance, so a load balancer may send
-- each request anywhere) and the record of run-time flag changes, which is also how instances
-- agree on a flag's value.
CREATE TABLE console_sessions (
    token_hash   bytea       NOT NULL PRIMARY KEY,
    user_id      uuid        NULL,
    session_id   uuid        NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_last_seen_at_idx ON console_sessions (last_seen_at);

CREATE TABLE flag_changes (
    change_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flag       text        NOT NULL,
    old_value  boolean     NOT NULL,
    new_value  boolean     NOT NULL,
    actor      text        NOT NULL,
    changed_at timestamptz NOT NULL
);
CREATE INDEX flag_changes_flag_idx ON flag_changes (flag, change_id);
