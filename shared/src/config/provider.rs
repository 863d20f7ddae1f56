//! `providers[]`: upstream LLM services and how to reach them.

use crate::env::EnvString;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

// ---------------------------------------------------------------- providers

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderType {
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Deepseek,
    /// Anthropic's Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`)
    Anthropic,
    /// Anthropic through its OpenAI-compatible endpoint (`/v1/chat/completions`)
    AnthropicOpenai,
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    /// Added key: `max_tokens` of an OpenAI chat request translated for an
    /// Anthropic provider when the client set neither `max_tokens` nor
    /// `max_completion_tokens` (the Messages API requires it).
    #[serde(default = "d_default_max_tokens")]
    pub default_max_tokens: u32,
}

fn d_default_max_tokens() -> u32 {
    4096
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    #[serde(default)]
    pub active: Option<ActiveCheckConfig>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
