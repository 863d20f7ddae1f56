//! The fleet's in-flight counts for `least_busy`: while a route uses it, each
//! replica writes its own counts and reads the others' every [`EVERY`], off the
//! request path. A pick then weighs `others (as last read) + this replica's
//! count now`.

use super::{store, Backend, Health};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const EVERY: Duration = Duration::from_millis(200);
/// A replica that has not written for this long no longer counts.
const STALE_MS: u64 = 2_000;

pub async fn run(health: Arc<Health>, mut stop: watch::Receiver<bool>) {
    let Backend::Redis(conn) = &health.backend else {
        return;
    };
    let mut wrote = false;
    loop {
        let used = health.followed().least_busy;
        if conn.is_tag_down(store::BUSY_TAG) {
            for c in health.cells().values() {
                c.others_busy.store(0, Ordering::Relaxed);
            }
        } else if used || wrote {
            let cells: Vec<_> = health.cells().values().cloned().collect();
            let counts: Vec<(Arc<str>, i64)> = cells
                .iter()
                .map(|c| (c.id.clone(), c.inflight.load(Ordering::Relaxed).max(0)))
                .collect();
            // once no route needs it, one last write of zeros takes us out
            let counts = if used { counts } else { Vec::new() };
            if let Ok(others) = store::busy_exchange(conn, &health.replica, &counts, STALE_MS).await
            {
                for c in &cells {
                    let n = others.get(&*c.id).copied().unwrap_or(0);
                    c.others_busy.store(n, Ordering::Relaxed);
                }
                wrote = used;
            }
        }
        if crate::shutdown::pause(EVERY, &mut stop).await {
            return;
        }
    }
}
