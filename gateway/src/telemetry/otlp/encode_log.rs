//! The request's OTLP log record, written straight from its access-log line.

use super::*;

/// The request's log record: the access-log line's fields, `ai_log` ones as
/// `ai_log.<name>`, correlated with the request's span.
pub(super) fn log(pb: &mut Pb, r: &Record, observed: u64) {
    let line = &*r.line;
    let ai = &line.ai_log;
    let status = line.response_code;
    let (severity, text) = match status {
        500.. => (17, "ERROR"),
        400..=499 => (13, "WARN"),
        _ => (9, "INFO"),
    };
    let end = nanos(r.start).saturating_add(u64::try_from(r.end.as_nanos()).unwrap_or(u64::MAX));
    pb.fixed64(1, end);
    pb.fixed64(11, observed);
    pb.varint(2, severity);
    pb.string(3, text);
    let mut code = itoa::Buffer::new();
    let code = code.format(status);
    pb.msg(5, |pb| {
        pb.string_parts(1, &[&line.method, " ", &line.path, " ", code])
    });
    let f = LOG_ATTR;
    attr_str(pb, f, "start_time", &line.start_time);
    attr_str(pb, f, "authority", &line.authority);
    attr_str(pb, f, "method", &line.method);
    attr_str(pb, f, "path", &line.path);
    attr_str(pb, f, "protocol", &line.protocol);
    attr_str(pb, f, "request_id", &line.request_id);
    attr_int(pb, f, "response_code", i64::from(status));
    attr_u64(pb, f, "duration", line.duration);
    attr_u64(pb, f, "bytes_received", line.bytes_received);
    attr_u64(pb, f, "bytes_sent", line.bytes_sent);
    attr_str(
        pb,
        f,
        "downstream_remote_address",
        &line.downstream_remote_address,
    );
    attr_opt(pb, f, "upstream_host", &line.upstream_host);
    if let Some(t) = line.upstream_service_time {
        attr_u64(pb, f, "upstream_service_time", t);
    }
    attr_opt(pb, f, "user_agent", &line.user_agent);
    attr_opt(pb, f, "x_forwarded_for", &line.x_forwarded_for);
    attr_opt(pb, f, "route_name", &line.route_name);
    if !line.response_flags.is_empty() {
        attr_str(pb, f, "response_flags", &line.response_flags);
    }
    attr_opt(pb, f, "ai_log.model", &ai.model);
    attr_opt(pb, f, "ai_log.request_model", &ai.request_model);
    attr_u64(pb, f, "ai_log.input_token", ai.input_token);
    attr_u64(pb, f, "ai_log.output_token", ai.output_token);
    attr_u64(pb, f, "ai_log.total_token", ai.total_token);
    attr_u64(pb, f, "ai_log.cached_tokens", ai.cached_tokens);
    attr_u64(
        pb,
        f,
        "ai_log.cache_creation_tokens",
        ai.cache_creation_tokens,
    );
    attr_u64(pb, f, "ai_log.reasoning_tokens", ai.reasoning_tokens);
    attr_bool(pb, f, "ai_log.usage_estimated", ai.usage_estimated);
    if let Some(t) = ai.llm_first_token_duration {
        attr_u64(pb, f, "ai_log.llm_first_token_duration", t);
    }
    attr_u64(
        pb,
        f,
        "ai_log.llm_service_duration",
        ai.llm_service_duration,
    );
    attr_str(pb, f, "ai_log.response_type", &ai.response_type);
    attr_str(pb, f, "ai_log.request_type", &ai.request_type);
    attr_opt(pb, f, "ai_log.chat_id", &ai.chat_id);
    attr_opt(pb, f, "ai_log.tenant", &ai.tenant);
    attr_opt(pb, f, "ai_log.consumer", &ai.consumer);
    attr_opt(pb, f, "ai_log.key_id", &ai.key_id);
    attr_opt(pb, f, "ai_log.route", &ai.route);
    attr_opt(pb, f, "ai_log.provider", &ai.provider);
    attr_opt(pb, f, "ai_log.upstream", &ai.upstream);
    pb.msg_sized(f, 2, |pb| {
        pb.string(1, "ai_log.attempts");
        pb.msg(2, |pb| {
            pb.msg(5, |pb| {
                for a in &ai.attempts {
                    pb.msg(1, |pb| {
                        pb.msg(6, |pb| {
                            attr_str(pb, 1, "provider", &a.provider);
                            if let Some(t) = a.token_index {
                                attr_int(pb, 1, "token_index", i64::from(t));
                            }
                            if let Some(s) = a.status {
                                attr_int(pb, 1, "status", i64::from(s));
                            }
                            attr_opt(pb, 1, "reason", &a.reason);
                            attr_u64(pb, 1, "duration_ms", a.duration_ms);
                        })
                    });
                }
            })
        });
    });
    if ai.panic_mode {
        attr_bool(pb, f, "ai_log.panic_mode", true);
    }
    attr_int(pb, f, "ai_log.status", i64::from(ai.status));
    let keys = [
        "ai_log.cost",
        "ai_log.cost_currency",
        "ai_log.cost_model",
        "ai_log.cost_unpriced",
        "ai_log.cost_estimated",
    ];
    cost_attrs(pb, f, &keys, ai);
    attr_opt(pb, f, "ai_log.quota_status", &ai.quota_status);
    attr_opt(pb, f, "ai_log.quota", &ai.quota);
    attr_opt(pb, f, "ai_log.error", &ai.error);
    attr_opt(pb, f, "ai_log.warning", &ai.warning);
    for (k, v) in &ai.attributes {
        pb.msg(f, |pb| {
            pb.string_parts(1, &["ai_log.", k]);
            pb.msg(2, |pb| any(pb, v));
        });
    }
    if r.linked {
        pb.fixed32(8, u32::from(r.trace.sampled));
        pb.bytes(9, &r.trace.trace_id.to_be_bytes());
        let span = if r.spans {
            Some(r.trace.span_id)
        } else {
            r.trace.parent
        };
        if let Some(s) = span {
            pb.bytes(10, &s.to_be_bytes());
        }
    }
    pb.string(12, "gateway.request");
}
