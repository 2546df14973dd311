-- GoTrue's secure email change: a change waits for the link or code mailed to the new address
-- and, when the setting is on, the one mailed to the current address too. The tokens mailed to
-- the current address have the purpose 'email_change_current' (no schema change: `purpose` is
-- text). `email_change_confirmations_left` counts the confirmations the pending change still
-- waits for; a change asked for before this migration waited for one.
ALTER TABLE user_mail_state ADD COLUMN email_change_confirmations_left INTEGER NOT NULL DEFAULT 1;
