//! One upstream attempt, the pieces the fallback loop in `pipeline.rs` strings
//! together: its record, its `by: upstream` quotas, what its failure tells
//! shared health, and how its response becomes the answer (held until the first
//! byte, error bodies redacted).

use crate::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::headers;
use crate::health::{Cell, Health};
use crate::meter::Meter;
use crate::providers::Provider;
use crate::quota::{self, Refusal};
use crate::route::Route;
use crate::stream::{Limits, UpstreamBody};
use crate::upstream;
use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use shared::config::FallbackOn;
use std::sync::Arc;
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

pub fn refusal(r: Refusal) -> GatewayError {
    match r {
        Refusal::Limited(e) => e,
        Refusal::Unavailable => GatewayError::quota_unavailable(),
    }
}

/// Why an attempt failed, for `fallback.on`.
pub fn status_reason(status: StatusCode) -> Option<FallbackOn> {
    match status.as_u16() {
        429 => Some(FallbackOn::Http429),
        401 => Some(FallbackOn::Http401),
        402 => Some(FallbackOn::Http402),
        403 => Some(FallbackOn::Http403),
        500..=599 => Some(FallbackOn::Http5xx),
        _ => None,
    }
}

/// The last failure seen, answered when no attempt is left.
pub enum Failure {
    Error(GatewayError),
    Response(Box<Answer>),
}

/// Fills in the current attempt's record.
pub fn close(
    ctx: &mut RequestCtx,
    prov: &Provider,
    token: Option<usize>,
    status: Option<u16>,
    reason: Option<FallbackOn>,
) {
    if let Some(a) = ctx.attempts.last_mut() {
        a.token = token
            .filter(|_| prov.token_count() > 1)
            .and_then(|t| u32::try_from(t).ok());
        a.status = status;
        a.reason = reason.map(FallbackOn::as_str);
        a.ended = Some(Instant::now());
    }
}

/// Tells shared health about a failed attempt: a refused token (401/402/403, and
/// 429, which providers count per key) counts against that token, anything else
/// against the provider.
pub fn report_failure(
    health: &Health,
    cell: &Arc<Cell>,
    prov: &Provider,
    token: Option<usize>,
    reason: FallbackOn,
    status: Option<u16>,
    failure: &Failure,
) {
    let target = match reason {
        FallbackOn::Http429 | FallbackOn::Http401 | FallbackOn::Http402 | FallbackOn::Http403 => {
            cell.token_target(token)
        }
        _ => 0,
    };
    let err = match (status, failure) {
        (Some(s), Failure::Response(_)) => format!("http {s}"),
        (_, Failure::Error(e)) => e.message.clone(),
        (None, Failure::Response(_)) => reason.as_str().to_string(),
    };
    health.failure(cell, target, &err, prov.passive.as_ref());
}

/// Reserves the `by: upstream` quotas that apply to `provider`, if any.
pub async fn reserve_upstream(
    route: &Route,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    provider: &str,
) -> Result<(), Refusal> {
    let Some(held) = ctx.quota.as_mut() else {
        return Ok(());
    };
    let who = ctx.identity.as_deref();
    let who_quotas = who.map_or(&[][..], |w| &w.quotas[..]);
    let claims = quota::spec::claims(
        route.quotas.iter().chain(who_quotas),
        who,
        &route.name,
        ctx.remote.ip(),
        headers,
        Some(provider),
    );
    held.reserve(claims, true).await
}

/// Turns an upstream response into an answer. A successful one is held until its
/// first frame (within the first-byte timeout), so a stream that dies before any
/// byte reached the client can still go to another instance.
pub async fn answer(
    resp: Response<UpstreamBody>,
    prov: &Provider,
    ctx: &mut RequestCtx,
    sent: Instant,
    strip_usage: bool,
    redact: bool,
) -> Result<Answer, (FallbackOn, GatewayError)> {
    let (mut head, mut body) = resp.into_parts();
    let sse = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    headers::clean_response(&mut head.headers);
    let t = &prov.timeouts;
    let deadline = tokio::time::Instant::from_std(sent + t.total);
    if redact && !head.status.is_success() {
        let wait = t.first_byte.saturating_sub(sent.elapsed()).max(t.idle);
        let text = crate::redact::redacted(&mut head, &mut body, &prov.redactor, wait).await;
        body = UpstreamBody::Frames([text].into());
    }
    // the meter may cut bytes out of the stream: no length is promised
    if sse && strip_usage {
        head.headers.remove(header::CONTENT_LENGTH);
    }
    let mut first = None;
    if head.status.is_success() {
        let left = t.first_byte.saturating_sub(sent.elapsed());
        first = match tokio::time::timeout(left, body.next_data()).await {
            Ok(Some(Ok(b))) => Some(b),
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                let why = upstream::error_chain(e.as_ref());
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
        ctx.first_byte_at = Some(Instant::now());
    }
    Ok(Answer::Upstream {
        head,
        body,
        first,
        meter: Meter::new(sse, strip_usage),
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
