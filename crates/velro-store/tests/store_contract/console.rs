//! The operators' console: its sessions with their idle timeout, the flag change record, and
//! the server's connections by state.

use velro_core::store::{ConsoleSessionRecord, FlagChange};

use crate::fixture::{register, secs, t0, token, Fixture};

store_contract!(
    a_console_session_lives_while_used_and_ends_when_idle_or_deleted,
    creating_a_console_session_purges_the_idle_ones,
    an_admin_console_session_keeps_its_user_and_session,
    flag_changes_are_read_back_newest_first,
    the_server_reports_its_connections_by_state_on_postgresql_only,
);

fn service_key_session() -> ConsoleSessionRecord {
    ConsoleSessionRecord {
        user: None,
        created_at: t0(),
    }
}

async fn a_console_session_lives_while_used_and_ends_when_idle_or_deleted(fx: &Fixture) {
    let store = fx.store();
    let t0 = t0();
    let key = token();
    store
        .create_console_session(key, service_key_session(), t0 - secs(900))
        .await
        .expect("create");
    // Seen at t0 + 600, so still live at t0 + 1200 with a 900-second idle timeout.
    let seen = store
        .touch_console_session(key, t0 - secs(300), t0 + secs(600))
        .await
        .expect("touch");
    assert!(seen.is_some_and(|record| record.user.is_none()));
    assert!(store
        .touch_console_session(key, t0 + secs(300), t0 + secs(1200))
        .await
        .expect("touch")
        .is_some());
    // Finding it does not mark it seen.
    assert!(store
        .find_console_session(key, t0 + secs(1200))
        .await
        .expect("find")
        .is_some());
    assert!(store
        .find_console_session(key, t0 + secs(1201))
        .await
        .expect("find")
        .is_none());
    assert!(store
        .touch_console_session(key, t0 + secs(1201), t0 + secs(2101))
        .await
        .expect("touch")
        .is_none());
    assert!(store
        .touch_console_session(token(), t0 - secs(900), t0)
        .await
        .expect("touch")
        .is_none());

    let other = token();
    store
        .create_console_session(other, service_key_session(), t0 - secs(900))
        .await
        .expect("create");
    store.delete_console_session(other).await.expect("delete");
    assert!(store
        .touch_console_session(other, t0 - secs(900), t0)
        .await
        .expect("touch")
        .is_none());
}

async fn creating_a_console_session_purges_the_idle_ones(fx: &Fixture) {
    let store = fx.store();
    let old = token();
    store
        .create_console_session(old, service_key_session(), t0() - secs(900))
        .await
        .expect("create");
    let later = ConsoleSessionRecord {
        user: None,
        created_at: t0() + secs(2000),
    };
    store
        .create_console_session(token(), later, t0() + secs(1100))
        .await
        .expect("create");
    // Even an accepting cut-off no longer finds it: the row is gone.
    assert!(store
        .touch_console_session(old, t0() - secs(10_000), t0() + secs(2000))
        .await
        .expect("touch")
        .is_none());
}

async fn an_admin_console_session_keeps_its_user_and_session(fx: &Fixture) {
    let store = fx.store();
    let t0 = t0();
    let registered = register(store, "console@example.com", t0).await;
    let key = token();
    let user = Some((registered.user.id, registered.session));
    store
        .create_console_session(
            key,
            ConsoleSessionRecord {
                user,
                created_at: t0,
            },
            t0 - secs(900),
        )
        .await
        .expect("create");
    let record = store
        .touch_console_session(key, t0 - secs(900), t0 + secs(1))
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(record.user, user);
    assert_eq!(record.created_at, t0);
}

async fn flag_changes_are_read_back_newest_first(fx: &Fixture) {
    let store = fx.store();
    assert_eq!(
        store.latest_flag_change("cache").await.expect("latest"),
        None
    );
    let t0 = t0();
    let change = |old_value, new_value, at| FlagChange {
        flag: "cache".into(),
        old_value,
        new_value,
        actor: "service-key".into(),
        changed_at: t0 + secs(at),
    };
    let other = FlagChange {
        flag: "other".into(),
        ..change(false, true, 3)
    };
    for recorded in [
        change(true, false, 1),
        change(false, true, 2),
        other.clone(),
    ] {
        store.record_flag_change(&recorded).await.expect("record");
    }
    assert_eq!(
        store.latest_flag_change("cache").await.expect("latest"),
        Some(change(false, true, 2))
    );
    let recent = store.recent_flag_changes(2).await.expect("recent");
    assert_eq!(recent, vec![other, change(false, true, 2)]);
}

async fn the_server_reports_its_connections_by_state_on_postgresql_only(fx: &Fixture) {
    let states = fx.store().server_connections().await.expect("connections");
    if fx.is_postgres() {
        // The query itself runs on an active connection.
        assert!(
            states
                .iter()
                .any(|(state, count)| state == "active" && *count >= 1),
            "{states:?}"
        );
    } else {
        assert!(states.is_empty());
    }
}
