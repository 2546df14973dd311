//! The purge: rows past their retention go, rows something still needs stay, batches are bounded,
//! and purges running at once remove each row once.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::UserId;
use velro_core::service::{PurgeService, PurgeSettings};
use velro_core::store::{PurgeBatch, Purged, Rotation, Store, TokenHash};
use velro_core::Clock;

use crate::fixture::{hash, new_session, policy, register, secs, sign_in, t0, token, Fixture};

store_contract!(
    a_purge_removes_what_ended_before_the_cutoff_and_keeps_what_is_needed,
    a_purge_batch_is_bounded_and_a_pass_removes_everything,
    purges_running_at_once_remove_each_row_once,
);

const SESSION_ROWS: &str = "SELECT count(*) FROM sessions WHERE session_id = $1";
const SESSION_TOKENS: &str = "SELECT count(*) FROM refresh_tokens WHERE session_id = $1";
const USER_SESSIONS: &str = "SELECT count(*) FROM sessions WHERE user_id = $1";
const USER_RESET_TOKENS: &str = "SELECT count(*) FROM password_reset_tokens WHERE user_id = $1";

/// A clock that stays where it is put.
struct At(OffsetDateTime);

impl Clock for At {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

fn purger(fx: &Fixture, now: OffsetDateTime, batch_size: u32) -> PurgeService {
    PurgeService::new(
        fx.shared(),
        Arc::new(At(now)),
        PurgeSettings {
            retention: secs(0),
            batch_size,
        },
    )
}

async fn rotate(store: &dyn Store, presented: TokenHash, at: OffsetDateTime) -> TokenHash {
    let successor = token();
    let rotation = store
        .rotate_refresh_token(presented, successor, policy(), at)
        .await
        .expect("rotate");
    assert!(
        matches!(rotation, Rotation::Rotated { .. }),
        "expected Rotated, got {rotation:?}"
    );
    successor
}

async fn reset_token(store: &dyn Store, user: UserId, created: OffsetDateTime, lifetime: i64) {
    store
        .create_reset_token(user, token(), created + secs(lifetime), created)
        .await
        .expect("create_reset_token");
}

async fn a_purge_removes_what_ended_before_the_cutoff_and_keeps_what_is_needed(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let cutoff = at + secs(100);

    // Ada's live session, rotated twice: its spent tokens are what reuse detection needs.
    let ada = register(store, "ada@example.com", at).await;
    let first_spent = ada.refresh;
    let second_spent = rotate(store, first_spent, at + secs(1)).await;
    rotate(store, second_spent, at + secs(2)).await;
    // Logged out before the cutoff (rotated once first): goes with both its tokens.
    let (old, old_refresh) = sign_in(store, ada.user.id, at).await;
    rotate(store, old_refresh, at + secs(1)).await;
    assert!(store
        .revoke_session(ada.user.id, old, at + secs(2))
        .await
        .expect("revoke"));
    // Logged out after the cutoff: still within its retention.
    let (recent, _) = sign_in(store, ada.user.id, at).await;
    assert!(store
        .revoke_session(ada.user.id, recent, at + secs(200))
        .await
        .expect("revoke"));
    // Never revoked, expired a day before the cutoff.
    let expired = new_session(ada.user.id, at - time::Duration::days(8), false);
    let expired_id = expired.id;
    store.create_session(expired).await.expect("create_session");
    // Expired after the cutoff (expiry is the session's own, not the retention's).
    let mut lately = new_session(ada.user.id, at, false);
    lately.refresh_expires_at = at + secs(150);
    let lately_id = lately.id;
    store.create_session(lately).await.expect("create_session");

    // Bob's reset token was used before the cutoff; the reset revoked his session then too.
    let bob = register(store, "bob@example.com", at).await;
    let used = token();
    store
        .create_reset_token(bob.user.id, used, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    store
        .reset_password(used, &hash("new"), at + secs(1))
        .await
        .expect("reset")
        .expect("a usable token");
    // Carol's: one expired before the cutoff, one after it, one still valid.
    let carol = register(store, "carol@example.com", at).await;
    reset_token(store, carol.user.id, at - secs(3600), 3650).await;
    reset_token(store, carol.user.id, at - secs(3600), 3750).await;
    let valid = token();
    store
        .create_reset_token(carol.user.id, valid, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    // Dave's was used after the cutoff.
    let dave = register(store, "dave@example.com", at).await;
    let used_lately = token();
    store
        .create_reset_token(dave.user.id, used_lately, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    store
        .reset_password(used_lately, &hash("new"), at + secs(200))
        .await
        .expect("reset")
        .expect("a usable token");

    let batch = store.purge(cutoff, 100).await.expect("purge");
    assert_eq!(
        batch,
        PurgeBatch {
            removed: Purged {
                refresh_tokens: 4,
                sessions: 3,
                reset_tokens: 2,
                flow_states: 0,
            },
            more: false,
        }
    );
    for (gone, tokens) in [(old, 0), (expired_id, 0), (bob.session, 0)] {
        assert_eq!(fx.count(SESSION_ROWS, gone.0).await, 0);
        assert_eq!(fx.count(SESSION_TOKENS, gone.0).await, tokens);
    }
    for (kept, tokens) in [(ada.session, 3), (recent, 1), (lately_id, 1)] {
        assert_eq!(fx.count(SESSION_ROWS, kept.0).await, 1);
        assert_eq!(fx.count(SESSION_TOKENS, kept.0).await, tokens);
    }
    assert_eq!(fx.count(USER_SESSIONS, dave.user.id.0).await, 1);
    for (user, left) in [(bob.user.id, 0), (carol.user.id, 2), (dave.user.id, 1)] {
        assert_eq!(fx.count(USER_RESET_TOKENS, user.0).await, left);
    }
    assert!(store
        .find_reset_token_user(valid, at + secs(300))
        .await
        .expect("lookup")
        .is_some());

    // Nothing left to do: a second purge with the same cutoff removes nothing.
    let again = store.purge(cutoff, 100).await.expect("purge again");
    assert_eq!(again, PurgeBatch::default());

    // The live session's first token, spent long ago, is still recognised as reused.
    let reuse = store
        .rotate_refresh_token(first_spent, token(), policy(), at + secs(300))
        .await
        .expect("present a spent token");
    assert!(
        matches!(reuse, Rotation::ReusedAfterGrace { session_id } if session_id == ada.session),
        "expected ReusedAfterGrace, got {reuse:?}"
    );
}

/// Seven sessions of one user, each rotated once (two tokens), revoked at `at + 1`; the
/// registration's session stays live. And five reset tokens that expired before `at`.
async fn ended_sessions(store: &dyn Store, address: &str, at: OffsetDateTime) -> UserId {
    let user = register(store, address, at).await;
    for _ in 0..7 {
        let (_, refresh) = sign_in(store, user.user.id, at).await;
        rotate(store, refresh, at).await;
    }
    let revoked = store
        .revoke_sessions(user.user.id, Some(user.session), at + secs(1))
        .await
        .expect("revoke");
    assert_eq!(revoked.len(), 7);
    for _ in 0..5 {
        reset_token(store, user.user.id, at - secs(3600), 3590).await;
    }
    user.user.id
}

async fn a_purge_batch_is_bounded_and_a_pass_removes_everything(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = ended_sessions(store, "ada@example.com", at).await;
    let cutoff = at + secs(100);

    // One batch of three: three sessions with their six tokens (in chunks of three).
    let batch = store.purge(cutoff, 3).await.expect("purge");
    assert_eq!(
        batch,
        PurgeBatch {
            removed: Purged {
                refresh_tokens: 6,
                sessions: 3,
                reset_tokens: 3,
                flow_states: 0,
            },
            more: true,
        }
    );

    // A pass goes on until a batch is not full.
    let report = purger(fx, cutoff, 3).run_once().await.expect("pass");
    assert_eq!(
        report.removed,
        Purged {
            refresh_tokens: 8,
            sessions: 4,
            reset_tokens: 2,
            flow_states: 0,
        }
    );
    assert_eq!(report.cutoff, cutoff);
    assert_eq!(fx.count(USER_SESSIONS, ada.0).await, 1);
    assert_eq!(fx.count(USER_RESET_TOKENS, ada.0).await, 0);
}

async fn purges_running_at_once_remove_each_row_once(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let mut users: Vec<Uuid> = Vec::new();
    for n in 0..3 {
        let user = ended_sessions(store, &format!("user{n}@example.com"), at).await;
        users.push(user.0);
    }
    let cutoff = at + secs(100);

    let passes: Vec<_> = (0..3)
        .map(|_| {
            let purger = purger(fx, cutoff, 2);
            tokio::spawn(async move { purger.run_once().await })
        })
        .collect();
    let mut total = Purged::default();
    for pass in passes {
        total += pass.await.expect("joined").expect("pass").removed;
    }
    // A pass may stop early when another took its rows; whatever is left, one more finds.
    total += purger(fx, cutoff, 2)
        .run_once()
        .await
        .expect("last pass")
        .removed;
    assert_eq!(
        total,
        Purged {
            refresh_tokens: 42,
            sessions: 21,
            reset_tokens: 15,
            flow_states: 0,
        }
    );
    for user in users {
        assert_eq!(fx.count(USER_SESSIONS, user).await, 1);
        assert_eq!(fx.count(USER_RESET_TOKENS, user).await, 0);
    }
}
