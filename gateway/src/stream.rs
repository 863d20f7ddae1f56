//! Response bodies. Upstream frames are passed to the client as they arrive while a
//! [`Meter`] reads a copy; idle and total timeouts apply between frames; the request's
//! record is finished when the body ends, fails, or is dropped (client gone), so
//! nothing accepted goes unrecorded.

use crate::ctx::{Ending, RequestCtx};
use crate::meter::Meter;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What an upstream answered with: a real HTTP body or the built-in mock's frames.
pub enum UpstreamBody {
    Http(Incoming),
    Frames(VecDeque<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Http(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Frames(f) => Poll::Ready(f.pop_front().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http(b) => b.is_end_stream(),
            UpstreamBody::Frames(f) => f.is_empty(),
        }
    }
}

impl UpstreamBody {
    /// The next data frame (trailers skipped), None at the end.
    pub async fn next_data(&mut self) -> Option<Result<Bytes, BoxError>> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await?;
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

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
    pub struct Metered {
        #[pin]
        inner: UpstreamBody,
        first: Option<Bytes>,
        held: Option<Bytes>,
        meter: Meter,
        timer: Pin<Box<Sleep>>,
        idle: Duration,
        deadline: Instant,
        bytes_sent: u64,
        status: u16,
        ended: bool,
        ctx: Option<Box<RequestCtx>>,
    }

    impl PinnedDrop for Metered {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ctx) = this.ctx.take() {
                // hyper stops polling once a body of known length is sent, so a drop
                // after the last byte is a normal end, not a client that left.
                let complete = this.inner.is_end_stream() && this.first.is_none() && this.held.is_none();
                this.meter.finish();
                let ending = if complete { Ending::Complete } else { Ending::ClientGone };
                ctx.finish_upstream(*this.status, this.meter, ending, *this.bytes_sent);
            }
        }
    }
}

impl Metered {
    pub fn new(
        inner: UpstreamBody,
        first: Option<Bytes>,
        meter: Meter,
        idle: Duration,
        deadline: Instant,
        status: u16,
        ctx: Box<RequestCtx>,
    ) -> Metered {
        let next = (Instant::now() + idle).min(deadline);
        Metered {
            inner,
            first,
            held: None,
            meter,
            timer: Box::pin(tokio::time::sleep_until(next)),
            idle,
            deadline,
            bytes_sent: 0,
            status,
            ended: false,
            ctx: Some(ctx),
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
            if let Some(out) = this.meter.on_frame(first) {
                *this.bytes_sent += out.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        if *this.ended {
            if let Some(tail) = this.held.take() {
                *this.bytes_sent += tail.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            if let Some(ctx) = this.ctx.take() {
                ctx.finish_upstream(*this.status, this.meter, Ending::Complete, *this.bytes_sent);
            }
            return Poll::Ready(None);
        }
        loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let next = (Instant::now() + *this.idle).min(*this.deadline);
                    this.timer.as_mut().reset(next);
                    match frame.into_data() {
                        Ok(data) => {
                            if let Some(out) = this.meter.on_frame(data) {
                                *this.bytes_sent += out.len() as u64;
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                        }
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(ctx) = this.ctx.take() {
                        let why = crate::upstream::error_chain(e.as_ref());
                        ctx.finish_upstream(
                            *this.status,
                            this.meter,
                            Ending::UpstreamCut(why),
                            *this.bytes_sent,
                        );
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    *this.ended = true;
                    *this.held = this.meter.finish();
                    if let Some(tail) = this.held.take() {
                        *this.bytes_sent += tail.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                    if let Some(ctx) = this.ctx.take() {
                        ctx.finish_upstream(
                            *this.status,
                            this.meter,
                            Ending::Complete,
                            *this.bytes_sent,
                        );
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    ready!(this.timer.as_mut().poll(cx));
                    let total = Instant::now() >= *this.deadline;
                    let (what, dur) = if total {
                        ("total", Duration::ZERO)
                    } else {
                        ("idle", *this.idle)
                    };
                    let err = StreamTimeout(what, dur);
                    if let Some(ctx) = this.ctx.take() {
                        let ending = if total {
                            Ending::TotalTimeout
                        } else {
                            Ending::IdleTimeout
                        };
                        ctx.finish_upstream(*this.status, this.meter, ending, *this.bytes_sent);
                    }
                    *this.ended = true;
                    return Poll::Ready(Some(Err(Box::new(err))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ctx.is_none() && self.held.is_none() && self.first.is_none()
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

/// Every response body the gateway sends.
pub enum ResponseBody {
    Full(Option<Bytes>),
    Upstream(Pin<Box<Metered>>),
}

impl ResponseBody {
    pub fn full(b: Bytes) -> ResponseBody {
        ResponseBody::Full(Some(b))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            ResponseBody::Upstream(m) => m.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.as_ref().is_none_or(|b| b.is_empty()),
            ResponseBody::Upstream(m) => m.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Upstream(m) => m.size_hint(),
        }
    }
}
