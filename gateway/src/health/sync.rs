//! Keeping the mirrors fresh: every provider's hash is read every
//! `state.cache_ttl_ms` (one script call per provider, concurrently), and one
//! provider at once when a change notification names it (`refresh_one`, called
//! by the pub/sub listener).

use super::{store, Backend, Cell, Health};
use crate::redis_conn::RedisConn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(health: Arc<Health>, mut stop: watch::Receiver<bool>) {
    loop {
        refresh_all(&health).await;
        let every = health.followed().cache_ttl.max(Duration::from_millis(50));
        if crate::shutdown::pause(every, &mut stop).await {
            return;
        }
    }
}

pub async fn refresh_all(health: &Health) {
    let Backend::Redis(conn) = &health.backend else {
        return;
    };
    // a provider whose Redis node is out is not read (its call is refused at
    // once): its mirror keeps what it knew, and local detection steers meanwhile
    let cells: Vec<_> = health.cells().values().cloned().collect();
    let reads = cells.iter().map(|c| read(health, conn, c));
    futures_util::future::join_all(reads).await;
}

/// Reads one provider's state and takes it in (a failed read changes nothing).
async fn read(health: &Health, conn: &RedisConn, c: &Cell) {
    if let Ok(state) = store::exchange(conn, &health.channel, &c.id, &c.labels, &[]).await {
        c.apply_fleet(&state, health.now());
    }
}

/// A change notification named `provider`: read its state now. Notifications
/// that come while a read is running make one more read after it, not one each.
pub fn refresh_one(health: Arc<Health>, provider: String) {
    let Some(c) = health.cell(&provider) else {
        return;
    };
    c.refresh_again.store(true, Ordering::SeqCst);
    if c.refreshing.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        let Backend::Redis(conn) = &health.backend else {
            return;
        };
        loop {
            c.refresh_again.store(false, Ordering::SeqCst);
            read(&health, conn, &c).await;
            if c.refresh_again.load(Ordering::SeqCst) {
                continue;
            }
            c.refreshing.store(false, Ordering::SeqCst);
            // one that came between the check and the store: take it on
            if !c.refresh_again.load(Ordering::SeqCst) || c.refreshing.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    });
}
