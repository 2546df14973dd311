//! PKCE flow states: stored by a mail flow, given an auth code by the followed link (the newest
//! of the user's method), found by the code's hash, spent once, and purged by age.

use std::sync::Arc;

use tokio::sync::Barrier;
use uuid::Uuid;
use velro_core::domain::{
    CodeChallenge, FlowMethod, FlowStateId, IssuedAuthCode, NewFlowState, UserId,
};
use velro_core::store::{PurgeBatch, Purged, Store, TokenHash};

use crate::fixture::{register, secs, t0, token, Fixture};

store_contract!(
    an_auth_code_goes_to_the_newest_flow_state_of_the_users_method,
    a_flow_state_is_found_by_its_code_and_spent_once,
    a_flow_state_is_spent_once_under_concurrency,
    flow_states_go_with_their_user_and_with_the_purge,
);

const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const USER_FLOW_STATES: &str = "SELECT count(*) FROM flow_states WHERE user_id = $1";

fn challenge(method: &str) -> CodeChallenge {
    CodeChallenge::parse(Some(CHALLENGE), Some(method))
        .expect("a well-formed challenge")
        .expect("a PKCE flow")
}

async fn start(
    store: &dyn Store,
    user_id: UserId,
    method: FlowMethod,
    code_method: &str,
    at: time::OffsetDateTime,
) -> FlowStateId {
    let id = FlowStateId(Uuid::now_v7());
    store
        .create_flow_state(NewFlowState {
            id,
            user_id,
            method,
            challenge: challenge(code_method),
            now: at,
        })
        .await
        .expect("create_flow_state");
    id
}

async fn issue(
    store: &dyn Store,
    user_id: UserId,
    method: FlowMethod,
    at: time::OffsetDateTime,
) -> Option<TokenHash> {
    let code = token();
    let issued = store
        .issue_auth_code(IssuedAuthCode {
            user_id,
            method,
            code,
            now: at,
        })
        .await
        .expect("issue_auth_code");
    issued.then_some(code)
}

async fn an_auth_code_goes_to_the_newest_flow_state_of_the_users_method(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await.user;
    let bob = register(store, "bob@example.com", at).await.user;
    assert_eq!(issue(store, ada.id, FlowMethod::Recovery, at).await, None);

    let older = start(store, ada.id, FlowMethod::Recovery, "s256", at).await;
    let newer = start(store, ada.id, FlowMethod::Recovery, "plain", at + secs(5)).await;
    let other_method = start(store, ada.id, FlowMethod::MagicLink, "s256", at + secs(9)).await;
    start(store, bob.id, FlowMethod::Recovery, "s256", at + secs(10)).await;

    let code = issue(store, ada.id, FlowMethod::Recovery, at + secs(20))
        .await
        .expect("ada has a recovery flow");
    let found = store
        .find_flow_state(code)
        .await
        .expect("find_flow_state")
        .expect("the code's flow state");
    assert_eq!(found.id, newer);
    assert_ne!(found.id, older);
    assert_ne!(found.id, other_method);
    assert_eq!(found.user_id, ada.id);
    assert_eq!(found.method, FlowMethod::Recovery);
    assert_eq!(found.challenge, challenge("plain"));
    assert_eq!(found.created_at, at + secs(5));
    assert_eq!(found.auth_code_issued_at, at + secs(20));

    // Issued again (the link followed again after a resend): the old code is gone.
    let again = issue(store, ada.id, FlowMethod::Recovery, at + secs(30))
        .await
        .expect("issued again");
    assert!(store.find_flow_state(code).await.expect("find").is_none());
    let found = store
        .find_flow_state(again)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.auth_code_issued_at, at + secs(30));
    assert_eq!(issue(store, bob.id, FlowMethod::Signup, at).await, None);
}

async fn a_flow_state_is_found_by_its_code_and_spent_once(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await.user;
    let id = start(store, ada.id, FlowMethod::Signup, "S256", at).await;
    // Not findable until a code is issued.
    assert!(store
        .find_flow_state(token())
        .await
        .expect("find")
        .is_none());
    let code = issue(store, ada.id, FlowMethod::Signup, at + secs(1))
        .await
        .expect("issued");
    let found = store
        .find_flow_state(code)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(found.challenge, challenge("s256"));
    assert!(store.delete_flow_state(id).await.expect("delete"));
    assert!(!store.delete_flow_state(id).await.expect("delete again"));
    assert!(store.find_flow_state(code).await.expect("find").is_none());
}

async fn a_flow_state_is_spent_once_under_concurrency(fx: &Fixture) {
    let store = fx.shared();
    let at = t0();
    let ada = register(&*store, "ada@example.com", at).await.user;
    let id = start(&*store, ada.id, FlowMethod::MagicLink, "s256", at).await;
    let racers = 8;
    let barrier = Arc::new(Barrier::new(racers));
    let tasks: Vec<_> = (0..racers)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.delete_flow_state(id).await.expect("delete")
            })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        spent += usize::from(task.await.expect("joined"));
    }
    assert_eq!(spent, 1);
}

async fn flow_states_go_with_their_user_and_with_the_purge(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await.user;
    let bob = register(store, "bob@example.com", at).await.user;
    for n in 0..3 {
        start(store, ada.id, FlowMethod::Recovery, "s256", at + secs(n)).await;
    }
    let kept = start(store, ada.id, FlowMethod::Recovery, "s256", at + secs(200)).await;
    start(store, bob.id, FlowMethod::Signup, "s256", at).await;
    issue(store, ada.id, FlowMethod::Recovery, at + secs(201))
        .await
        .expect("issued");

    // Batches of two: Ada's three and Bob's one begun before the cutoff go, two at a time.
    let cutoff = at + secs(100);
    let first = store.purge(cutoff, 2).await.expect("purge");
    assert_eq!(
        first,
        PurgeBatch {
            removed: Purged {
                flow_states: 2,
                ..Purged::default()
            },
            more: true,
        }
    );
    let second = store.purge(cutoff, 2).await.expect("purge");
    assert_eq!(second.removed.flow_states, 2);
    let third = store.purge(cutoff, 2).await.expect("purge");
    assert_eq!(third, PurgeBatch::default());
    assert_eq!(fx.count(USER_FLOW_STATES, ada.id.0).await, 1);
    assert_eq!(fx.count(USER_FLOW_STATES, bob.id.0).await, 0);
    assert!(!store
        .delete_flow_state(FlowStateId(Uuid::now_v7()))
        .await
        .expect("delete"));

    // The newest stays, with its code, and goes with its user.
    assert!(store.delete_user(ada.id).await.expect("delete_user"));
    assert_eq!(fx.count(USER_FLOW_STATES, ada.id.0).await, 0);
    assert!(!store.delete_flow_state(kept).await.expect("delete"));
}
