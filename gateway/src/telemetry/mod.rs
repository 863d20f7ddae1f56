//! What the gateway records about requests: the JSON access log, the
//! route-configured `ai_log` attributes, the request metrics, and OTLP spans and
//! log records with the trace context they continue.

pub mod access_log;
pub mod attempt;
pub mod attributes;
pub mod labels;
pub mod line_json;
pub mod metrics;
pub mod otlp;
pub mod path;
pub mod recent;
pub mod series;
pub mod trace_context;

/// What the admin API shows of this replica's recent traffic (kept only while
/// the admin API is on): the last requests and the last hour's figures.
#[derive(Default)]
pub struct Views {
    pub recent: recent::Recent,
    pub series: series::Series,
}

/// The built-in `ai_log` fields; configured attributes may not take these names.
pub const BUILT_IN: [&str; 27] = [
    "model",
    "request_model",
    "input_token",
    "output_token",
    "total_token",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "llm_first_token_duration",
    "llm_service_duration",
    "response_type",
    "request_type",
    "chat_id",
    "tenant",
    "consumer",
    "key_id",
    "route",
    "provider",
    "upstream",
    "attempts",
    "panic_mode",
    "status",
    "quota_status",
    "quota",
    "error",
    "warning",
];
