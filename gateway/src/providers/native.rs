//! The providers with APIs of their own (Gemini, Vertex AI, Amazon Bedrock):
//! their hosts, the URL of each call (model and method are in the path), and
//! their credentials (an API key header, a service account's OAuth 2.0 access
//! tokens, SigV4 signatures). Validated with the rest of the provider.

use super::{aws, gcp, Flavor, Timeouts};
use crate::config::validate::Problems;
use crate::endpoint::Endpoint;
use crate::protocol::Dialect;
use crate::upstream::HttpClient;
use shared::config::{AwsAuthConfig, GcpAuthConfig, ProviderConfig, ProviderType};
use std::sync::Arc;
use std::time::Duration;

/// How requests to a provider are authenticated.
pub enum Credentials {
    /// `api_tokens`, in the dialect's header (rotation, per-token health)
    Tokens,
    /// a service account's access tokens (vertex-ai)
    Gcp(Arc<gcp::TokenSource>),
    /// SigV4 signatures (bedrock)
    Aws(Arc<aws::Signer>),
}

/// What an upstream call is beyond its endpoint: these providers' URLs say
/// whether it streams and (Gemini's embeddings) whether it is a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub endpoint: Endpoint,
    pub stream: bool,
    pub batch: bool,
}

/// Where the location is not configured.
pub const DEFAULT_VERTEX_LOCATION: &str = "us-central1";
/// The longest model id (or inference profile ARN) put in a URL.
const MAX_MODEL_LEN: usize = 2048;

/// The parts of a native provider that are not the common ones.
pub struct Native {
    pub credentials: Credentials,
    /// Vertex AI: `/projects/{project}/locations/{location}`
    pub vertex_path: String,
    /// the default base URL (its host names the location or region)
    pub default_base: Option<String>,
}

/// Reads and checks what `raw` (of flavor `flavor`) needs besides the common
/// keys; `client`: the provider's HTTP client (the token endpoint is reached
/// through it).
pub fn build(
    raw: &ProviderConfig,
    key: &str,
    flavor: Flavor,
    client: Option<&HttpClient>,
    timeouts: &Timeouts,
    p: &mut Problems,
) -> Native {
    misplaced_keys(raw, key, flavor, p);
    let mut native = Native {
        credentials: Credentials::Tokens,
        vertex_path: String::new(),
        default_base: None,
    };
    match flavor {
        Flavor::Vertex => vertex(raw, key, client, timeouts, &mut native, p),
        Flavor::Bedrock => bedrock(raw, key, &mut native, p),
        Flavor::Gemini
            if raw
                .base_url
                .as_ref()
                .is_some_and(|b| b.trim_end_matches('/').ends_with("/openai")) =>
        {
            p.error(
                format!("{key}.base_url"),
                "type gemini speaks Gemini's native API; for the OpenAI-compatibility endpoint use type gemini-openai",
            );
        }
        _ => {}
    }
    native
}

/// Keys that belong to another provider type.
fn misplaced_keys(raw: &ProviderConfig, key: &str, flavor: Flavor, p: &mut Problems) {
    let vertex = flavor == Flavor::Vertex;
    let bedrock = flavor == Flavor::Bedrock;
    let auth = raw.auth.as_ref();
    for (name, set, ok) in [
        ("project", raw.project.is_some(), vertex),
        ("location", raw.location.is_some(), vertex),
        ("auth.gcp", auth.is_some_and(|a| a.gcp.is_some()), vertex),
        ("region", raw.region.is_some(), bedrock),
        ("auth.aws", auth.is_some_and(|a| a.aws.is_some()), bedrock),
    ] {
        if set && !ok {
            let owner = if name.contains("gcp") || name == "project" || name == "location" {
                "vertex-ai"
            } else {
                "bedrock"
            };
            p.error(format!("{key}.{name}"), format!("only for type {owner}"));
        }
    }
    if (vertex || bedrock) && !raw.api_tokens.is_empty() {
        let with = if vertex { "auth.gcp" } else { "auth.aws" };
        p.error(
            format!("{key}.api_tokens"),
            format!("this type authenticates with {with}, not api tokens"),
        );
    }
}

fn vertex(
    raw: &ProviderConfig,
    key: &str,
    client: Option<&HttpClient>,
    timeouts: &Timeouts,
    native: &mut Native,
    p: &mut Problems,
) {
    let gcp_key = format!("{key}.auth.gcp");
    let default = GcpAuthConfig::default();
    let cfg = raw
        .auth
        .as_ref()
        .and_then(|a| a.gcp.as_ref())
        .unwrap_or(&default);
    let env = &raw.gcp_env;
    if cfg.service_account_json.is_some() && cfg.service_account_file.is_some() {
        p.error(
            gcp_key.clone(),
            "set service_account_json or service_account_file, not both",
        );
    }
    // (the environment's only when the config names none; its text first)
    let (json, file) = match (&cfg.service_account_json, &cfg.service_account_file) {
        (None, None) => (&env.service_account_json, &env.service_account_file),
        given => given,
    };
    let text = match (json, file) {
        (Some(json), _) => Some(json.as_str().to_string()),
        (None, Some(path)) => match std::fs::read_to_string(path.as_str()) {
            Ok(t) => Some(t),
            Err(e) => {
                p.error(
                    format!("{gcp_key}.service_account_file"),
                    format!("cannot be read: {}", e.kind()),
                );
                None
            }
        },
        (None, None) => {
            p.error(
                gcp_key.clone(),
                "type vertex-ai needs a service account: service_account_json or service_account_file \
                 (or GCP_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS in the environment)",
            );
            None
        }
    };
    let account = text.and_then(|t| match gcp::ServiceAccount::parse(&t) {
        Ok(a) => Some(a),
        Err(why) => {
            p.error(format!("{gcp_key}.service_account_json"), why);
            None
        }
    });
    if cfg.expire_early_secs > 3_000 {
        p.error(
            format!("{gcp_key}.expire_early_secs"),
            "must be at most 3000 (tokens live an hour)",
        );
    }
    if cfg.max_ttl == Some(0) {
        p.error(format!("{gcp_key}.max_ttl"), "must be at least 1 (seconds)");
    }
    if cfg.scopes.is_empty() {
        p.error(format!("{gcp_key}.scopes"), "must name at least one scope");
    }
    let project = raw
        .project
        .as_ref()
        .map(|s| s.as_str().to_string())
        .or_else(|| {
            account
                .as_ref()
                .and_then(|a| a.project_id().map(str::to_string))
        });
    let location = raw
        .location
        .as_ref()
        .map_or(DEFAULT_VERTEX_LOCATION, |l| l.as_str());
    match project {
        Some(pr) if path_segment(&pr) => {
            native.vertex_path = format!("/projects/{pr}/locations/{location}");
        }
        Some(_) => p.error(
            format!("{key}.project"),
            "a project id is letters, digits, '-', '_' and '.'",
        ),
        None => p.error(
            format!("{key}.project"),
            "required: the service account names no project_id",
        ),
    }
    if !path_segment(location) {
        p.error(
            format!("{key}.location"),
            "a location is letters, digits and '-' (us-central1, europe-west4, global)",
        );
    }
    native.default_base = Some(match location {
        "global" => "https://aiplatform.googleapis.com/v1".to_string(),
        l => format!("https://{l}-aiplatform.googleapis.com/v1"),
    });
    let token_url = cfg
        .token_url
        .as_ref()
        .map(|u| u.as_str().to_string())
        .or_else(|| account.as_ref().map(|a| a.token_url().to_string()))
        .unwrap_or_else(|| gcp::DEFAULT_TOKEN_URL.to_string());
    let token_url = match token_url.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {
            Some(u)
        }
        _ => {
            p.error(
                format!("{gcp_key}.token_url"),
                "not an http:// or https:// URL",
            );
            None
        }
    };
    if let (Some(account), Some(token_url), Some(client)) = (account, token_url, client) {
        let settings = gcp::GcpSettings {
            token_url,
            scopes: cfg.scopes.clone(),
            max_ttl: cfg.max_ttl.map(Duration::from_secs),
            expire_early: Duration::from_secs(cfg.expire_early_secs),
            timeout: timeouts.first_byte,
        };
        native.credentials = Credentials::Gcp(Arc::new(gcp::TokenSource::new(
            account,
            settings,
            client.clone(),
        )));
    }
}

fn bedrock(raw: &ProviderConfig, key: &str, native: &mut Native, p: &mut Problems) {
    let region = raw.region.as_ref().or(raw.aws_env.region.as_ref());
    let region = match region {
        Some(r) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            r.as_str().to_string()
        }
        Some(_) => {
            p.error(
                format!("{key}.region"),
                "an AWS region is letters, digits and '-' (us-east-1)",
            );
            return;
        }
        None => {
            p.error(
                format!("{key}.region"),
                "required for type bedrock (or AWS_REGION in the environment)",
            );
            return;
        }
    };
    native.default_base = Some(format!("https://bedrock-runtime.{region}.amazonaws.com"));
    let from_config = raw.auth.as_ref().and_then(|a| a.aws.as_ref());
    let Some(c) = from_config.or(raw.aws_env.credentials.as_ref()) else {
        p.error(
            format!("{key}.auth.aws"),
            "type bedrock needs credentials: auth.aws, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
        );
        return;
    };
    let AwsAuthConfig {
        access_key_id,
        secret_access_key,
        session_token,
    } = c;
    let k = format!("{key}.auth.aws");
    if access_key_id.is_empty() || secret_access_key.is_empty() {
        p.error(
            k.clone(),
            "access_key_id and secret_access_key must not be empty",
        );
    }
    let creds = aws::AwsCredentials {
        access_key_id: access_key_id.as_str().to_string(),
        secret_access_key: secret_access_key.as_str().to_string(),
        // (empty: `${AWS_SESSION_TOKEN:-}` with long-term keys)
        session_token: session_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(|t| t.as_str().to_string()),
    };
    native.credentials = Credentials::Aws(Arc::new(aws::Signer::new(creds, region, "bedrock")));
}

/// Secrets of `raw` besides its api tokens, which its error bodies may not
/// pass on (the AWS secret key and session token).
pub fn secrets(raw: &ProviderConfig) -> Vec<&str> {
    let aws = raw.auth.as_ref().and_then(|a| a.aws.as_ref());
    let aws = aws.or(raw.aws_env.credentials.as_ref());
    aws.into_iter()
        .flat_map(|c| [Some(&c.secret_access_key), c.session_token.as_ref()])
        .flatten()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A name that is one URL path segment as it is (no encoding needed).
fn path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
        && s.bytes().any(|b| b != b'.')
}

/// Vertex AI serves `model` through Anthropic's Messages API (Claude), not
/// Gemini's.
pub fn vertex_anthropic(model: &str) -> bool {
    model.starts_with("claude")
}

/// Why no upstream URL can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// the model cannot be part of the URL
    Model(String),
    /// the provider's API has no counterpart of the call
    Unserved(String),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Model(s) | UrlError::Unserved(s) => f.write_str(s),
        }
    }
}

/// The URL of `call` for upstream model `model` on a provider of `flavor`
/// (None: not a native flavor).
pub fn url(
    flavor: Flavor,
    base: &str,
    vertex_path: &str,
    call: Target,
    model: &str,
) -> Option<Result<String, UrlError>> {
    let generate = matches!(
        call.endpoint,
        Endpoint::ChatCompletions | Endpoint::Messages
    );
    Some(match flavor {
        Flavor::Gemini => gemini_model(model).and_then(|m| match call.endpoint {
            _ if generate && call.stream => Ok(format!("{base}/{m}:streamGenerateContent?alt=sse")),
            _ if generate => Ok(format!("{base}/{m}:generateContent")),
            Endpoint::Embeddings if call.batch => Ok(format!("{base}/{m}:batchEmbedContents")),
            Endpoint::Embeddings => Ok(format!("{base}/{m}:embedContent")),
            e => Err(unserved("Gemini", e)),
        }),
        Flavor::Vertex => {
            if !path_segment(model) {
                return Some(Err(UrlError::Model(
                    "a Vertex AI model is letters, digits, '-', '_', '.' and '@'".to_string(),
                )));
            }
            let publisher = match vertex_anthropic(model) {
                true => "anthropic",
                false => "google",
            };
            let method = match (publisher, call.stream) {
                ("anthropic", true) => "streamRawPredict",
                ("anthropic", false) => "rawPredict",
                (_, true) => "streamGenerateContent?alt=sse",
                (_, false) => "generateContent",
            };
            match generate {
                true => Ok(format!(
                    "{base}{vertex_path}/publishers/{publisher}/models/{model}:{method}"
                )),
                false => Err(unserved("Vertex AI", call.endpoint)),
            }
        }
        Flavor::Bedrock => {
            if model.is_empty() || model.len() > MAX_MODEL_LEN {
                return Some(Err(UrlError::Model(format!(
                    "a Bedrock model id is 1 to {MAX_MODEL_LEN} characters"
                ))));
            }
            let id = percent_encode(model);
            match (generate, call.stream) {
                (true, true) => Ok(format!("{base}/model/{id}/converse-stream")),
                (true, false) => Ok(format!("{base}/model/{id}/converse")),
                (false, _) => Err(unserved("Bedrock", call.endpoint)),
            }
        }
        Flavor::OpenAi | Flavor::Azure | Flavor::Anthropic | Flavor::Mock => return None,
    })
}

/// The path of a Gemini model: `models/{name}` (a `models/` or `tunedModels/`
/// prefix given is kept).
fn gemini_model(model: &str) -> Result<String, UrlError> {
    let (prefix, name) = match model.split_once('/') {
        Some((pre @ ("models" | "tunedModels"), name)) => (pre, name),
        _ => ("models", model),
    };
    match path_segment(name) && !name.contains('@') {
        true => Ok(format!("{prefix}/{name}")),
        false => Err(UrlError::Model(
            "a Gemini model is letters, digits, '-', '_' and '.'".to_string(),
        )),
    }
}

fn unserved(api: &str, endpoint: Endpoint) -> UrlError {
    UrlError::Unserved(format!(
        "the endpoint {} cannot be served by this route's {api} provider",
        endpoint.suffix()
    ))
}

/// Every byte but the unreserved ones (RFC 3986) as `%XX`: a model id or ARN
/// (`:` and `/` in it) made one path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The dialect a Vertex AI provider answers `model` in.
pub fn vertex_dialect(model: &str) -> Dialect {
    match vertex_anthropic(model) {
        true => Dialect::VertexAnthropic,
        false => Dialect::Gemini,
    }
}

/// Types whose base URL depends on another key (location, region).
pub fn placed(kind: ProviderType) -> bool {
    matches!(kind, ProviderType::VertexAi | ProviderType::Bedrock)
}

#[cfg(test)]
#[path = "native_tests.rs"]
mod tests;
