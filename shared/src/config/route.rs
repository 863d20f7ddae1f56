//! `routes[]`: matching, upstream instances, balancing, fallback, quotas, ai_log attributes.

use super::{d_star, d_true};
use crate::money::Decimal;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- routes

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: RouteMatch,
    #[serde(default)]
    pub auth: Option<RouteAuthConfig>,
    #[serde(default)]
    pub upstreams: Vec<UpstreamRef>,
    #[serde(default)]
    pub balancer: BalancerConfig,
    #[serde(default)]
    pub fallback: FallbackConfig,
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    #[serde(default)]
    pub ai_log: Option<AiLogConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_exact: Option<String>,
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub headers: IndexMap<String, Vec<String>>,
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteAuthConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    #[serde(default = "d_star")]
    pub allowed_tenants: Vec<String>,
    #[serde(default = "d_star")]
    pub allowed_consumers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRef {
    pub provider: String,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "d_weight")]
    pub weight: u32,
}

fn d_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub hash_on: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    Roundrobin,
    Chash,
    LeastBusy,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    #[serde(default = "d_fallback_on")]
    pub on: Vec<FallbackOn>,
    #[serde(default = "d_retries")]
    pub max_retries: u32,
    #[serde(default = "d_within")]
    pub within_ms: u64,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            on: d_fallback_on(),
            max_retries: d_retries(),
            within_ms: d_within(),
        }
    }
}

fn d_fallback_on() -> Vec<FallbackOn> {
    vec![
        FallbackOn::ConnectError,
        FallbackOn::Timeout,
        FallbackOn::Http429,
        FallbackOn::Http5xx,
        FallbackOn::Unhealthy,
        FallbackOn::RateLimiting,
    ]
}
fn d_retries() -> u32 {
    2
}
fn d_within() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FallbackOn {
    #[serde(rename = "http_429")]
    Http429,
    #[serde(rename = "http_5xx")]
    Http5xx,
    #[serde(rename = "http_401")]
    Http401,
    #[serde(rename = "http_402")]
    Http402,
    #[serde(rename = "http_403")]
    Http403,
    RateLimiting,
    Unhealthy,
    ConnectError,
    Timeout,
}

impl FallbackOn {
    /// The config spelling, also used in `ai_log.attempts[].reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackOn::Http429 => "http_429",
            FallbackOn::Http5xx => "http_5xx",
            FallbackOn::Http401 => "http_401",
            FallbackOn::Http402 => "http_402",
            FallbackOn::Http403 => "http_403",
            FallbackOn::RateLimiting => "rate_limiting",
            FallbackOn::Unhealthy => "unhealthy",
            FallbackOn::ConnectError => "connect_error",
            FallbackOn::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub name: String,
    /// route | tenant | consumer | upstream | ip | header:<name>
    pub by: String,
    pub strategy: QuotaStrategy,
    /// a count (tokens, requests), or for `strategy: cost` an amount of the
    /// pricing currency (`12.50`)
    pub limit: Decimal,
    /// sliding: "1s", "60s", "1m", "1h", "1d", "30d"; calendar: "day", "week"
    /// (from Monday), "month", resetting at the boundary in `timezone`
    pub window: String,
    /// IANA time zone a calendar window's boundaries are in (default UTC)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// percentages of the limit (1..=100) at which an alert goes out, once per
    /// calendar period
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaStrategy {
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Requests,
    /// money: the request's cost at the pricing table's prices
    Cost,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AiLogConfig {
    #[serde(default)]
    pub attributes: Vec<AttributeConfig>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    pub key: String,
    pub value_source: ValueSource,
    pub value: String,
    #[serde(default)]
    pub rule: Option<AttributeRule>,
    #[serde(default)]
    pub default_value: Option<String>,
    #[serde(default)]
    pub apply_to_log: bool,
    #[serde(default)]
    pub apply_to_span: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    FixedValue,
    RequestHeader,
    RequestBody,
    ResponseHeader,
    ResponseBody,
    ResponseStreamingBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttributeRule {
    First,
    Replace,
    Append,
}
