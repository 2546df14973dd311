//! The goose scenario of each [`ScenarioKind`]: one transaction that runs one operation (or one
//! whole journey), the open-model schedule, and the run's bounds. Setup and reporting live
//! elsewhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::prelude::{
    scenario, GooseUser, Scenario, Transaction, TransactionFunction, TransactionResult,
};
use serde_json::json;

use crate::api::{call, Answer, Endpoint, Tokens};
use crate::config::{LoadConfig, ScenarioKind};
use crate::recorder::Recorder;

/// A scheduled start later than this counts as late (every user was busy).
const LATE: Duration = Duration::from_millis(1);

/// Fixed-rate start times shared by all users: slot k starts at `start + k / rate`.
struct Schedule {
    start: Instant,
    interval: Duration,
    next: AtomicU64,
}

/// What every user of a run shares.
pub struct Context {
    pub recorder: Arc<Recorder>,
    config: LoadConfig,
    run_id: String,
    emails: AtomicU64,
    operations: AtomicU64,
    /// Made before the run: for `me` read-only, for `refresh` one rotating session per user.
    sessions: Vec<Mutex<Tokens>>,
    /// The account `login` logs in to.
    account: Option<String>,
    schedule: Option<Schedule>,
    deadline: Instant,
}

impl Context {
    /// `starts_at` is when goose starts the first user; nothing starts after `deadline`.
    pub fn new(
        recorder: Arc<Recorder>,
        config: LoadConfig,
        run_id: String,
        sessions: Vec<Tokens>,
        account: Option<String>,
        starts_at: Instant,
        deadline: Instant,
    ) -> Self {
        let schedule = config.rate.filter(|rate| *rate > 0.0).map(|rate| Schedule {
            start: starts_at,
            interval: Duration::from_secs_f64(1.0 / rate),
            next: AtomicU64::new(0),
        });
        Self {
            recorder,
            config,
            run_id,
            emails: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            account,
            schedule,
            deadline,
        }
    }

    /// A fresh, valid email for this run.
    fn email(&self) -> String {
        let n = self.emails.fetch_add(1, Ordering::Relaxed);
        format!("load-{}-{n}@example.com", self.run_id)
    }

    fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Sleeps `duration`, or less when the deadline comes first.
    async fn pause(&self, duration: Duration) {
        let until = (Instant::now() + duration).min(self.deadline);
        tokio::time::sleep_until(until.into()).await;
    }

    /// Takes one operation from the budget: `false` once it is spent or the run is over.
    fn take_operation(&self) -> bool {
        if self.past_deadline() {
            return false;
        }
        match self.config.max_operations {
            Some(max) => self.operations.fetch_add(1, Ordering::Relaxed) < max,
            None => true,
        }
    }

    /// The open model's start time of the next operation (waiting for it), or `None` in the
    /// closed model. `Err` when the slot falls after the deadline.
    async fn next_start(&self) -> Result<Option<Instant>, ()> {
        let Some(schedule) = &self.schedule else {
            return Ok(None);
        };
        let slot = schedule.next.fetch_add(1, Ordering::Relaxed);
        let slot = u32::try_from(slot).map_err(|_| ())?;
        let at = schedule.start + schedule.interval * slot;
        if at >= self.deadline {
            self.pause(self.deadline.saturating_duration_since(Instant::now()))
                .await;
            return Err(());
        }
        let now = Instant::now();
        if at > now {
            tokio::time::sleep_until(at.into()).await;
        } else if now - at > LATE {
            self.recorder.late_start();
        }
        Ok(Some(at))
    }

    fn session(&self, user: &GooseUser) -> Option<&Mutex<Tokens>> {
        match self.sessions.len() {
            0 => None,
            n => self.sessions.get(user.weighted_users_index % n),
        }
    }
}

/// The goose scenario that runs `context`'s scenario kind.
pub fn build(context: Arc<Context>) -> Scenario {
    let name = match context.config.scenario {
        ScenarioKind::Journey => "journey",
        ScenarioKind::Me => "me",
        ScenarioKind::Login => "login",
        ScenarioKind::Register => "register",
        ScenarioKind::Refresh => "refresh",
        ScenarioKind::Health => "health",
        ScenarioKind::Hold => "hold",
    };
    let function: TransactionFunction = Arc::new(move |user| {
        let context = context.clone();
        Box::pin(async move { run_once(user, &context).await })
    });
    scenario!(name).register_transaction(Transaction::new(function).set_name(name))
}

async fn run_once(user: &mut GooseUser, context: &Context) -> TransactionResult {
    if !context.take_operation() {
        // Budget spent: idle until the run ends (goose stops users between transactions).
        context
            .pause(context.deadline.saturating_duration_since(Instant::now()))
            .await;
        return Ok(());
    }
    if context.config.scenario == ScenarioKind::Journey {
        return journey(user, context).await;
    }
    let Ok(start) = context.next_start().await else {
        return Ok(());
    };
    let recorder = &context.recorder;
    match context.config.scenario {
        ScenarioKind::Me => {
            let token = match context.session(user) {
                Some(session) => lock(session).access_token.clone(),
                None => return Ok(()),
            };
            let endpoint = Endpoint::Me.on(context.config.surface);
            call(user, recorder, endpoint, Some(&token), None, start).await?;
        }
        ScenarioKind::Health => {
            call(user, recorder, Endpoint::Health, None, None, start).await?;
        }
        ScenarioKind::Login => {
            let Some(email) = &context.account else {
                return Ok(());
            };
            let body = json!({"email": email, "password": context.config.password});
            let endpoint = Endpoint::Login.on(context.config.surface);
            call(user, recorder, endpoint, None, Some(&body), start).await?;
        }
        ScenarioKind::Register => {
            let body = json!({"email": context.email(), "password": context.config.password});
            call(user, recorder, Endpoint::Register, None, Some(&body), start).await?;
        }
        ScenarioKind::Refresh => {
            let Some(session) = context.session(user) else {
                return Ok(());
            };
            let refresh_token = lock(session).refresh_token.clone();
            let body = json!({"refresh_token": refresh_token});
            let endpoint = Endpoint::Refresh.on(context.config.surface);
            if let Answer::Ok(Some(next)) =
                call(user, recorder, endpoint, None, Some(&body), start).await?
            {
                *lock(session) = next;
            }
        }
        ScenarioKind::Journey | ScenarioKind::Hold => {}
    }
    Ok(())
}

/// register → login → me ×k → profile → refresh → me → logout, with the think time between
/// steps. A failed step ends the journey (its error is already recorded) and the user waits
/// as a person would: the answer's Retry-After, or the think time, at least a second.
async fn journey(user: &mut GooseUser, context: &Context) -> TransactionResult {
    let recorder = &context.recorder;
    let config = &context.config;
    let email = context.email();
    let credentials = json!({"email": email, "password": config.password});
    let register = json!({"email": email, "password": config.password, "full_name": "Load Test"});
    let answer = call(
        user,
        recorder,
        Endpoint::Register,
        None,
        Some(&register),
        None,
    )
    .await?;
    if !matches!(answer, Answer::Ok(Some(_))) {
        return back_off(context, &answer).await;
    }
    if !think(context).await {
        return Ok(());
    }
    let answer = call(
        user,
        recorder,
        Endpoint::Login,
        None,
        Some(&credentials),
        None,
    )
    .await?;
    let Answer::Ok(Some(tokens)) = answer else {
        return back_off(context, &answer).await;
    };
    let access = Some(tokens.access_token.as_str());
    for _ in 0..config.me_per_journey {
        if !think(context).await {
            return Ok(());
        }
        let answer = call(user, recorder, Endpoint::Me, access, None, None).await?;
        if !matches!(answer, Answer::Ok(_)) {
            return back_off(context, &answer).await;
        }
    }
    if !think(context).await {
        return Ok(());
    }
    let profile = json!({"full_name": "Load Test Renamed"});
    let answer = call(
        user,
        recorder,
        Endpoint::Profile,
        access,
        Some(&profile),
        None,
    )
    .await?;
    if !matches!(answer, Answer::Ok(_)) {
        return back_off(context, &answer).await;
    }
    if !think(context).await {
        return Ok(());
    }
    let refresh = json!({"refresh_token": tokens.refresh_token});
    let answer = call(
        user,
        recorder,
        Endpoint::Refresh,
        None,
        Some(&refresh),
        None,
    )
    .await?;
    let Answer::Ok(Some(tokens)) = answer else {
        return back_off(context, &answer).await;
    };
    let access = Some(tokens.access_token.as_str());
    if !think(context).await {
        return Ok(());
    }
    let answer = call(user, recorder, Endpoint::Me, access, None, None).await?;
    if !matches!(answer, Answer::Ok(_)) {
        return back_off(context, &answer).await;
    }
    if !think(context).await {
        return Ok(());
    }
    let answer = call(user, recorder, Endpoint::Logout, access, None, None).await?;
    if !matches!(answer, Answer::Ok(_)) {
        return back_off(context, &answer).await;
    }
    recorder.journey_done();
    Ok(())
}

/// After a failed journey step: Retry-After when the server sent one, else the think time,
/// at least a second (a person does not retry in a tight loop).
async fn back_off(context: &Context, answer: &Answer) -> TransactionResult {
    let retry_after = match answer {
        Answer::Failed { retry_after } => *retry_after,
        Answer::Ok(_) => None,
    };
    let wait = retry_after
        .unwrap_or(context.config.think_time)
        .max(Duration::from_secs(1));
    context.pause(wait).await;
    Ok(())
}

/// The pause between two steps; `false` when the run is over and the journey should stop.
async fn think(context: &Context) -> bool {
    let think = context.config.think_time;
    if context.config.finish_journeys {
        tokio::time::sleep(think).await;
        return true;
    }
    if !think.is_zero() {
        context.pause(think).await;
    }
    !context.past_deadline()
}

fn lock(session: &Mutex<Tokens>) -> std::sync::MutexGuard<'_, Tokens> {
    session
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
