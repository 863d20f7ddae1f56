//! The end of every request, reached from one place ([`Unfinished`]): what an
//! upstream answer cost priced once (at the prices the request started with),
//! the quotas settled with what was used (read from the answer, or estimated)
//! and what it cost, the one record built and handed to the access log, the
//! metrics and OTLP.

use crate::cost::Charge;
use crate::ctx::{Closing, RequestCtx};
use crate::error::GatewayError;
use crate::meter::Meter;
use crate::request_body::ClientBody;
use crate::telemetry::otlp::Record;
use http::HeaderValue;
use shared::ai_log::{AccessLogLine, AiLog};
use shared::usage::{estimate_tokens, Usage};
use std::sync::Arc;
use std::time::Instant;

/// How an upstream answer ended.
pub enum Ending {
    Complete,
    UpstreamCut(String),
    IdleTimeout,
    TotalTimeout,
    ClientGone,
    /// cut at shutdown (the grace ran out, or a second signal)
    Shutdown,
}

/// How a request ended, as its record tells it.
pub enum Outcome<'a> {
    /// the gateway answered itself (errors, rejections, the model list)
    Local {
        status: u16,
        bytes_sent: u64,
        error: Option<&'a GatewayError>,
    },
    /// an upstream answered, and its body ended as `ending` says
    Upstream {
        status: u16,
        meter: &'a mut Meter,
        ending: Ending,
        bytes_sent: u64,
    },
    /// dropped before any answer was finished: the client went away while the
    /// body was read or the upstream was waited for, or shutdown cut it off
    Dropped,
}

/// A request that is not finished yet. Finishing it is the only way its
/// quotas are settled and its record emitted; one dropped unfinished is
/// finished as [`Outcome::Dropped`] (recorded as 499 `DC`, or 503 `SD` when
/// shutdown cut it), so nothing accepted goes unrecorded.
pub struct Unfinished {
    ctx: Box<RequestCtx>,
    done: bool,
}

impl Unfinished {
    pub fn new(ctx: Box<RequestCtx>) -> Unfinished {
        Unfinished { ctx, done: false }
    }

    pub fn finish(mut self, outcome: Outcome<'_>) {
        self.done = true;
        finish(&mut self.ctx, outcome);
    }
}

impl std::ops::Deref for Unfinished {
    type Target = RequestCtx;
    fn deref(&self) -> &RequestCtx {
        &self.ctx
    }
}

impl std::ops::DerefMut for Unfinished {
    fn deref_mut(&mut self) -> &mut RequestCtx {
        &mut self.ctx
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.done {
            finish(&mut self.ctx, Outcome::Dropped);
        }
    }
}

/// What the record says besides the context: status, usage, flags.
struct Summary {
    status: u16,
    usage: Usage,
    bytes_sent: u64,
    flags: &'static str,
    error: Option<String>,
    chat_id: Option<String>,
    response_model: Option<String>,
    finish_reason: Option<String>,
    /// what an upstream answer cost (None for every other ending: those are
    /// not charged)
    charge: Option<Charge>,
}

fn finish(ctx: &mut RequestCtx, outcome: Outcome<'_>) {
    let mut c = ctx.close();
    let r = match outcome {
        Outcome::Local {
            status,
            bytes_sent,
            error,
        } => Summary {
            status,
            usage: Usage::default(),
            bytes_sent,
            flags: error.map_or("", |e| e.flag),
            error: error.map(|e| e.code.to_string()),
            chat_id: None,
            response_model: None,
            finish_reason: None,
            charge: None,
        },
        Outcome::Upstream {
            status,
            meter,
            ending,
            bytes_sent,
        } => upstream(&mut c, status, meter, ending, bytes_sent),
        Outcome::Dropped => {
            let (status, flags, error) = if crate::shutdown::cut_happened() {
                (503, "SD", "gateway_shutdown")
            } else {
                (499, "DC", "client_disconnected")
            };
            Summary {
                status,
                usage: Usage::default(),
                bytes_sent: 0,
                flags,
                error: Some(error.to_string()),
                chat_id: None,
                response_model: None,
                finish_reason: None,
                charge: None,
            }
        }
    };
    // what the request cost: into its quotas and the usage ledger
    if let Some((entry, tag)) = r
        .charge
        .as_ref()
        .and_then(|ch| ledger_entry(&c, &r.usage, ch))
    {
        if let Some(l) = &c.sinks.ledger {
            l.quotas.ledger_add(tag, entry);
        }
    }
    if let Some(mut q) = c.quota.take() {
        let spend = crate::quota::spec::Spend {
            usage: r.usage,
            cost: r.charge.as_ref().map_or(0, |ch| ch.cost),
        };
        q.finish(&spend);
        emit(c, r, Some((q.status, q.limited_by.take())));
    } else {
        emit(c, r, None);
    }
}

/// The request's entry in the usage ledger, and the hash tag it belongs
/// under: the tenant's (the route's without one). Its model is the access
/// log's `cost_model` (cut alike), its day the UTC date of its start, so the
/// ledger and `gateway bill` over the access log agree.
fn ledger_entry(
    c: &Closing<'_>,
    usage: &Usage,
    ch: &crate::cost::Charge,
) -> Option<(crate::quota::store::LedgerAdd, String)> {
    let l = c.sinks.ledger.as_ref()?;
    let who = c.identity;
    let mut model = ch.model.clone();
    crate::text::cut(&mut model, c.sinks.value_limit);
    let day = crate::calendar::utc_day(c.facts.start_wall);
    let tag = match (who, c.facts.route.as_deref()) {
        (Some(w), _) => crate::quota::spec::tenant_tag(&w.tenant),
        (None, Some(route)) => crate::quota::spec::route_tag(route),
        (None, None) => return None,
    };
    let now_s = crate::quota::now_ms() / 1000;
    let figures = shared::ledger::Totals {
        requests: 1,
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        cached_tokens: usage.cached_tokens,
        cache_write_tokens: usage.cache_creation_tokens,
        reasoning_tokens: usage.reasoning_tokens,
        cost: ch.cost,
        unpriced_requests: u64::from(ch.unpriced),
        estimated_requests: u64::from(ch.estimated),
    };
    let entry = crate::quota::store::LedgerAdd {
        dims: shared::ledger::Dims {
            tenant: who.map(|w| w.tenant.clone()).unwrap_or_default(),
            consumer: who.map(|w| w.consumer.clone()).unwrap_or_default(),
            model,
            provider: ch.provider.to_string(),
            day,
        },
        figures,
        // the day's hash lives `retention_days` past now (a day's last
        // request keeps it that long after the day)
        expire_at_s: now_s.saturating_add(u64::from(l.retention_days) * 86_400),
    };
    Some((entry, tag))
}

/// An upstream answer's usage (read, or estimated for a 2xx that had none),
/// its flags, and what the meter read.
fn upstream(
    c: &mut Closing<'_>,
    status: u16,
    meter: &mut Meter,
    ending: Ending,
    bytes_sent: u64,
) -> Summary {
    if let Some(capture) = meter.capture.take() {
        c.answer.attrs = Some(capture);
    }
    let ok = (200..300).contains(&status);
    if let Some(w) = c.attempts.take_stream_watch() {
        match &ending {
            Ending::UpstreamCut(why) => w.failed(&format!("stream cut: {why}")),
            Ending::IdleTimeout => w.failed("stream idle timeout"),
            _ => {}
        }
    }
    let uses_tokens = c.facts.endpoint.is_some_and(|e| e.uses_tokens());
    // a stream that ended before its end marker: what usage it reported so far
    // (Anthropic's comes in its first event) is not the final count
    let cut_short = meter.is_sse() && !meter.read.done && !matches!(ending, Ending::Complete);
    let usage = match meter.read.usage {
        Some(u) if uses_tokens && cut_short => at_least_streamed(u, meter.read.output_bytes),
        Some(u) if uses_tokens => u,
        None if ok && uses_tokens => estimate(&c.facts.body, meter.read.output_bytes),
        _ => Usage::default(),
    };
    let (flags, error) = match ending {
        Ending::Complete => ("", None),
        Ending::UpstreamCut(why) => ("UC", Some(format!("upstream_cut: {why}"))),
        Ending::IdleTimeout => ("UT", Some("upstream_idle_timeout".to_string())),
        Ending::TotalTimeout => ("UT", Some("upstream_total_timeout".to_string())),
        Ending::ClientGone if meter.read.done => ("", None),
        Ending::ClientGone => ("DC", Some("client_disconnected".to_string())),
        Ending::Shutdown if meter.read.done => ("", None),
        Ending::Shutdown => ("SD", Some("gateway_shutdown".to_string())),
    };
    let limit = c.sinks.value_limit;
    // priced by the model asked of the upstream, at the provider that answered
    let charge = c.sinks.pricing.charge(
        c.attempts.model().unwrap_or_default().to_string(),
        c.attempts.provider().cloned().unwrap_or_else(|| "".into()),
        &usage,
    );
    Summary {
        status,
        usage,
        bytes_sent,
        flags,
        error,
        // (the request finishes once: what the meter read is taken, not copied)
        chat_id: meter.read.chat_id.take(),
        response_model: meter.read.model.take(),
        finish_reason: match c.otlp.is_some() {
            true => meter.read.finish_reason.take().map(|mut r| {
                crate::text::cut(&mut r, limit);
                r
            }),
            false => None,
        },
        charge: Some(charge),
    }
}

/// The usage of a stream cut before its final figures: what it reported, with
/// the completion at least what was streamed, marked as an estimate.
fn at_least_streamed(mut u: Usage, output_bytes: usize) -> Usage {
    let streamed = estimate_tokens(output_bytes);
    if streamed > u.completion_tokens {
        u.completion_tokens = streamed;
        u.total_tokens = u.prompt_tokens.saturating_add(streamed);
    }
    u.estimated = true;
    u
}

/// The gateway's estimate for an answer that reported no usage.
fn estimate(body: &[u8], output_bytes: usize) -> Usage {
    let prompt = ClientBody::parse(body)
        .map(|b| b.prompt_bytes())
        .unwrap_or(0);
    let prompt_tokens = estimate_tokens(prompt);
    let completion_tokens = estimate_tokens(output_bytes);
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
        estimated: true,
        ..Usage::default()
    }
}

/// `quota_status` and `quota` (which quota limited the request).
type QuotaResult = (Option<crate::quota::Status>, Option<String>);

/// Builds the record (when a sink wants it) and hands it to the metrics, OTLP
/// and the access log.
fn emit(mut c: Closing<'_>, r: Summary, quota: Option<QuotaResult>) {
    let sinks = c.sinks;
    if !sinks.log.enabled() && sinks.metrics.is_none() && c.otlp.is_none() && sinks.views.is_none()
    {
        return;
    }
    let f = c.facts;
    let now = Instant::now();
    let ms = |t: Instant| u64::try_from(t.duration_since(f.start).as_millis()).unwrap_or(u64::MAX);
    // what a client or an upstream chose is cut like every recorded value
    let limit = sinks.value_limit;
    let bounded = |mut s: String| {
        crate::text::cut(&mut s, limit);
        s
    };
    let text = |v: &Option<HeaderValue>| v.as_ref().map(|v| bounded(crate::headers::text(v)));
    let endpoint = f.endpoint;
    let a = &c.attempts;
    let who = c.identity;
    let ai_log = AiLog {
        model: r
            .response_model
            .or_else(|| a.model().map(str::to_string))
            .map(bounded),
        request_model: f.request_model.clone(),
        input_token: r.usage.prompt_tokens,
        output_token: r.usage.completion_tokens,
        total_token: r.usage.total_tokens,
        cached_tokens: r.usage.cached_tokens,
        cache_creation_tokens: r.usage.cache_creation_tokens,
        reasoning_tokens: r.usage.reasoning_tokens,
        usage_estimated: r.usage.estimated,
        llm_first_token_duration: c.answer.first_byte_at.map(ms),
        llm_service_duration: ms(now),
        response_type: if f.stream { "stream" } else { "normal" }.to_string(),
        request_type: endpoint
            .map_or("traditional_http", |e| e.request_type(f.stream))
            .to_string(),
        chat_id: r.chat_id.map(bounded),
        tenant: who.map(|i| i.tenant.clone()),
        consumer: who.map(|i| i.consumer.clone()),
        key_id: who.map(|i| i.key_id.clone()),
        route: f.route.as_deref().map(str::to_string),
        provider: a.provider().map(|p| p.to_string()),
        upstream: a.upstream_host().map(|h| h.to_string()),
        attempts: a
            .list()
            .iter()
            .map(|a| shared::ai_log::Attempt {
                provider: a.provider.to_string(),
                token_index: a.token,
                status: a.status,
                reason: a.reason.map(str::to_string),
                duration_ms: a.ended.map_or(0, |e| {
                    u64::try_from(e.saturating_duration_since(a.started).as_millis())
                        .unwrap_or(u64::MAX)
                }),
            })
            .collect(),
        panic_mode: a.panic_mode(),
        status: r.status,
        cost: r
            .charge
            .as_ref()
            .map(|ch| shared::money::format_nanos(ch.cost)),
        cost_currency: r
            .charge
            .as_ref()
            .map(|_| c.sinks.pricing.currency().to_string()),
        cost_model: r.charge.as_ref().map(|ch| bounded(ch.model.clone())),
        cost_unpriced: r.charge.as_ref().is_some_and(|ch| ch.unpriced),
        cost_estimated: r.charge.as_ref().is_some_and(|ch| ch.estimated),
        quota_status: quota
            .as_ref()
            .and_then(|q| q.0)
            .map(|s| s.as_str().to_string()),
        quota: quota.and_then(|q| q.1),
        error: r.error.map(bounded),
        warning: c.answer.warning.take().map(bounded),
        attributes: c
            .answer
            .attrs
            .as_ref()
            .map(|c| c.for_log())
            .unwrap_or_default(),
    };
    let operation = endpoint.map_or("unknown", |e| e.operation_name());
    if let Some(m) = &sinks.metrics {
        m.record(&ai_log, operation, &sinks.labels);
    }
    if let Some(o) = c.otlp.as_ref().filter(|o| o.metrics) {
        o.exporter.record_metrics(&ai_log, operation, &sinks.labels);
    }
    if let Some(v) = &sinks.views {
        v.series.record(&crate::telemetry::series::Sample {
            status: r.status,
            input_tokens: ai_log.input_token,
            output_tokens: ai_log.output_token,
            cost: r.charge.as_ref().map_or(0, |ch| ch.cost),
            first_token_ms: ai_log.llm_first_token_duration,
            duration_ms: ai_log.llm_service_duration,
        });
    }
    let otlp = c.otlp.take().filter(|o| o.spans || o.log);
    if !sinks.log.enabled() && otlp.is_none() && sinks.views.is_none() {
        return;
    }
    let line = Arc::new(AccessLogLine {
        start_time: rfc3339_millis(f.start_wall),
        authority: text(&f.authority).unwrap_or_default(),
        method: f.method.as_str().to_string(),
        path: bounded(f.uri.path().to_string()),
        protocol: protocol(f.version).to_string(),
        request_id: crate::headers::text(&f.request_id),
        response_code: r.status,
        duration: ms(now),
        bytes_received: f.bytes_received,
        bytes_sent: r.bytes_sent,
        downstream_remote_address: address(f.remote),
        upstream_host: a.upstream_host().map(|h| h.to_string()),
        upstream_service_time: a.upstream_service_ms(),
        user_agent: text(&f.user_agent),
        x_forwarded_for: text(&f.x_forwarded_for),
        route_name: f.route.as_deref().map(str::to_string),
        response_flags: r.flags.to_string(),
        ai_log,
    });
    if let Some(o) = otlp {
        let linked = o.propagate || o.trace.parent.is_some();
        let since = |t: Instant| t.saturating_duration_since(f.start);
        o.exporter.send(Record {
            line: line.clone(),
            trace: o.trace,
            spans: o.spans,
            log: o.log,
            linked,
            start: f.start_wall,
            started: f.start,
            end: since(now),
            first_token: c.answer.first_byte_at.map(since),
            operation,
            // (the record is built last: the attempts move into it)
            attempts: match o.spans {
                true => c.attempts.take_list(),
                false => Vec::new(),
            },
            span_attrs: match o.spans {
                true => c
                    .answer
                    .attrs
                    .as_ref()
                    .map(|c| c.for_span())
                    .unwrap_or_default(),
                false => Default::default(),
            },
            finish_reason: r.finish_reason,
        });
    }
    if let Some(v) = &sinks.views {
        v.recent.push(line.clone());
    }
    if sinks.log.enabled() {
        sinks.log.send(line);
    }
}

/// `2026-12-07T14:11:02.123Z` (into a string of its size: `to_string` would
/// grow one three times)
fn rfc3339_millis(t: std::time::SystemTime) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(24);
    let _ = write!(s, "{}", humantime::format_rfc3339_millis(t));
    s
}

/// The HTTP version as the record names it (`HTTP/1.1`, `HTTP/2.0`).
fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

/// `ip:port`, as `SocketAddr`'s `Display` writes it (an IPv4 address without
/// the formatting machinery).
fn address(a: std::net::SocketAddr) -> String {
    let std::net::SocketAddr::V4(v4) = a else {
        return a.to_string();
    };
    let mut s = String::with_capacity(21);
    let mut n = itoa::Buffer::new();
    for (i, o) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(n.format(o));
    }
    s.push(':');
    s.push_str(n.format(v4.port()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_versions_and_addresses_as_their_formatting_does() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(protocol(v), format!("{v:?}"));
        }
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "255.255.255.255:65535",
            "10.1.22.133:443",
            "[::1]:9",
            "[2001:db8::7]:65535",
        ] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            assert_eq!(address(a), a.to_string());
        }
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_652_662_123);
        assert_eq!(
            rfc3339_millis(t),
            humantime::format_rfc3339_millis(t).to_string()
        );
    }
}
