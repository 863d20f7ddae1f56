//! Ending a data-plane connection at shutdown without failing a request on it:
//! HTTP/2 gets GOAWAY at once; an HTTP/1 connection is closed only once no request
//! is in flight on it and none came for [`LINGER`] — its last answer may have gone
//! out without `Connection: close` (its headers were sent before the SIGTERM), and
//! its client may be sending the next request right now.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long an idle HTTP/1 connection of a draining replica waits for one more
/// request (answered with `Connection: close`) before it is closed.
pub const LINGER: Duration = Duration::from_secs(1);

/// Requests in flight on one connection.
pub struct ConnState {
    busy: AtomicUsize,
    /// requests started so far
    started: AtomicU64,
    /// when the last request ended (ms after `since`)
    last_end: AtomicU64,
    since: Instant,
    h2: AtomicBool,
    /// the connection is draining: report every change
    watched: AtomicBool,
    changed: Notify,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            busy: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
            since: Instant::now(),
            h2: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }
}

impl ConnState {
    /// A request starts; it ends when the returned guard (kept by its response
    /// body) is dropped.
    pub fn start(self: &Arc<Self>, version: http::Version) -> Busy {
        if version >= http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.notify();
        Busy(self.clone())
    }

    /// Requests in flight now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// Requests started so far (a new one changes it).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Completes once no request has been in flight for `idle` (polled, not
    /// notified: a request costs no wake-up of the connection's task).
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let since_end = self
                .since
                .elapsed()
                .saturating_sub(Duration::from_millis(self.last_end.load(Ordering::Relaxed)));
            let busy = self.busy() > 0;
            if !busy && since_end >= idle {
                return;
            }
            // with a request in flight, none can end and leave the connection
            // idle sooner than `idle` from now
            let wait = if busy { idle } else { idle - since_end };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }

    fn notify(&self) {
        if self.watched.load(Ordering::SeqCst) {
            self.changed.notify_waiters();
        }
    }

    pub fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// Waits until no request is in flight and none started for [`LINGER`].
    pub async fn quiet(&self) {
        self.watched.store(true, Ordering::SeqCst);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.busy.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(LINGER) => {
                    if self.busy.load(Ordering::SeqCst) == 0 {
                        return;
                    }
                }
            }
        }
    }
}

/// A request in flight (see [`ConnState::start`]).
pub struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end.store(ms, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.notify();
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight until it is done.
    pub struct Tracked<B> {
        #[pin]
        body: B,
        // None when the body holds the guard itself (see `data_conn`)
        busy: Option<Busy>,
    }
}

impl<B> Tracked<B> {
    pub fn new(body: B, busy: Option<Busy>) -> Tracked<B> {
        Tracked { body, busy }
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let state = Arc::new(ConnState::default());
        let idle = Duration::from_secs(10);
        let t = Instant::now();
        let busy = state.start(http::Version::HTTP_2);
        let s = state.clone();
        let waiting = tokio::spawn(async move {
            s.idle_for(idle).await;
            t.elapsed()
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiting.is_finished(), "a request is in flight");
        drop(busy);
        let waited = waiting.await.unwrap();
        assert!(
            waited >= Duration::from_secs(40) && waited < Duration::from_secs(41),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_waits_for_requests_and_the_linger() {
        let state = Arc::new(ConnState::default());
        let busy = state.start(http::Version::HTTP_11);
        let s = state.clone();
        let waiting = tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            s.quiet().await;
            t.elapsed()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "a request is in flight");
        drop(busy);
        // a new request within the linger restarts the wait
        tokio::time::sleep(LINGER / 2).await;
        drop(state.start(http::Version::HTTP_11));
        let waited = waiting.await.unwrap();
        assert_eq!(waited, Duration::from_secs(5) + LINGER / 2 + LINGER);
        assert!(!state.is_h2());
        drop(state.start(http::Version::HTTP_2));
        assert!(state.is_h2());
    }
}
