//! Ending a data-plane connection at shutdown without failing a request on it:
//! HTTP/2 gets GOAWAY at once; an HTTP/1 connection is closed only once no request
//! is in flight on it and none came for [`LINGER`] — its last answer may have gone
//! out without `Connection: close` (its headers were sent before the SIGTERM), and
//! its client may be sending the next request right now.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;

/// How long an idle HTTP/1 connection of a draining replica waits for one more
/// request (answered with `Connection: close`) before it is closed.
pub const LINGER: Duration = Duration::from_secs(1);

/// Requests in flight on one connection.
#[derive(Default)]
pub struct ConnState {
    busy: AtomicUsize,
    h2: AtomicBool,
    /// the connection is draining: report every change
    watched: AtomicBool,
    changed: Notify,
}

impl ConnState {
    /// A request starts; it ends when the returned guard (kept by its response
    /// body) is dropped.
    pub fn start(self: &Arc<Self>, version: http::Version) -> Busy {
        if version >= http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.notify();
        Busy(self.clone())
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
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.notify();
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight until it is done.
    pub struct Tracked<B> {
        #[pin]
        body: B,
        busy: Busy,
    }
}

impl<B> Tracked<B> {
    pub fn new(body: B, busy: Busy) -> Tracked<B> {
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
