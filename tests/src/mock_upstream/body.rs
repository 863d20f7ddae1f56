//! The mock's response body: a queue of frames, optionally spaced by a delay and
//! optionally ending in an abrupt cut.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The response body of the mock: a queue of frames, optionally spaced by a delay
/// and optionally ending in an error (abrupt cut) instead of a clean end.
pub struct MockBody {
    frames: VecDeque<Bytes>,
    delay: Option<Duration>,
    cut: bool,
    sent_any: bool,
    exact_len: Option<u64>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Yield once after each frame, so that hyper writes it out on its own.
    flush_each: bool,
    yielded: bool,
}

impl MockBody {
    pub(super) fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        let len = b.len() as u64;
        MockBody {
            frames: VecDeque::from([b]),
            delay: None,
            cut: false,
            sent_any: false,
            exact_len: Some(len),
            sleep: None,
            flush_each: false,
            yielded: false,
        }
    }

    pub(super) fn stream(frames: VecDeque<Bytes>, delay_ms: u64, cut: bool) -> Self {
        MockBody {
            frames,
            delay: (delay_ms > 0).then(|| Duration::from_millis(delay_ms)),
            cut,
            sent_any: false,
            exact_len: None,
            sleep: None,
            flush_each: false,
            yielded: false,
        }
    }

    /// A stream (not a whole JSON body) sends its first `k` frames, then ends
    /// in an abrupt cut.
    pub(super) fn cut_after(&mut self, k: usize) {
        if self.exact_len.is_none() {
            self.frames.truncate(k);
            self.cut = true;
        }
    }

    /// A stream (not a whole JSON body) sleeps `ms` between frames (0: none).
    pub(super) fn space_frames(&mut self, ms: u64) {
        if self.exact_len.is_none() {
            self.delay = (ms > 0).then(|| Duration::from_millis(ms));
        }
    }

    /// When `on`, each frame is followed by one `Pending` (the task woken at once):
    /// hyper then flushes what it holds, so every frame is a write of its own.
    pub(super) fn flushing_each(mut self, on: bool) -> Self {
        self.flush_each = on;
        self
    }
}

/// Pause before the abort, so that frames already handed to hyper are flushed.
const CUT_PAUSE: Duration = Duration::from_millis(30);

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.frames.is_empty() && !this.cut {
            return Poll::Ready(None);
        }
        if this.flush_each && this.sent_any && !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let pause = if this.frames.is_empty() {
            Some(this.delay.map_or(CUT_PAUSE, |d| d.max(CUT_PAUSE)))
        } else if this.sent_any {
            this.delay
        } else {
            None
        };
        if let Some(d) = pause {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if let Some(b) = this.frames.pop_front() {
            this.sent_any = true;
            this.yielded = false;
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        this.cut = false;
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "mock upstream cut the stream",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.cut
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
