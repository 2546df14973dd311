//! Supabase account changes (`update_account`) and the admin create (`insert_user`): one
//! transaction each, metadata merged under the user's row lock, a refusal writing nothing.

use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{
    AccountChange, Metadata, MetadataWrite, Role, User, UserId, MAX_METADATA_BYTES,
};
use velro_core::store::{AccountUpdate, MetadataField};

use crate::fixture::{email, hash, is_live, new_user, register, secs, sign_in, t0, Fixture};

store_contract!(
    a_merge_sets_and_unsets_keys_and_leaves_the_others,
    a_merge_into_an_account_without_metadata_starts_from_the_absent_object,
    a_replace_writes_the_whole_object,
    a_too_large_merge_is_refused_and_nothing_of_the_change_is_written,
    a_change_of_no_such_user_is_no_user,
    concurrent_merges_into_one_user_all_land,
    a_password_change_can_keep_one_session,
    an_admin_create_stores_the_role_and_the_ban_with_the_user,
);

fn meta(value: Value) -> Metadata {
    Metadata::parse(value).expect("an object")
}

fn object(metadata: Option<&Metadata>) -> Value {
    Value::Object(metadata.expect("stored metadata").as_map().clone())
}

async fn update(fx: &Fixture, user_id: UserId, change: &AccountChange) -> AccountUpdate {
    fx.store()
        .update_account(user_id, change, t0())
        .await
        .expect("update_account")
}

fn updated(outcome: AccountUpdate) -> User {
    match outcome {
        AccountUpdate::Updated { user, .. } => user,
        other => panic!("not updated: {other:?}"),
    }
}

async fn stored(fx: &Fixture, user_id: UserId) -> User {
    fx.store()
        .find_user(user_id)
        .await
        .expect("find_user")
        .expect("the user")
}

/// A user with both objects stored.
async fn with_metadata(fx: &Fixture, address: &str, user: Value, app: Value) -> User {
    let mut new = new_user(address, t0());
    new.user_metadata = Some(meta(user));
    new.app_metadata = Some(meta(app));
    fx.store()
        .insert_user(new, Role::Viewer, None)
        .await
        .expect("insert_user")
}

async fn a_merge_sets_and_unsets_keys_and_leaves_the_others(fx: &Fixture) {
    let user = with_metadata(
        fx,
        "merge@example.com",
        json!({"a": 1, "b": {"x": 1}, "c": "keep", "gone": true}),
        json!({"provider": "email", "team": "a"}),
    )
    .await;
    let change = AccountChange {
        user_metadata: Some(MetadataWrite::merge(
            meta(json!({"a": 2, "b": {"y": 2}, "gone": null, "missing": null, "d": [1]})),
            meta(json!({"never": "used"})),
        )),
        app_metadata: Some(MetadataWrite::merge(
            meta(json!({"team": null, "plan": "pro"})),
            Metadata::default(),
        )),
        ..AccountChange::default()
    };
    let changed = updated(update(fx, user.id, &change).await);
    let expected_user = json!({"a": 2, "b": {"y": 2}, "c": "keep", "d": [1]});
    let expected_app = json!({"provider": "email", "plan": "pro"});
    assert_eq!(object(changed.user_metadata.as_ref()), expected_user);
    assert_eq!(object(changed.app_metadata.as_ref()), expected_app);
    let again = stored(fx, user.id).await;
    assert_eq!(object(again.user_metadata.as_ref()), expected_user);
    assert_eq!(object(again.app_metadata.as_ref()), expected_app);
}

async fn a_merge_into_an_account_without_metadata_starts_from_the_absent_object(fx: &Fixture) {
    let user = fx
        .store()
        .insert_user(new_user("absent@example.com", t0()), Role::Viewer, None)
        .await
        .expect("insert_user");
    assert_eq!(user.user_metadata, None);
    let change = AccountChange {
        user_metadata: Some(MetadataWrite::merge(
            meta(json!({"plan": "pro", "sub": null})),
            meta(json!({"sub": "id", "email": "absent@example.com"})),
        )),
        ..AccountChange::default()
    };
    let changed = updated(update(fx, user.id, &change).await);
    assert_eq!(
        object(changed.user_metadata.as_ref()),
        json!({"email": "absent@example.com", "plan": "pro"})
    );
    // Once stored, the absent object is not used again.
    let second = AccountChange {
        user_metadata: Some(MetadataWrite::merge(
            meta(json!({"more": 1})),
            meta(json!({"sub": "id"})),
        )),
        ..AccountChange::default()
    };
    let changed = updated(update(fx, user.id, &second).await);
    assert_eq!(
        object(changed.user_metadata.as_ref()),
        json!({"email": "absent@example.com", "plan": "pro", "more": 1})
    );
}

async fn a_replace_writes_the_whole_object(fx: &Fixture) {
    let user = with_metadata(
        fx,
        "replace@example.com",
        json!({"a": 1, "b": 2}),
        json!({"provider": "email"}),
    )
    .await;
    let change = AccountChange {
        user_metadata: Some(MetadataWrite::Replace(meta(json!({"only": true})))),
        app_metadata: Some(MetadataWrite::Replace(Metadata::default())),
        ..AccountChange::default()
    };
    let changed = updated(update(fx, user.id, &change).await);
    assert_eq!(
        object(changed.user_metadata.as_ref()),
        json!({"only": true})
    );
    assert_eq!(object(changed.app_metadata.as_ref()), json!({}));
    let again = stored(fx, user.id).await;
    assert_eq!(object(again.user_metadata.as_ref()), json!({"only": true}));
}

async fn a_too_large_merge_is_refused_and_nothing_of_the_change_is_written(fx: &Fixture) {
    let half = "y".repeat(MAX_METADATA_BYTES / 2 + 100);
    let registered = register(fx.store(), "large@example.com", t0()).await;
    let user_id = registered.user.id;
    let seed = AccountChange {
        user_metadata: Some(MetadataWrite::Replace(meta(json!({"one": half})))),
        app_metadata: Some(MetadataWrite::Replace(meta(json!({"big": half})))),
        ..AccountChange::default()
    };
    updated(update(fx, user_id, &seed).await);
    let before = stored(fx, user_id).await;
    for (field, user_metadata, app_metadata) in [
        (
            MetadataField::User,
            json!({"two": half}),
            json!({"small": 1}),
        ),
        (
            MetadataField::App,
            json!({"small": 1}),
            json!({"more": half}),
        ),
    ] {
        let change = AccountChange {
            email: Some(email("moved@example.com")),
            password_hash: Some(hash("new")),
            email_confirmed: Some(true),
            user_metadata: Some(MetadataWrite::merge(
                meta(user_metadata),
                Metadata::default(),
            )),
            app_metadata: Some(MetadataWrite::merge(
                meta(app_metadata),
                Metadata::default(),
            )),
            role: Some(Role::Admin),
            banned_until: Some(Some(t0() + secs(3600))),
            disabled: Some(true),
            revoke_sessions: true,
            spend_reset_tokens: true,
            ..AccountChange::default()
        };
        match update(fx, user_id, &change).await {
            AccountUpdate::TooLarge(refused) => assert_eq!(refused, field),
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(stored(fx, user_id).await, before);
        let credentials = fx
            .store()
            .find_credentials(user_id)
            .await
            .expect("find_credentials")
            .expect("the user");
        assert_eq!(
            credentials.password_hash.as_str(),
            hash("large@example.com").as_str()
        );
        assert!(is_live(fx.store(), registered.session).await);
    }
}

async fn a_change_of_no_such_user_is_no_user(fx: &Fixture) {
    let change = AccountChange {
        user_metadata: Some(MetadataWrite::merge(
            meta(json!({"a": 1})),
            Metadata::default(),
        )),
        password_hash: Some(hash("new")),
        revoke_sessions: true,
        ..AccountChange::default()
    };
    let nobody = UserId(Uuid::new_v4());
    assert!(matches!(
        update(fx, nobody, &change).await,
        AccountUpdate::NoUser
    ));
    assert!(fx
        .store()
        .find_user(nobody)
        .await
        .expect("find_user")
        .is_none());
}

async fn concurrent_merges_into_one_user_all_land(fx: &Fixture) {
    const MERGES: usize = 16;
    let user = with_metadata(
        fx,
        "race@example.com",
        json!({"kept": true}),
        json!({"provider": "email"}),
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..MERGES {
        let store = fx.shared();
        tasks.spawn(async move {
            let change = AccountChange {
                user_metadata: Some(MetadataWrite::merge(
                    meta(json!({ format!("user{i}"): i })),
                    Metadata::default(),
                )),
                app_metadata: Some(MetadataWrite::merge(
                    meta(json!({ format!("app{i}"): i })),
                    Metadata::default(),
                )),
                ..AccountChange::default()
            };
            store.update_account(user.id, &change, t0()).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        updated(done.expect("task").expect("update_account"));
    }
    let after = stored(fx, user.id).await;
    let user_metadata = object(after.user_metadata.as_ref());
    let app_metadata = object(after.app_metadata.as_ref());
    assert_eq!(user_metadata["kept"], true);
    for i in 0..MERGES {
        assert_eq!(
            user_metadata[format!("user{i}")],
            json!(i),
            "{user_metadata}"
        );
        assert_eq!(app_metadata[format!("app{i}")], json!(i), "{app_metadata}");
    }
}

async fn a_password_change_can_keep_one_session(fx: &Fixture) {
    let registered = register(fx.store(), "keep@example.com", t0()).await;
    let (other, _) = sign_in(fx.store(), registered.user.id, t0()).await;
    let change = AccountChange {
        password_hash: Some(hash("new")),
        revoke_sessions: true,
        keep_session: Some(registered.session),
        ..AccountChange::default()
    };
    let AccountUpdate::Updated { revoked, .. } = update(fx, registered.user.id, &change).await
    else {
        panic!("not updated");
    };
    assert_eq!(revoked, vec![other]);
    assert!(is_live(fx.store(), registered.session).await);
    assert!(!is_live(fx.store(), other).await);
}

async fn an_admin_create_stores_the_role_and_the_ban_with_the_user(fx: &Fixture) {
    let until: OffsetDateTime = t0() + secs(3600);
    let created = fx
        .store()
        .insert_user(
            new_user("created@example.com", t0()),
            Role::Creator,
            Some(until),
        )
        .await
        .expect("insert_user");
    assert_eq!(created.role, Role::Creator);
    assert_eq!(created.banned_until, Some(until));
    assert_eq!(stored(fx, created.id).await, created);
    // A taken address creates nothing, whatever the role and ban.
    let again = fx
        .store()
        .insert_user(new_user("created@example.com", t0()), Role::Admin, None)
        .await;
    assert!(matches!(
        again,
        Err(velro_core::StoreError::Conflict("email"))
    ));
}
