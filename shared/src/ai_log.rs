//! The per-request `ai_log` record and the JSON access-log line that carries it.
//! Field names follow Higress's ai-statistics and access log, so dashboards built
//! for those keep working.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One record per request, errors and rejections included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiLog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_model: Option<String>,
    pub input_token: u64,
    pub output_token: u64,
    pub total_token: u64,
    /// prompt tokens read from the provider's prompt cache (part of `input_token`)
    pub cached_tokens: u64,
    /// prompt tokens written to the provider's prompt cache (part of `input_token`)
    #[serde(default)]
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
    /// true when the token figures are the gateway's estimate.
    pub usage_estimated: bool,
    /// ms from the request's start to the first answer byte/event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_first_token_duration: Option<u64>,
    /// ms from the request's start to the end of the answer.
    pub llm_service_duration: u64,
    /// stream | normal
    pub response_type: String,
    /// ai_chat | ai_stream | ai_embeddings | traditional_http
    pub request_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// every upstream attempt, in order (the last one answered, unless it failed too)
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// every instance was ejected, so they were tried anyway (panic mode)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub panic_mode: bool,
    pub status: u16,
    /// What the request cost, exact decimal text in `cost_currency` (present
    /// for every request an upstream answered: those are in the usage ledger)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_currency: Option<String>,
    /// the model the price was looked up by: the one the gateway asked the
    /// upstream for (the ledger's `model`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_model: Option<String>,
    /// no price is configured for the model: `cost` is 0, not known
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cost_unpriced: bool,
    /// the cost is priced from estimated usage (`usage_estimated`)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_status: Option<String>,
    /// the quota that refused the request (quota_status "limited")
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// Why the request failed, when it did (e.g. `upstream_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the translation to the provider's API dropped (fields with no
    /// counterpart there), e.g. `dropped messages[0].content[1].cache_control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Route-configured attributes (`routes[].ai_log.attributes`).
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// One upstream attempt of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    /// which of the provider's api tokens was used (when it has several)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_index: Option<u32>,
    /// the upstream's HTTP status, when it answered
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// why the attempt failed, as `fallback.on` names it (`http_5xx`, `timeout`,
    /// `connect_error`, `rate_limiting`, ...); absent for the one that answered
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// ms from the attempt's start to the upstream's response headers (or failure)
    pub duration_ms: u64,
}

/// One access-log line: Higress's access-log fields with `ai_log` nested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessLogLine {
    pub start_time: String,
    pub authority: String,
    pub method: String,
    pub path: String,
    pub protocol: String,
    pub request_id: String,
    pub response_code: u16,
    /// total ms from request received to the last answer byte
    pub duration: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub downstream_remote_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_host: Option<String>,
    /// ms the upstream took until its response headers
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_service_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_for: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_name: Option<String>,
    /// Short flags in Envoy's spirit: UF upstream connect failure, UT upstream
    /// timeout, NR no route, DC downstream disconnect, UC upstream cut the stream.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_flags: String,
    pub ai_log: AiLog,
}
