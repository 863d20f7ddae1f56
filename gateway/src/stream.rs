//! Response bodies. Upstream frames are passed to the client as they arrive while a
//! [`Meter`] reads a copy; idle and total timeouts apply between frames; the request's
//! record is finished when the body ends, fails, or is dropped (client gone), so
//! nothing accepted goes unrecorded.

use crate::finish::{Ending, Outcome, Unfinished};
use crate::meter::Meter;
use crate::shutdown::{Shutdown, CUT_EVENT};
use crate::upstream::{BoxError, UpstreamBody};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

#[derive(Debug)]
struct StreamTimeout(&'static str, Duration);

impl std::fmt::Display for StreamTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "upstream {} timeout after {} ms",
            self.0,
            self.1.as_millis()
        )
    }
}

impl std::error::Error for StreamTimeout {}

pin_project! {
    /// An upstream answer on its way to the client, metered and timed.
    #[project = MeteredProj]
    pub struct Metered {
        #[pin]
        inner: UpstreamBody,
        first: Option<Bytes>,
        meter: Meter,
        timer: Pin<Box<Sleep>>,
        last_frame: Instant,
        idle: Duration,
        total: Duration,
        deadline: Instant,
        bytes_sent: u64,
        status: u16,
        ended: bool,
        batch: Batch,
        yielded: u8,
        failed: Option<BoxError>,
        req: Option<Unfinished>,
        shutdown: Arc<Shutdown>,
        // wakes the answer when it is cut (taken the first time it waits)
        on_cut: Option<Pin<Box<tokio::sync::futures::OwnedNotified>>>,
    }

    impl PinnedDrop for Metered {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.req.is_none() {
                return;
            }
            // hyper stops polling once a body of known length is sent, so a drop
            // after the last byte is a normal end, not a client that left.
            let complete = this.inner.is_end_stream() && this.first.is_none() && this.batch.is_empty();
            this.meter.finish();
            let ending = match (complete, this.shutdown.is_cut()) {
                (true, _) => Ending::Complete,
                (false, true) => Ending::Shutdown,
                (false, false) => Ending::ClientGone,
            };
            end(this.req, *this.status, &mut *this.meter, ending, *this.bytes_sent);
        }
    }
}

/// Scheduler turns a frame may wait for more frames already read from the upstream
/// (measured: one turn is never enough, two catch almost every burst).
const YIELDS_PER_BATCH: u8 = 2;

/// Frames ready at the same time are sent together up to this size.
const MAX_BATCH: usize = 64 * 1024;

/// Frames that were ready together, sent as one. Several are copied once into
/// a buffer of exactly their size: a buffer left over from growing (or the
/// upstream connection's read buffer a frame points into) would stay pinned for
/// as long as a slow client keeps the frame queued.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
    len: usize,
}

impl Batch {
    fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.len += b.len();
        match self.first {
            None => self.first = Some(b),
            Some(_) => self.rest.push(b),
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn emit(&mut self, sent: &mut u64) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let out = match self.first.take() {
            Some(one) if self.rest.is_empty() => one,
            Some(first) => {
                let mut all = BytesMut::with_capacity(self.len);
                all.extend_from_slice(&first);
                for b in self.rest.drain(..) {
                    all.extend_from_slice(&b);
                }
                all.freeze()
            }
            None => Bytes::new(),
        };
        self.len = 0;
        *sent += out.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(out))))
    }
}

/// Time limits of an upstream answer after its headers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// longest silence between two frames
    pub idle: Duration,
    /// the whole answer (`total_ms`), for messages
    pub total: Duration,
    /// when `total` runs out
    pub deadline: Instant,
}

impl Metered {
    pub fn new(
        inner: UpstreamBody,
        first: Option<Bytes>,
        meter: Meter,
        limits: Limits,
        status: u16,
        req: Unfinished,
        shutdown: Arc<Shutdown>,
    ) -> Metered {
        let now = Instant::now();
        Metered {
            inner,
            first,
            meter,
            timer: Box::pin(tokio::time::sleep_until(
                (now + limits.idle).min(limits.deadline),
            )),
            last_frame: now,
            idle: limits.idle,
            total: limits.total,
            deadline: limits.deadline,
            bytes_sent: 0,
            status,
            ended: false,
            batch: Batch::default(),
            yielded: 0,
            failed: None,
            req: Some(req),
            shutdown,
            on_cut: None,
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(first) = this.first.take() {
            // The first frame goes out at once: it is the time to first token.
            if let Some(out) = this.meter.on_frame(first) {
                *this.bytes_sent += out.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        if let Some(e) = this.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if *this.ended {
            end(
                this.req,
                *this.status,
                &mut *this.meter,
                Ending::Complete,
                *this.bytes_sent,
            );
            return Poll::Ready(None);
        }
        if this.shutdown.is_cut() {
            return cut(&mut this);
        }
        loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // The timer is re-armed lazily when it fires, not on every frame.
                    *this.last_frame = Instant::now();
                    *this.yielded = 0;
                    // the whole answer's deadline holds however fast frames come
                    // (a client reading slowly keeps an upstream that is not idle)
                    if *this.last_frame >= *this.deadline {
                        return timed_out(&mut this, true);
                    }
                    match frame.into_data() {
                        Ok(data) => {
                            if let Some(out) = this.meter.on_frame(data) {
                                this.batch.push(out);
                            }
                            if this.batch.len() >= MAX_BATCH {
                                return this.batch.emit(this.bytes_sent);
                            }
                        }
                        Err(other) if this.batch.is_empty() => return Poll::Ready(Some(Ok(other))),
                        // trailers after data: the data goes first, trailers are dropped
                        Err(_) => return this.batch.emit(this.bytes_sent),
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let why = crate::error::error_chain(e.as_ref());
                    end(
                        this.req,
                        *this.status,
                        &mut *this.meter,
                        Ending::UpstreamCut(why),
                        *this.bytes_sent + this.batch.len() as u64,
                    );
                    *this.ended = true;
                    if this.batch.is_empty() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    *this.failed = Some(e);
                    return this.batch.emit(this.bytes_sent);
                }
                Poll::Ready(None) => {
                    *this.ended = true;
                    if let Some(tail) = this.meter.finish() {
                        this.batch.push(tail);
                    }
                    if !this.batch.is_empty() {
                        return this.batch.emit(this.bytes_sent);
                    }
                    end(
                        this.req,
                        *this.status,
                        &mut *this.meter,
                        Ending::Complete,
                        *this.bytes_sent,
                    );
                    return Poll::Ready(None);
                }
                Poll::Pending if !this.batch.is_empty() => {
                    if *this.yielded >= YIELDS_PER_BATCH {
                        *this.yielded = 0;
                        return this.batch.emit(this.bytes_sent);
                    }
                    // Frames the upstream connection has already read reach us one per
                    // scheduler turn or two: give it those turns, then send what came as
                    // one write instead of a write (and a client wake-up) per event.
                    // (tokio's yield defers the wake-up behind the other ready tasks; a
                    // plain self-wake would run this task again first.)
                    *this.yielded += 1;
                    let yield_now = std::pin::pin!(tokio::task::yield_now());
                    let _pending = yield_now.poll(cx);
                    return Poll::Pending;
                }
                Poll::Pending => {
                    if this.on_cut.is_none() {
                        *this.on_cut = Some(this.shutdown.cut_signal());
                        if this.shutdown.is_cut() {
                            return cut(&mut this);
                        }
                    }
                    if let Some(on_cut) = this.on_cut.as_mut() {
                        if on_cut.as_mut().poll(cx).is_ready() {
                            return cut(&mut this);
                        }
                    }
                    loop {
                        ready!(this.timer.as_mut().poll(cx));
                        let next = (*this.last_frame + *this.idle).min(*this.deadline);
                        if next <= Instant::now() {
                            break;
                        }
                        this.timer.as_mut().reset(next);
                    }
                    let total = Instant::now() >= *this.deadline;
                    return timed_out(&mut this, total);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.req.is_none() && self.first.is_none() && self.batch.is_empty() && self.failed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // The meter may cut bytes out of SSE streams: never promise a length for those.
        if self.meter.is_sse() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

/// The upstream went idle (`total` false) or the whole answer ran out of time:
/// the request is settled and recorded, the client gets an error (what was
/// already batched for it is dropped).
fn timed_out(p: &mut MeteredProj<'_>, total: bool) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let (err, ending) = if total {
        (StreamTimeout("total", *p.total), Ending::TotalTimeout)
    } else {
        (StreamTimeout("idle", *p.idle), Ending::IdleTimeout)
    };
    end(p.req, *p.status, &mut *p.meter, ending, *p.bytes_sent);
    *p.ended = true;
    Poll::Ready(Some(Err(Box::new(err))))
}

impl Metered {
    /// Ends the answer from outside while nothing polls it (an HTTP/2 client
    /// that stopped reading, see `stall.rs`): the request is settled and
    /// recorded with `ending`, and the upstream let go.
    pub fn end_now(self: Pin<&mut Self>, ending: Ending) {
        let mut p = self.project();
        end(p.req, *p.status, &mut *p.meter, ending, *p.bytes_sent);
        *p.ended = true;
        *p.first = None;
        *p.batch = Batch::default();
        // polled again, the client gets an error, not a clean end
        *p.failed = Some("the answer was cut: its client stopped reading".into());
        p.inner.set(UpstreamBody::Frames(VecDeque::new()));
    }

    /// When the whole answer must be over (`total_ms`).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// The answer ends here, the gateway is shutting down: what was read goes out, an
/// SSE answer gets a final error event (other answers end with an error, which
/// closes the connection), and the request is settled and recorded.
fn cut(p: &mut MeteredProj<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let sse = p.meter.is_sse();
    let tail = if sse { CUT_EVENT.len() } else { 0 };
    let sent = *p.bytes_sent + (p.batch.len() + tail) as u64;
    end(p.req, *p.status, &mut *p.meter, Ending::Shutdown, sent);
    *p.ended = true;
    if sse {
        p.batch.push(Bytes::from_static(CUT_EVENT));
        return p.batch.emit(p.bytes_sent);
    }
    let e: BoxError = "the gateway is shutting down: the answer was cut".into();
    if p.batch.is_empty() {
        return Poll::Ready(Some(Err(e)));
    }
    *p.failed = Some(e);
    p.batch.emit(p.bytes_sent)
}

/// The one place an answer's request is finished, whatever way it ended.
fn end(
    req: &mut Option<Unfinished>,
    status: u16,
    meter: &mut Meter,
    ending: Ending,
    bytes_sent: u64,
) {
    if let Some(r) = req.take() {
        r.finish(Outcome::Upstream {
            status,
            meter,
            ending,
            bytes_sent,
        });
    }
}
