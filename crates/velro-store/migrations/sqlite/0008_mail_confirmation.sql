-- Email confirmation on the Supabase surface (sign-up without auto-confirm, invites, email
-- changes). The mailed one-time tokens share the reset-token table (and its purge) and are told
-- apart by `purpose`: 'recovery' (v1 reset, /recover, magic links), 'confirmation' (sign-up,
-- invite) or 'email_change'. Only hashes are stored, as before.
ALTER TABLE password_reset_tokens ADD COLUMN purpose TEXT NOT NULL DEFAULT 'recovery';

-- GoTrue's per-user mail state, kept beside `users` so that user reads stay as they are: a
-- row exists only for accounts that took part in a confirmation flow. `awaiting_confirmation`
-- marks an account created unconfirmed through /auth/v1 (it may not sign in there until it
-- confirms); `new_email` is a pending email change.
CREATE TABLE user_mail_state (
    user_id               BLOB    NOT NULL PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    awaiting_confirmation INTEGER NOT NULL DEFAULT 0,
    invited_at            INTEGER,
    confirmation_sent_at  INTEGER,
    new_email             TEXT,
    email_change_sent_at  INTEGER
) STRICT;
