//! A finished request as OpenTelemetry data: the SERVER span, one CLIENT span per
//! upstream attempt (GenAI semantic conventions), and the log record.

use super::{AttemptSpan, Record};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

/// The request's spans: SERVER first, then its attempts.
pub fn spans(r: &Record, scope: &InstrumentationScope) -> Vec<SpanData> {
    let log = &r.line.ai_log;
    let trace_id = TraceId::from(r.trace.trace_id);
    let server_id = SpanId::from(r.trace.span_id);
    let state = r
        .trace
        .tracestate
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let context =
        |id: SpanId| SpanContext::new(trace_id, id, TraceFlags::SAMPLED, false, state.clone());
    let at = |d: Duration| r.start + d;
    let end = at(r.end);
    let failed = log.status >= 400 || log.error.is_some();

    let mut attrs = vec![
        KeyValue::new("http.request.method", r.line.method.clone()),
        KeyValue::new("url.path", r.line.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(log.status)),
        KeyValue::new("client.address", r.line.downstream_remote_address.clone()),
        KeyValue::new("gen_ai.operation.name", r.operation),
        KeyValue::new("gateway.request_id", r.line.request_id.clone()),
        KeyValue::new("gateway.request_type", log.request_type.clone()),
        KeyValue::new("gateway.response_type", log.response_type.clone()),
    ];
    if !r.line.authority.is_empty() {
        attrs.push(KeyValue::new("server.address", r.line.authority.clone()));
    }
    if let Some(ua) = &r.line.user_agent {
        attrs.push(KeyValue::new("user_agent.original", ua.clone()));
    }
    opt(&mut attrs, "gen_ai.request.model", &log.request_model);
    opt(&mut attrs, "gateway.tenant", &log.tenant);
    opt(&mut attrs, "gateway.consumer", &log.consumer);
    opt(&mut attrs, "gateway.key_id", &log.key_id);
    opt(&mut attrs, "gateway.route", &log.route);
    opt(&mut attrs, "gateway.provider", &log.provider);
    opt(&mut attrs, "gateway.quota_status", &log.quota_status);
    if let Some(a) = r.attempts.last() {
        attrs.push(KeyValue::new("gen_ai.provider.name", a.system));
    }
    attrs.push(KeyValue::new(
        "gateway.attempts",
        i64::try_from(log.attempts.len()).unwrap_or(i64::MAX),
    ));
    if log.panic_mode {
        attrs.push(KeyValue::new("gateway.panic_mode", true));
    }
    if let Some(ms) = log.llm_first_token_duration {
        attrs.push(KeyValue::new(
            "gateway.llm_first_token_duration",
            i64::try_from(ms).unwrap_or(i64::MAX),
        ));
    }
    answer_attrs(&mut attrs, r);
    if failed {
        attrs.push(KeyValue::new("error.type", error_type(r)));
    }
    for (k, v) in &r.span_attrs {
        attrs.push(KeyValue::new(k.clone(), value(v)));
    }

    let mut events = Vec::new();
    if let Some(t) = r.first_token {
        events.push(Event::new("gen_ai.first_token", at(t), Vec::new(), 0));
    }
    for (i, pair) in r.attempts.windows(2).enumerate() {
        let (prev, next) = (&log.attempts[i], &pair[1]);
        events.push(Event::new(
            "gateway.retry",
            at(next.start),
            vec![
                KeyValue::new("gateway.retry.attempt", (i + 2) as i64),
                KeyValue::new(
                    "gateway.retry.reason",
                    prev.reason.clone().unwrap_or_default(),
                ),
                KeyValue::new("gateway.retry.from", prev.provider.clone()),
                KeyValue::new("gen_ai.provider.name", next.system),
            ],
            0,
        ));
    }
    let status = if log.status >= 500 {
        Status::error(log.error.clone().unwrap_or_else(|| log.status.to_string()))
    } else {
        Status::Unset
    };
    // HTTP server span naming: `{method} {route}`; an unknown path is not a route
    let name = match r.operation {
        "unknown" => r.line.method.clone(),
        _ => format!("{} {}", r.line.method, r.line.path),
    };
    let mut out = Vec::with_capacity(1 + r.attempts.len());
    out.push(SpanData {
        span_context: context(server_id),
        parent_span_id: r.trace.parent.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: r.trace.parent.is_some(),
        span_kind: SpanKind::Server,
        name: Cow::Owned(name),
        start_time: r.start,
        end_time: end,
        attributes: attrs,
        dropped_attributes_count: 0,
        events: span_events(events),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    });
    let last = r.attempts.len().saturating_sub(1);
    for (i, a) in r.attempts.iter().enumerate() {
        let rec = log.attempts.get(i);
        let answered = i == last && rec.is_some_and(|x| x.reason.is_none()) && !failed_answer(r);
        out.push(SpanData {
            span_context: context(SpanId::from(a.span_id)),
            parent_span_id: server_id,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Owned(format!(
                "{} {}",
                r.operation,
                a.model
                    .as_deref()
                    .or(log.request_model.as_deref())
                    .unwrap_or("")
            )),
            start_time: at(a.start),
            end_time: a.end.map_or(end, at),
            attributes: attempt_attrs(r, a, rec, i == last),
            dropped_attributes_count: 0,
            events: span_events(match (i == last, r.first_token) {
                (true, Some(t)) => vec![Event::new("gen_ai.first_token", at(t), Vec::new(), 0)],
                _ => Vec::new(),
            }),
            links: SpanLinks::default(),
            status: match (answered, rec.and_then(|x| x.reason.clone())) {
                (false, Some(reason)) => Status::error(reason),
                (false, None) if i == last && log.status >= 500 => Status::error(error_type(r)),
                _ => Status::Unset,
            },
            instrumentation_scope: scope.clone(),
        });
    }
    out
}

/// The upstream answered but the answer failed after its headers (cut, timeout).
fn failed_answer(r: &Record) -> bool {
    r.line.ai_log.error.is_some()
}

fn attempt_attrs(
    r: &Record,
    a: &AttemptSpan,
    rec: Option<&shared::ai_log::Attempt>,
    last: bool,
) -> Vec<KeyValue> {
    let log = &r.line.ai_log;
    let mut attrs = vec![
        KeyValue::new("gen_ai.operation.name", r.operation),
        KeyValue::new("gen_ai.provider.name", a.system),
    ];
    match a.host.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            attrs.push(KeyValue::new("server.address", host.to_string()));
            if let Ok(p) = port.parse::<u16>() {
                attrs.push(KeyValue::new("server.port", i64::from(p)));
            }
        }
        _ => attrs.push(KeyValue::new("server.address", a.host.to_string())),
    }
    match &a.model {
        Some(m) => attrs.push(KeyValue::new("gen_ai.request.model", m.clone())),
        None => opt(&mut attrs, "gen_ai.request.model", &log.request_model),
    }
    if let Some(rec) = rec {
        attrs.push(KeyValue::new("gateway.provider", rec.provider.clone()));
        if let Some(t) = rec.token_index {
            attrs.push(KeyValue::new("gateway.token_index", i64::from(t)));
        }
        if let Some(s) = rec.status {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        if let Some(reason) = &rec.reason {
            attrs.push(KeyValue::new("error.type", reason.clone()));
        }
    }
    if last {
        answer_attrs(&mut attrs, r);
        if rec.is_some_and(|x| x.reason.is_none()) && failed_answer(r) {
            attrs.push(KeyValue::new("error.type", error_type(r)));
        }
    }
    attrs
}

/// What the answer told: response model and id, usage, finish reasons.
fn answer_attrs(attrs: &mut Vec<KeyValue>, r: &Record) {
    let log = &r.line.ai_log;
    opt(attrs, "gen_ai.response.model", &log.model);
    opt(attrs, "gen_ai.response.id", &log.chat_id);
    if log.total_token > 0 || log.input_token > 0 {
        attrs.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            i64::try_from(log.input_token).unwrap_or(i64::MAX),
        ));
        attrs.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            i64::try_from(log.output_token).unwrap_or(i64::MAX),
        ));
    }
    if let Some(f) = &r.finish_reason {
        attrs.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(vec![StringValue::from(f.clone())])),
        ));
    }
}

/// `error.type`: the gateway's error code, else the HTTP status.
fn error_type(r: &Record) -> String {
    let log = &r.line.ai_log;
    match &log.error {
        Some(e) => e.split(':').next().unwrap_or(e).to_string(),
        None => log.status.to_string(),
    }
}

fn opt(attrs: &mut Vec<KeyValue>, key: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        attrs.push(KeyValue::new(key, v.clone()));
    }
}

fn span_events(events: Vec<Event>) -> SpanEvents {
    let mut e = SpanEvents::default();
    e.events = events;
    e
}

/// A span attribute from a JSON value (objects and mixed arrays as JSON text).
fn value(v: &Json) -> Value {
    match v {
        Json::String(s) => Value::from(s.clone()),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::I64(i),
            None => Value::F64(n.as_f64().unwrap_or(0.0)),
        },
        other => Value::from(other.to_string()),
    }
}

/// The request's log record: the access-log line's fields, `ai_log` ones as
/// `ai_log.<name>`, correlated with the request's span.
pub fn log(r: &Record, logger: &SdkLogger) -> SdkLogRecord {
    let mut rec = logger.create_log_record();
    let status = r.line.response_code;
    let (severity, text) = match status {
        500.. => (Severity::Error, "ERROR"),
        400..=499 => (Severity::Warn, "WARN"),
        _ => (Severity::Info, "INFO"),
    };
    rec.set_event_name("gateway.request");
    rec.set_timestamp(r.start + r.end);
    rec.set_observed_timestamp(SystemTime::now());
    rec.set_severity_number(severity);
    rec.set_severity_text(text);
    rec.set_body(AnyValue::from(format!(
        "{} {} {}",
        r.line.method, r.line.path, status
    )));
    let span = if r.spans {
        SpanId::from(r.trace.span_id)
    } else {
        r.trace.parent.map_or(SpanId::INVALID, SpanId::from)
    };
    let flags = if r.trace.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    rec.set_trace_context(TraceId::from(r.trace.trace_id), span, Some(flags));
    if let Ok(Json::Object(line)) = serde_json::to_value(&*r.line) {
        for (k, v) in line {
            match (k.as_str(), v) {
                ("ai_log", Json::Object(ai)) => {
                    for (k, v) in ai {
                        rec.add_attribute(format!("ai_log.{k}"), any(v));
                    }
                }
                (_, v) => rec.add_attribute(k, any(v)),
            }
        }
    }
    rec
}

fn any(v: Json) -> AnyValue {
    match v {
        Json::String(s) => AnyValue::from(s),
        Json::Bool(b) => AnyValue::Boolean(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::Null => AnyValue::from(String::new()),
        Json::Array(a) => AnyValue::ListAny(Box::new(a.into_iter().map(any).collect())),
        Json::Object(m) => AnyValue::Map(Box::new(
            m.into_iter().map(|(k, v)| (k.into(), any(v))).collect(),
        )),
    }
}
