//! The per-request context every phase reads and fills in, and how a request is
//! finished: usage settled (read or estimated) and its one `ai_log` record emitted.

use crate::auth::identity::AuthIdentity;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::meter::Meter;
use crate::request_body::ClientBody;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::otlp::Record;
use crate::telemetry::trace_context::TraceCtx;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use shared::ai_log::{AccessLogLine, AiLog};
use shared::usage::{estimate_tokens, Usage};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub struct RequestCtx {
    pub request_id: HeaderValue,
    pub start: Instant,
    pub start_wall: SystemTime,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub authority: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub x_forwarded_for: Option<HeaderValue>,
    pub remote: SocketAddr,
    pub bytes_received: u64,
    pub endpoint: Option<Endpoint>,
    pub stream: bool,
    pub route: Option<Arc<str>>,
    pub provider: Option<Arc<str>>,
    pub upstream_host: Option<Arc<str>>,
    pub request_model: Option<String>,
    pub model: Option<String>,
    /// the models as metric labels (names the config knows only)
    pub labels: crate::telemetry::labels::ModelLabels,
    /// `telemetry.value_length_limit`: longer values are cut in every record
    pub value_limit: usize,
    /// who called (routes with `auth` enabled)
    pub identity: Option<Arc<AuthIdentity>>,
    /// upstream attempts so far, in order
    pub attempts: Vec<AttemptRec>,
    /// every instance was ejected (the balancer's panic mode)
    pub panic_mode: bool,
    /// counts this request at its provider while it runs (`least_busy`)
    pub inflight: Option<crate::health::InFlight>,
    /// where a stream that breaks after its headers is reported (passive health)
    pub stream_health: Option<crate::health::StreamWatch>,
    /// the route's `ai_log` attributes collected so far
    pub attrs: Option<Box<crate::telemetry::attributes::Collected>>,
    pub upstream_service_ms: Option<u64>,
    pub first_byte_at: Option<Instant>,
    /// quota reservations, settled when the request finishes
    pub quota: Option<Box<crate::quota::Held>>,
    /// the client's body, kept (refcounted) for estimating prompt tokens if needed
    pub body: Bytes,
    /// the body's share of `server.max_buffered_body_bytes`, given back once the
    /// upstream answered (or at the end)
    pub body_held: crate::body_read::Held,
    pub log: Arc<AccessLog>,
    /// request metrics, fed from the same record
    pub metrics: Option<Arc<crate::telemetry::metrics::Metrics>>,
    /// OTLP export (`telemetry.otlp`) and the request's trace context
    pub otlp: Option<Otlp>,
    /// the answer's finish reason, for the spans
    finish_reason: Option<String>,
    /// the record was emitted; otherwise dropping the context emits it
    finished: bool,
    /// counts the request as live until it is settled (dropped after `Drop::drop`)
    pub live: Option<crate::shutdown::Live>,
}

impl Drop for RequestCtx {
    /// A request dropped before any answer was finished (the client went away while
    /// the body was read or the upstream was waited for) is still recorded, as 499
    /// with the `DC` flag; one that shutdown cut off, as 503 with `SD`.
    fn drop(&mut self) {
        if !self.finished {
            let (status, flags, error) = if crate::shutdown::cut_happened() {
                (503, "SD", "gateway_shutdown")
            } else {
                (499, "DC", "client_disconnected")
            };
            self.emit(
                status,
                Usage::default(),
                0,
                flags,
                Some(error.to_string()),
                None,
                None,
            );
        }
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

/// One upstream attempt, as `ai_log.attempts` records it.
pub struct AttemptRec {
    pub provider: Arc<str>,
    /// `gen_ai.provider.name` and `host:port` of the provider, for its span
    pub system: &'static str,
    pub host: Arc<str>,
    /// the attempt's CLIENT span (0 when the request is not traced)
    pub span_id: u64,
    pub started: Instant,
    /// when it failed (or got its response headers); `duration_ms` is
    /// `ended - started`
    pub ended: Option<Instant>,
    /// the model asked of the upstream, kept for the span (traced requests only)
    pub model: Option<String>,
    pub token: Option<u32>,
    pub status: Option<u16>,
    /// the `fallback.on` name of why it failed; None for the one that answered
    pub reason: Option<&'static str>,
}

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

impl RequestCtx {
    pub fn new(
        method: Method,
        uri: Uri,
        version: Version,
        headers: &HeaderMap,
        remote: SocketAddr,
        log: Arc<AccessLog>,
    ) -> Self {
        let request_id = headers
            .get("x-request-id")
            .filter(|v| !v.is_empty() && v.len() <= 200 && v.to_str().is_ok())
            .cloned()
            .unwrap_or_else(new_request_id);
        RequestCtx {
            request_id,
            start: Instant::now(),
            start_wall: SystemTime::now(),
            authority: headers.get(http::header::HOST).cloned(),
            user_agent: headers.get(http::header::USER_AGENT).cloned(),
            x_forwarded_for: headers.get("x-forwarded-for").cloned(),
            method,
            uri,
            version,
            remote,
            bytes_received: 0,
            endpoint: None,
            stream: false,
            route: None,
            provider: None,
            upstream_host: None,
            request_model: None,
            model: None,
            labels: Default::default(),
            value_limit: usize::MAX,
            identity: None,
            attempts: Vec::new(),
            panic_mode: false,
            inflight: None,
            stream_health: None,
            attrs: None,
            upstream_service_ms: None,
            first_byte_at: None,
            quota: None,
            body: Bytes::new(),
            body_held: Default::default(),
            log,
            metrics: None,
            otlp: None,
            finish_reason: None,
            finished: false,
            live: None,
        }
    }

    /// Upstream calls carry the request's trace context (OTLP traces are on).
    pub fn traced(&self) -> bool {
        self.otlp.as_ref().is_some_and(|o| o.propagate)
    }

    /// The host the client addressed (Host header, else the URI's authority), without
    /// port or trailing dot, lowercased (host names are case-insensitive).
    pub fn host(&self) -> Cow<'_, str> {
        host_of(self.authority.as_ref(), &self.uri)
    }

    /// Finishes a request the gateway answered itself (errors, rejections, model list).
    pub fn finish_local(
        mut self: Box<Self>,
        status: u16,
        bytes_sent: u64,
        error: Option<&GatewayError>,
    ) {
        let flags = error.map_or("", |e| e.flag);
        let error = error.map(|e| e.code.to_string());
        self.emit(
            status,
            Usage::default(),
            bytes_sent,
            flags,
            error,
            None,
            None,
        );
    }

    /// Finishes a request answered by an upstream, whatever way the answer ended.
    pub fn finish_upstream(
        mut self: Box<Self>,
        status: u16,
        meter: &mut Meter,
        ending: Ending,
        bytes_sent: u64,
    ) {
        if let Some(c) = meter.capture.take() {
            self.attrs = Some(c);
        }
        let ok = (200..300).contains(&status);
        if let Some(w) = self.stream_health.take() {
            match &ending {
                Ending::UpstreamCut(why) => w.failed(&format!("stream cut: {why}")),
                Ending::IdleTimeout => w.failed("stream idle timeout"),
                _ => {}
            }
        }
        let usage = match meter.usage {
            Some(u) => u,
            None if ok => {
                let prompt = ClientBody::parse(&self.body)
                    .map(|b| b.prompt_bytes())
                    .unwrap_or(0);
                let prompt_tokens = estimate_tokens(prompt);
                let completion_tokens = estimate_tokens(meter.output_bytes);
                Usage {
                    prompt_tokens,
                    completion_tokens,
                    total_tokens: prompt_tokens.saturating_add(completion_tokens),
                    estimated: true,
                    ..Usage::default()
                }
            }
            None => Usage::default(),
        };
        let (flags, error) = match ending {
            Ending::Complete => ("", None),
            Ending::UpstreamCut(why) => ("UC", Some(format!("upstream_cut: {why}"))),
            Ending::IdleTimeout => ("UT", Some("upstream_idle_timeout".to_string())),
            Ending::TotalTimeout => ("UT", Some("upstream_total_timeout".to_string())),
            Ending::ClientGone if meter.done => ("", None),
            Ending::ClientGone => ("DC", Some("client_disconnected".to_string())),
            Ending::Shutdown if meter.done => ("", None),
            Ending::Shutdown => ("SD", Some("gateway_shutdown".to_string())),
        };
        // (the request finishes once: what the meter read is taken, not copied)
        let chat_id = meter.chat_id.take();
        let model = meter.model.take();
        if self.otlp.is_some() {
            self.finish_reason = meter.finish_reason.take().map(|mut r| {
                crate::text::cut(&mut r, self.value_limit);
                r
            });
        }
        self.emit(status, usage, bytes_sent, flags, error, chat_id, model);
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        status: u16,
        usage: Usage,
        bytes_sent: u64,
        flags: &str,
        error: Option<String>,
        chat_id: Option<String>,
        response_model: Option<String>,
    ) {
        // the provider no longer has this request in flight
        self.inflight = None;
        self.finished = true;
        let quota = self.quota.take().map(|mut q| {
            q.finish(&usage);
            (q.status, q.limited_by.take())
        });
        // the record feeds the access log, the metrics and OTLP: built when one wants it
        if !self.log.enabled() && self.metrics.is_none() && self.otlp.is_none() {
            return;
        }
        let now = Instant::now();
        let ms = |t: Instant| {
            u64::try_from(t.duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
        };
        // what a client or an upstream chose is cut like every recorded value
        let limit = self.value_limit;
        let bounded = |mut s: String| {
            crate::text::cut(&mut s, limit);
            s
        };
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .map(|v| bounded(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        };
        let endpoint = self.endpoint;
        let ai_log = AiLog {
            model: response_model.or_else(|| self.model.clone()).map(bounded),
            request_model: self.request_model.clone(),
            input_token: usage.prompt_tokens,
            output_token: usage.completion_tokens,
            total_token: usage.total_tokens,
            cached_tokens: usage.cached_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            usage_estimated: usage.estimated,
            llm_first_token_duration: self.first_byte_at.map(ms),
            llm_service_duration: ms(now),
            response_type: if self.stream { "stream" } else { "normal" }.to_string(),
            request_type: endpoint
                .map_or("traditional_http", |e| e.request_type(self.stream))
                .to_string(),
            chat_id: chat_id.map(bounded),
            tenant: self.identity.as_ref().map(|i| i.tenant.clone()),
            consumer: self.identity.as_ref().map(|i| i.consumer.clone()),
            key_id: self.identity.as_ref().map(|i| i.key_id.clone()),
            route: self.route.as_deref().map(str::to_string),
            provider: self.provider.as_deref().map(str::to_string),
            upstream: self.upstream_host.as_deref().map(str::to_string),
            attempts: self
                .attempts
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
            panic_mode: self.panic_mode,
            status,
            quota_status: quota
                .as_ref()
                .and_then(|q| q.0)
                .map(|s| s.as_str().to_string()),
            quota: quota.and_then(|q| q.1),
            error: error.map(bounded),
            attributes: self.attrs.as_ref().map(|c| c.for_log()).unwrap_or_default(),
        };
        let operation = endpoint.map_or("unknown", |e| e.operation_name());
        if let Some(m) = &self.metrics {
            m.record(&ai_log, operation, &self.labels);
        }
        if let Some(o) = self.otlp.as_ref().filter(|o| o.metrics) {
            o.exporter.record_metrics(&ai_log, operation, &self.labels);
        }
        let otlp = self.otlp.take().filter(|o| o.spans || o.log);
        if !self.log.enabled() && otlp.is_none() {
            return;
        }
        let line = Arc::new(AccessLogLine {
            start_time: humantime::format_rfc3339_millis(self.start_wall).to_string(),
            authority: text(&self.authority).unwrap_or_default(),
            method: self.method.to_string(),
            path: bounded(self.uri.path().to_string()),
            protocol: format!("{:?}", self.version),
            request_id: String::from_utf8_lossy(self.request_id.as_bytes()).into_owned(),
            response_code: status,
            duration: ms(now),
            bytes_received: self.bytes_received,
            bytes_sent,
            downstream_remote_address: self.remote.to_string(),
            upstream_host: self.upstream_host.as_deref().map(str::to_string),
            upstream_service_time: self.upstream_service_ms,
            user_agent: text(&self.user_agent),
            x_forwarded_for: text(&self.x_forwarded_for),
            route_name: self.route.as_deref().map(str::to_string),
            response_flags: flags.to_string(),
            ai_log,
        });
        if let Some(o) = otlp {
            self.export(o, &line, now, operation);
        }
        if self.log.enabled() {
            self.log.send(line);
        }
    }

    /// Queues the OTLP record of the finished request.
    fn export(
        &mut self,
        o: Otlp,
        line: &Arc<AccessLogLine>,
        now: Instant,
        operation: &'static str,
    ) {
        let linked = o.propagate || o.trace.parent.is_some();
        let since = |t: Instant| t.saturating_duration_since(self.start);
        o.exporter.send(Record {
            line: line.clone(),
            trace: o.trace,
            spans: o.spans,
            log: o.log,
            linked,
            start: self.start_wall,
            started: self.start,
            end: since(now),
            first_token: self.first_byte_at.map(since),
            operation,
            // (the record is built last: the attempts move into it)
            attempts: match o.spans {
                true => std::mem::take(&mut self.attempts),
                false => Vec::new(),
            },
            span_attrs: match o.spans {
                true => self
                    .attrs
                    .as_ref()
                    .map(|c| c.for_span())
                    .unwrap_or_default(),
                false => Default::default(),
            },
            finish_reason: self.finish_reason.take(),
        });
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
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        let uri: Uri = "/v1/models".parse().unwrap();
        RequestCtx::new(
            Method::GET,
            uri,
            Version::HTTP_11,
            &h,
            "127.0.0.1:1".parse().unwrap(),
            log,
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
