//! Every response body the gateway sends: its own (errors, the model list) in
//! one piece, or an upstream answer, watched (`stall.rs`) and metered
//! (`stream.rs`).

use crate::upstream::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Every response body the gateway sends.
pub enum ResponseBody {
    Full(Option<Bytes>),
    /// an upstream answer, which `stall.rs` may end
    Upstream(crate::stall::WatchedBody),
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
            ResponseBody::Upstream(w) => Pin::new(w).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.as_ref().is_none_or(|b| b.is_empty()),
            ResponseBody::Upstream(w) => w.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Upstream(w) => w.size_hint(),
        }
    }
}
