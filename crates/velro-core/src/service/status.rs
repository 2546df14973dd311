//! The status page's use cases: judging each component from live bounded checks and recent
//! traffic, recording per-minute samples for the uptime history, and the incidents operators
//! publish. What is judged is held in memory, so that the page still answers, and says what is
//! down, when the database or Redis is not there. Rendering belongs to velro-http.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::cache::{CacheControl, CacheHealth};
use crate::domain::{
    unix_minute, Component, ComponentState, ComponentStatus, Impact, Incident, IncidentId,
    IncidentStatus, NewIncident, NewIncidentUpdate, PublicText, StateMinutes, StatusSample,
    UnixMinute, MINUTES_PER_DAY,
};
use crate::mail::{MailError, Mailer, OutgoingMail};
use crate::store::Store;
use crate::{AuthError, Clock, StoreError};

/// The bounds and windows of the judgement.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    /// Bound of each check and of each database call the page makes (the readiness bound).
    pub check_timeout: Duration,
    /// A database slower than this to answer a ping is `degraded`.
    pub slow_database: Duration,
    /// How long a judgement is reused before the checks run again.
    pub snapshot_ttl: Duration,
    /// How often an instance re-reads the uptime history (it changes by the minute at most).
    pub history_ttl: Duration,
    /// Bound of a history read. Reads happen in the sampler, never for a page load, and the
    /// first one aggregates every recorded minute of the period (648,000 rows for five
    /// components over 90 days): far more than a check's bound on a busy SQLite.
    pub history_timeout: Duration,
    /// Days of uptime history shown and kept.
    pub history_days: u32,
    /// How long a resolved incident stays on the page.
    pub resolved_shown_for: time::Duration,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            check_timeout: Duration::from_millis(400),
            slow_database: Duration::from_millis(200),
            snapshot_ttl: Duration::from_secs(5),
            history_ttl: Duration::from_secs(300),
            history_timeout: Duration::from_secs(20),
            history_days: 90,
            resolved_shown_for: time::Duration::days(14),
        }
    }
}

/// The API surfaces whose traffic the page judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Register, login, refresh, password reset and change.
    AuthApi,
    /// Everything that checks an access token, and the published keys.
    TokenChecks,
}

/// Minutes of traffic a surface is judged on.
const TRAFFIC_WINDOW_MINUTES: i64 = 5;
/// Minutes of mail deliveries judged (mail is rare; five minutes would say nothing).
const MAIL_WINDOW_MINUTES: i64 = 60;
/// Without a sample this recent, the export says the service has not reported.
const REPORT_FRESH_MINUTES: i64 = 3;
/// The most incidents the page and the admin listing read.
const INCIDENTS_READ: u32 = 50;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    total: u64,
    failed: u64,
}

/// Per-minute counts of the last hour: [auth api, token checks, mail].
#[derive(Debug, Default)]
struct Window {
    minutes: VecDeque<(UnixMinute, [Counts; 3])>,
}

impl Window {
    fn record(&mut self, minute: UnixMinute, series: usize, failed: bool) {
        if self.minutes.back().is_none_or(|(m, _)| *m < minute) {
            self.minutes.push_back((minute, [Counts::default(); 3]));
        }
        while self
            .minutes
            .front()
            .is_some_and(|(m, _)| *m <= minute - MAIL_WINDOW_MINUTES)
        {
            self.minutes.pop_front();
        }
        // A clock that stepped back lands in the newest minute rather than being lost.
        if let Some((_, counts)) = self.minutes.back_mut() {
            counts[series].total += 1;
            counts[series].failed += u64::from(failed);
        }
    }

    fn sum(&self, now: UnixMinute, series: usize, minutes: i64) -> Counts {
        self.minutes
            .iter()
            .filter(|(m, _)| *m > now - minutes && *m <= now)
            .fold(Counts::default(), |acc, (_, counts)| Counts {
                total: acc.total + counts[series].total,
                failed: acc.failed + counts[series].failed,
            })
    }
}

/// One day of one component's history.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUptime {
    pub date: Date,
    /// The worst state recorded that day; `None` when nothing was recorded.
    pub worst: Option<ComponentState>,
    /// Share of the recorded minutes without an outage (operational or degraded).
    pub uptime: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComponentHistory {
    pub component: Component,
    /// Oldest first, one entry per day, today last.
    pub days: Vec<DayUptime>,
    /// Over every recorded minute of the period.
    pub uptime: Option<f64>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub generated_at: OffsetDateTime,
    pub components: Vec<ComponentStatus>,
    pub history: Vec<ComponentHistory>,
    /// Open incidents first (newest first), then the recently resolved ones.
    pub incidents: Vec<Incident>,
    /// True when the history or the incidents could not be read just now and are the last
    /// ones this instance held.
    pub from_memory: bool,
}

impl StatusReport {
    /// The page's headline: the worst of the judged component states and of the open
    /// incidents' impacts (an operator who opens a major incident knows something the checks
    /// may not see, and the page must not say "All systems operational" next to it).
    pub fn overall(&self) -> ComponentState {
        let judged = self.components.iter().map(|c| c.state);
        let declared = self
            .incidents
            .iter()
            .filter(|i| i.is_open())
            .map(|i| i.impact.state());
        judged
            .chain(declared)
            .max()
            .unwrap_or(ComponentState::Operational)
    }
}

#[derive(Default)]
struct Held {
    /// When (by the service's clock, so that tests can move it) and what was judged last.
    components: Option<(OffsetDateTime, Vec<ComponentStatus>)>,
    history: Option<(OffsetDateTime, Vec<StateMinutes>)>,
    incidents: Option<Vec<Incident>>,
    /// The last read of the history, or of the incidents, failed.
    history_stale: bool,
    incidents_stale: bool,
    /// Bumped by every incident change on this instance; `incidents_read` is the value seen
    /// when the held incidents were read. A judgement that ends after a change (the sampler's,
    /// say) makes the components fresh again, so freshness alone cannot tell that the held
    /// incidents predate the change.
    incidents_changed: u64,
    incidents_read: u64,
}

/// The status use cases. Cheap to clone; one per process.
#[derive(Clone)]
pub struct StatusService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cache: Arc<dyn CacheControl>,
    settings: StatusSettings,
    window: Mutex<Window>,
    held: Mutex<Held>,
    /// One judgement at a time: concurrent page loads wait for it instead of each pinging.
    judging: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if duration < Duration::from_millis(1) {
        "under 1 ms".to_string()
    } else if secs < 1.0 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{secs:.1} s")
    }
}

fn percent(part: u64, whole: u64) -> String {
    let share = part as f64 * 100.0 / whole.max(1) as f64;
    if share >= 10.0 {
        format!("{share:.0}%")
    } else {
        format!("{share:.1}%")
    }
}

/// A surface's state from its recent requests: the share that failed (5xx, time-outs).
fn judge_traffic(counts: Counts, what: &str, minutes: i64) -> (ComponentState, String) {
    if counts.failed == 0 {
        let reason = if counts.total == 0 {
            format!("No {what} in the last {minutes} minutes")
        } else {
            format!("No failed {what} in the last {minutes} minutes")
        };
        return (ComponentState::Operational, reason);
    }
    let failed = counts.failed;
    let total = counts.total;
    let reason = format!(
        "{} of {what} failed in the last {minutes} minutes",
        percent(failed, total)
    );
    // Thresholds in integers: failed/total against 1/2, 1/10, 1/100.
    let state = if failed * 2 >= total && failed >= 3 {
        ComponentState::MajorOutage
    } else if failed * 10 >= total && failed >= 2 {
        ComponentState::PartialOutage
    } else if failed * 100 >= total {
        ComponentState::Degraded
    } else {
        ComponentState::Operational
    };
    (state, reason)
}

fn status(component: Component, state: ComponentState, reason: String) -> ComponentStatus {
    ComponentStatus {
        component,
        state,
        reason,
    }
}

/// The worse of two judgements; on a tie the first reason stands.
fn worst(a: (ComponentState, String), b: (ComponentState, String)) -> (ComponentState, String) {
    if b.0 > a.0 {
        b
    } else {
        a
    }
}

async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Option<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "status: database call failed");
            None
        }
        Err(_) => {
            tracing::warn!("status: database call timed out");
            None
        }
    }
}

impl StatusService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        cache: Arc<dyn CacheControl>,
        settings: StatusSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                cache,
                settings,
                window: Mutex::default(),
                held: Mutex::default(),
                judging: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Counts one answered request of a surface; `failed` for a 5xx (time-outs included).
    pub fn record_request(&self, surface: Surface, failed: bool) {
        let minute = unix_minute(self.inner.clock.now());
        let series = match surface {
            Surface::AuthApi => 0,
            Surface::TokenChecks => 1,
        };
        lock(&self.inner.window).record(minute, series, failed);
    }

    /// Counts one attempt to hand a message to the mail server.
    pub fn record_mail(&self, delivered: bool) {
        let minute = unix_minute(self.inner.clock.now());
        lock(&self.inner.window).record(minute, 2, !delivered);
    }

    /// `mailer`, with every delivery counted for the email component.
    pub fn observe_mailer(&self, mailer: Arc<dyn Mailer>) -> Arc<dyn Mailer> {
        Arc::new(ObservedMailer {
            inner: mailer,
            status: self.clone(),
        })
    }

    /// The page's content: the judgement of the last few seconds, or a new one (bounded by the
    /// check timeout), with the history and incidents last read.
    pub async fn report(&self) -> StatusReport {
        let fresh = |held: &Held| {
            held.incidents_read == held.incidents_changed
                && held
                    .components
                    .as_ref()
                    .is_some_and(|(at, _)| self.younger_than(*at, self.inner.settings.snapshot_ttl))
        };
        if !fresh(&lock(&self.inner.held)) {
            let _judging = self.inner.judging.lock().await;
            if !fresh(&lock(&self.inner.held)) {
                self.judge().await;
                self.read_incidents().await;
            }
        }
        self.assemble()
    }

    /// What the sampler runs once a minute: a new judgement, recorded for this minute, and the
    /// history re-read when it is due. A failing database is logged and skipped.
    pub async fn sample(&self) {
        let components = {
            let _judging = self.inner.judging.lock().await;
            let components = self.judge().await;
            self.read_incidents().await;
            components
        };
        let now = self.inner.clock.now();
        let minute = unix_minute(now);
        let samples: Vec<StatusSample> = components
            .into_iter()
            .map(|c| StatusSample {
                component: c.component,
                minute,
                state: c.state,
                reason: c.reason,
            })
            .collect();
        let keep = i64::from(self.inner.settings.history_days + 1) * MINUTES_PER_DAY;
        let limit = self.inner.settings.check_timeout;
        let store = &self.inner.store;
        bounded(limit, store.record_status(&samples, minute - keep)).await;
        // A failed read is retried at the next sample, so the page stops saying "from memory"
        // within a minute of the database coming back.
        let due = {
            let held = lock(&self.inner.held);
            held.history_stale
                || held
                    .history
                    .as_ref()
                    .is_none_or(|(at, _)| !self.younger_than(*at, self.inner.settings.history_ttl))
        };
        if due {
            self.read_history().await;
        }
    }

    /// Re-reads the history now (the sampler, tests). Days before yesterday no longer change
    /// (instances record the current minute only; yesterday stays open for a late writer), so
    /// once the whole period was read, only yesterday and today are read again: a few thousand
    /// rows instead of every minute of 90 days.
    pub async fn read_history(&self) -> bool {
        let start = self.history_start();
        let yesterday = unix_minute(self.inner.clock.now()).div_euclid(MINUTES_PER_DAY) - 1;
        let complete = {
            let held = lock(&self.inner.held);
            held.history.as_ref().map(|(_, rows)| {
                rows.iter()
                    .filter(|r| r.day < yesterday && r.day * MINUTES_PER_DAY >= start)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        };
        let since = match complete {
            Some(_) => start.max(yesterday * MINUTES_PER_DAY),
            None => start,
        };
        let read = bounded(
            self.inner.settings.history_timeout,
            self.inner.store.status_history(since),
        )
        .await;
        let mut held = lock(&self.inner.held);
        match read {
            Some(recent) => {
                let incremental = complete.is_some();
                let mut history = complete.unwrap_or_default();
                history.extend(
                    recent
                        .into_iter()
                        .filter(|r| !incremental || r.day >= yesterday),
                );
                held.history = Some((self.inner.clock.now(), history));
                held.history_stale = false;
                true
            }
            None => {
                held.history_stale = true;
                false
            }
        }
    }

    /// The page as the stored samples tell it, for `velro status export`: each component's
    /// latest recorded state, or an outage when no instance has recorded one for a few minutes.
    /// Every read must succeed: an export must not publish a page it could not check.
    pub async fn stored_report(&self) -> Result<StatusReport, AuthError> {
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let latest = store
            .latest_status(unix_minute(now) - REPORT_FRESH_MINUTES)
            .await?;
        let components = Component::ALL
            .into_iter()
            .map(|component| {
                latest
                    .iter()
                    .find(|s| s.component == component)
                    .map_or_else(
                        || {
                            status(
                                component,
                                ComponentState::MajorOutage,
                                format!(
                                    "No instance of the service has reported in the last \
                                     {REPORT_FRESH_MINUTES} minutes"
                                ),
                            )
                        },
                        |s| status(component, s.state, s.reason.clone()),
                    )
            })
            .collect();
        let history = store.status_history(self.history_start()).await?;
        let incidents = store.list_incidents(INCIDENTS_READ).await?;
        Ok(StatusReport {
            generated_at: now,
            components,
            history: self.days(&history, now),
            incidents: self.shown(incidents, now),
            from_memory: false,
        })
    }

    /// Opens an incident with its first update. Rules: the expected resolution, when given, is
    /// in the future; components are listed once.
    pub async fn open_incident(
        &self,
        title: PublicText,
        status: IncidentStatus,
        impact: Impact,
        message: PublicText,
        mut components: Vec<Component>,
        expected_resolution: Option<OffsetDateTime>,
    ) -> Result<Incident, AuthError> {
        let now = self.inner.clock.now();
        if expected_resolution.is_some_and(|at| at <= now) {
            return Err(AuthError::field(
                "expected_resolution",
                "must be in the future",
            ));
        }
        components.sort_unstable();
        components.dedup();
        let incident = self
            .inner
            .store
            .create_incident(NewIncident {
                id: IncidentId(Uuid::now_v7()),
                title,
                impact,
                components,
                expected_resolution,
                first_update: NewIncidentUpdate {
                    id: Uuid::now_v7(),
                    status,
                    message,
                    now,
                },
            })
            .await?;
        tracing::warn!(incident_id = %incident.id, status = status.as_str(), impact = impact.as_str(), "incident opened");
        self.forget_incidents();
        Ok(incident)
    }

    /// Adds an update to the timeline; `resolved` closes the incident, any other status
    /// reopens it.
    pub async fn update_incident(
        &self,
        incident_id: IncidentId,
        status: IncidentStatus,
        message: PublicText,
    ) -> Result<Incident, AuthError> {
        let update = NewIncidentUpdate {
            id: Uuid::now_v7(),
            status,
            message,
            now: self.inner.clock.now(),
        };
        let incident = self
            .inner
            .store
            .add_incident_update(incident_id, update)
            .await?
            .ok_or(AuthError::NotFound)?;
        tracing::warn!(%incident_id, status = status.as_str(), "incident updated");
        self.forget_incidents();
        Ok(incident)
    }

    /// The newest incidents, open or not.
    pub async fn list_incidents(&self) -> Result<Vec<Incident>, AuthError> {
        Ok(self.inner.store.list_incidents(INCIDENTS_READ).await?)
    }

    /// Whether `at` is less than `ttl` ago; a clock that stepped back makes it stale.
    fn younger_than(&self, at: OffsetDateTime, ttl: Duration) -> bool {
        let age = self.inner.clock.now() - at;
        !age.is_negative() && age < ttl
    }

    fn history_start(&self) -> UnixMinute {
        let today = unix_minute(self.inner.clock.now()).div_euclid(MINUTES_PER_DAY);
        (today - i64::from(self.inner.settings.history_days) + 1) * MINUTES_PER_DAY
    }

    /// The next page load reads the incidents again instead of showing the held ones.
    fn forget_incidents(&self) {
        let mut held = lock(&self.inner.held);
        held.components = None;
        held.incidents_changed += 1;
    }

    async fn read_incidents(&self) {
        let generation = lock(&self.inner.held).incidents_changed;
        let read = bounded(
            self.inner.settings.check_timeout,
            self.inner.store.list_incidents(INCIDENTS_READ),
        )
        .await;
        let mut held = lock(&self.inner.held);
        match read {
            Some(incidents) => {
                held.incidents = Some(incidents);
                held.incidents_stale = false;
                held.incidents_read = generation;
            }
            None => held.incidents_stale = true,
        }
    }

    /// Runs the checks and holds the result.
    async fn judge(&self) -> Vec<ComponentStatus> {
        let settings = &self.inner.settings;
        let started = Instant::now();
        let ping = tokio::time::timeout(settings.check_timeout, self.inner.store.ping()).await;
        let took = started.elapsed();
        let database = match ping {
            Ok(Ok(())) if took >= settings.slow_database => (
                ComponentState::Degraded,
                format!("Database answering in {}", seconds(took)),
            ),
            Ok(Ok(())) => (
                ComponentState::Operational,
                format!("Database answering in {}", seconds(took)),
            ),
            Ok(Err(StoreError::Unavailable(_))) => {
                (ComponentState::MajorOutage, "Database unreachable".into())
            }
            Ok(Err(_)) => (
                ComponentState::MajorOutage,
                "Database failing its health check".into(),
            ),
            Err(_) => (
                ComponentState::MajorOutage,
                format!(
                    "Database not answering within {}",
                    seconds(settings.check_timeout)
                ),
            ),
        };
        let cache_health = self.inner.cache.health();
        let cache_serves = matches!(cache_health, CacheHealth::Ok | CacheHealth::LocalOnly);
        let cache = match &cache_health {
            CacheHealth::Disabled => (
                ComponentState::Operational,
                "Switched off: every request is served from the database".into(),
            ),
            CacheHealth::LocalOnly => (
                ComponentState::Operational,
                "In-process cache only (no Redis configured)".into(),
            ),
            CacheHealth::Ok => (ComponentState::Operational, "Redis answering".into()),
            CacheHealth::Degraded(why) if why.contains("unavailable") => (
                ComponentState::Degraded,
                "Redis unreachable: serving from the database".into(),
            ),
            CacheHealth::Degraded(_) => (
                ComponentState::Degraded,
                "Shared cache impaired: serving from the database".into(),
            ),
        };

        let now = self.inner.clock.now();
        let minute = unix_minute(now);
        let (auth_traffic, token_traffic, mail) = {
            let window = lock(&self.inner.window);
            (
                window.sum(minute, 0, TRAFFIC_WINDOW_MINUTES),
                window.sum(minute, 1, TRAFFIC_WINDOW_MINUTES),
                window.sum(minute, 2, MAIL_WINDOW_MINUTES),
            )
        };
        let auth = judge_traffic(auth_traffic, "requests", TRAFFIC_WINDOW_MINUTES);
        let tokens = judge_traffic(token_traffic, "requests", TRAFFIC_WINDOW_MINUTES);
        // What the database's state means for each surface, whatever the traffic says.
        let (auth, tokens) = match database.0 {
            ComponentState::MajorOutage => (
                worst(
                    auth,
                    (
                        ComponentState::MajorOutage,
                        "Sign-in and sign-up need the database, which is down".into(),
                    ),
                ),
                worst(
                    tokens,
                    if cache_serves {
                        (
                            ComponentState::PartialOutage,
                            "Database down: only recently used sessions can be checked".into(),
                        )
                    } else {
                        (
                            ComponentState::MajorOutage,
                            "Token checks need the database, which is down".into(),
                        )
                    },
                ),
            ),
            ComponentState::Degraded => (
                worst(
                    auth,
                    (
                        ComponentState::Degraded,
                        "Slower than usual: the database answers slowly".into(),
                    ),
                ),
                tokens,
            ),
            _ => (auth, tokens),
        };
        let email = if mail.failed == 0 {
            (
                ComponentState::Operational,
                if mail.total == 0 {
                    "No messages sent in the last hour".into()
                } else {
                    "No failed deliveries in the last hour".into()
                },
            )
        } else {
            let state = if mail.failed == mail.total {
                ComponentState::MajorOutage
            } else if mail.failed * 10 >= mail.total {
                ComponentState::PartialOutage
            } else {
                ComponentState::Degraded
            };
            (
                state,
                format!(
                    "{} of {} deliveries failed in the last hour",
                    mail.failed, mail.total
                ),
            )
        };
        let components = vec![
            status(Component::AuthApi, auth.0, auth.1),
            status(Component::TokenChecks, tokens.0, tokens.1),
            status(Component::Database, database.0, database.1),
            status(Component::Cache, cache.0, cache.1),
            status(Component::Email, email.0, email.1),
        ];
        lock(&self.inner.held).components = Some((now, components.clone()));
        components
    }

    fn assemble(&self) -> StatusReport {
        let held = lock(&self.inner.held);
        let now = self.inner.clock.now();
        let (generated_at, components) = held
            .components
            .as_ref()
            .map(|(at, c)| (*at, c.clone()))
            .unwrap_or((now, Vec::new()));
        let empty = Vec::new();
        let history = held.history.as_ref().map_or(&empty, |(_, h)| h);
        StatusReport {
            generated_at,
            components,
            history: self.days(history, now),
            incidents: self.shown(held.incidents.clone().unwrap_or_default(), now),
            from_memory: held.history_stale || held.incidents_stale,
        }
    }

    /// The open incidents, then those resolved recently.
    fn shown(&self, incidents: Vec<Incident>, now: OffsetDateTime) -> Vec<Incident> {
        let cutoff = now - self.inner.settings.resolved_shown_for;
        let (open, resolved): (Vec<_>, Vec<_>) = incidents.into_iter().partition(Incident::is_open);
        open.into_iter()
            .chain(
                resolved
                    .into_iter()
                    .filter(|i| i.resolved_at.is_some_and(|at| at >= cutoff)),
            )
            .collect()
    }

    /// Per component, one entry per day of the period, oldest first.
    fn days(&self, minutes: &[StateMinutes], now: OffsetDateTime) -> Vec<ComponentHistory> {
        let today = unix_minute(now).div_euclid(MINUTES_PER_DAY);
        let first = today - i64::from(self.inner.settings.history_days) + 1;
        let mut by_day: BTreeMap<(Component, i64), [u32; 4]> = BTreeMap::new();
        for m in minutes {
            let counts = by_day.entry((m.component, m.day)).or_default();
            let slot = usize::try_from(m.state.severity()).unwrap_or(3).min(3);
            counts[slot] += m.minutes;
        }
        Component::ALL
            .into_iter()
            .map(|component| {
                let mut up_total = 0_u64;
                let mut recorded_total = 0_u64;
                let days = (first..=today)
                    .map(|day| {
                        let date = (OffsetDateTime::UNIX_EPOCH + time::Duration::days(day)).date();
                        let Some(counts) = by_day.get(&(component, day)) else {
                            return DayUptime {
                                date,
                                worst: None,
                                uptime: None,
                            };
                        };
                        let recorded: u32 = counts.iter().sum();
                        let up = counts[0] + counts[1];
                        up_total += u64::from(up);
                        recorded_total += u64::from(recorded);
                        let worst = ComponentState::ALL
                            .into_iter()
                            .rev()
                            .find(|s| counts[usize::try_from(s.severity()).unwrap_or(3)] > 0);
                        DayUptime {
                            date,
                            worst,
                            uptime: (recorded > 0).then(|| f64::from(up) / f64::from(recorded)),
                        }
                    })
                    .collect();
                let uptime = (recorded_total > 0).then(|| up_total as f64 / recorded_total as f64);
                ComponentHistory {
                    component,
                    days,
                    uptime,
                }
            })
            .collect()
    }
}

/// A mailer whose every delivery is counted for the email component.
struct ObservedMailer {
    inner: Arc<dyn Mailer>,
    status: StatusService,
}

#[async_trait]
impl Mailer for ObservedMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let result = self.inner.send(mail).await;
        self.status.record_mail(result.is_ok());
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::cache::NoCache;
    use crate::domain::IncidentUpdate;
    use crate::ManualClock;

    #[test]
    fn traffic_is_judged_by_the_share_of_failed_requests() {
        let counts = |total, failed| Counts { total, failed };
        let cases = [
            (counts(0, 0), ComponentState::Operational),
            (counts(1000, 0), ComponentState::Operational),
            (counts(1000, 5), ComponentState::Operational),
            (counts(1000, 10), ComponentState::Degraded),
            (counts(1000, 100), ComponentState::PartialOutage),
            (counts(1000, 500), ComponentState::MajorOutage),
            // Too few failures to call a major outage, whatever the share.
            (counts(2, 2), ComponentState::PartialOutage),
            (counts(1, 1), ComponentState::Degraded),
        ];
        for (counts, expected) in cases {
            assert_eq!(
                judge_traffic(counts, "requests", 5).0,
                expected,
                "{counts:?}"
            );
        }
        assert_eq!(
            judge_traffic(counts(200, 100), "requests", 5).1,
            "50% of requests failed in the last 5 minutes"
        );
    }

    #[test]
    fn the_window_forgets_minutes_older_than_an_hour() {
        let mut window = Window::default();
        window.record(0, 0, true);
        window.record(4, 0, false);
        assert_eq!(window.sum(4, 0, 5).total, 2);
        assert_eq!(window.sum(5, 0, 5).total, 1);
        window.record(100, 0, false);
        assert_eq!(window.minutes.len(), 1);
    }

    /// A store that answers for status data until it is switched off, then is unavailable.
    #[derive(Default)]
    struct SwitchableStore {
        down: AtomicBool,
        incidents: Mutex<Vec<Incident>>,
        history: Mutex<Vec<StateMinutes>>,
    }

    fn unavailable<T>() -> Result<T, StoreError> {
        Err(StoreError::Unavailable("switched off".into()))
    }

    impl SwitchableStore {
        fn up<T>(&self, value: impl FnOnce() -> T) -> Result<T, StoreError> {
            if self.down.load(Ordering::SeqCst) {
                unavailable()
            } else {
                Ok(value())
            }
        }
    }

    struct Shared(Arc<SwitchableStore>);

    crate::impl_store! {
        Shared, answer { unavailable() }:
            create_user, find_credentials_by_email, find_credentials, replace_password_hash,
            create_session, find_live_session, rotate_refresh_token, revoke_session,
            revoke_sessions, list_live_sessions, update_profile, create_reset_token,
            find_reset_token_user, reset_password, redeem_reset_token, change_password,
            list_users, page_users, find_user, update_user, delete_user, latest_status,
            create_console_session, touch_console_session, find_console_session, delete_console_session,
            record_flag_change, latest_flag_change, server_connections, recent_flag_changes, purge,
            insert_user, update_account, find_refresh_token_user, create_pending_user, mail_state,
            issue_mail_token, redeem_mail_token, create_flow_state, issue_auth_code,
            find_flow_state, delete_flow_state, issue_email_change, redeem_email_change;

        async fn ping(&self) -> Result<(), StoreError> {
            self.0.up(|| ())
        }

        async fn record_status(
            &self,
            samples: &[StatusSample],
            _purge_before: UnixMinute,
        ) -> Result<(), StoreError> {
            self.0.up(|| {
                let mut history = lock(&self.0.history);
                for s in samples {
                    history.push(StateMinutes {
                        component: s.component,
                        day: s.minute.div_euclid(MINUTES_PER_DAY),
                        state: s.state,
                        minutes: 1,
                    });
                }
            })
        }

        async fn status_history(&self, since: UnixMinute) -> Result<Vec<StateMinutes>, StoreError> {
            self.0.up(|| {
                lock(&self.0.history)
                    .iter()
                    .filter(|r| r.day * MINUTES_PER_DAY >= since)
                    .copied()
                    .collect()
            })
        }

        async fn create_incident(&self, incident: NewIncident) -> Result<Incident, StoreError> {
            self.0.up(|| {
                let first = incident.first_update;
                let created = Incident {
                    id: incident.id,
                    title: incident.title,
                    status: first.status,
                    impact: incident.impact,
                    components: incident.components,
                    expected_resolution: incident.expected_resolution,
                    created_at: first.now,
                    updated_at: first.now,
                    resolved_at: None,
                    updates: vec![IncidentUpdate {
                        id: first.id,
                        status: first.status,
                        message: first.message,
                        created_at: first.now,
                    }],
                };
                lock(&self.0.incidents).push(created.clone());
                created
            })
        }

        async fn add_incident_update(
            &self,
            _incident_id: IncidentId,
            _update: NewIncidentUpdate,
        ) -> Result<Option<Incident>, StoreError> {
            self.0.up(|| None)
        }

        async fn list_incidents(&self, _limit: u32) -> Result<Vec<Incident>, StoreError> {
            self.0.up(|| lock(&self.0.incidents).clone())
        }
    }

    fn service(store: &Arc<SwitchableStore>) -> StatusService {
        StatusService::new(
            Arc::new(Shared(store.clone())),
            Arc::new(ManualClock::starting_now()),
            Arc::new(NoCache),
            StatusSettings {
                snapshot_ttl: Duration::ZERO,
                ..StatusSettings::default()
            },
        )
    }

    fn state_of(report: &StatusReport, component: Component) -> ComponentState {
        report
            .components
            .iter()
            .find(|c| c.component == component)
            .map(|c| c.state)
            .expect("every component is judged")
    }

    #[tokio::test]
    async fn after_one_whole_read_only_yesterday_and_today_are_read_again() {
        let store = Arc::new(SwitchableStore::default());
        let status = service(&store);
        let today = unix_minute(OffsetDateTime::now_utc()).div_euclid(MINUTES_PER_DAY);
        let row = |day: i64, state: ComponentState| StateMinutes {
            component: Component::Database,
            day,
            state,
            minutes: 60,
        };
        *lock(&store.history) = vec![
            row(today - 10, ComponentState::Operational),
            row(today - 1, ComponentState::Operational),
        ];
        assert!(status.read_history().await);
        // Rows of old days that change now would only be seen by another whole read; yesterday's
        // and today's are read again.
        *lock(&store.history) = vec![
            row(today - 10, ComponentState::MajorOutage),
            row(today - 1, ComponentState::Degraded),
            row(today, ComponentState::PartialOutage),
        ];
        assert!(status.read_history().await);
        let report = status.report().await;
        let database = report
            .history
            .iter()
            .find(|h| h.component == Component::Database)
            .expect("the database's history");
        let worst = |days_ago: usize| database.days[database.days.len() - 1 - days_ago].worst;
        assert_eq!(worst(10), Some(ComponentState::Operational));
        assert_eq!(worst(1), Some(ComponentState::Degraded));
        assert_eq!(worst(0), Some(ComponentState::PartialOutage));
        assert_eq!(worst(2), None);
    }

    #[test]
    fn the_headline_is_the_worst_of_the_checks_and_the_open_incidents_impacts() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let text = |s: &str| PublicText::parse(s, 100, true).expect("valid");
        let incident = |impact: Impact, status: IncidentStatus| Incident {
            id: IncidentId(Uuid::new_v4()),
            title: text("Sign-in is slow"),
            status,
            impact,
            components: vec![Component::AuthApi],
            expected_resolution: None,
            created_at: now,
            updated_at: now,
            resolved_at: (status == IncidentStatus::Resolved).then_some(now),
            updates: Vec::new(),
        };
        let report = |checks: ComponentState, incidents: Vec<Incident>| StatusReport {
            generated_at: now,
            components: Component::ALL
                .into_iter()
                .map(|component| ComponentStatus {
                    component,
                    state: checks,
                    reason: String::new(),
                })
                .collect(),
            history: Vec::new(),
            incidents,
            from_memory: false,
        };
        use ComponentState::{Degraded, MajorOutage, Operational, PartialOutage};
        let cases = [
            (Operational, vec![], Operational),
            (
                Operational,
                vec![(Impact::None, IncidentStatus::Investigating)],
                Operational,
            ),
            (
                Operational,
                vec![(Impact::Minor, IncidentStatus::Identified)],
                Degraded,
            ),
            (
                Operational,
                vec![(Impact::Major, IncidentStatus::Investigating)],
                PartialOutage,
            ),
            (
                Operational,
                vec![(Impact::Critical, IncidentStatus::Monitoring)],
                MajorOutage,
            ),
            // A resolved incident says nothing about now.
            (
                Operational,
                vec![(Impact::Critical, IncidentStatus::Resolved)],
                Operational,
            ),
            // The checks can be worse than what operators declared, and then they win.
            (
                MajorOutage,
                vec![(Impact::Minor, IncidentStatus::Investigating)],
                MajorOutage,
            ),
            (
                Degraded,
                vec![
                    (Impact::Minor, IncidentStatus::Investigating),
                    (Impact::Major, IncidentStatus::Identified),
                ],
                PartialOutage,
            ),
        ];
        for (checks, incidents, expected) in cases {
            let described = format!("{checks:?} with {incidents:?}");
            let incidents = incidents
                .into_iter()
                .map(|(impact, status)| incident(impact, status))
                .collect();
            assert_eq!(report(checks, incidents).overall(), expected, "{described}");
        }
    }

    #[tokio::test]
    async fn with_the_database_down_the_page_says_so_and_keeps_what_it_held() {
        let store = Arc::new(SwitchableStore::default());
        let status = service(&store);
        let text = |s: &str| PublicText::parse(s, 100, true).expect("valid");
        status
            .open_incident(
                text("Slow sign-in"),
                IncidentStatus::Investigating,
                Impact::Minor,
                text("Looking into it"),
                vec![Component::AuthApi],
                None,
            )
            .await
            .expect("opens");
        status.sample().await;
        let up = status.report().await;
        // Every check passes; the open minor incident alone makes the headline degraded.
        assert!(up
            .components
            .iter()
            .all(|c| c.state == ComponentState::Operational));
        assert_eq!(up.overall(), ComponentState::Degraded);
        assert_eq!(up.incidents.len(), 1);
        assert!(!up.from_memory);
        let today = up.history[0].days.last().expect("today");
        assert_eq!(today.worst, Some(ComponentState::Operational));

        store.down.store(true, Ordering::SeqCst);
        let down = status.report().await;
        assert_eq!(
            state_of(&down, Component::Database),
            ComponentState::MajorOutage
        );
        assert_eq!(
            state_of(&down, Component::AuthApi),
            ComponentState::MajorOutage
        );
        // No cache at all: nothing can check a token either.
        assert_eq!(
            state_of(&down, Component::TokenChecks),
            ComponentState::MajorOutage
        );
        assert!(down.from_memory);
        assert_eq!(down.incidents.len(), 1, "the incident held in memory stays");
        assert_eq!(down.history, up.history);
        let reason = &down.components[2].reason;
        assert_eq!(reason, "Database unreachable");
    }

    #[tokio::test]
    async fn an_expected_resolution_in_the_past_is_refused() {
        let store = Arc::new(SwitchableStore::default());
        let status = service(&store);
        let text = |s: &str| PublicText::parse(s, 100, true).expect("valid");
        let refused = status
            .open_incident(
                text("Outage"),
                IncidentStatus::Identified,
                Impact::Major,
                text("Fixing"),
                vec![],
                Some(OffsetDateTime::UNIX_EPOCH),
            )
            .await;
        assert!(
            matches!(refused, Err(AuthError::Validation(ref e)) if e[0].field == "expected_resolution")
        );
    }

    #[tokio::test]
    async fn failed_mail_deliveries_make_email_an_outage() {
        let store = Arc::new(SwitchableStore::default());
        let status = service(&store);
        status.record_mail(false);
        status.record_mail(false);
        let report = status.report().await;
        assert_eq!(
            state_of(&report, Component::Email),
            ComponentState::MajorOutage
        );
        assert_eq!(
            report.components[4].reason,
            "2 of 2 deliveries failed in the last hour"
        );
        status.record_mail(true);
        for _ in 0..17 {
            status.record_mail(true);
        }
        let report = status.report().await;
        assert_eq!(
            state_of(&report, Component::Email),
            ComponentState::PartialOutage
        );
    }
}
