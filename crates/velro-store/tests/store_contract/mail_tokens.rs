//! The Supabase mail flows' tokens and state: pending users, confirmation and email-change
//! tokens by purpose, GoTrue's per-user frequency, and what redeeming one changes.

use std::sync::Arc;

use tokio::sync::Barrier;
use velro_core::domain::{
    EmailChangeRedeemed, MailPurpose, MailTokenIssued, MailTokenPair, NewEmailChange, NewMailToken,
    RedeemedMailToken, UserId,
};
use velro_core::store::{Store, TokenHash};
use velro_core::StoreError;

use crate::fixture::{email, new_user, register, secs, t0, token, Fixture};

store_contract!(
    a_pending_user_awaits_confirmation_until_a_confirmation_token_is_redeemed,
    a_mail_of_a_purpose_within_the_interval_is_refused_and_a_new_one_spends_the_old,
    tokens_of_one_purpose_do_not_redeem_as_another,
    an_email_change_moves_the_user_or_reports_the_taken_address,
    a_confirmation_token_is_redeemed_once_under_concurrency,
    a_secure_email_change_moves_the_user_when_both_halves_are_redeemed,
    an_email_change_half_replaces_only_its_own_tokens,
);

fn mail_token(
    user_id: UserId,
    purpose: MailPurpose,
    at: time::OffsetDateTime,
) -> (NewMailToken, TokenHash, TokenHash) {
    let (link, code) = (token(), token());
    let new = NewMailToken {
        user_id,
        purpose,
        link,
        code,
        new_email: None,
        expires_at: at + secs(3600),
        min_interval: secs(60),
        now: at,
    };
    (new, link, code)
}

async fn issue(store: &dyn Store, new: NewMailToken) -> MailTokenIssued {
    store.issue_mail_token(new).await.expect("issue_mail_token")
}

const CONFIRMATION: [MailPurpose; 2] = [MailPurpose::Confirmation, MailPurpose::Confirmation];

async fn a_pending_user_awaits_confirmation_until_a_confirmation_token_is_redeemed(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let user = store
        .create_pending_user(new_user("ada@example.com", at), true)
        .await
        .expect("create_pending_user");
    assert!(!user.email_confirmed);
    let state = store.mail_state(user.id).await.expect("mail_state");
    assert!(state.awaiting_confirmation);
    assert_eq!(state.invited_at, Some(at));
    assert_eq!(state.email_confirmed_at, None);
    let taken = store
        .create_pending_user(new_user("ada@example.com", at), false)
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict("email"))));

    let (new, link, code) = mail_token(user.id, MailPurpose::Confirmation, at);
    assert_eq!(issue(store, new).await, MailTokenIssued::Issued);
    let state = store.mail_state(user.id).await.expect("mail_state");
    assert_eq!(state.confirmation_sent_at, Some(at));
    let redeemed = store
        .redeem_mail_token(code, CONFIRMATION, at + secs(5))
        .await
        .expect("redeem");
    assert_eq!(
        redeemed,
        Some(RedeemedMailToken {
            user_id: user.id,
            purpose: MailPurpose::Confirmation,
        })
    );
    // The link mailed with the code is spent with it.
    let again = store
        .redeem_mail_token(link, CONFIRMATION, at + secs(6))
        .await
        .expect("redeem again");
    assert_eq!(again, None);
    let state = store.mail_state(user.id).await.expect("mail_state");
    assert!(!state.awaiting_confirmation);
    assert_eq!(state.email_confirmed_at, Some(at + secs(5)));
    let confirmed = store.find_user(user.id).await.expect("find").expect("user");
    assert!(confirmed.email_confirmed);

    // A user registered the v1 way has no state: nothing awaits.
    let v1 = register(store, "grace@example.com", at).await;
    let state = store.mail_state(v1.user.id).await.expect("mail_state");
    assert!(!state.awaiting_confirmation);
}

async fn a_mail_of_a_purpose_within_the_interval_is_refused_and_a_new_one_spends_the_old(
    fx: &Fixture,
) {
    let store = fx.store();
    let at = t0();
    let user = store
        .create_pending_user(new_user("ada@example.com", at), false)
        .await
        .expect("create_pending_user");
    let (first, first_link, _) = mail_token(user.id, MailPurpose::Confirmation, at);
    assert_eq!(issue(store, first).await, MailTokenIssued::Issued);
    let (soon, soon_link, _) = mail_token(user.id, MailPurpose::Confirmation, at + secs(20));
    assert_eq!(
        issue(store, soon).await,
        MailTokenIssued::TooSoon {
            retry_after_secs: 40
        }
    );
    // Another purpose has its own interval.
    let (mut change, _, _) = mail_token(user.id, MailPurpose::EmailChange, at + secs(20));
    change.new_email = Some(email("new@example.com"));
    assert_eq!(issue(store, change).await, MailTokenIssued::Issued);
    // Refused tokens were never stored.
    let refused = store
        .redeem_mail_token(soon_link, CONFIRMATION, at + secs(21))
        .await
        .expect("redeem refused");
    assert_eq!(refused, None);

    let (later, later_link, _) = mail_token(user.id, MailPurpose::Confirmation, at + secs(60));
    assert_eq!(issue(store, later).await, MailTokenIssued::Issued);
    let old = store
        .redeem_mail_token(first_link, CONFIRMATION, at + secs(61))
        .await
        .expect("redeem old");
    assert_eq!(old, None);
    let new = store
        .redeem_mail_token(later_link, CONFIRMATION, at + secs(61))
        .await
        .expect("redeem new");
    assert!(new.is_some());
}

async fn tokens_of_one_purpose_do_not_redeem_as_another(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let recovery = token();
    store
        .create_reset_token(ada.user.id, recovery, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    let (confirmation, link, _) = mail_token(ada.user.id, MailPurpose::Confirmation, at);
    assert_eq!(issue(store, confirmation).await, MailTokenIssued::Issued);
    let as_confirmation = store
        .redeem_mail_token(recovery, CONFIRMATION, at + secs(1))
        .await
        .expect("redeem");
    assert_eq!(as_confirmation, None);
    // The v1 reset takes recovery tokens only.
    let found = store
        .find_reset_token_user(link, at + secs(1))
        .await
        .expect("find_reset_token_user");
    assert!(found.is_none());
    let as_recovery = store
        .redeem_reset_token(link, at + secs(1))
        .await
        .expect("redeem_reset_token");
    assert_eq!(as_recovery, None);
    // `email` takes either.
    let either = [MailPurpose::Confirmation, MailPurpose::Recovery];
    let redeemed = store
        .redeem_mail_token(recovery, either, at + secs(2))
        .await
        .expect("redeem");
    assert_eq!(redeemed.map(|r| r.purpose), Some(MailPurpose::Recovery));
    // Expired tokens are refused.
    let late = store
        .redeem_mail_token(link, CONFIRMATION, at + secs(3600))
        .await
        .expect("redeem late");
    assert_eq!(late, None);
}

async fn an_email_change_moves_the_user_or_reports_the_taken_address(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let change = [MailPurpose::EmailChange, MailPurpose::EmailChange];
    let (mut new, link, _) = mail_token(ada.user.id, MailPurpose::EmailChange, at);
    new.new_email = Some(email("ada@new.example"));
    assert_eq!(issue(store, new).await, MailTokenIssued::Issued);
    let state = store.mail_state(ada.user.id).await.expect("mail_state");
    assert_eq!(state.new_email, Some(email("ada@new.example")));
    assert_eq!(state.email_change_sent_at, Some(at));
    store
        .redeem_mail_token(link, change, at + secs(1))
        .await
        .expect("redeem")
        .expect("redeemed");
    let moved = store
        .find_user(ada.user.id)
        .await
        .expect("find")
        .expect("user");
    assert_eq!(moved.email, email("ada@new.example"));
    assert!(moved.email_confirmed);
    let state = store.mail_state(ada.user.id).await.expect("mail_state");
    assert_eq!(state.new_email, None);
    assert_eq!(state.email_change_sent_at, None);

    // The address was taken after the change was asked for: nothing moves.
    let (mut new, link, _) = mail_token(ada.user.id, MailPurpose::EmailChange, at + secs(120));
    new.new_email = Some(email("grace@example.com"));
    assert_eq!(issue(store, new).await, MailTokenIssued::Issued);
    register(store, "grace@example.com", at + secs(121)).await;
    let taken = store.redeem_mail_token(link, change, at + secs(122)).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("email"))),
        "{taken:?}"
    );
    let kept = store
        .find_user(ada.user.id)
        .await
        .expect("find")
        .expect("user");
    assert_eq!(kept.email, email("ada@new.example"));
}

async fn a_confirmation_token_is_redeemed_once_under_concurrency(fx: &Fixture) {
    let store = fx.shared();
    let at = t0();
    let user = store
        .create_pending_user(new_user("ada@example.com", at), false)
        .await
        .expect("create_pending_user");
    let (new, link, _) = mail_token(user.id, MailPurpose::Confirmation, at);
    assert_eq!(
        store.issue_mail_token(new).await.expect("issue"),
        MailTokenIssued::Issued
    );
    let barrier = Arc::new(Barrier::new(4));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .redeem_mail_token(link, CONFIRMATION, at + secs(1))
                    .await
                    .expect("redeem")
            })
        })
        .collect();
    let mut redeemed = 0;
    for task in tasks {
        if task.await.expect("task").is_some() {
            redeemed += 1;
        }
    }
    assert_eq!(redeemed, 1);
}

fn pair() -> MailTokenPair {
    MailTokenPair {
        link: token(),
        code: token(),
    }
}

fn email_change(
    user_id: UserId,
    new_address: Option<MailTokenPair>,
    current_address: Option<MailTokenPair>,
    at: time::OffsetDateTime,
) -> NewEmailChange {
    NewEmailChange {
        user_id,
        new_email: email("ada@new.example"),
        new_address,
        current_address,
        confirmations: 2,
        replace_all: true,
        expires_at: at + secs(3600),
        min_interval: secs(60),
        now: at,
    }
}

async fn a_secure_email_change_moves_the_user_when_both_halves_are_redeemed(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let (to_new, to_current) = (pair(), pair());
    let change = email_change(ada.user.id, Some(to_new), Some(to_current), at);
    assert_eq!(
        store.issue_email_change(change).await.expect("issue"),
        MailTokenIssued::Issued
    );
    let state = store.mail_state(ada.user.id).await.expect("mail_state");
    assert_eq!(state.new_email, Some(email("ada@new.example")));
    assert_eq!(state.email_change_sent_at, Some(at));
    // Within the minute: refused, nothing replaced.
    let soon = email_change(ada.user.id, Some(pair()), Some(pair()), at + secs(30));
    assert_eq!(
        store.issue_email_change(soon).await.expect("issue"),
        MailTokenIssued::TooSoon {
            retry_after_secs: 30
        }
    );
    // An email-change token is no confirmation token, nor the reverse.
    assert_eq!(
        store
            .redeem_mail_token(to_current.link, CONFIRMATION, at + secs(1))
            .await
            .expect("redeem"),
        None
    );

    let first = store
        .redeem_email_change(to_current.code, at + secs(1))
        .await
        .expect("redeem");
    assert_eq!(
        first,
        Some(EmailChangeRedeemed::AwaitingOther {
            user_id: ada.user.id
        })
    );
    // The half's link went with its code; the address has not moved.
    for spent in [to_current.code, to_current.link] {
        let again = store
            .redeem_email_change(spent, at + secs(2))
            .await
            .expect("redeem");
        assert_eq!(again, None);
    }
    let kept = store
        .find_user(ada.user.id)
        .await
        .expect("find")
        .expect("user");
    assert_eq!(kept.email, email("ada@example.com"));

    let second = store
        .redeem_email_change(to_new.link, at + secs(3))
        .await
        .expect("redeem");
    assert_eq!(
        second,
        Some(EmailChangeRedeemed::Changed {
            user_id: ada.user.id
        })
    );
    let moved = store
        .find_user(ada.user.id)
        .await
        .expect("find")
        .expect("user");
    assert_eq!(moved.email, email("ada@new.example"));
    assert!(moved.email_confirmed);
    let state = store.mail_state(ada.user.id).await.expect("mail_state");
    assert_eq!(state.new_email, None);
    assert_eq!(state.email_change_sent_at, None);
    let after = store
        .redeem_email_change(to_new.code, at + secs(4))
        .await
        .expect("redeem");
    assert_eq!(after, None);
}

async fn an_email_change_half_replaces_only_its_own_tokens(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let (old_new, current) = (pair(), pair());
    let mut first = email_change(ada.user.id, Some(old_new), None, at);
    first.replace_all = false;
    first.min_interval = secs(0);
    store.issue_email_change(first).await.expect("issue");
    let mut second = email_change(ada.user.id, None, Some(current), at);
    second.replace_all = false;
    second.min_interval = secs(0);
    store.issue_email_change(second).await.expect("issue");
    let fresh_new = pair();
    let mut third = email_change(ada.user.id, Some(fresh_new), None, at);
    third.replace_all = false;
    third.min_interval = secs(0);
    store.issue_email_change(third).await.expect("issue");

    let replaced = store
        .redeem_email_change(old_new.link, at + secs(1))
        .await
        .expect("redeem");
    assert_eq!(replaced, None);
    let user_id = ada.user.id;
    assert_eq!(
        store
            .redeem_email_change(current.link, at + secs(1))
            .await
            .expect("redeem"),
        Some(EmailChangeRedeemed::AwaitingOther { user_id })
    );
    assert_eq!(
        store
            .redeem_email_change(fresh_new.code, at + secs(2))
            .await
            .expect("redeem"),
        Some(EmailChangeRedeemed::Changed { user_id })
    );

    // One confirmation (secure change off): the first token completes it, and an expired one
    // does nothing.
    let (single, late) = (pair(), pair());
    let mut one = email_change(ada.user.id, Some(single), None, at + secs(100));
    one.new_email = email("ada@third.example");
    one.confirmations = 1;
    store.issue_email_change(one).await.expect("issue");
    assert_eq!(
        store
            .redeem_email_change(single.link, at + secs(101))
            .await
            .expect("redeem"),
        Some(EmailChangeRedeemed::Changed { user_id })
    );
    let mut expiring = email_change(ada.user.id, Some(late), None, at + secs(200));
    expiring.confirmations = 1;
    store.issue_email_change(expiring).await.expect("issue");
    assert_eq!(
        store
            .redeem_email_change(late.link, at + secs(200 + 3601))
            .await
            .expect("redeem"),
        None
    );
    let user = store
        .find_user(ada.user.id)
        .await
        .expect("find")
        .expect("user");
    assert_eq!(user.email, email("ada@third.example"));
}
