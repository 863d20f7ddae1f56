//! The config file schema, exactly as `shared/reference-config.yaml` names it.
//! Raw serde structs only (`deny_unknown_fields`); the gateway validates them into
//! runtime types. Defaults here are the documented defaults.

use crate::env::EnvString;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

// ---------------------------------------------------------------- server

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "d_listen")]
    pub listen: EnvString,
    #[serde(default = "d_admin_listen")]
    pub admin_listen: EnvString,
    /// Bearer token for `/admin/*`; absent or empty = admin API off.
    #[serde(default)]
    pub admin_token: Option<EnvString>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    #[serde(default = "d_header_timeout")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "d_grace")]
    pub shutdown_grace_s: u64,
    /// Added key: how often the config file is checked for changes (0 = never).
    #[serde(default = "d_reload_poll")]
    pub config_poll_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: d_listen(),
            admin_listen: d_admin_listen(),
            admin_token: None,
            tls: None,
            max_body_bytes: d_max_body(),
            header_read_timeout_ms: d_header_timeout(),
            shutdown_grace_s: d_grace(),
            config_poll_ms: d_reload_poll(),
        }
    }
}

fn d_listen() -> EnvString {
    "0.0.0.0:8080".into()
}
fn d_admin_listen() -> EnvString {
    "127.0.0.1:8001".into()
}
fn d_max_body() -> u64 {
    10 * 1024 * 1024
}
fn d_header_timeout() -> u64 {
    10_000
}
fn d_grace() -> u64 {
    30
}
fn d_reload_poll() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: EnvString,
    pub key: EnvString,
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub on_redis_error: OnRedisError,
    #[serde(default = "d_one")]
    pub expected_replicas: u32,
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: Backend::Memory,
            redis: None,
            on_redis_error: OnRedisError::FailOpen,
            expected_replicas: 1,
            cache_ttl_ms: d_cache_ttl(),
        }
    }
}

fn d_one() -> u32 {
    1
}
fn d_cache_ttl() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    #[default]
    FailOpen,
    FailClosed,
    Local,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default)]
    pub url: Option<EnvString>,
    #[serde(default)]
    pub cluster_nodes: Option<Vec<EnvString>>,
    #[serde(default = "d_pool")]
    pub pool_size: u32,
    #[serde(default = "d_redis_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "d_prefix")]
    pub key_prefix: String,
}

fn d_pool() -> u32 {
    32
}
fn d_redis_timeout() -> u64 {
    50
}
fn d_prefix() -> String {
    "gw:".to_string()
}

// ---------------------------------------------------------------- auth

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "d_key_headers")]
    pub keys: Vec<String>,
    #[serde(default)]
    pub in_query: bool,
    #[serde(default = "d_consumer_header")]
    pub consumer_header: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            keys: d_key_headers(),
            in_query: false,
            consumer_header: d_consumer_header(),
        }
    }
}

fn d_key_headers() -> Vec<String> {
    vec!["Authorization".into(), "x-api-key".into(), "api-key".into()]
}
fn d_consumer_header() -> String {
    "x-gateway-consumer".into()
}

// ---------------------------------------------------------------- providers

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderType {
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Deepseek,
    Anthropic,
    Gemini,
    Mock,
    Openrouter,
    Groq,
    Mistral,
    Qwen,
    Moonshot,
    Together,
    Xai,
    Ollama,
    Vllm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ProviderType,
    #[serde(default)]
    pub base_url: Option<EnvString>,
    #[serde(default)]
    pub api_version: Option<EnvString>,
    #[serde(default)]
    pub api_tokens: Vec<EnvString>,
    /// request model -> upstream model; order kept, first match wins.
    #[serde(default)]
    pub model_mapping: IndexMap<String, String>,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    #[serde(default)]
    pub checks: Option<ChecksConfig>,
    #[serde(default)]
    pub passive: Option<PassiveConfig>,
    /// Added key: model ids this provider serves, listed by `GET /v1/models`.
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    #[serde(default = "d_connect")]
    pub connect_ms: u64,
    #[serde(default = "d_first_byte")]
    pub first_byte_ms: u64,
    #[serde(default = "d_idle")]
    pub idle_ms: u64,
    #[serde(default = "d_total")]
    pub total_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            connect_ms: d_connect(),
            first_byte_ms: d_first_byte(),
            idle_ms: d_idle(),
            total_ms: d_total(),
        }
    }
}

fn d_connect() -> u64 {
    2000
}
fn d_first_byte() -> u64 {
    30_000
}
fn d_idle() -> u64 {
    60_000
}
fn d_total() -> u64 {
    600_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    #[serde(default)]
    pub active: Option<ActiveCheckConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveCheckConfig {
    #[serde(default = "d_check_path")]
    pub http_path: String,
    #[serde(default = "d_check_interval")]
    pub interval_s: u64,
    #[serde(default = "d_check_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub healthy: HealthyConfig,
    #[serde(default)]
    pub unhealthy: UnhealthyConfig,
}

fn d_check_path() -> String {
    "/models".into()
}
fn d_check_interval() -> u64 {
    5
}
fn d_check_timeout() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthyConfig {
    #[serde(default = "d_two")]
    pub successes: u32,
    #[serde(default = "d_ok_statuses")]
    pub http_statuses: Vec<u16>,
}

impl Default for HealthyConfig {
    fn default() -> Self {
        HealthyConfig {
            successes: 2,
            http_statuses: d_ok_statuses(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnhealthyConfig {
    #[serde(default = "d_three")]
    pub failures: u32,
    #[serde(default = "d_bad_statuses")]
    pub http_statuses: Vec<u16>,
}

impl Default for UnhealthyConfig {
    fn default() -> Self {
        UnhealthyConfig {
            failures: 3,
            http_statuses: d_bad_statuses(),
        }
    }
}

fn d_two() -> u32 {
    2
}
fn d_three() -> u32 {
    3
}
fn d_ok_statuses() -> Vec<u16> {
    vec![200]
}
fn d_bad_statuses() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveConfig {
    #[serde(default = "d_five")]
    pub failures: u32,
    #[serde(default = "d_thirty")]
    pub window_s: u64,
    #[serde(default = "d_thirty")]
    pub ejection_s: u64,
}

fn d_five() -> u32 {
    5
}
fn d_thirty() -> u64 {
    30
}

// ---------------------------------------------------------------- routes

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Default, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAuthConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    #[serde(default = "d_star")]
    pub allowed_tenants: Vec<String>,
    #[serde(default = "d_star")]
    pub allowed_consumers: Vec<String>,
}

fn d_true() -> bool {
    true
}
fn d_star() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub hash_on: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    Roundrobin,
    Chash,
    LeastBusy,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub name: String,
    /// route | tenant | consumer | upstream | ip | header:<name>
    pub by: String,
    pub strategy: QuotaStrategy,
    pub limit: u64,
    /// "1s", "60s", "1m", "1h", "1d"
    pub window: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaStrategy {
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Requests,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiLogConfig {
    #[serde(default)]
    pub attributes: Vec<AttributeConfig>,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    FixedValue,
    RequestHeader,
    RequestBody,
    ResponseHeader,
    ResponseBody,
    ResponseStreamingBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeRule {
    First,
    Replace,
    Append,
}

// ---------------------------------------------------------------- tenants

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default = "d_star")]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    #[serde(default)]
    pub consumers: Vec<ConsumerConfig>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub name: String,
    #[serde(default)]
    pub keys: Vec<EnvString>,
    #[serde(default = "d_star")]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

// ---------------------------------------------------------------- telemetry

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub access_log: AccessLogConfig,
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
    #[serde(default = "d_true")]
    pub prometheus: bool,
    #[serde(default)]
    pub log_payloads: bool,
    #[serde(default = "d_value_limit")]
    pub value_length_limit: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            access_log: AccessLogConfig::default(),
            otlp: None,
            prometheus: true,
            log_payloads: false,
            value_length_limit: d_value_limit(),
        }
    }
}

fn d_value_limit() -> usize {
    4000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    #[serde(default = "d_stdout")]
    pub path: EnvString,
    /// Added key: access-log lines queued before new ones are dropped (and counted).
    #[serde(default = "d_queue")]
    pub queue_size: usize,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            path: d_stdout(),
            queue_size: d_queue(),
        }
    }
}

fn d_stdout() -> EnvString {
    "stdout".into()
}
fn d_queue() -> usize {
    65_536
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    pub endpoint: EnvString,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    #[serde(default = "d_true")]
    pub traces: bool,
    #[serde(default = "d_true")]
    pub logs: bool,
    #[serde(default)]
    pub metrics: bool,
    #[serde(default = "d_ratio")]
    pub sampling_ratio: f64,
    #[serde(default)]
    pub headers: IndexMap<String, EnvString>,
}

fn d_ratio() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    Http,
}
