//! The invalidation feed: a background task on its own pub/sub connection that applies peers'
//! invalidations to L1, and reconnects with backoff when the connection is lost. Publishing is
//! in `l2`; what the messages look like is in `message`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::l2::{next_backoff, stop_requested, stopped_during, Redis, FIRST_BACKOFF};
use crate::local::Local;
use crate::message::{now_micros, Message, Target};

/// How often the listener re-subscribes as a liveness check: a connection that silently died
/// (no FIN) would otherwise look subscribed for ever.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) async fn listen(
    redis: Arc<Redis>,
    local: Arc<Local>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if let Some(pubsub) = subscribe(&redis).await {
            backoff = FIRST_BACKOFF;
            // Entries cached while the feed was down may have missed messages.
            local.drop_all().await;
            redis.set_subscribed(true);
            tracing::info!("invalidation feed subscribed");
            let stop = follow(&redis, &local, pubsub, &mut shutdown).await;
            redis.set_subscribed(false);
            if stop {
                return;
            }
            tracing::warn!("invalidation feed lost; L1 staleness is now bounded by its TTL");
        }
        if stopped_during(&mut shutdown, backoff).await {
            return;
        }
        backoff = next_backoff(backoff);
    }
}

async fn subscribe(redis: &Redis) -> Option<redis::aio::PubSub> {
    let attempt = async {
        let mut pubsub = redis.client().get_async_pubsub().await?;
        pubsub.subscribe(redis.channel()).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(redis.connect_timeout(), attempt).await {
        Ok(Ok(pubsub)) => Some(pubsub),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cannot subscribe to the invalidation channel");
            None
        }
        Err(_) => {
            tracing::debug!("subscribing to the invalidation channel timed out");
            None
        }
    }
}

/// Applies messages until the connection is lost (false) or shutdown (true).
async fn follow(
    redis: &Redis,
    local: &Local,
    pubsub: redis::aio::PubSub,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let (mut sink, mut stream) = pubsub.split();
    let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    liveness.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => apply(local, &message).await,
                None => return false,
            },
            _ = liveness.tick() => {
                let check = tokio::time::timeout(redis.connect_timeout(), sink.subscribe(redis.channel()));
                if !matches!(check.await, Ok(Ok(()))) {
                    return false;
                }
            }
            () = stop_requested(shutdown) => return true,
        }
    }
}

async fn apply(local: &Local, message: &redis::Msg) {
    let parsed = message
        .get_payload::<String>()
        .ok()
        .and_then(|payload| Message::parse(&payload));
    let Some(parsed) = parsed else {
        // A peer speaking another format (a rolling upgrade?): dropping everything is the
        // answer that cannot serve a stale session.
        tracing::warn!("unreadable invalidation message; clearing L1");
        local.drop_all().await;
        return;
    };
    match parsed.target {
        Target::Session(id) => local.drop_entries(&[id.0], &[]).await,
        Target::User(id) => local.drop_entries(&[], &[id.0]).await,
    }
    metrics::histogram!("velro_cache_invalidation_lag_seconds")
        .record(parsed.lag_seconds(now_micros()));
}
