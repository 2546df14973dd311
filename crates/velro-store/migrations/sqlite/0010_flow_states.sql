-- GoTrue's PKCE flow states on the Supabase surface: a mail flow started with a code challenge
-- (sign-up, recovery, magic link, email change) keeps it here until its link is followed, which
-- issues an auth code (stored hashed only), exchanged once by `POST /token?grant_type=pkce`.
-- `authentication_method` is GoTrue's name ('email/signup', 'recovery', 'magiclink',
-- 'email_change', 'invite'). The purge removes rows begun before its cutoff.
CREATE TABLE flow_states (
    flow_state_id         BLOB    NOT NULL PRIMARY KEY,
    user_id               BLOB    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    authentication_method TEXT    NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL,
    auth_code_hash        BLOB    UNIQUE,
    auth_code_issued_at   INTEGER,
    created_at            INTEGER NOT NULL
) STRICT;

-- The link finds the user's newest flow state of a method.
CREATE INDEX flow_states_user_method_idx
    ON flow_states (user_id, authentication_method, created_at);

CREATE INDEX flow_states_created_at_idx ON flow_states (created_at);
