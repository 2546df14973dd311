//! `import_batch`: users and sessions carried over from another server, ids kept, idempotent,
//! and the rules that let Velro's own changes survive a rerun.

use uuid::Uuid;
use velro_core::domain::{PasswordHash, Role, SessionId, UserId};
use velro_core::store::{
    ImportBatch, ImportOutcome, ImportedSession, ImportedUser, Rotation, SessionImport, SpentToken,
    UserImport,
};

use crate::fixture::{email, is_live, policy, register, secs, sign_in, t0, token, Fixture};

store_contract!(
    a_batch_imported_twice_keeps_ids_and_changes_nothing_the_second_time,
    a_dry_run_reports_the_same_and_writes_nothing,
    an_email_held_by_another_id_is_refused_not_merged,
    a_password_rehashed_here_survives_a_reimport,
    an_imported_token_rotates_and_its_spent_ancestors_are_reuse_after_grace,
    an_imported_ancestor_replayed_within_grace_is_invalid_not_answered,
    a_session_rotated_elsewhere_is_replaced_and_one_rotated_here_is_left_alone,
    an_imported_session_gone_from_the_other_server_is_revoked_and_ours_are_not,
);

const BCRYPT: &str = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

fn user(address: &str) -> ImportedUser {
    let at = t0() - secs(86_400);
    ImportedUser {
        id: UserId(Uuid::new_v4()),
        email: email(address),
        password_hash: Some(PasswordHash::new(BCRYPT.to_owned())),
        display_name: Some("Imported".to_owned()),
        avatar_url: None,
        role: Role::Creator,
        credits_balance: 7,
        email_confirmed_at: Some(at),
        last_sign_in_at: Some(at + secs(60)),
        banned_until: None,
        disabled: false,
        user_metadata: Some(r#"{"full_name": "Imported"}"#.to_owned()),
        app_metadata: None,
        created_at: at,
    }
}

fn session(user: &ImportedUser, spent: usize) -> ImportedSession {
    let at = t0() - secs(3_600);
    ImportedSession {
        id: SessionId(Uuid::new_v4()),
        user_id: user.id,
        created_at: at,
        last_refreshed_at: Some(at + secs(60)),
        user_agent: None,
        ip: Some("203.0.113.9".to_owned()),
        remember_me: true,
        live_token: token(),
        live_issued_at: at + secs(60),
        expires_at: t0() + policy().remember_me_lifetime,
        spent_tokens: (0..spent)
            .map(|_| SpentToken {
                hash: token(),
                spent_at: at + secs(30),
            })
            .collect(),
    }
}

async fn import(fx: &Fixture, batch: &ImportBatch, apply: bool) -> ImportOutcome {
    fx.import()
        .import_batch(batch, t0(), apply)
        .await
        .expect("import_batch")
}

fn batch(users: &[&ImportedUser], sessions: &[&ImportedSession]) -> ImportBatch {
    ImportBatch {
        users: users.iter().map(|u| (*u).clone()).collect(),
        sessions: sessions.iter().map(|s| (*s).clone()).collect(),
        ..ImportBatch::default()
    }
}

async fn a_batch_imported_twice_keeps_ids_and_changes_nothing_the_second_time(fx: &Fixture) {
    let ada = user("ada@example.com");
    let bob = user("bob@example.com");
    let live = session(&ada, 2);
    let page = batch(&[&ada, &bob], &[&live]);
    let first = import(fx, &page, true).await;
    assert_eq!(first.users, [UserImport::Inserted, UserImport::Inserted]);
    assert_eq!(first.sessions, [SessionImport::Inserted]);
    let stored = fx
        .store()
        .find_credentials_by_email(&ada.email)
        .await
        .expect("lookup")
        .expect("imported");
    assert_eq!(stored.user.id, ada.id);
    assert_eq!(stored.password_hash.as_str(), BCRYPT);
    assert_eq!(stored.user.role, Role::Creator);
    assert_eq!(stored.user.credits_balance, 7);
    assert!(stored.user.email_confirmed);
    assert!(is_live(fx.store(), live.id).await);

    let second = import(fx, &page, true).await;
    assert_eq!(second.users, [UserImport::Unchanged, UserImport::Unchanged]);
    assert_eq!(second.sessions, [SessionImport::Unchanged]);

    let banned = ImportedUser {
        banned_until: Some(t0() + secs(3_600)),
        disabled: true,
        ..ada.clone()
    };
    let third = import(fx, &batch(&[&banned], &[]), true).await;
    assert_eq!(third.users, [UserImport::Updated]);
    // Banned since the last run: its sessions end, as an admin disable ends them.
    assert!(!is_live(fx.store(), live.id).await);
}

async fn a_dry_run_reports_the_same_and_writes_nothing(fx: &Fixture) {
    let ada = user("ada@example.com");
    let live = session(&ada, 0);
    let page = batch(&[&ada], &[&live]);
    let dry = import(fx, &page, false).await;
    assert_eq!(dry.users, [UserImport::Inserted]);
    assert_eq!(dry.sessions, [SessionImport::Inserted]);
    assert!(fx
        .store()
        .find_user(ada.id)
        .await
        .expect("lookup")
        .is_none());
    assert_eq!(import(fx, &page, true).await, dry);
}

async fn an_email_held_by_another_id_is_refused_not_merged(fx: &Fixture) {
    let here = register(fx.store(), "ada@example.com", t0()).await;
    let ada = user("ada@example.com");
    let twin = user("bob@example.com");
    let twin_again = ImportedUser {
        id: UserId(Uuid::new_v4()),
        ..twin.clone()
    };
    let outcome = import(fx, &batch(&[&ada, &twin, &twin_again], &[]), true).await;
    assert_eq!(
        outcome.users,
        [
            UserImport::EmailTaken,
            UserImport::Inserted,
            UserImport::EmailTaken
        ]
    );
    let stored = fx.store().find_user(here.user.id).await.expect("lookup");
    assert_eq!(stored.map(|u| u.id), Some(here.user.id));
    assert!(fx
        .store()
        .find_user(ada.id)
        .await
        .expect("lookup")
        .is_none());
}

async fn a_password_rehashed_here_survives_a_reimport(fx: &Fixture) {
    let ada = user("ada@example.com");
    import(fx, &batch(&[&ada], &[]), true).await;
    let argon = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$rehashed".to_owned());
    fx.store()
        .replace_password_hash(ada.id, &argon, t0())
        .await
        .expect("rehash");
    let again = import(fx, &batch(&[&ada], &[]), true).await;
    assert_eq!(again.users, [UserImport::Unchanged]);
    let stored = fx
        .store()
        .find_credentials(ada.id)
        .await
        .expect("lookup")
        .expect("there");
    assert_eq!(stored.password_hash.as_str(), argon.as_str());
}

async fn an_imported_token_rotates_and_its_spent_ancestors_are_reuse_after_grace(fx: &Fixture) {
    let ada = user("ada@example.com");
    let live = session(&ada, 2);
    import(fx, &batch(&[&ada], &[&live]), true).await;
    let next = token();
    let rotation = fx
        .store()
        .rotate_refresh_token(live.live_token, next, policy(), t0())
        .await
        .expect("rotate");
    let Rotation::Rotated { session, user } = rotation else {
        panic!("expected Rotated, got {rotation:?}");
    };
    assert_eq!((session.id, user.id), (live.id, ada.id));
    assert!(session.remember_me);

    let ancestor = live.spent_tokens[0].hash;
    let rotation = fx
        .store()
        .rotate_refresh_token(ancestor, token(), policy(), t0())
        .await
        .expect("rotate");
    assert!(
        matches!(rotation, Rotation::ReusedAfterGrace { session_id } if session_id == live.id),
        "{rotation:?}"
    );
    assert!(!is_live(fx.store(), live.id).await);
}

async fn an_imported_ancestor_replayed_within_grace_is_invalid_not_answered(fx: &Fixture) {
    let ada = user("ada@example.com");
    let mut live = session(&ada, 1);
    live.spent_tokens[0].spent_at = t0() - secs(2);
    import(fx, &batch(&[&ada], &[&live]), true).await;
    let rotation = fx
        .store()
        .rotate_refresh_token(live.spent_tokens[0].hash, token(), policy(), t0())
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
    // The session is not punished for it: its live token still rotates.
    assert!(is_live(fx.store(), live.id).await);
    let rotation = fx
        .store()
        .rotate_refresh_token(live.live_token, token(), policy(), t0())
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
}

async fn a_session_rotated_elsewhere_is_replaced_and_one_rotated_here_is_left_alone(fx: &Fixture) {
    let ada = user("ada@example.com");
    let first = session(&ada, 1);
    import(fx, &batch(&[&ada], &[&first]), true).await;

    // The other server rotated it: the old live token is now spent there.
    let mut rotated = first.clone();
    rotated.spent_tokens.push(SpentToken {
        hash: first.live_token,
        spent_at: t0() - secs(60),
    });
    rotated.live_token = token();
    let outcome = import(fx, &batch(&[&ada], &[&rotated]), true).await;
    assert_eq!(outcome.sessions, [SessionImport::Updated]);
    let old = fx
        .store()
        .rotate_refresh_token(first.live_token, token(), policy(), t0())
        .await
        .expect("rotate");
    assert!(matches!(old, Rotation::ReusedAfterGrace { .. }), "{old:?}");

    // A fresh session, rotated here after its import: a rerun leaves Velro's chain alone.
    let second = session(&ada, 0);
    import(fx, &batch(&[&ada], &[&second]), true).await;
    let ours = token();
    fx.store()
        .rotate_refresh_token(second.live_token, ours, policy(), t0())
        .await
        .expect("rotate");
    let mut elsewhere = second.clone();
    elsewhere.live_token = token();
    let outcome = import(fx, &batch(&[&ada], &[&elsewhere]), true).await;
    assert_eq!(outcome.sessions, [SessionImport::MovedOnHere]);
    let rotation = fx
        .store()
        .rotate_refresh_token(ours, token(), policy(), t0())
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
}

async fn an_imported_session_gone_from_the_other_server_is_revoked_and_ours_are_not(fx: &Fixture) {
    let ada = user("ada@example.com");
    let (kept, gone, rotated) = (session(&ada, 0), session(&ada, 0), session(&ada, 0));
    import(fx, &batch(&[&ada], &[&kept, &gone, &rotated]), true).await;
    let (ours, _) = sign_in(fx.store(), ada.id, t0()).await;
    fx.store()
        .rotate_refresh_token(rotated.live_token, token(), policy(), t0())
        .await
        .expect("rotate");

    // Signed out over there: `gone` and `rotated` are no longer in the page.
    let outcome = import(fx, &batch(&[&ada], &[&kept]), true).await;
    assert_eq!(outcome.sessions, [SessionImport::Unchanged]);
    assert_eq!(outcome.sessions_ended, 1);
    assert!(is_live(fx.store(), kept.id).await);
    assert!(!is_live(fx.store(), gone.id).await);
    // Rotated here since the import, and begun here: this side owns them.
    assert!(is_live(fx.store(), rotated.id).await);
    assert!(is_live(fx.store(), ours).await);
}
