//! A batch of finished requests as OTLP export requests, written straight from
//! the records: the SERVER span and a CLIENT span per upstream attempt (GenAI
//! semantic conventions), and the log record. Field numbers are those of the
//! OTLP protos (opentelemetry-proto v1).

use super::send::Signal;
use super::wire::{Open, Pb};
use super::Record;
use crate::telemetry::attempt::AttemptRec;
use serde_json::Value as Json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SPAN_ATTR: u32 = 9;
const EVENT_ATTR: u32 = 3;
const LOG_ATTR: u32 = 6;

const KIND_SERVER: u64 = 2;
const KIND_CLIENT: u64 = 3;
const STATUS_ERROR: u64 = 2;

/// Writes records into the two open export requests (one per signal) as they
/// arrive, so a record is encoded and freed while still in cache; a request is
/// closed when it reaches `max_bytes` or at `finish`, and waits in `ready`.
pub struct Encoder {
    open: [Option<Request>; 2],
    /// closed requests, waiting to be sent: signal, body, spans or log records
    pub ready: Vec<(Signal, bytes::Bytes, u64)>,
    service_name: String,
    /// prefix each request with the gRPC message header
    grpc: bool,
    /// a request takes no more records once it is this large
    max_bytes: usize,
    /// the size of each signal's last request: room for its next one up front
    last_len: [usize; 2],
}

/// An export request being written.
struct Request {
    pb: Pb,
    /// resource_{spans,logs} and scope_{spans,logs}, closed with the request
    outer: [Open; 2],
    /// spans or log records in it
    n: u64,
}

impl Encoder {
    pub fn new(service_name: &str, grpc: bool, max_bytes: usize) -> Encoder {
        Encoder {
            open: [None, None],
            ready: Vec::new(),
            service_name: service_name.to_string(),
            grpc,
            max_bytes,
            last_len: [0; 2],
        }
    }

    /// Writes the record's spans (when sampled) and log record (when on);
    /// `observed`: the log records' observed time.
    pub fn add(&mut self, r: &Record, observed: u64) {
        if r.spans {
            self.write(Signal::Traces, |pb| {
                spans(pb, r);
                1 + r.attempts.len() as u64
            });
        }
        if r.log {
            self.write(Signal::Logs, |pb| {
                pb.msg_sized(2, 2, |pb| log(pb, r, observed));
                1
            });
        }
    }

    /// Closes the open requests: everything added is then in `ready`.
    pub fn finish(&mut self) {
        self.close(Signal::Traces);
        self.close(Signal::Logs);
    }

    /// `item` writes into the signal's open request (opened first if need be)
    /// and says how many spans or log records it wrote.
    fn write(&mut self, signal: Signal, item: impl FnOnce(&mut Pb) -> u64) {
        let i = signal as usize;
        let (last, max, service, grpc) = (
            self.last_len[i],
            self.max_bytes,
            &self.service_name,
            self.grpc,
        );
        let req = self.open[i].get_or_insert_with(|| {
            // room for the whole request up front, as large as the last one:
            // growing it by doubling would copy it about once more
            let room = (last + last / 8).clamp(64 * 1024, max + 64 * 1024);
            Request::new(service, grpc, room)
        });
        req.n += item(&mut req.pb);
        if req.pb.buf.len() >= self.max_bytes {
            self.close(signal);
        }
    }

    fn close(&mut self, signal: Signal) {
        let i = signal as usize;
        let Some(Request { mut pb, outer, n }) = self.open[i].take() else {
            return;
        };
        let [resource, scope] = outer;
        pb.close(scope);
        pb.close(resource);
        let mut buf = pb.buf;
        self.last_len[i] = buf.len();
        if self.grpc {
            let len = u32::try_from(buf.len() - 5).unwrap_or(u32::MAX);
            buf[1..5].copy_from_slice(&len.to_be_bytes());
        }
        // (opened by the first item written into it: never empty)
        self.ready.push((signal, bytes::Bytes::from(buf), n));
    }
}

impl Request {
    /// A new request with room for `room` bytes: the gRPC header's room, the
    /// resource and the scope. The outer messages have the same shape for both
    /// signals: resource_{spans,logs} (1) > resource (1), scope_{spans,logs} (2) >
    /// scope (1) and the items (2).
    fn new(service_name: &str, grpc: bool, room: usize) -> Request {
        let mut pb = Pb {
            buf: Vec::with_capacity(room),
        };
        if grpc {
            // compressed flag and length, filled in by `Encoder::close`
            pb.buf.extend_from_slice(&[0; 5]);
        }
        let resource = pb.open(1, 3);
        pb.msg(1, |pb| {
            attr_str(pb, 1, "service.name", service_name);
            attr_str(pb, 1, "service.version", env!("CARGO_PKG_VERSION"));
            attr_str(pb, 1, "telemetry.sdk.language", "rust");
        });
        let scope = pb.open(2, 3);
        pb.msg(1, |pb| {
            pb.string(1, "ai-gateway");
            pb.string(2, env!("CARGO_PKG_VERSION"));
        });
        Request {
            pb,
            outer: [resource, scope],
            n: 0,
        }
    }
}

/// Now, in nanoseconds since the epoch: a log record's observed time.
pub fn now() -> u64 {
    nanos(SystemTime::now())
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attr_str(pb: &mut Pb, field: u32, key: &str, v: &str) {
    pb.kv_str(field, key, v);
}

fn attr_opt(pb: &mut Pb, field: u32, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        attr_str(pb, field, key, v);
    }
}

fn attr_int(pb: &mut Pb, field: u32, key: &str, v: i64) {
    pb.kv_int(field, key, v);
}

fn attr_u64(pb: &mut Pb, field: u32, key: &str, v: u64) {
    attr_int(pb, field, key, i64::try_from(v).unwrap_or(i64::MAX));
}

fn attr_bool(pb: &mut Pb, field: u32, key: &str, v: bool) {
    pb.kv_bool(field, key, v);
}

fn attr_json(pb: &mut Pb, field: u32, key: &str, v: &Json) {
    pb.msg(field, |pb| {
        pb.string(1, key);
        pb.msg(2, |pb| any(pb, v));
    });
}

/// An AnyValue's body for a JSON value (null: an empty AnyValue).
fn any(pb: &mut Pb, v: &Json) {
    match v {
        Json::Null => {}
        Json::String(s) => pb.string(1, s),
        Json::Bool(b) => pb.varint(2, u64::from(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => pb.varint(3, i as u64),
            None => pb.double(4, n.as_f64().unwrap_or(0.0)),
        },
        Json::Array(a) => pb.msg(5, |pb| {
            for x in a {
                pb.msg(1, |pb| any(pb, x));
            }
        }),
        Json::Object(m) => pb.msg(6, |pb| {
            for (k, x) in m {
                attr_json(pb, 1, k, x);
            }
        }),
    }
}

fn event(pb: &mut Pb, at: u64, name: &str, attrs: impl FnOnce(&mut Pb)) {
    pb.msg(11, |pb| {
        pb.fixed64(1, at);
        pb.string(2, name);
        attrs(pb);
    });
}

/// `error.type`: the gateway's error code, else the HTTP status.
fn error_type(r: &Record) -> String {
    let log = &r.line.ai_log;
    match &log.error {
        Some(e) => e.split(':').next().unwrap_or(e).to_string(),
        None => log.status.to_string(),
    }
}

/// What the answer told: response model and id, usage, finish reasons.
fn answer_attrs(pb: &mut Pb, r: &Record) {
    let log = &r.line.ai_log;
    attr_opt(pb, SPAN_ATTR, "gen_ai.response.model", &log.model);
    attr_opt(pb, SPAN_ATTR, "gen_ai.response.id", &log.chat_id);
    if log.total_token > 0 || log.input_token > 0 {
        attr_u64(pb, SPAN_ATTR, "gen_ai.usage.input_tokens", log.input_token);
        attr_u64(
            pb,
            SPAN_ATTR,
            "gen_ai.usage.output_tokens",
            log.output_token,
        );
    }
    if log.cached_tokens > 0 {
        let key = "gen_ai.usage.cache_read.input_tokens";
        attr_u64(pb, SPAN_ATTR, key, log.cached_tokens);
    }
    if log.cache_creation_tokens > 0 {
        let key = "gen_ai.usage.cache_creation.input_tokens";
        attr_u64(pb, SPAN_ATTR, key, log.cache_creation_tokens);
    }
    if let Some(f) = &r.finish_reason {
        pb.msg(SPAN_ATTR, |pb| {
            pb.string(1, "gen_ai.response.finish_reasons");
            pb.msg(2, |pb| pb.msg(5, |pb| pb.msg(1, |pb| pb.string(1, f))));
        });
    }
}

/// The names of the cost attributes: cost, currency, model, unpriced, estimated.
pub(super) type CostKeys = [&'static str; 5];

/// What the request cost (requests an upstream answered): the cost (exact
/// decimal text), its currency, the model it was priced by, and the flags
/// when set.
pub(super) fn cost_attrs(pb: &mut Pb, field: u32, keys: &CostKeys, log: &shared::ai_log::AiLog) {
    let Some(cost) = &log.cost else {
        return;
    };
    let [cost_key, currency, model, unpriced, estimated] = keys;
    attr_str(pb, field, cost_key, cost);
    attr_opt(pb, field, currency, &log.cost_currency);
    attr_opt(pb, field, model, &log.cost_model);
    if log.cost_unpriced {
        attr_bool(pb, field, unpriced, true);
    }
    if log.cost_estimated {
        attr_bool(pb, field, estimated, true);
    }
}

/// What sets one span apart from the others of its trace.
struct Head<'a> {
    span_id: u64,
    parent: Option<u64>,
    /// the parent is a span outside the gateway
    parent_remote: bool,
    /// the span's name, in parts
    name: &'a [&'a str],
    kind: u64,
    /// start and end, ns since the epoch
    times: (u64, u64),
}

/// The span header fields: ids, flags, name, kind, times.
fn span_head(pb: &mut Pb, r: &Record, h: Head<'_>) {
    let Head {
        span_id,
        parent,
        parent_remote,
        name,
        kind,
        times: (start, end),
    } = h;
    pb.bytes(1, &r.trace.trace_id.to_be_bytes());
    pb.bytes(2, &span_id.to_be_bytes());
    if let Some(ts) = r.trace.tracestate.as_ref().and_then(|v| v.to_str().ok()) {
        pb.string(3, ts);
    }
    if let Some(p) = parent {
        pb.bytes(4, &p.to_be_bytes());
    }
    pb.string_parts(5, name);
    pb.varint(6, kind);
    pb.fixed64(7, start);
    pb.fixed64(8, end);
    // sampled, and whether the parent is remote (HAS_IS_REMOTE | IS_REMOTE)
    let remote = if parent_remote { 0x300 } else { 0x100 };
    pb.fixed32(16, 0x01 | remote);
}

/// `server.address` and `server.port` of a `host[:port]`.
fn server_address(pb: &mut Pb, host_port: &str) {
    match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            attr_str(pb, SPAN_ATTR, "server.address", host);
            if let Ok(p) = port.parse::<u16>() {
                attr_int(pb, SPAN_ATTR, "server.port", i64::from(p));
            }
        }
        _ => attr_str(pb, SPAN_ATTR, "server.address", host_port),
    }
}

fn status_error(pb: &mut Pb, message: &str) {
    pb.msg(15, |pb| {
        pb.string(2, message);
        pb.varint(3, STATUS_ERROR);
    });
}

/// The request's spans, each as a `spans` (2) entry of the ScopeSpans.
fn spans(pb: &mut Pb, r: &Record) {
    let log = &r.line.ai_log;
    let t0 = nanos(r.start);
    let at = |d: Duration| t0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let since = |t: Instant| at(t.saturating_duration_since(r.started));
    let end = at(r.end);
    let failed = log.status >= 400 || log.error.is_some();
    // HTTP server span naming: `{method} {route}`; an unknown path is not a route
    let name: &[&str] = match r.operation {
        "unknown" => &[&r.line.method],
        _ => &[&r.line.method, " ", &r.line.path],
    };
    pb.msg_sized(2, 2, |pb| {
        span_head(
            pb,
            r,
            Head {
                span_id: r.trace.span_id,
                parent: r.trace.parent,
                parent_remote: r.trace.parent.is_some(),
                name,
                kind: KIND_SERVER,
                times: (t0, end),
            },
        );
        let a = SPAN_ATTR;
        attr_str(pb, a, "http.request.method", &r.line.method);
        attr_str(pb, a, "url.path", &r.line.path);
        attr_int(pb, a, "http.response.status_code", i64::from(log.status));
        attr_str(pb, a, "client.address", &r.line.downstream_remote_address);
        if !r.line.authority.is_empty() {
            server_address(pb, &r.line.authority);
        }
        attr_opt(pb, a, "user_agent.original", &r.line.user_agent);
        attr_str(pb, a, "gen_ai.operation.name", r.operation);
        attr_opt(pb, a, "gen_ai.request.model", &log.request_model);
        if let Some(last) = r.attempts.last() {
            attr_str(pb, a, "gen_ai.provider.name", last.system);
        }
        attr_str(pb, a, "gateway.request_id", &r.line.request_id);
        attr_str(pb, a, "gateway.request_type", &log.request_type);
        attr_str(pb, a, "gateway.response_type", &log.response_type);
        attr_opt(pb, a, "gateway.tenant", &log.tenant);
        attr_opt(pb, a, "gateway.consumer", &log.consumer);
        attr_opt(pb, a, "gateway.key_id", &log.key_id);
        attr_opt(pb, a, "gateway.route", &log.route);
        attr_opt(pb, a, "gateway.provider", &log.provider);
        attr_opt(pb, a, "gateway.quota_status", &log.quota_status);
        let keys = [
            "gateway.cost",
            "gateway.cost_currency",
            "gateway.cost_model",
            "gateway.cost_unpriced",
            "gateway.cost_estimated",
        ];
        cost_attrs(pb, a, &keys, log);
        attr_u64(pb, a, "gateway.attempts", log.attempts.len() as u64);
        if log.panic_mode {
            attr_bool(pb, a, "gateway.panic_mode", true);
        }
        if let Some(ms) = log.llm_first_token_duration {
            attr_u64(pb, a, "gateway.llm_first_token_duration", ms);
        }
        answer_attrs(pb, r);
        if failed {
            attr_str(pb, a, "error.type", &error_type(r));
        }
        for (k, v) in &r.span_attrs {
            attr_json(pb, a, k, v);
        }
        if let Some(t) = r.first_token {
            event(pb, at(t), "gen_ai.first_token", |_| {});
        }
        for (i, pair) in r.attempts.windows(2).enumerate() {
            let (prev, next) = (&pair[0], &pair[1]);
            event(pb, since(next.started), "gateway.retry", |pb| {
                attr_u64(pb, EVENT_ATTR, "gateway.retry.attempt", i as u64 + 2);
                let reason = prev.reason.unwrap_or("");
                attr_str(pb, EVENT_ATTR, "gateway.retry.reason", reason);
                attr_str(pb, EVENT_ATTR, "gateway.retry.from", &prev.provider);
                attr_str(pb, EVENT_ATTR, "gen_ai.provider.name", next.system);
            });
        }
        if log.status >= 500 {
            status_error(pb, log.error.as_deref().unwrap_or(""));
        }
    });
    let last = r.attempts.len().saturating_sub(1);
    for (i, a) in r.attempts.iter().enumerate() {
        // the attempt that answered: the last, unless it failed too; it ends
        // with the answer
        let answered = i == last && a.reason.is_none();
        let a_end = match answered {
            true => end,
            false => a.ended.map_or(end, since),
        };
        pb.msg_sized(2, 2, |pb| {
            attempt(
                pb,
                r,
                a,
                (i == last, answered),
                (since(a.started), a_end),
                r.first_token.map(at),
            )
        });
    }
}

/// The CLIENT span of one upstream attempt.
fn attempt(
    pb: &mut Pb,
    r: &Record,
    a: &AttemptRec,
    (last, answered): (bool, bool),
    times: (u64, u64),
    first_token: Option<u64>,
) {
    let log = &r.line.ai_log;
    let model = a
        .model
        .as_deref()
        .or(log.request_model.as_deref())
        .unwrap_or("");
    span_head(
        pb,
        r,
        Head {
            span_id: a.span_id,
            parent: Some(r.trace.span_id),
            parent_remote: false,
            name: &[r.operation, " ", model],
            kind: KIND_CLIENT,
            times,
        },
    );
    let f = SPAN_ATTR;
    attr_str(pb, f, "gen_ai.operation.name", r.operation);
    attr_str(pb, f, "gen_ai.provider.name", a.system);
    if !model.is_empty() {
        attr_str(pb, f, "gen_ai.request.model", model);
    }
    server_address(pb, &a.host);
    attr_str(pb, f, "gateway.provider", &a.provider);
    if let Some(t) = a.token {
        attr_int(pb, f, "gateway.token_index", i64::from(t));
    }
    if let Some(s) = a.status {
        attr_int(pb, f, "http.response.status_code", i64::from(s));
    }
    let reason = a.reason;
    // whether the answer then failed (cut, timeout)
    let broken = answered && log.error.is_some();
    if answered {
        answer_attrs(pb, r);
    }
    match (reason, broken) {
        (Some(reason), _) => attr_str(pb, f, "error.type", reason),
        (None, true) => attr_str(pb, f, "error.type", &error_type(r)),
        _ => {}
    }
    if let (true, Some(t)) = (answered, first_token) {
        event(pb, t, "gen_ai.first_token", |_| {});
    }
    match (reason, broken || (last && log.status >= 500)) {
        (Some(reason), _) => status_error(pb, reason),
        (None, true) => status_error(pb, &error_type(r)),
        _ => {}
    }
}

#[path = "encode_log.rs"]
mod log;
use log::log;

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
