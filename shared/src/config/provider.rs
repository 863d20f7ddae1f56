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
    /// Gemini's native API (`generateContent`, `x-goog-api-key`)
    Gemini,
    /// Gemini through its OpenAI-compatibility endpoint (`/v1beta/openai`)
    GeminiOpenai,
    /// Vertex AI: Gemini models natively, Anthropic models with the Messages
    /// body; OAuth 2.0 access tokens from a service account
    VertexAi,
    /// Amazon Bedrock's Converse API, SigV4-signed
    Bedrock,
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
    /// Added key (vertex-ai): the GCP project; default: the service account's
    /// `project_id`.
    #[serde(default)]
    pub project: Option<EnvString>,
    /// Added key (vertex-ai): the Vertex AI location (`us-central1`, `global`, ...).
    #[serde(default)]
    pub location: Option<EnvString>,
    /// Added key (bedrock): the AWS region; default: `AWS_REGION`, then
    /// `AWS_DEFAULT_REGION` from the environment.
    #[serde(default)]
    pub region: Option<EnvString>,
    /// Added key: credentials other than `api_tokens` (`gcp` for vertex-ai,
    /// `aws` for bedrock).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// `AWS_*` from the environment the config was read with (bedrock without
    /// `auth.aws`), taken at parse time like `${NAME}`.
    #[serde(skip, default = "aws_from_env")]
    #[schemars(skip)]
    pub aws_env: AwsEnv,
    /// The service account the environment names (vertex-ai without one in
    /// `auth.gcp`), taken at parse time like `${NAME}`.
    #[serde(skip, default = "gcp_from_env")]
    #[schemars(skip)]
    pub gcp_env: GcpEnv,
}

/// The service account of the environment a config was read with:
/// `GCP_SERVICE_ACCOUNT` (the key file's text), else
/// `GOOGLE_APPLICATION_CREDENTIALS` (a path to it).
#[derive(Debug, Clone, Default)]
pub struct GcpEnv {
    pub service_account_json: Option<EnvString>,
    pub service_account_file: Option<EnvString>,
}

fn gcp_from_env() -> GcpEnv {
    let var = |n: &str| {
        crate::env::lookup(n)
            .filter(|v| !v.is_empty())
            .map(EnvString::new)
    };
    GcpEnv {
        service_account_json: var("GCP_SERVICE_ACCOUNT"),
        service_account_file: var("GOOGLE_APPLICATION_CREDENTIALS"),
    }
}

/// `providers[].auth`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub gcp: Option<GcpAuthConfig>,
    #[serde(default)]
    pub aws: Option<AwsAuthConfig>,
}

/// `providers[].auth.gcp`: a service account, exchanged for OAuth 2.0 access
/// tokens (JWT bearer grant). Without the key here, the environment's
/// `GCP_SERVICE_ACCOUNT` (its text) or `GOOGLE_APPLICATION_CREDENTIALS` (its path).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpAuthConfig {
    /// The service account key file's JSON text (inline or `${ENV}`).
    #[serde(default)]
    pub service_account_json: Option<EnvString>,
    /// A path to the service account key file (instead of the text).
    #[serde(default)]
    pub service_account_file: Option<EnvString>,
    /// Longest time (seconds) an access token is used, whatever its lifetime.
    #[serde(default)]
    pub max_ttl: Option<u64>,
    /// Seconds before its expiry a token is replaced.
    #[serde(default = "d_expire_early")]
    pub expire_early_secs: u64,
    /// The OAuth 2.0 token endpoint; default: the service account's `token_uri`.
    #[serde(default)]
    pub token_url: Option<EnvString>,
    /// OAuth scopes asked for.
    #[serde(default = "d_gcp_scopes")]
    pub scopes: Vec<String>,
}

impl Default for GcpAuthConfig {
    fn default() -> Self {
        GcpAuthConfig {
            service_account_json: None,
            service_account_file: None,
            max_ttl: None,
            expire_early_secs: d_expire_early(),
            token_url: None,
            scopes: d_gcp_scopes(),
        }
    }
}

fn d_expire_early() -> u64 {
    60
}
fn d_gcp_scopes() -> Vec<String> {
    vec!["https://www.googleapis.com/auth/cloud-platform".into()]
}

/// `providers[].auth.aws`: static credentials (default: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` from the environment).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAuthConfig {
    pub access_key_id: EnvString,
    pub secret_access_key: EnvString,
    #[serde(default)]
    pub session_token: Option<EnvString>,
}

/// The `AWS_*` variables of the environment a config was read with.
#[derive(Debug, Clone, Default)]
pub struct AwsEnv {
    pub credentials: Option<AwsAuthConfig>,
    pub region: Option<EnvString>,
}

fn aws_from_env() -> AwsEnv {
    let var = |n: &str| {
        crate::env::lookup(n)
            .filter(|v| !v.is_empty())
            .map(EnvString::new)
    };
    AwsEnv {
        credentials: match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(AwsAuthConfig {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        },
        region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
    }
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
    /// Added key: probe with a minimal generation (one output token) of this
    /// model instead of a GET of `http_path`: what vertex-ai and bedrock need,
    /// whose runtime endpoints have no models call.
    #[serde(default)]
    pub generate: Option<GenerateProbeConfig>,
    #[serde(default = "d_check_interval")]
    pub interval_s: u64,
    #[serde(default = "d_check_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub healthy: HealthyConfig,
    #[serde(default)]
    pub unhealthy: UnhealthyConfig,
}

/// `checks.active.generate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateProbeConfig {
    /// The upstream model probed (not mapped).
    pub model: String,
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
