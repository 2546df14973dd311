//! Statements both dialects run verbatim: the schemas share names, `$n` placeholders work in
//! SQLite too, and times are bound in each dialect's own type (unix microseconds in SQLite,
//! timestamptz in PostgreSQL). Only what differs (transaction start, the row lock of a
//! rotation, the email prefix filter) lives in the dialect modules.

/// Every user column except the password hash, for `FROM users` without an alias.
macro_rules! user_columns {
    () => {
        "user_id, email, display_name, avatar_url, credits_balance, role, email_confirmed, \
         disabled, created_at, updated_at, user_metadata, app_metadata, banned_until, deleted_at"
    };
}

/// The same as `user_columns`, for queries that alias `users` as `u`.
macro_rules! user_columns_u {
    () => {
        "u.user_id, u.email, u.display_name, u.avatar_url, u.credits_balance, u.role, \
         u.email_confirmed, u.disabled, u.created_at, u.updated_at, u.user_metadata, \
         u.app_metadata, u.banned_until, u.deleted_at"
    };
}

/// Session columns for queries that alias `sessions` as `s`, renamed where they would clash
/// with the user columns of a join.
macro_rules! session_columns_s {
    () => {
        "s.session_id, s.user_id AS session_user_id, s.created_at AS session_created_at, \
         s.last_refreshed_at, s.expires_at AS session_expires_at, s.remember_me, s.user_agent, \
         s.ip"
    };
}

pub(crate) const PING: &str = "SELECT 1";

// Users.

/// `$9`: avatar URL, `$10`/`$11`: user/app metadata (JSON text, NULL for none).
pub(crate) const INSERT_USER: &str = concat!(
    "INSERT INTO users (user_id, email, password_hash, display_name, avatar_url, \
     credits_balance, role, email_confirmed, disabled, created_at, updated_at, \
     user_metadata, app_metadata, banned_until) \
     VALUES ($1, $2, $3, $4, $9, $5, $6, $8, FALSE, $7, $7, $10, $11, $12) RETURNING ",
    user_columns!()
);

pub(crate) const FIND_USER: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE user_id = $1");

/// [`FIND_USER`] holding the row until the transaction ends (PostgreSQL), so that a change
/// computed from it cannot be overwritten by one computed from the same old value.
pub(crate) const FIND_USER_FOR_UPDATE: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE user_id = $1 FOR UPDATE"
);

pub(crate) const FIND_CREDENTIALS: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", password_hash FROM users WHERE user_id = $1"
);

pub(crate) const FIND_CREDENTIALS_BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", password_hash FROM users WHERE email = $1"
);

/// `$1`: new hash, `$2`: now, `$3`: user id.
pub(crate) const SET_PASSWORD_HASH: &str =
    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE user_id = $3";

/// `$1`/`$3`: whether to set display_name/avatar_url, `$2`/`$4`: the new values (NULL clears).
pub(crate) const UPDATE_PROFILE: &str = concat!(
    "UPDATE users SET \
     display_name = CASE WHEN $1 THEN $2 ELSE display_name END, \
     avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END, \
     updated_at = $5 \
     WHERE user_id = $6 RETURNING ",
    user_columns!()
);

/// NULL parameters leave their column alone; `updated_at` moves only when a value changes.
pub(crate) const UPDATE_USER: &str = concat!(
    "UPDATE users SET \
     disabled = COALESCE($1, disabled), \
     role = COALESCE($2, role), \
     credits_balance = COALESCE($3, credits_balance), \
     email_confirmed = COALESCE($4, email_confirmed), \
     updated_at = CASE WHEN disabled <> COALESCE($1, disabled) \
                         OR role <> COALESCE($2, role) \
                         OR credits_balance <> COALESCE($3, credits_balance) \
                         OR email_confirmed <> COALESCE($4, email_confirmed) \
                       THEN $5 ELSE updated_at END \
     WHERE user_id = $6 RETURNING ",
    user_columns!()
);

/// The Supabase surface's account change: for each field a flag (odd) says whether to set it
/// to the value (even) that follows; NULL values clear. `$20`: now, `$21`: user.
pub(crate) const UPDATE_ACCOUNT: &str = concat!(
    "UPDATE users SET \
     email = CASE WHEN $1 THEN $2 ELSE email END, \
     password_hash = CASE WHEN $3 THEN $4 ELSE password_hash END, \
     email_confirmed = CASE WHEN $5 THEN $6 ELSE email_confirmed END, \
     display_name = CASE WHEN $7 THEN $8 ELSE display_name END, \
     avatar_url = CASE WHEN $9 THEN $10 ELSE avatar_url END, \
     user_metadata = CASE WHEN $11 THEN $12 ELSE user_metadata END, \
     app_metadata = CASE WHEN $13 THEN $14 ELSE app_metadata END, \
     banned_until = CASE WHEN $15 THEN $16 ELSE banned_until END, \
     disabled = CASE WHEN $17 THEN $18 ELSE disabled END, \
     deleted_at = COALESCE($19, deleted_at), \
     updated_at = $20, \
     role = COALESCE($22, role) \
     WHERE user_id = $21 RETURNING ",
    user_columns!()
);

/// The user a refresh token (live or not) belongs to.
pub(crate) const FIND_REFRESH_TOKEN_USER: &str = concat!(
    "SELECT ",
    user_columns_u!(),
    " FROM refresh_tokens t JOIN sessions s ON s.session_id = t.session_id \
     JOIN users u ON u.user_id = s.user_id WHERE t.token_hash = $1"
);

pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE user_id = $1";

/// The start of the admin listing; the dialect appends its filters, then [`LIST_USERS_ORDER`].
pub(crate) const LIST_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE TRUE");

/// Keyset pagination: strictly after the cursor in newest-first order.
pub(crate) const LIST_USERS_AFTER: &str = " AND (created_at, user_id) < (";

pub(crate) const LIST_USERS_ORDER: &str = " ORDER BY created_at DESC, user_id DESC LIMIT ";

/// GoTrue's offset pagination: the store appends [`PAGE_USERS_FILTER`] when filtered, then
/// [`PAGE_USERS_ORDER`].
pub(crate) const PAGE_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE TRUE");

pub(crate) const COUNT_USERS: &str = "SELECT COUNT(*) FROM users WHERE TRUE";

/// GoTrue's `filter`: the email or the full name contains the (escaped) pattern, any case.
/// The pattern is bound twice, between these pieces.
pub(crate) const PAGE_USERS_FILTER: [&str; 3] = [
    " AND (lower(email) LIKE ",
    " ESCAPE '\\' OR lower(display_name) LIKE ",
    " ESCAPE '\\')",
];

/// Newest first; the limit and the offset are bound after it.
pub(crate) const PAGE_USERS_ORDER: &str = " ORDER BY created_at DESC, user_id DESC LIMIT ";

// Sessions and refresh tokens.

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (session_id, user_id, created_at, \
     last_refreshed_at, expires_at, remember_me, user_agent, ip, revoked_at) \
     VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, NULL)";

/// `$1`: hash, `$2`: session, `$3`: generation, `$4`: issued at, `$5`: expires at.
pub(crate) const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, \
     generation, issued_at, expires_at, spent_at) VALUES ($1, $2, $3, $4, $5, NULL)";

pub(crate) const FIND_LIVE_SESSION: &str = concat!(
    "SELECT ",
    session_columns_s!(),
    ", ",
    user_columns_u!(),
    " FROM sessions s JOIN users u ON u.user_id = s.user_id \
     WHERE s.session_id = $1 AND s.revoked_at IS NULL AND NOT u.disabled"
);

pub(crate) const LIST_LIVE_SESSIONS: &str = concat!(
    "SELECT ",
    session_columns_s!(),
    " FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
     ORDER BY s.created_at DESC, s.session_id DESC"
);

/// `$1`: now, `$2`: session, `$3`: user.
pub(crate) const REVOKE_SESSION: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE session_id = $2 AND user_id = $3 AND revoked_at IS NULL";

/// `$1`: now, `$2`: session.
pub(crate) const REVOKE_SESSION_BY_ID: &str =
    "UPDATE sessions SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL";

/// `$1`: now, `$2`: user.
pub(crate) const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE user_id = $2 AND revoked_at IS NULL RETURNING session_id";

/// `$1`: now, `$2`: user, `$3`: the session to keep.
pub(crate) const REVOKE_OTHER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE user_id = $2 AND revoked_at IS NULL AND session_id <> $3 RETURNING session_id";

macro_rules! find_presented_token {
    () => {
        concat!(
            "SELECT t.generation, t.expires_at AS token_expires_at, t.spent_at, \
             t.spent_elsewhere, s.revoked_at, ",
            session_columns_s!(),
            ", ",
            user_columns_u!(),
            " FROM refresh_tokens t \
             JOIN sessions s ON s.session_id = t.session_id \
             JOIN users u ON u.user_id = s.user_id \
             WHERE t.token_hash = $1"
        )
    };
}

/// The presented token with its session and user, for the rotation rules. SQLite's write lock
/// already serialises rotations.
pub(crate) const FIND_PRESENTED_TOKEN: &str = find_presented_token!();

/// PostgreSQL locks the session first, in the order deletes and revocations take their locks
/// (user, session, token), so a rotation cannot deadlock with them; rotations of one session
/// queue here.
pub(crate) const FIND_PRESENTED_TOKEN_FOR_UPDATE: &str =
    concat!(find_presented_token!(), " FOR UPDATE OF s");

/// Conditional, so that of concurrent rotations exactly one spends the token.
pub(crate) const SPEND_REFRESH_TOKEN: &str =
    "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL";

/// `$1`: now, `$2`: new expiry, `$3`: session.
pub(crate) const RECORD_REFRESH: &str = "UPDATE sessions SET last_refreshed_at = $1, \
     expires_at = $2 WHERE session_id = $3 AND revoked_at IS NULL";

pub(crate) const NEWEST_GENERATION: &str =
    "SELECT MAX(generation) FROM refresh_tokens WHERE session_id = $1";

// Password-reset tokens.

pub(crate) const INSERT_RESET_TOKEN: &str = "INSERT INTO password_reset_tokens (token_hash, \
     user_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, NULL)";

/// Only recovery tokens reset a password; the other purposes are the Supabase mail flows'.
pub(crate) const FIND_RESET_TOKEN_USER: &str = concat!(
    "SELECT ",
    user_columns_u!(),
    ", u.password_hash FROM password_reset_tokens r JOIN users u ON u.user_id = r.user_id \
     WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2 \
     AND r.purpose = 'recovery'"
);

/// `$1`: now, `$2`: hash. Conditional: of concurrent resets with one token, one wins.
pub(crate) const SPEND_RESET_TOKEN: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 AND purpose = 'recovery' \
     RETURNING user_id";

/// `$1`: now, `$2`: user.
pub(crate) const SPEND_USER_RESET_TOKENS: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE user_id = $2 AND used_at IS NULL AND purpose = 'recovery'";

// The Supabase mail flows (confirmation, invite, email change): tokens in the reset-token
// table by purpose, and the per-user state beside `users`.

/// `$1`: user, `$2`: invited at (or NULL).
pub(crate) const INSERT_MAIL_STATE: &str = "INSERT INTO user_mail_state \
     (user_id, awaiting_confirmation, invited_at) VALUES ($1, TRUE, $2)";

/// `recovery_sent_at` comes from the recovery tokens still kept (by the user index).
pub(crate) const FIND_MAIL_STATE: &str = "SELECT u.email_confirmed_at, m.awaiting_confirmation, \
     m.invited_at, m.confirmation_sent_at, m.new_email, m.email_change_sent_at, \
     (SELECT MAX(r.created_at) FROM password_reset_tokens r \
      WHERE r.user_id = u.user_id AND r.purpose = 'recovery') AS recovery_sent_at \
     FROM users u LEFT JOIN user_mail_state m ON m.user_id = u.user_id WHERE u.user_id = $1";

/// `$1`: user. When the newest recovery token was issued.
pub(crate) const FIND_RECOVERY_SENT: &str = "SELECT created_at FROM password_reset_tokens \
     WHERE user_id = $1 AND purpose = 'recovery' ORDER BY created_at DESC LIMIT 1";

pub(crate) const FIND_MAIL_SENT: &str = "SELECT confirmation_sent_at, email_change_sent_at \
     FROM user_mail_state WHERE user_id = $1";

/// `$1`: now, `$2`: user, `$3`: purpose.
pub(crate) const SPEND_USER_MAIL_TOKENS: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL";

/// `$1`: hash, `$2`: user, `$3`: now, `$4`: expiry, `$5`: purpose.
pub(crate) const INSERT_MAIL_TOKEN: &str = "INSERT INTO password_reset_tokens (token_hash, \
     user_id, created_at, expires_at, used_at, purpose) VALUES ($1, $2, $3, $4, NULL, $5)";

/// `$1`: user, `$2`: now.
pub(crate) const RECORD_CONFIRMATION_SENT: &str = "INSERT INTO user_mail_state \
     (user_id, confirmation_sent_at) VALUES ($1, $2) ON CONFLICT (user_id) \
     DO UPDATE SET confirmation_sent_at = excluded.confirmation_sent_at";

/// `$1`: user, `$2`: new address, `$3`: now.
pub(crate) const RECORD_EMAIL_CHANGE_SENT: &str = "INSERT INTO user_mail_state \
     (user_id, new_email, email_change_sent_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) \
     DO UPDATE SET new_email = excluded.new_email, \
     email_change_sent_at = excluded.email_change_sent_at";

/// `$1`: now, `$2`: hash, `$3` and `$4`: the purposes accepted.
pub(crate) const SPEND_MAIL_TOKEN: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
     AND (purpose = $3 OR purpose = $4) RETURNING user_id, purpose";

/// `$1`: now, `$2`: user. The first confirmation time stays.
pub(crate) const CONFIRM_EMAIL: &str = "UPDATE users SET email_confirmed = TRUE, \
     email_confirmed_at = COALESCE(email_confirmed_at, $1), \
     updated_at = CASE WHEN email_confirmed THEN updated_at ELSE $1 END WHERE user_id = $2";

pub(crate) const END_AWAITING_CONFIRMATION: &str =
    "UPDATE user_mail_state SET awaiting_confirmation = FALSE WHERE user_id = $1";

pub(crate) const FIND_PENDING_EMAIL: &str =
    "SELECT new_email FROM user_mail_state WHERE user_id = $1";

/// `$1`: new address, `$2`: now, `$3`: user.
pub(crate) const CHANGE_EMAIL: &str = "UPDATE users SET email = $1, email_confirmed = TRUE, \
     email_confirmed_at = $2, updated_at = $2 WHERE user_id = $3";

/// `$1`: now, `$2`: user. Both halves of an email change.
pub(crate) const SPEND_EMAIL_CHANGE_TOKENS: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE user_id = $2 AND used_at IS NULL \
     AND (purpose = 'email_change' OR purpose = 'email_change_current')";

/// `$1`: user, `$2`: new address, `$3`: now, `$4`: confirmations awaited.
pub(crate) const RECORD_EMAIL_CHANGE_ISSUED: &str = "INSERT INTO user_mail_state \
     (user_id, new_email, email_change_sent_at, email_change_confirmations_left) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) \
     DO UPDATE SET new_email = excluded.new_email, \
     email_change_sent_at = excluded.email_change_sent_at, \
     email_change_confirmations_left = excluded.email_change_confirmations_left";

/// One confirmation of the pending change counted; the row lock orders concurrent halves.
pub(crate) const COUNT_EMAIL_CHANGE_CONFIRMATION: &str = "UPDATE user_mail_state \
     SET email_change_confirmations_left = email_change_confirmations_left - 1 \
     WHERE user_id = $1 AND new_email IS NOT NULL \
     RETURNING new_email, email_change_confirmations_left";

pub(crate) const END_EMAIL_CHANGE: &str = "UPDATE user_mail_state SET new_email = NULL, \
     email_change_sent_at = NULL, awaiting_confirmation = FALSE WHERE user_id = $1";

// The status page. `minute` is minutes since the epoch, so integer division by 1440 is the UTC
// day in both dialects.

/// Keeps the worse of two instances' judgements of one minute; every SET expression reads the
/// row as it was, in both dialects, so the reason goes with the state it explains.
pub(crate) const UPSERT_STATUS_SAMPLE: &str =
    "INSERT INTO status_samples (component, minute, state, reason) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (component, minute) DO UPDATE SET \
     reason = CASE WHEN excluded.state > status_samples.state \
                   THEN excluded.reason ELSE status_samples.reason END, \
     state = CASE WHEN excluded.state > status_samples.state \
                  THEN excluded.state ELSE status_samples.state END";

pub(crate) const PURGE_STATUS_SAMPLES: &str = "DELETE FROM status_samples WHERE minute < $1";

pub(crate) const STATUS_HISTORY: &str =
    "SELECT component, minute / 1440 AS day, state, COUNT(*) AS minutes \
     FROM status_samples WHERE minute >= $1 GROUP BY component, minute / 1440, state";

pub(crate) const LATEST_STATUS: &str = "SELECT s.component, s.minute, s.state, s.reason \
     FROM status_samples s JOIN (SELECT component, MAX(minute) AS minute FROM status_samples \
     WHERE minute >= $1 GROUP BY component) m \
     ON m.component = s.component AND m.minute = s.minute";

macro_rules! incident_columns {
    () => {
        "incident_id, title, status, impact, components, expected_resolution, created_at, \
         updated_at, resolved_at"
    };
}

/// `$7`: now (created and updated), `$8`: resolved at (when opened as resolved).
pub(crate) const INSERT_INCIDENT: &str = concat!(
    "INSERT INTO incidents (",
    incident_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)"
);

/// `$1`: status, `$2`: now, `$3`: resolved at (NULL reopens), `$4`: incident.
pub(crate) const SET_INCIDENT_STATUS: &str =
    "UPDATE incidents SET status = $1, updated_at = $2, resolved_at = $3 WHERE incident_id = $4";

pub(crate) const INSERT_INCIDENT_UPDATE: &str = "INSERT INTO incident_updates (update_id, \
     incident_id, status, message, created_at) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const FIND_INCIDENT: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents WHERE incident_id = $1"
);

pub(crate) const INCIDENT_UPDATES: &str = "SELECT update_id, incident_id, status, message, \
     created_at FROM incident_updates WHERE incident_id = $1 \
     ORDER BY created_at DESC, update_id DESC";

pub(crate) const LIST_INCIDENTS: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents ORDER BY created_at DESC, incident_id DESC LIMIT $1"
);

/// The updates of the incidents [`LIST_INCIDENTS`] returns, in one statement.
pub(crate) const LIST_INCIDENT_UPDATES: &str =
    "SELECT u.update_id, u.incident_id, u.status, u.message, u.created_at \
     FROM incident_updates u JOIN (SELECT incident_id FROM incidents \
     ORDER BY created_at DESC, incident_id DESC LIMIT $1) i ON i.incident_id = u.incident_id \
     ORDER BY u.created_at DESC, u.update_id DESC";

/// `$1`: token hash, `$2`: user, `$3`: user session, `$4`: now.
pub(crate) const INSERT_CONSOLE_SESSION: &str = "INSERT INTO console_sessions \
     (token_hash, user_id, session_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)";

/// `$1`: idle since before this.
pub(crate) const PURGE_CONSOLE_SESSIONS: &str =
    "DELETE FROM console_sessions WHERE last_seen_at < $1";

/// `$1`: now, `$2`: token hash, `$3`: idle since before this.
pub(crate) const TOUCH_CONSOLE_SESSION: &str = "UPDATE console_sessions SET last_seen_at = $1 \
     WHERE token_hash = $2 AND last_seen_at >= $3 RETURNING user_id, session_id, created_at";

/// `$1`: token hash, `$2`: idle since before this.
pub(crate) const FIND_CONSOLE_SESSION: &str = "SELECT user_id, session_id, created_at \
     FROM console_sessions WHERE token_hash = $1 AND last_seen_at >= $2";

/// `$1`: token hash.
pub(crate) const DELETE_CONSOLE_SESSION: &str =
    "DELETE FROM console_sessions WHERE token_hash = $1";

/// `$1`: flag, `$2`: old, `$3`: new, `$4`: actor, `$5`: when.
pub(crate) const INSERT_FLAG_CHANGE: &str = "INSERT INTO flag_changes \
     (flag, old_value, new_value, actor, changed_at) VALUES ($1, $2, $3, $4, $5)";

/// `$1`: flag.
pub(crate) const LATEST_FLAG_CHANGE: &str = "SELECT flag, old_value, new_value, actor, changed_at \
     FROM flag_changes WHERE flag = $1 ORDER BY change_id DESC LIMIT 1";

/// `$1`: limit.
pub(crate) const RECENT_FLAG_CHANGES: &str =
    "SELECT flag, old_value, new_value, actor, changed_at \
     FROM flag_changes ORDER BY change_id DESC LIMIT $1";

// The purge. Each statement touches at most one batch of rows and is a transaction of its own;
// each deletes only rows that still qualify, so that purges running at once only find less to do.

/// `$1`: the cutoff, `$2`: the batch size. A session is over once revoked or expired; neither
/// can be undone (a rotation needs a live token, and an expired session's newest token has
/// expired with it), so the ids stay valid between this and the deletes that follow.
pub(crate) const SELECT_ENDED_SESSIONS: &str =
    "SELECT session_id FROM sessions WHERE revoked_at < $1 OR expires_at < $1 LIMIT $2";

/// The start of a chunk of the ended sessions' refresh tokens; the store appends the session
/// ids, then [`PURGE_SESSION_TOKENS_LIMIT`], the batch size and the dialect's batch lock, then
/// `)`. Before the sessions themselves, so that no single delete cascades to a long chain.
pub(crate) const PURGE_SESSION_TOKENS: &str = "DELETE FROM refresh_tokens WHERE token_hash IN \
     (SELECT token_hash FROM refresh_tokens WHERE session_id IN (";

pub(crate) const PURGE_SESSION_TOKENS_LIMIT: &str = ") LIMIT ";

/// The start of the sessions' delete: the cutoff is bound twice, then the ids are appended in
/// parentheses. The condition is checked again: a delete never removes a live session.
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE (revoked_at < ";

pub(crate) const PURGE_SESSIONS_OR_EXPIRED: &str = " OR expires_at < ";

pub(crate) const PURGE_SESSIONS_IDS: &str = ") AND session_id IN (";

macro_rules! purge_reset_tokens {
    ($lock:literal) => {
        concat!(
            "DELETE FROM password_reset_tokens WHERE token_hash IN (SELECT token_hash \
             FROM password_reset_tokens WHERE used_at < $1 OR expires_at < $1 LIMIT $2",
            $lock,
            ")"
        )
    };
}

/// `$1`: the cutoff, `$2`: the batch size. A used or expired reset token is refused whether or
/// not its row is there.
pub(crate) const PURGE_RESET_TOKENS: &str = purge_reset_tokens!("");

/// PostgreSQL skips rows another purge has locked instead of waiting for them.
pub(crate) const PURGE_RESET_TOKENS_SKIP_LOCKED: &str =
    purge_reset_tokens!(" FOR UPDATE SKIP LOCKED");

// PKCE flow states (the Supabase surface's `code_challenge` mail flows).

/// `$1`: id, `$2`: user, `$3`: method, `$4`: challenge, `$5`: its method, `$6`: now.
pub(crate) const INSERT_FLOW_STATE: &str = "INSERT INTO flow_states (flow_state_id, user_id, \
     authentication_method, code_challenge, code_challenge_method, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// `$1`: code hash, `$2`: now, `$3`: user, `$4`: method. The newest of the user's flow states
/// of that method, as GoTrue picks it.
pub(crate) const ISSUE_AUTH_CODE: &str = "UPDATE flow_states SET auth_code_hash = $1, \
     auth_code_issued_at = $2 WHERE flow_state_id = (SELECT flow_state_id FROM flow_states \
     WHERE user_id = $3 AND authentication_method = $4 \
     ORDER BY created_at DESC, flow_state_id DESC LIMIT 1)";

pub(crate) const FIND_FLOW_STATE: &str = "SELECT flow_state_id, user_id, authentication_method, \
     code_challenge, code_challenge_method, created_at, auth_code_issued_at \
     FROM flow_states WHERE auth_code_hash = $1";

pub(crate) const DELETE_FLOW_STATE: &str = "DELETE FROM flow_states WHERE flow_state_id = $1";

/// The start of a purge batch: the cutoff is bound, then the batch size after
/// [`PURGE_FLOW_STATES_LIMIT`], then the dialect's batch lock, then `)`.
pub(crate) const PURGE_FLOW_STATES: &str = "DELETE FROM flow_states WHERE flow_state_id IN \
     (SELECT flow_state_id FROM flow_states WHERE created_at < ";

pub(crate) const PURGE_FLOW_STATES_LIMIT: &str = " LIMIT ";
