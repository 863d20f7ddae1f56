//! How an upstream response becomes the answer: an error body redacted and put
//! in the client's shape, a successful one held until its first frame (within
//! the first-byte timeout), so a stream that dies before any byte reached the
//! client can still go to another instance; the meter that reads it on its way.

use crate::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::headers;
use crate::meter::{Framing, Meter};
use crate::protocol::Seam;
use crate::providers::Provider;
use crate::stream::Limits;
use crate::upstream::UpstreamBody;
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use shared::config::FallbackOn;
use std::time::{Duration, Instant};

/// What the phases produced: an upstream answer to stream, or the gateway's own.
/// Built once per request and moved straight into the response, so its size is moot.
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    Upstream {
        head: http::response::Parts,
        body: UpstreamBody,
        first: Option<Bytes>,
        meter: Meter,
        limits: Limits,
    },
    Local(Response<Bytes>),
}

/// How an answer is read.
pub struct Reading {
    pub seam: Seam,
    /// the gateway added the usage chunk: the client does not get it
    pub strip_usage: bool,
    /// the client asked for the usage chunk
    pub include_usage: bool,
    /// `server.redact_upstream_errors`
    pub redact: bool,
    /// the upstream model, for an answer translated from an API whose answers
    /// may not name it
    pub model: Option<String>,
    /// the prompt's estimated tokens, for a translated answer that may report none
    pub prompt_estimate: u64,
}

/// Turns an upstream response into an answer. A successful one is held until its
/// first frame (within the first-byte timeout), so a stream that dies before any
/// byte reached the client can still go to another instance.
pub async fn answer(
    resp: Response<UpstreamBody>,
    prov: &Provider,
    ctx: &mut RequestCtx,
    sent: Instant,
    reading: Reading,
) -> Result<Answer, (FallbackOn, GatewayError)> {
    let Reading {
        seam,
        strip_usage,
        include_usage,
        redact,
        model,
        prompt_estimate,
    } = reading;
    let (mut head, mut body) = resp.into_parts();
    let content_type = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // (Bedrock's streams come in AWS eventstream frames: the client gets SSE)
    let framing = match content_type.starts_with("application/vnd.amazon.eventstream") {
        true => Framing::EventStream,
        false => Framing::Sse,
    };
    let sse = content_type.starts_with("text/event-stream") || framing == Framing::EventStream;
    if framing == Framing::EventStream {
        head.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
    }
    headers::clean_response(&mut head.headers);
    let t = &prov.timeouts;
    let deadline = tokio::time::Instant::from_std(sent + t.total);
    let failed = !head.status.is_success();
    let translated = !seam.same_api();
    let error_shape = seam.translates_errors();
    // an error body is read whole to redact it, or to put it in the client's shape
    if failed && (redact || error_shape) {
        let wait = t.first_byte.saturating_sub(sent.elapsed()).max(t.idle);
        // (Bedrock names the error in a header)
        let error_type = head
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let mut text = crate::redact::redacted(&mut head, &mut body, &prov.redactor, wait).await;
        if error_shape {
            text = seam.error(text, head.status.as_u16(), error_type.as_deref());
            head.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        }
        body = UpstreamBody::Frames([text].into());
    }
    // the meter may cut bytes out of the stream, or translate the answer: no
    // length is promised
    if (sse && strip_usage) || (translated && !failed) {
        head.headers.remove(header::CONTENT_LENGTH);
    }
    let mut first = None;
    if head.status.is_success() {
        let left = t.first_byte.saturating_sub(sent.elapsed());
        first = match tokio::time::timeout(left, body.next_data()).await {
            Ok(Some(Ok(b))) => Some(b),
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                let why = crate::error::error_chain(e.as_ref());
                return Err((
                    FallbackOn::ConnectError,
                    GatewayError::upstream_unreachable(&prov.id, why),
                ));
            }
            Err(_) => {
                let what = if sse {
                    "its first event"
                } else {
                    "a response body"
                };
                return Err((
                    FallbackOn::Timeout,
                    GatewayError::upstream_timeout(&prov.id, what, ms(t.first_byte)),
                ));
            }
        };
        ctx.answer().first_byte_at = Some(Instant::now());
    }
    Ok(Answer::Upstream {
        head,
        body,
        first,
        meter: match failed && error_shape {
            // (its body is already the client's)
            true => Meter::passing(seam, sse),
            false => {
                let mut m = Meter::framed(seam, sse, framing, strip_usage, include_usage);
                m.read.model = model;
                m.read.prompt_estimate = prompt_estimate;
                m
            }
        },
        limits: Limits {
            idle: t.idle,
            total: t.total,
            deadline,
        },
    })
}

pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
