//! Provider adapters: where a provider lives (base URL per type), how it is
//! authenticated, how its URLs are shaped (OpenAI style or Azure deployments),
//! model mapping and body options. The built-in `mock` answers in-process.

pub mod aws;
pub mod checks;
pub mod gcp;
pub mod mock;
pub mod model_map;
pub mod native;

use crate::config::validate::Problems;
use crate::endpoint::Endpoint;
use crate::protocol::Dialect;
use crate::upstream::{ClientCache as Clients, HttpClient};
use http::{HeaderName, HeaderValue};
use model_map::ModelMap;
use native::{Credentials, Target, UrlError};
use serde_json::value::RawValue;
use shared::config::{ProviderConfig, ProviderType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::upstream::ClientCache;
pub use checks::ActiveCheck;

/// How a provider's URLs and auth look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{base_url}/chat/completions`, `Authorization: Bearer <token>`.
    OpenAi,
    /// `{base_url}/openai/deployments/{model}/chat/completions?api-version=`, `api-key: <token>`.
    Azure,
    /// `{base_url}/messages`, `x-api-key: <token>`, `anthropic-version`.
    Anthropic,
    /// Gemini's native API: `{base_url}/models/{model}:generateContent`,
    /// `x-goog-api-key: <token>`.
    Gemini,
    /// Vertex AI: `{base_url}/projects/{p}/locations/{l}/publishers/{google|anthropic}/models/{model}:{method}`,
    /// OAuth 2.0 access tokens from a service account.
    Vertex,
    /// Amazon Bedrock: `{base_url}/model/{model}/converse[-stream]`, SigV4.
    Bedrock,
    /// Answered in-process by [`mock`].
    Mock,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

pub struct Provider {
    pub id: Arc<str>,
    pub kind: ProviderType,
    pub flavor: Flavor,
    /// Base URL without trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// `host:port` of the base URL, for the access log's `upstream_host`.
    pub host: Arc<str>,
    pub api_version: String,
    tokens: Vec<HeaderValue>,
    /// a fingerprint per token (SHA-256, first 12 hex digits): how shared health
    /// tells tokens apart without storing them
    pub token_ids: Vec<String>,
    token_rr: AtomicUsize,
    pub mapping: ModelMap,
    /// `options`, serialized once: set on every request body (override the client's).
    pub options: Vec<(String, Box<RawValue>)>,
    pub timeouts: Timeouts,
    pub models: Vec<String>,
    /// `max_tokens` of a translated OpenAI chat request that set none
    pub default_max_tokens: u32,
    /// what its error bodies may not pass on (its tokens, account ids)
    pub redactor: crate::redact::Redactor,
    pub client: Option<HttpClient>,
    /// outlier detection from traffic (`passive`)
    pub passive: Option<crate::config::health::Passive>,
    /// probes (`checks.active`)
    pub active: Option<ActiveCheck>,
    /// Upstream URIs that do not depend on the model, parsed once (by endpoint index).
    fixed_uris: Vec<Option<http::Uri>>,
    /// how its requests are authenticated (api tokens, OAuth, SigV4)
    pub credentials: Credentials,
    /// Vertex AI: `/projects/{project}/locations/{location}`
    vertex_path: String,
}

/// The default base URL of each provider type (None = must be configured).
pub fn default_base_url(kind: ProviderType) -> Option<&'static str> {
    use ProviderType::*;
    Some(match kind {
        Openai => "https://api.openai.com/v1",
        Deepseek => "https://api.deepseek.com/v1",
        Anthropic | AnthropicOpenai => "https://api.anthropic.com/v1",
        Gemini => "https://generativelanguage.googleapis.com/v1beta",
        GeminiOpenai => "https://generativelanguage.googleapis.com/v1beta/openai",
        Openrouter => "https://openrouter.ai/api/v1",
        Groq => "https://api.groq.com/openai/v1",
        Mistral => "https://api.mistral.ai/v1",
        Qwen => "https://dashscope.aliyuncs.com/compatible-mode/v1",
        Moonshot => "https://api.moonshot.cn/v1",
        Together => "https://api.together.xyz/v1",
        Xai => "https://api.x.ai/v1",
        Ollama => "http://127.0.0.1:11434/v1",
        Vllm => "http://127.0.0.1:8000/v1",
        // (their hosts name the location or region: `providers/`)
        OpenaiCompatible | AzureOpenai | VertexAi | Bedrock | Mock => return None,
    })
}

fn dialect_of(flavor: Flavor) -> Dialect {
    match flavor {
        Flavor::Azure => Dialect::Azure,
        Flavor::Anthropic => Dialect::Anthropic,
        Flavor::Gemini | Flavor::Vertex => Dialect::Gemini,
        Flavor::Bedrock => Dialect::Bedrock,
        // (the built-in mock answers as OpenAI does)
        Flavor::OpenAi | Flavor::Mock => Dialect::OpenAi,
    }
}

/// Types whose hosted service always needs an API token.
fn needs_token(kind: ProviderType) -> bool {
    use ProviderType::*;
    !matches!(
        kind,
        OpenaiCompatible | Ollama | Vllm | Mock | VertexAi | Bedrock
    )
}

const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";
/// The `anthropic-version` sent when `api_version` is not set.
const ANTHROPIC_DEFAULT_VERSION: &str = "2023-06-01";

impl Provider {
    pub fn build(
        raw: &ProviderConfig,
        key: &str,
        clients: &Clients,
        p: &mut Problems,
    ) -> Option<Provider> {
        let errors_before = p.errors.len();
        if raw.id.is_empty() || raw.id.contains(char::is_whitespace) {
            p.error(
                format!("{key}.id"),
                "must be a non-empty name without spaces",
            );
        }
        let flavor = match raw.kind {
            ProviderType::Mock => Flavor::Mock,
            ProviderType::AzureOpenai => Flavor::Azure,
            ProviderType::Anthropic => Flavor::Anthropic,
            ProviderType::Gemini => Flavor::Gemini,
            ProviderType::VertexAi => Flavor::Vertex,
            ProviderType::Bedrock => Flavor::Bedrock,
            _ => Flavor::OpenAi,
        };
        let t = &raw.timeouts;
        let timeouts = Timeouts {
            connect: Duration::from_millis(t.connect_ms),
            first_byte: Duration::from_millis(t.first_byte_ms),
            idle: Duration::from_millis(t.idle_ms),
            total: Duration::from_millis(t.total_ms),
        };
        let client = (flavor != Flavor::Mock).then(|| clients.get(timeouts.connect));
        let native = native::build(raw, key, flavor, client.as_ref(), &timeouts, p);
        let default_base = default_base_url(raw.kind).or(native.default_base.as_deref());
        let base = match (&raw.base_url, default_base) {
            (Some(b), _) => b.as_str().trim_end_matches('/').to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) if flavor == Flavor::Mock => "mock://local".to_string(),
            (None, None) if native::placed(raw.kind) => String::new(),
            (None, None) => {
                p.error(
                    format!("{key}.base_url"),
                    format!("required for type {:?}", type_name(raw.kind)),
                );
                String::new()
            }
        };
        let mut host = String::new();
        if flavor != Flavor::Mock && !base.is_empty() {
            match base.parse::<http::Uri>() {
                Ok(u)
                    if matches!(u.scheme_str(), Some("http" | "https"))
                        && u.authority().is_some() =>
                {
                    if u.authority().is_some_and(|a| a.as_str().contains('@')) {
                        p.error(
                            format!("{key}.base_url"),
                            "must not carry credentials (user:password@); use api_tokens",
                        );
                    }
                    if u.query().is_some() {
                        p.error(format!("{key}.base_url"), "must not carry a query string");
                    }
                    host = u.authority().map(|a| a.to_string()).unwrap_or_default();
                }
                _ => p.error(format!("{key}.base_url"), "not an http:// or https:// URL"),
            }
        }
        if raw.api_tokens.is_empty() && needs_token(raw.kind) {
            p.error(
                format!("{key}.api_tokens"),
                format!("type {} needs at least one api token", type_name(raw.kind)),
            );
        }
        let mut tokens = Vec::with_capacity(raw.api_tokens.len());
        for (i, t) in raw.api_tokens.iter().enumerate() {
            let value = dialect_of(flavor).token_value(t.as_str());
            match HeaderValue::from_str(&value) {
                Ok(mut v) if !t.is_empty() => {
                    v.set_sensitive(true);
                    tokens.push(v);
                }
                // The message never includes the token itself.
                _ => p.error(
                    format!("{key}.api_tokens[{i}]"),
                    "empty or not a valid header value",
                ),
            }
        }
        let mapping = ModelMap::build(&raw.model_mapping)
            .map_err(|(from, e)| p.error(format!("{key}.model_mapping.{from}"), e))
            .unwrap_or_default();
        if flavor == Flavor::Azure && !mapping.literal_targets().all(valid_deployment) {
            p.error(format!("{key}.model_mapping"), DEPLOYMENT_RULE);
        }
        let mut options = Vec::with_capacity(raw.options.len());
        for (k, v) in &raw.options {
            if k == "model" {
                p.error(
                    format!("{key}.options.model"),
                    "use model_mapping to change the model",
                );
                continue;
            }
            match serde_json::value::to_raw_value(v) {
                Ok(rv) => options.push((k.clone(), rv)),
                Err(e) => p.error(format!("{key}.options.{k}"), e),
            }
        }
        for (name, v) in [
            ("connect_ms", t.connect_ms),
            ("first_byte_ms", t.first_byte_ms),
            ("idle_ms", t.idle_ms),
            ("total_ms", t.total_ms),
        ] {
            if v == 0 {
                p.error(format!("{key}.timeouts.{name}"), "must be greater than 0");
            }
        }
        if t.first_byte_ms > t.total_ms {
            p.error(
                format!("{key}.timeouts.first_byte_ms"),
                "must not be longer than total_ms",
            );
        }
        let passive = checks::passive(raw, key, p);
        let active = checks::active(
            raw,
            key,
            (flavor != Flavor::Mock).then_some(base.as_str()),
            p,
        );
        if p.errors.len() > errors_before {
            return None;
        }
        let mut prov = Provider {
            id: Arc::from(raw.id.as_str()),
            kind: raw.kind,
            flavor,
            base_url: base,
            host: Arc::from(if flavor == Flavor::Mock {
                "mock"
            } else {
                host.as_str()
            }),
            api_version: raw
                .api_version
                .as_ref()
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| match flavor {
                    Flavor::Anthropic => ANTHROPIC_DEFAULT_VERSION.to_string(),
                    _ => AZURE_DEFAULT_API_VERSION.to_string(),
                }),
            token_ids: raw
                .api_tokens
                .iter()
                .map(|t| crate::keys::sha256_hex(t.as_str().as_bytes(), 6))
                .collect(),
            tokens,
            token_rr: AtomicUsize::new(0),
            mapping,
            options,
            timeouts,
            models: raw.models.clone(),
            default_max_tokens: raw.default_max_tokens,
            redactor: crate::redact::Redactor::new(
                raw.api_tokens
                    .iter()
                    .map(|t| t.as_str())
                    .chain(native::secrets(raw)),
            ),
            client,
            passive,
            active,
            fixed_uris: Vec::new(),
            credentials: native.credentials,
            vertex_path: native.vertex_path,
        };
        if flavor != Flavor::Mock {
            for e in Endpoint::ALL {
                let uri = if prov.dialect().model_in_url(e) {
                    None
                } else {
                    match http::Uri::try_from(prov.url(e, "").unwrap_or_default()) {
                        Ok(u) => Some(u),
                        Err(err) => {
                            p.error(
                                format!("{key}.base_url"),
                                format!("does not form a valid URL: {err}"),
                            );
                            return None;
                        }
                    }
                };
                prov.fixed_uris.push(uri);
            }
        }
        Some(prov)
    }

    /// The upstream URI of `call` for upstream model `model`; an error names
    /// what is wrong with a model that cannot be part of the URL, or a call the
    /// provider's API has no counterpart of.
    pub fn uri(&self, call: Target, model: &str) -> Result<http::Uri, UrlError> {
        match self.fixed_uris.get(call.endpoint.index()) {
            Some(Some(u)) => Ok(u.clone()),
            _ => {
                if self.flavor == Flavor::Azure && !valid_deployment(model) {
                    return Err(UrlError::Model(DEPLOYMENT_RULE.to_string()));
                }
                let url = match native::url(
                    self.flavor,
                    &self.base_url,
                    &self.vertex_path,
                    call,
                    model,
                ) {
                    Some(u) => u?,
                    None => self.url(call.endpoint, model)?,
                };
                http::Uri::try_from(url).map_err(|e| UrlError::Model(e.to_string()))
            }
        }
    }

    /// Authenticates an upstream request as the provider wants: api token
    /// `token`'s header, a service account's access token, or a SigV4
    /// signature (last: nothing may change the request after it). The error
    /// says what failed, never a secret.
    pub async fn authorize(
        &self,
        req: &mut http::Request<bytes::Bytes>,
        token: Option<usize>,
    ) -> Result<(), String> {
        match &self.credentials {
            Credentials::Tokens => {
                if let Some((name, value)) = token.and_then(|i| self.token_header(i)) {
                    req.headers_mut().insert(name, value);
                }
                Ok(())
            }
            Credentials::Gcp(source) => {
                let value = source.header().await.map_err(|e| e.to_string())?;
                req.headers_mut().insert(http::header::AUTHORIZATION, value);
                Ok(())
            }
            Credentials::Aws(signer) => signer.sign(req),
        }
    }

    /// The URL of `endpoint` for upstream model `model` (an Azure deployment
    /// name checked by [`valid_deployment`]; a native provider's, not streaming).
    pub fn url(&self, endpoint: Endpoint, model: &str) -> Result<String, UrlError> {
        let call = Target {
            endpoint,
            stream: false,
            batch: false,
        };
        match native::url(self.flavor, &self.base_url, &self.vertex_path, call, model) {
            Some(u) => u,
            None => Ok(self
                .dialect()
                .url(&self.base_url, endpoint, model, &self.api_version)),
        }
    }

    /// The API the provider answers (`protocol/`).
    pub fn dialect(&self) -> Dialect {
        dialect_of(self.flavor)
    }

    /// The API the provider answers a client of `inbound` in for upstream model
    /// `model` (the built-in mock each in its own; Vertex AI answers Claude models in Anthropic's).
    pub fn dialect_for(&self, inbound: crate::protocol::Inbound, model: &str) -> Dialect {
        match self.flavor {
            Flavor::Mock => inbound.native(),
            Flavor::Vertex => native::vertex_dialect(model),
            other => dialect_of(other),
        }
    }

    /// The auth header for the next request: api tokens rotate round-robin.
    pub fn auth_header(&self) -> Option<(HeaderName, HeaderValue)> {
        self.pick_token(|_| true).map(|(_, n, v)| (n, v))
    }

    /// The next token in rotation that `usable` accepts (its index and header);
    /// when none is, the next one anyway (every token ejected: panic mode).
    pub fn pick_token(
        &self,
        usable: impl Fn(usize) -> bool,
    ) -> Option<(usize, HeaderName, HeaderValue)> {
        let n = self.tokens.len();
        if n == 0 {
            return None;
        }
        let start = self.token_rr.fetch_add(1, Ordering::Relaxed);
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| usable(i))
            .unwrap_or(start % n);
        self.token_header(i).map(|(name, v)| (i, name, v))
    }

    /// The auth header of token `i`.
    pub fn token_header(&self, i: usize) -> Option<(HeaderName, HeaderValue)> {
        let v = self.tokens.get(i)?.clone();
        Some((self.dialect().token_header(), v))
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// A built-in mock provider named `id`, for other modules' unit tests.
    #[cfg(test)]
    pub fn mock_for_tests(id: &str) -> Provider {
        let raw = crate::config::parse_text(
            "t",
            &format!("providers:\n  - {{ id: {id}, type: mock }}\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut p = crate::config::validate::test_problems();
        Provider::build(&raw.providers[0], "p", &ClientCache::default(), &mut p)
            .unwrap_or_else(|| panic!("{:?}", p.errors))
    }

    /// Model ids this provider lists for `GET /v1/models`.
    pub fn offered_models(&self) -> impl Iterator<Item = &str> {
        self.models
            .iter()
            .map(String::as_str)
            .chain(self.mapping.exact_names())
    }
}

const DEPLOYMENT_RULE: &str =
    "an Azure deployment name is 1-256 letters, digits, '-', '_' and '.', not only dots";

/// An Azure deployment name that is one path segment and names no other
/// (`.` and `..` would climb out of `/deployments/`).
pub fn valid_deployment(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.bytes().any(|b| b != b'.')
}

/// The provider type as the config spells it.
pub fn type_name(kind: ProviderType) -> &'static str {
    use ProviderType::*;
    match kind {
        Openai => "openai",
        OpenaiCompatible => "openai-compatible",
        AzureOpenai => "azure-openai",
        Deepseek => "deepseek",
        Anthropic => "anthropic",
        AnthropicOpenai => "anthropic-openai",
        Gemini => "gemini",
        GeminiOpenai => "gemini-openai",
        VertexAi => "vertex-ai",
        Bedrock => "bedrock",
        Mock => "mock",
        Openrouter => "openrouter",
        Groq => "groq",
        Mistral => "mistral",
        Qwen => "qwen",
        Moonshot => "moonshot",
        Together => "together",
        Xai => "xai",
        Ollama => "ollama",
        Vllm => "vllm",
    }
}

/// `gen_ai.provider.name`: the OpenTelemetry GenAI well-known value where there is
/// one, else the config's type name.
pub fn gen_ai_name(kind: ProviderType) -> &'static str {
    use ProviderType::*;
    match kind {
        AzureOpenai => "azure.ai.openai",
        Anthropic | AnthropicOpenai => "anthropic",
        Gemini | GeminiOpenai => "gcp.gemini",
        VertexAi => "gcp.vertex_ai",
        Bedrock => "aws.bedrock",
        Mistral => "mistral_ai",
        Xai => "x_ai",
        Qwen => "alibaba.qwen",
        other => type_name(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_text;

    fn target(endpoint: Endpoint) -> Target {
        Target {
            endpoint,
            stream: false,
            batch: false,
        }
    }

    fn provider(yaml: &str) -> Provider {
        let raw = parse_text("t", &format!("providers:\n  - {yaml}\n")).unwrap();
        let mut p = crate::config::validate::test_problems();
        let prov = Provider::build(
            &raw.providers[0],
            "providers[0]",
            &ClientCache::default(),
            &mut p,
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        prov.unwrap()
    }

    #[test]
    fn openai_urls_and_bearer() {
        let p = provider("{ id: o, type: openai, api_tokens: [a, b] }");
        assert_eq!(
            p.url(Endpoint::ChatCompletions, "gpt-4o").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            p.uri(target(Endpoint::Embeddings), "x").unwrap(),
            "https://api.openai.com/v1/embeddings"
        );
        assert_eq!(p.auth_header().unwrap().1, "Bearer a");
        assert_eq!(p.auth_header().unwrap().1, "Bearer b");
        assert_eq!(p.auth_header().unwrap().1, "Bearer a");
        assert_eq!(p.host.as_ref(), "api.openai.com");
    }

    #[test]
    fn azure_deployment_url_and_api_key() {
        let p = provider("{ id: az, type: azure-openai, base_url: \"https://x.openai.azure.com/\", api_version: \"2024-10-21\", api_tokens: [k] }");
        assert_eq!(
            p.uri(target(Endpoint::ChatCompletions), "gpt-4o.v2_x").unwrap(),
            "https://x.openai.azure.com/openai/deployments/gpt-4o.v2_x/chat/completions?api-version=2024-10-21"
        );
        for bad in ["..", ".", "gpt 4o", "a/b", "", "x%2e"] {
            assert!(
                p.uri(target(Endpoint::ChatCompletions), bad).is_err(),
                "{bad:?}"
            );
        }
        let (name, value) = p.auth_header().unwrap();
        assert_eq!(name, "api-key");
        assert_eq!(value, "k");
        assert!(value.is_sensitive());
    }

    #[test]
    fn aliases_have_base_urls() {
        let p = provider("{ id: g, type: groq, api_tokens: [k] }");
        assert_eq!(
            p.url(Endpoint::Embeddings, "m").unwrap(),
            "https://api.groq.com/openai/v1/embeddings"
        );
        let p = provider("{ id: l, type: ollama }");
        assert!(p.auth_header().is_none());
        assert_eq!(type_name(ProviderType::AzureOpenai), "azure-openai");
    }
}
