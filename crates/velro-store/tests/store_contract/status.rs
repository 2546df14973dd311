//! The status page's store methods: per-minute samples that several instances record once, the
//! history per day, and incidents with their timelines.

use uuid::Uuid;
use velro_core::domain::{
    unix_minute, Component, ComponentState, Impact, IncidentId, IncidentStatus, NewIncident,
    NewIncidentUpdate, PublicText, StateMinutes, StatusSample, MINUTES_PER_DAY,
};

use crate::fixture::{secs, t0, Fixture};

store_contract!(
    two_instances_judging_one_minute_count_once_with_the_worse_state,
    the_history_counts_minutes_per_day_and_state_and_old_samples_are_purged,
    the_latest_sample_of_each_component_is_found,
    an_incident_keeps_its_timeline_newest_first_and_resolving_sets_resolved_at,
    an_update_to_an_unknown_incident_finds_nothing,
    incidents_are_listed_newest_first_with_their_own_updates,
);

fn sample(component: Component, minute: i64, state: ComponentState, reason: &str) -> StatusSample {
    StatusSample {
        component,
        minute,
        state,
        reason: reason.into(),
    }
}

fn text(s: &str) -> PublicText {
    PublicText::parse(s, 5000, true).expect("valid text")
}

async fn two_instances_judging_one_minute_count_once_with_the_worse_state(fx: &Fixture) {
    let store = fx.store();
    let minute = unix_minute(t0());
    let day = minute.div_euclid(MINUTES_PER_DAY);
    store
        .record_status(
            &[sample(
                Component::Database,
                minute,
                ComponentState::Degraded,
                "slow",
            )],
            0,
        )
        .await
        .expect("first instance");
    store
        .record_status(
            &[sample(
                Component::Database,
                minute,
                ComponentState::MajorOutage,
                "down",
            )],
            0,
        )
        .await
        .expect("second instance");
    // A third, better judgement does not hide the outage.
    store
        .record_status(
            &[sample(
                Component::Database,
                minute,
                ComponentState::Operational,
                "fine",
            )],
            0,
        )
        .await
        .expect("third instance");
    let history = store.status_history(minute).await.expect("history");
    assert_eq!(
        history,
        [StateMinutes {
            component: Component::Database,
            day,
            state: ComponentState::MajorOutage,
            minutes: 1,
        }]
    );
    let latest = store.latest_status(minute).await.expect("latest");
    assert_eq!(latest[0].reason, "down");
}

async fn the_history_counts_minutes_per_day_and_state_and_old_samples_are_purged(fx: &Fixture) {
    let store = fx.store();
    let day = unix_minute(t0()).div_euclid(MINUTES_PER_DAY);
    let start = day * MINUTES_PER_DAY;
    let mut samples = Vec::new();
    for m in 0..3 {
        samples.push(sample(
            Component::AuthApi,
            start + m,
            ComponentState::Operational,
            "ok",
        ));
    }
    samples.push(sample(
        Component::AuthApi,
        start + 3,
        ComponentState::PartialOutage,
        "5xx",
    ));
    // The next day, and a day long gone.
    samples.push(sample(
        Component::AuthApi,
        start + MINUTES_PER_DAY,
        ComponentState::Operational,
        "ok",
    ));
    samples.push(sample(
        Component::Email,
        start - 100 * MINUTES_PER_DAY,
        ComponentState::Operational,
        "ok",
    ));
    store.record_status(&samples, 0).await.expect("records");

    let mut history = store
        .status_history(start - 200 * MINUTES_PER_DAY)
        .await
        .expect("history");
    history.sort_by_key(|m| (m.component, m.day, m.state));
    let minutes = |component, day, state, minutes| StateMinutes {
        component,
        day,
        state,
        minutes,
    };
    assert_eq!(
        history,
        [
            minutes(Component::AuthApi, day, ComponentState::Operational, 3),
            minutes(Component::AuthApi, day, ComponentState::PartialOutage, 1),
            minutes(Component::AuthApi, day + 1, ComponentState::Operational, 1),
            minutes(Component::Email, day - 100, ComponentState::Operational, 1),
        ]
    );
    // Only from `since` on.
    assert_eq!(
        store
            .status_history(start + 3)
            .await
            .expect("history")
            .len(),
        2
    );

    store
        .record_status(&[], start - 90 * MINUTES_PER_DAY)
        .await
        .expect("purges");
    let kept = store
        .status_history(start - 200 * MINUTES_PER_DAY)
        .await
        .expect("history");
    assert!(
        kept.iter().all(|m| m.component == Component::AuthApi),
        "{kept:?}"
    );
    assert_eq!(kept.iter().map(|m| m.minutes).sum::<u32>(), 5);
}

async fn the_latest_sample_of_each_component_is_found(fx: &Fixture) {
    let store = fx.store();
    let minute = unix_minute(t0());
    store
        .record_status(
            &[
                sample(
                    Component::Cache,
                    minute - 10,
                    ComponentState::MajorOutage,
                    "old",
                ),
                sample(Component::Cache, minute, ComponentState::Degraded, "new"),
                sample(
                    Component::Email,
                    minute - 10,
                    ComponentState::Operational,
                    "too old",
                ),
            ],
            0,
        )
        .await
        .expect("records");
    let latest = store.latest_status(minute - 5).await.expect("latest");
    assert_eq!(
        latest,
        [sample(
            Component::Cache,
            minute,
            ComponentState::Degraded,
            "new"
        )]
    );
}

fn new_incident(status: IncidentStatus, at: time::OffsetDateTime) -> NewIncident {
    NewIncident {
        id: IncidentId(Uuid::now_v7()),
        title: text("Sign-in is slow"),
        impact: Impact::Major,
        components: vec![Component::AuthApi, Component::Database],
        expected_resolution: Some(at + secs(3600)),
        first_update: NewIncidentUpdate {
            id: Uuid::now_v7(),
            status,
            message: text("We are looking into it.\nMore soon."),
            now: at,
        },
    }
}

async fn an_incident_keeps_its_timeline_newest_first_and_resolving_sets_resolved_at(fx: &Fixture) {
    let store = fx.store();
    let t0 = crate::fixture::t0();
    let opened = new_incident(IncidentStatus::Investigating, t0);
    let id = opened.id;
    let created = store.create_incident(opened).await.expect("creates");
    assert_eq!(created.id, id);
    assert_eq!(created.status, IncidentStatus::Investigating);
    assert_eq!(
        created.components,
        [Component::AuthApi, Component::Database]
    );
    assert_eq!(created.expected_resolution, Some(t0 + secs(3600)));
    assert_eq!(created.updates.len(), 1);
    assert_eq!(
        created.updates[0].message.as_str(),
        "We are looking into it.\nMore soon."
    );
    assert!(created.resolved_at.is_none());

    let resolve = NewIncidentUpdate {
        id: Uuid::now_v7(),
        status: IncidentStatus::Resolved,
        message: text("Fixed."),
        now: t0 + secs(60),
    };
    let resolved = store
        .add_incident_update(id, resolve)
        .await
        .expect("updates")
        .expect("found");
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(t0 + secs(60)));
    assert_eq!(resolved.updated_at, t0 + secs(60));
    assert_eq!(resolved.created_at, t0);
    let statuses: Vec<_> = resolved.updates.iter().map(|u| u.status).collect();
    assert_eq!(
        statuses,
        [IncidentStatus::Resolved, IncidentStatus::Investigating]
    );

    let reopen = NewIncidentUpdate {
        id: Uuid::now_v7(),
        status: IncidentStatus::Monitoring,
        message: text("Watching it again."),
        now: t0 + secs(120),
    };
    let reopened = store
        .add_incident_update(id, reopen)
        .await
        .expect("updates")
        .expect("found");
    assert!(reopened.resolved_at.is_none());
    assert_eq!(reopened.updates.len(), 3);
}

async fn an_update_to_an_unknown_incident_finds_nothing(fx: &Fixture) {
    let update = NewIncidentUpdate {
        id: Uuid::now_v7(),
        status: IncidentStatus::Identified,
        message: text("Found it."),
        now: t0(),
    };
    let found = fx
        .store()
        .add_incident_update(IncidentId(Uuid::now_v7()), update)
        .await
        .expect("answers");
    assert!(found.is_none());
    assert!(fx
        .store()
        .list_incidents(10)
        .await
        .expect("lists")
        .is_empty());
}

async fn incidents_are_listed_newest_first_with_their_own_updates(fx: &Fixture) {
    let store = fx.store();
    let t0 = crate::fixture::t0();
    let mut ids = Vec::new();
    for offset in [0, 10, 20] {
        let incident = new_incident(IncidentStatus::Identified, t0 + secs(offset));
        ids.push(incident.id);
        store.create_incident(incident).await.expect("creates");
    }
    store
        .add_incident_update(
            ids[0],
            NewIncidentUpdate {
                id: Uuid::now_v7(),
                status: IncidentStatus::Monitoring,
                message: text("A fix is out."),
                now: t0 + secs(30),
            },
        )
        .await
        .expect("updates")
        .expect("found");
    let listed = store.list_incidents(2).await.expect("lists");
    let listed_ids: Vec<_> = listed.iter().map(|i| i.id).collect();
    assert_eq!(listed_ids, [ids[2], ids[1]]);
    assert!(listed.iter().all(|i| i.updates.len() == 1));
    let all = store.list_incidents(10).await.expect("lists");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].updates.len(), 2);
    assert_eq!(all[2].status, IncidentStatus::Monitoring);
}
