-- Operators' console: server-side sessions (shared by every instance, so a load balancer may send
-- each request anywhere) and the record of run-time flag changes, which is also how instances
-- agree on a flag's value.
CREATE TABLE console_sessions (
    token_hash   BLOB    NOT NULL PRIMARY KEY,
    user_id      BLOB    NULL,
    session_id   BLOB    NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_last_seen_at_idx ON console_sessions (last_seen_at);

CREATE TABLE flag_changes (
    change_id  INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    flag       TEXT    NOT NULL,
    old_value  INTEGER NOT NULL,
    new_value  INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX flag_changes_flag_idx ON flag_changes (flag, change_id);
