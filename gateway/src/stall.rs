//! Upstream answers whose client stopped reading. hyper polls a response body
//! only when it can send what the body gives: not while an HTTP/1 client leaves
//! the socket full, nor while an HTTP/2 client grants the stream no
//! flow-control window. The body's own timers then never run, and the upstream
//! request, its buffers and its quota reservation would be held as long as the
//! connection lives. Every upstream answer is therefore shared with a sweeper
//! that ends it (settled and recorded: flag `DC`, or `UT` past `total_ms`) once
//! its client has taken nothing for `client_write_timeout_ms`, or its deadline
//! has passed. (An HTTP/1 connection that stays stuck is then closed by
//! `server/timeouts.rs`.)

use crate::finish::Ending;
use crate::stream::Metered;
use crate::upstream::BoxError;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

/// How often the sweeper looks.
const SWEEP: Duration = Duration::from_millis(250);

/// How long after ending answers their freed memory is given back.
const RELEASE_AFTER: Duration = Duration::from_millis(1500);

/// Ends an HTTP/1 connection from outside: its IO fails from then on
/// (`server/timeouts.rs` checks it). An answer cut short leaves its connection
/// unusable, and a client that stopped reading would otherwise keep it, with
/// the bytes queued for it, until the write timeout.
#[derive(Default)]
pub struct ConnAbort {
    aborted: AtomicBool,
    /// the connection task, when its IO waits
    waker: AtomicWaker,
}

impl ConnAbort {
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Wakes `w` when the connection is aborted.
    pub fn register(&self, w: &Waker) {
        self.waker.register(w);
    }
}

/// An answer the sweeper may end.
pub struct Watched {
    body: Mutex<Slot>,
    /// the sweep (its count, see `Stalls::sweeps`) since which the client has
    /// not taken the frame it was handed; 0 while the body is polled for more
    waiting_since: AtomicU64,
    deadline: Instant,
    write_timeout: Duration,
    /// its HTTP/1 connection, closed when the answer is ended
    conn: Option<Arc<ConnAbort>>,
}

/// The answer (None once ended from outside) and who waits for its next frame.
struct Slot {
    /// (kept inline: one allocation per answer, the watched one)
    metered: Option<Metered>,
    /// dropped when the answer ends, also when it is ended from outside (the
    /// connection's count of requests in flight)
    until_end: Option<Box<dyn Send>>,
    /// the connection task that last found no frame ready: woken when the
    /// answer is ended, so it learns at once
    waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Lists of watched answers: a request locks one, so the request path's
/// threads rarely meet on the same lock.
const SHARDS: usize = 8;

/// Gives freed memory back to the operating system (the binary sets it to its
/// allocator's collection: a process-wide allocator keeps freed pages of a
/// thread that is idle now).
static RELEASE_MEMORY: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what [`Stalls`] calls after ending answers: their buffers were freed.
pub fn on_memory_freed(release: fn()) {
    let _ = RELEASE_MEMORY.set(release);
}

/// The upstream answers in flight, and their sweeper.
pub struct Stalls {
    /// sweeps so far, from 1: the answers' clock (a frame handed out reads
    /// it, not the system clock)
    sweeps: AtomicU64,
    shards: [Mutex<Vec<Weak<Watched>>>; SHARDS],
    next: std::sync::atomic::AtomicUsize,
}

impl Default for Stalls {
    fn default() -> Self {
        Stalls {
            sweeps: AtomicU64::new(1),
            shards: Default::default(),
            next: Default::default(),
        }
    }
}

impl Stalls {
    fn now_sweep(&self) -> u64 {
        self.sweeps.load(Ordering::Relaxed)
    }

    /// `body`, watched: the sweeper ends it once its client has taken nothing for
    /// `write_timeout`, or its deadline has passed.
    pub fn watch(
        self: &Arc<Self>,
        body: Metered,
        write_timeout: Duration,
        conn: Option<Arc<ConnAbort>>,
    ) -> WatchedBody {
        let w = Arc::new(Watched {
            deadline: body.deadline(),
            body: Mutex::new(Slot {
                metered: Some(body),
                until_end: None,
                waker: None,
            }),
            waiting_since: AtomicU64::new(0),
            write_timeout,
            conn,
        });
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % SHARDS;
        lock(&self.shards[shard]).push(Arc::downgrade(&w));
        WatchedBody {
            watched: w,
            stalls: self.clone(),
        }
    }

    /// Ends the answers that are stalled or past their deadline; forgets the
    /// finished ones. How many it ended.
    pub fn sweep(&self) -> usize {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.shards.iter().map(|s| self.sweep_shard(s)).sum()
    }

    fn sweep_shard(&self, shard: &Mutex<Vec<Weak<Watched>>>) -> usize {
        let now = Instant::now();
        let now_sweep = self.now_sweep();
        let mut due = Vec::new();
        let due_now = |w: &Watched| {
            let since = w.waiting_since.load(Ordering::Relaxed);
            // a whole sweep period is counted only once it has passed
            let waited = SWEEP.saturating_mul(
                u32::try_from(now_sweep.saturating_sub(since).saturating_sub(1))
                    .unwrap_or(u32::MAX),
            );
            let stalled = since != 0 && waited >= w.write_timeout;
            (stalled || now >= w.deadline).then_some(stalled)
        };
        lock(shard).retain(|w| {
            let Some(w) = w.upgrade() else { return false };
            match due_now(&w) {
                Some(stalled) => {
                    due.push((w, stalled));
                    false
                }
                None => true,
            }
        });
        let mut ended = 0;
        for (w, _) in due {
            // a body being polled right now is looked at again next time
            let Ok(mut slot) = w.body.try_lock() else {
                lock(shard).push(Arc::downgrade(&w));
                continue;
            };
            // its response is gone already (this is the last handle): it ends
            // the normal way, by being dropped
            if Arc::strong_count(&w) == 1 {
                continue;
            }
            // (looked at again under the lock: the client may have read on)
            let Some(stalled) = due_now(&w) else {
                drop(slot);
                lock(shard).push(Arc::downgrade(&w));
                continue;
            };
            if let Some(mut b) = slot.metered.take() {
                ended += 1;
                let ending = if stalled {
                    Ending::ClientGone
                } else {
                    Ending::TotalTimeout
                };
                Pin::new(&mut b).end_now(ending);
            }
            slot.until_end = None;
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
            if let Some(c) = &w.conn {
                c.abort();
            }
        }
        ended
    }

    /// Sweeps every [`SWEEP`] until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // the connections of ended answers close over the next moments: their
        // memory is given back a tick and a second later
        let mut release_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if self.sweep() > 0 {
                release_at = Some(Instant::now() + RELEASE_AFTER);
            }
            if release_at.is_some_and(|t| Instant::now() >= t) {
                release_at = None;
                if let Some(release) = RELEASE_MEMORY.get() {
                    release();
                }
            }
        }
    }
}

/// The response body of a watched answer.
pub struct WatchedBody {
    watched: Arc<Watched>,
    stalls: Arc<Stalls>,
}

impl WatchedBody {
    /// Keeps `guard` until the answer ends, whichever way.
    pub fn hold_until_end(&self, guard: Box<dyn Send>) {
        lock(&self.watched.body).until_end = Some(guard);
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let w = &self.watched;
        w.waiting_since.store(0, Ordering::Relaxed);
        let mut slot = lock(&w.body);
        let Some(b) = slot.metered.as_mut() else {
            return Poll::Ready(Some(Err(
                "the answer was ended: its client took nothing for too long, or its time was up"
                    .into(),
            )));
        };
        let r = Pin::new(b).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(_))) => {
                w.waiting_since
                    .store(self.stalls.now_sweep(), Ordering::Relaxed);
            }
            Poll::Pending if !slot.waker.as_ref().is_some_and(|k| k.will_wake(cx.waker())) => {
                slot.waker = Some(cx.waker().clone());
            }
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.watched.body)
            .metered
            .as_ref()
            .is_some_and(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.watched.body)
            .metered
            .as_ref()
            .map_or_else(SizeHint::default, |b| b.size_hint())
    }
}
