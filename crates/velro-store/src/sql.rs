//! Statements both dialects run verbatim: the schemas share names, `$n` placeholders work in
//! SQLite too, and times are bound in each dialect's own type (unix microseconds in SQLite,
//! timestamptz in PostgreSQL). Only what differs (transaction start, the row lock of a
//! rotation, the email prefix filter) lives in the dialect modules.

/// Every user column except the password hash, for `FROM users` without an alias.
macro_rules! user_columns {
    () => {
        "user_id, email, display_name, avatar_url, credits_balance, role, email_confirmed, \
         disabled, created_at, updated_at"
    };
}

/// The same as `user_columns`, for queries that alias `users` as `u`.
macro_rules! user_columns_u {
    () => {
        "u.user_id, u.email, u.display_name, u.avatar_url, u.credits_balance, u.role, \
         u.email_confirmed, u.disabled, u.created_at, u.updated_at"
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

pub(crate) const INSERT_USER: &str = concat!(
    "INSERT INTO users (user_id, email, password_hash, display_name, avatar_url, \
     credits_balance, role, email_confirmed, disabled, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, NULL, $5, $6, FALSE, FALSE, $7, $7) RETURNING ",
    user_columns!()
);

pub(crate) const FIND_USER: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE user_id = $1");

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

pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE user_id = $1";

/// The start of the admin listing; the dialect appends its filters, then [`LIST_USERS_ORDER`].
pub(crate) const LIST_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE TRUE");

/// Keyset pagination: strictly after the cursor in newest-first order.
pub(crate) const LIST_USERS_AFTER: &str = " AND (created_at, user_id) < (";

pub(crate) const LIST_USERS_ORDER: &str = " ORDER BY created_at DESC, user_id DESC LIMIT ";

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
            "SELECT t.generation, t.expires_at AS token_expires_at, t.spent_at, s.revoked_at, ",
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

pub(crate) const FIND_RESET_TOKEN_USER: &str = concat!(
    "SELECT ",
    user_columns_u!(),
    ", u.password_hash FROM password_reset_tokens r JOIN users u ON u.user_id = r.user_id \
     WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2"
);

/// `$1`: now, `$2`: hash. Conditional: of concurrent resets with one token, one wins.
pub(crate) const SPEND_RESET_TOKEN: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id";

/// `$1`: now, `$2`: user.
pub(crate) const SPEND_USER_RESET_TOKENS: &str = "UPDATE password_reset_tokens SET used_at = $1 \
     WHERE user_id = $2 AND used_at IS NULL";

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
