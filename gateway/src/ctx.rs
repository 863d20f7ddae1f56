//! The per-request context, in parts: what the client sent ([`Facts`]), who
//! called, the quota holds, the upstream attempts ([`Attempts`]), what the answer
//! showed so far, and where the record goes ([`Sinks`]). Each part changes only
//! through the methods the later phases need; `finish.rs` takes the parts at the
//! end.

use crate::auth::identity::AuthIdentity;
use crate::endpoint::Endpoint;
use crate::health::{InFlight, StreamWatch};
use crate::quota::Held;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::attempt::AttemptRec;
use crate::telemetry::attributes::Collected;
use crate::telemetry::labels::ModelLabels;
use crate::telemetry::trace_context::TraceCtx;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

// (made once: a name given as text is parsed at every lookup)
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

pub struct RequestCtx {
    facts: Facts,
    identity: Option<Arc<AuthIdentity>>,
    quota: Option<Box<Held>>,
    attempts: Attempts,
    answer: AnswerSoFar,
    sinks: Sinks,
    /// the body's share of `server.max_buffered_body_bytes`, given back once the
    /// upstream answered (or at the end)
    body_held: crate::body_read::Held,
}

/// What the client sent: the request line and the headers the record keeps,
/// fixed at the start; what the body and the route match add, set once each.
pub struct Facts {
    pub request_id: HeaderValue,
    pub start: Instant,
    pub start_wall: SystemTime,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub authority: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub x_forwarded_for: Option<HeaderValue>,
    /// the client (the peer, or who a trusted proxy says it serves)
    pub remote: SocketAddr,
    pub endpoint: Option<Endpoint>,
    pub bytes_received: u64,
    pub stream: bool,
    pub request_model: Option<String>,
    pub route: Option<Arc<str>>,
    /// the client's body, kept (refcounted) for estimating prompt tokens if needed
    pub body: Bytes,
}

/// The upstream attempts so far, in order, and what the current one holds.
/// The provider, its host and the model asked of it are read from here.
#[derive(Default)]
pub struct Attempts {
    list: Vec<AttemptRec>,
    /// every instance was ejected (the balancer's panic mode)
    panic_mode: bool,
    /// counts this request at its provider while it runs (`least_busy`)
    inflight: Option<InFlight>,
    /// where a stream that breaks after its headers is reported (passive health)
    stream_health: Option<StreamWatch>,
    /// ms from the start until the answering upstream's response headers
    upstream_service_ms: Option<u64>,
}

/// What the answer showed before its body ends.
#[derive(Default)]
pub struct AnswerSoFar {
    pub first_byte_at: Option<Instant>,
    /// the route's `ai_log` attributes collected so far
    pub attrs: Option<Box<Collected>>,
    /// what the translation of the request for the answering attempt dropped
    pub warning: Option<String>,
}

/// Where the request's record goes, and how its values are bounded.
pub struct Sinks {
    pub log: Arc<AccessLog>,
    /// request metrics, fed from the same record
    pub metrics: Option<Arc<crate::telemetry::metrics::Metrics>>,
    /// OTLP export (`telemetry.otlp`) and the request's trace context
    pub otlp: Option<Otlp>,
    /// `telemetry.value_length_limit`: longer values are cut in every record
    pub value_limit: usize,
    /// the models as metric labels (names the config knows only)
    pub labels: ModelLabels,
    /// counts the request as live until it is settled
    pub live: Option<crate::shutdown::Live>,
    /// the prices of the config the request started on: what it costs when it
    /// is settled, whatever a reload changed meanwhile
    pub pricing: Arc<crate::cost::Pricing>,
    /// where the request's entry in the usage ledger goes
    pub ledger: Option<LedgerSink>,
    /// the last requests and the last hour, for the admin API (None: no admin API)
    pub views: Option<Arc<crate::telemetry::Views>>,
}

/// The usage ledger, as a request's end reaches it.
#[derive(Clone)]
pub struct LedgerSink {
    /// the quota store (the ledger is written with the settlements)
    pub quotas: Arc<crate::quota::Quotas>,
    /// `ledger.retention_days` of the config the request started on
    pub retention_days: u32,
}

/// The parts of a finished request, taken out of its context once.
pub struct Closing<'a> {
    pub facts: &'a Facts,
    pub identity: Option<&'a Arc<AuthIdentity>>,
    pub quota: Option<Box<Held>>,
    pub attempts: Attempts,
    pub answer: AnswerSoFar,
    pub sinks: &'a Sinks,
    pub otlp: Option<Otlp>,
}

impl RequestCtx {
    pub fn new(
        method: Method,
        uri: Uri,
        version: Version,
        headers: &HeaderMap,
        remote: SocketAddr,
        sinks: Sinks,
    ) -> Self {
        let request_id = headers
            .get(crate::headers::X_REQUEST_ID)
            .filter(|v| !v.is_empty() && v.len() <= 200 && v.to_str().is_ok())
            .cloned()
            .unwrap_or_else(new_request_id);
        RequestCtx {
            facts: Facts {
                request_id,
                start: Instant::now(),
                start_wall: SystemTime::now(),
                authority: headers.get(http::header::HOST).cloned(),
                user_agent: headers.get(http::header::USER_AGENT).cloned(),
                x_forwarded_for: headers.get(X_FORWARDED_FOR).cloned(),
                method,
                uri,
                version,
                remote,
                endpoint: None,
                bytes_received: 0,
                stream: false,
                request_model: None,
                route: None,
                body: Bytes::new(),
            },
            identity: None,
            quota: None,
            attempts: Attempts::default(),
            answer: AnswerSoFar::default(),
            sinks,
            body_held: Default::default(),
        }
    }

    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Phase 1: the API the client calls.
    pub fn set_endpoint(&mut self, endpoint: Endpoint) {
        self.facts.endpoint = Some(endpoint);
    }

    /// Phase 3: the body, as read (and its share of the buffered-body budget).
    pub fn set_body(&mut self, body: Bytes, held: crate::body_read::Held) {
        self.facts.bytes_received = body.len() as u64;
        self.facts.body = body;
        self.body_held = held;
    }

    /// Phase 3: the body asks for a stream.
    pub fn set_stream(&mut self, stream: bool) {
        self.facts.stream = stream;
    }

    /// Phase 3: the model the body asks for.
    pub fn set_request_model(&mut self, model: String) {
        self.facts.request_model = Some(model);
    }

    /// The body went upstream: it no longer counts as being buffered (a long
    /// answer would otherwise hold its share to the end).
    pub fn release_body(&mut self) {
        drop(std::mem::take(&mut self.body_held));
    }

    /// Phase 4: the route taken, and the model labels.
    pub fn set_route(&mut self, route: Arc<str>, labels: ModelLabels) {
        self.facts.route = Some(route);
        self.sinks.labels = labels;
    }

    /// The error shape of the API the client called.
    pub fn error_shape(&self) -> crate::error::Shape {
        match self.facts.endpoint {
            Some(e) if e.is_anthropic() => crate::error::Shape::Anthropic,
            _ => crate::error::Shape::OpenAi,
        }
    }

    /// Who called (None: no key checked yet).
    pub fn identity(&self) -> Option<&Arc<AuthIdentity>> {
        self.identity.as_ref()
    }

    /// Where authentication names the caller (also a refused one, for the record).
    pub fn identity_slot(&mut self) -> &mut Option<Arc<AuthIdentity>> {
        &mut self.identity
    }

    /// The quota reservations, once made.
    pub fn quota(&mut self) -> Option<&mut Held> {
        self.quota.as_deref_mut()
    }

    /// Phase 6: the request's quota holds (settled when it finishes).
    pub fn hold_quota(&mut self, held: Held) -> &mut Held {
        self.quota.insert(Box::new(held))
    }

    /// The rate-limit headers the answer carries.
    pub fn quota_headers(&self) -> Option<crate::quota::headers::RateHeaders> {
        self.quota.as_ref().map(|q| q.headers())
    }

    pub fn attempts(&mut self) -> &mut Attempts {
        &mut self.attempts
    }

    pub fn answer(&mut self) -> &mut AnswerSoFar {
        &mut self.answer
    }

    /// The upstream answer's model label (`telemetry::labels`).
    pub fn set_upstream_label(&mut self, label: Option<Arc<str>>) {
        self.sinks.labels.upstream = label;
    }

    /// The request's record goes to OTLP (which reads the answer's finish
    /// reason).
    pub fn exports_otlp(&self) -> bool {
        self.sinks.otlp.is_some()
    }

    /// Upstream calls carry the request's trace context (OTLP traces are on).
    pub fn traced(&self) -> bool {
        self.sinks.otlp.as_ref().is_some_and(|o| o.propagate)
    }

    /// Puts the trace context on an upstream request, the current attempt's span
    /// as its parent (when traces are on).
    pub fn propagate_trace(&self, headers: &mut HeaderMap) {
        if let (Some(o), Some(a)) = (&self.sinks.otlp, self.attempts.list.last()) {
            if o.propagate {
                o.trace.inject(a.span_id, headers);
            }
        }
    }

    /// `telemetry.value_length_limit`
    pub fn value_limit(&self) -> usize {
        self.sinks.value_limit
    }

    /// The host the client addressed (Host header, else the URI's authority), without
    /// port or trailing dot, lowercased (host names are case-insensitive).
    pub fn host(&self) -> Cow<'_, str> {
        host_of(self.facts.authority.as_ref(), &self.facts.uri)
    }

    /// The parts a finished request is recorded from (see `finish.rs`): the
    /// holds, attempts and OTLP export move out, so this happens once.
    pub fn close(&mut self) -> Closing<'_> {
        // the body is no longer buffered, and the provider no longer has the
        // request in flight
        self.release_body();
        self.attempts.inflight = None;
        Closing {
            facts: &self.facts,
            identity: self.identity.as_ref(),
            quota: self.quota.take(),
            attempts: std::mem::take(&mut self.attempts),
            answer: std::mem::take(&mut self.answer),
            otlp: self.sinks.otlp.take(),
            sinks: &self.sinks,
        }
    }
}

impl Attempts {
    /// A new attempt, recorded now so one cut short (the client left) still shows.
    pub fn start(&mut self, rec: AttemptRec) {
        self.list.push(rec);
    }

    /// The attempt under way.
    pub fn current(&mut self) -> Option<&mut AttemptRec> {
        self.list.last_mut()
    }

    pub fn list(&self) -> &[AttemptRec] {
        &self.list
    }

    /// The attempts, moved out (into the OTLP record).
    pub fn take_list(&mut self) -> Vec<AttemptRec> {
        std::mem::take(&mut self.list)
    }

    /// The provider of the last attempt.
    pub fn provider(&self) -> Option<&Arc<str>> {
        self.list.last().map(|a| &a.provider)
    }

    /// The host of the last attempt's provider.
    pub fn upstream_host(&self) -> Option<&Arc<str>> {
        self.list.last().map(|a| &a.host)
    }

    /// The model asked of the upstream, by the last attempt that got that far.
    pub fn model(&self) -> Option<&str> {
        self.list.iter().rev().find_map(|a| a.model.as_deref())
    }

    pub fn set_panic_mode(&mut self) {
        self.panic_mode = true;
    }

    pub fn panic_mode(&self) -> bool {
        self.panic_mode
    }

    /// The current attempt counts at its provider while it runs (None: not counted).
    pub fn set_in_flight(&mut self, inflight: Option<InFlight>) {
        self.inflight = inflight;
    }

    /// The answering upstream's response headers came after `ms`.
    pub fn answered_after(&mut self, ms: u64) {
        self.upstream_service_ms = Some(ms);
    }

    pub fn upstream_service_ms(&self) -> Option<u64> {
        self.upstream_service_ms
    }

    /// Where a break in the answering stream is reported.
    pub fn watch_stream(&mut self, watch: Option<StreamWatch>) {
        self.stream_health = watch;
    }

    pub fn take_stream_watch(&mut self) -> Option<StreamWatch> {
        self.stream_health.take()
    }
}

/// Where the request's OTLP record goes, and what it carries.
pub struct Otlp {
    pub exporter: Arc<crate::telemetry::otlp::Otlp>,
    pub trace: TraceCtx,
    /// traces are on and this trace is sampled: its spans are exported
    pub spans: bool,
    /// traces are on: upstream calls carry the trace context
    pub propagate: bool,
    pub log: bool,
    /// the request is counted in the OTLP metrics
    pub metrics: bool,
}

impl Otlp {
    /// What a request with these headers exports, under `cfg` (None: nothing).
    pub fn for_request(
        exporter: Option<&Arc<crate::telemetry::otlp::Otlp>>,
        cfg: Option<&crate::config::validate::OtlpRt>,
        headers: &HeaderMap,
    ) -> Option<Otlp> {
        let (exporter, o) = (exporter?, cfg?);
        if !(o.traces || o.logs || (o.metrics && exporter.has_metrics())) {
            return None;
        }
        let mut trace = TraceCtx::from_headers(headers, o.sampling_ratio);
        // a client's sampled flag alone does not fill the export queue (nor
        // does its choice of trace id, which `sampling_ratio` is read from)
        if trace.sampled
            && trace.parent.is_some()
            && o.sampling_ratio < 1.0
            && !exporter.honor_client_sampling(o.honor_client)
        {
            trace.sampled = false;
        }
        Some(Otlp {
            exporter: exporter.clone(),
            spans: o.traces && trace.sampled,
            propagate: o.traces,
            log: o.logs,
            metrics: o.metrics,
            trace,
        })
    }
}

/// The host a request addressed (its Host header, else the URI's authority),
/// without port or trailing dot, lowercased (host names are case-insensitive).
pub fn host_of<'a>(host_header: Option<&'a HeaderValue>, uri: &'a Uri) -> Cow<'a, str> {
    let h = host_header
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let h = match h.rfind(':') {
        Some(i) if !h.ends_with(']') => &h[..i],
        _ => h,
    };
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

fn new_request_id() -> HeaderValue {
    let id = uuid::Uuid::new_v4();
    let mut buf = uuid::Uuid::encode_buffer();
    let s = id.as_hyphenated().encode_lower(&mut buf);
    // A hyphenated uuid is always a valid header value.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::AccessLogRt;

    fn ctx(host: &str) -> RequestCtx {
        let log = AccessLog::start(&AccessLogRt {
            enabled: false,
            path: None,
            queue_size: 1,
        })
        .unwrap();
        let sinks = Sinks {
            log,
            metrics: None,
            otlp: None,
            value_limit: usize::MAX,
            labels: Default::default(),
            live: None,
            pricing: Default::default(),
            ledger: None,
            views: None,
        };
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        let uri: Uri = "/v1/models".parse().unwrap();
        RequestCtx::new(
            Method::GET,
            uri,
            Version::HTTP_11,
            &h,
            "127.0.0.1:1".parse().unwrap(),
            sinks,
        )
    }

    #[test]
    fn host_is_normalized() {
        assert_eq!(ctx("API.Example.COM:8443").host(), "api.example.com");
        assert_eq!(ctx("example.com.").host(), "example.com");
        assert_eq!(ctx("[::1]:8080").host(), "[::1]");
        assert!(matches!(ctx("plain.host").host(), Cow::Borrowed(_)));
    }
}
