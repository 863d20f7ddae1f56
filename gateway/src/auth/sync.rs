//! Keeping a replica in step with Redis: a monitor that checks it twice a second
//! (ten times while a node is out), so each node's unreachable mark rises and
//! falls without traffic: a standalone server through the marker read, a
//! cluster through the slot map and a PING to each master on probe connections
//! of their own; and, after every outage or when Redis lost its data (restart
//! without persistence, flush), once every node answers, it loads the scripts
//! again, re-applies the config's seed and starts a new cache epoch;
//! and a pub/sub listener that applies change notifications to the key cache and
//! flushes it whenever the subscription is lost or made again (health changes on
//! the same channel go to `health::sync`).

use super::cache::KeyCache;
use super::Auth;
use crate::health::Health;
use crate::redis_conn::Target;
use crate::shutdown::pause;
use crate::state::change::Change;
use crate::state::Store;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the monitor pings Redis.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How often while a node is known to be out: its return (or a replica taking
/// over its slots) is what the requests for its keys wait for.
const PING_EVERY_DOWN: Duration = Duration::from_millis(100);
/// How often the listener checks its subscription is alive.
const LISTEN_PING_EVERY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the backend's background tasks work with.
#[derive(Clone)]
pub struct Handle {
    pub auth: Arc<Auth>,
    /// told of the health changes announced on the same channel
    pub health: Arc<Health>,
    /// the seed of the config version in use
    pub seed: Arc<crate::seed::Current>,
}

/// Starts the background tasks the configured backend needs (none for memory);
/// they end when `stop` turns true.
pub fn spawn(h: Handle, stop: watch::Receiver<bool>) {
    if let Store::Redis(r) = &*h.auth.store {
        let channel = r.channel();
        let target = r.conn.target.clone();
        tokio::spawn(monitor(h.clone(), stop.clone()));
        tokio::spawn(listen(h, target, channel, stop));
    }
}

/// Brings a reachable Redis up to date: scripts loaded, seed written. Returns
/// whether it worked.
pub async fn prepare(h: &Handle) -> bool {
    let store = &h.auth.store;
    if let Store::Redis(r) = &**store {
        if let Err(e) = r.conn.load_scripts().await {
            tracing::warn!(error = %e, "state backend: cannot load the Lua scripts yet");
            return false;
        }
    }
    let seeded = crate::seed::apply(store, &h.seed.get()).await;
    let marked = match (&seeded, &**store) {
        (Ok(()), Store::Redis(r)) => r.mark_prepared().await,
        (other, _) => other.clone(),
    };
    match marked {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "state backend: cannot write the tenants seed yet");
            false
        }
    }
}

async fn monitor(h: Handle, mut stop: watch::Receiver<bool>) {
    let Store::Redis(r) = &*h.auth.store else {
        return;
    };
    // the outage count the backend was last prepared after (run() prepared it
    // at start unless Redis was unreachable)
    let mut prepared_after = Some(r.conn.outages()).filter(|_| !r.conn.is_degraded());
    loop {
        // a cluster: its slot map, and each master's reachability
        r.conn.probe().await;
        // EXISTS on the marker doubles as the liveness check of a standalone
        // server; on a cluster it waits while the marker's node is out
        let marker = !(r.conn.reach.is_cluster() && r.globals_down());
        if let Some(intact) = if marker {
            r.is_prepared().await.ok()
        } else {
            None
        } {
            let outages = r.conn.outages();
            // the seed goes to every node: written once they all answer
            if (!intact || prepared_after != Some(outages))
                && !r.conn.is_degraded()
                && prepare(&h).await
            {
                // Redis may have lost or changed data while we could not see it
                h.auth.cache.flush();
                tracing::info!(
                    data_lost = !intact,
                    "state backend: scripts and tenants seed written again; cached keys will be checked afresh"
                );
                prepared_after = Some(outages);
            }
        }
        let every = if r.conn.is_degraded() {
            PING_EVERY_DOWN
        } else {
            PING_EVERY
        };
        if pause(every, &mut stop).await {
            return;
        }
    }
}

/// Why one subscription attempt ended.
enum Ended {
    Stop,
    /// could not subscribe
    Failed(String),
    /// was subscribed, then lost it
    Lost(String),
}

async fn listen(h: Handle, target: Target, channel: String, mut stop: watch::Receiver<bool>) {
    let urls = match target {
        Target::Single(u) => vec![u],
        Target::Cluster(v) => v,
    };
    let cache = &h.auth.cache;
    let health = &h.health;
    let mut backoff = Duration::from_millis(250);
    let mut quiet = false;
    for i in 0.. {
        let Some(url) = urls.get(i % urls.len().max(1)) else {
            return;
        };
        let why = match subscribe_once(url, &channel, cache, health, &mut stop).await {
            Ended::Stop => return,
            Ended::Lost(why) => {
                // it worked a moment ago: retry soon, and log this loss
                backoff = Duration::from_millis(250);
                quiet = false;
                why
            }
            Ended::Failed(why) => why,
        };
        cache.flush();
        if !quiet {
            tracing::warn!(error = %why, "state backend: no change notifications; key cache flushed, resubscribing");
            quiet = true;
        }
        if pause(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn subscribe_once(
    url: &str,
    channel: &str,
    cache: &KeyCache,
    health: &Arc<Health>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => return Ended::Failed(e.to_string()),
    };
    let pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Ended::Failed(e.to_string()),
        Err(_) => return Ended::Failed("connect timed out".into()),
    };
    let (mut sink, mut messages) = pubsub.split();
    match tokio::time::timeout(CONNECT_TIMEOUT, sink.subscribe(channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ended::Failed(e.to_string()),
        Err(_) => return Ended::Failed("subscribe timed out".into()),
    }
    // whatever changed while nobody listened is unknown: trust nothing older
    cache.flush();
    tracing::info!("state backend: listening for change notifications");
    let mut tick = tokio::time::interval(LISTEN_PING_EVERY);
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(msg) => {
                    let text: String = msg.get_payload().unwrap_or_default();
                    match Change::decode(&text) {
                        Some(Change::Health(p)) => crate::health::sync::refresh_one(health.clone(), p),
                        Some(c) => cache.apply(&c),
                        None => cache.flush(),
                    }
                }
                None => return Ended::Lost("connection closed".into()),
            },
            _ = tick.tick() => {
                let alive = tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(alive, Ok(Ok(_))) {
                    return Ended::Lost("no answer to PING".into());
                }
            }
            _ = stop.changed() => return Ended::Stop,
        }
    }
}
