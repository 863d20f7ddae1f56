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
mod tests {
    use super::*;
    use crate::providers::{ClientCache, Provider};
    use std::rc::Rc;

    /// The problems of one provider `yaml` read with environment `env`.
    fn problems(
        yaml: &str,
        env: &[(&'static str, &'static str)],
    ) -> (Option<Provider>, Vec<String>) {
        let env = env.to_vec();
        let lookup = Rc::new(move |n: &str| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        });
        let raw = crate::config::parse_text_in("t", &format!("providers:\n  - {yaml}\n"), lookup)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut p = crate::config::validate::test_problems();
        let prov = Provider::build(
            &raw.providers[0],
            "providers[0]",
            &ClientCache::default(),
            &mut p,
        );
        (prov, p.errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn bedrock_takes_region_and_keys_from_the_environment() {
        let env = [
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ];
        let (prov, errors) = problems("{ id: b, type: bedrock }", &env);
        assert!(errors.is_empty(), "{errors:?}");
        let prov = prov.unwrap();
        assert_eq!(
            prov.base_url,
            "https://bedrock-runtime.eu-west-3.amazonaws.com"
        );
        assert!(matches!(prov.credentials, Credentials::Aws(_)));
        assert_eq!(&*prov.host, "bedrock-runtime.eu-west-3.amazonaws.com");
    }

    #[test]
    fn bedrock_without_region_or_credentials_names_both() {
        let (_, errors) = problems("{ id: b, type: bedrock }", &[]);
        assert!(
            errors.iter().any(|e| e.contains("providers[0].region")),
            "{errors:?}"
        );
        let (_, errors) = problems("{ id: b, type: bedrock, region: us-east-1 }", &[]);
        assert!(
            errors.iter().any(|e| e.contains("providers[0].auth.aws")),
            "{errors:?}"
        );
    }

    #[test]
    fn keys_of_another_type_are_refused() {
        let (_, errors) = problems(
            "{ id: g, type: gemini, api_tokens: [k], region: us-east-1, project: p, auth: { aws: { access_key_id: a, secret_access_key: s } } }",
            &[],
        );
        for key in ["region", "project", "auth.aws"] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(&format!("providers[0].{key}"))),
                "{key}: {errors:?}"
            );
        }
        let (_, errors) = problems(
            "{ id: b, type: bedrock, region: us-east-1, api_tokens: [k], auth: { aws: { access_key_id: a, secret_access_key: s } } }",
            &[],
        );
        assert!(
            errors.iter().any(|e| e.contains("providers[0].api_tokens")),
            "{errors:?}"
        );
    }

    #[test]
    fn gemini_on_the_openai_compatibility_url_points_at_gemini_openai() {
        let (_, errors) = problems(
            "{ id: g, type: gemini, api_tokens: [k], base_url: \"https://generativelanguage.googleapis.com/v1beta/openai/\" }",
            &[],
        );
        assert!(
            errors.iter().any(|e| e.contains("gemini-openai")),
            "{errors:?}"
        );
        let (prov, errors) = problems("{ id: g, type: gemini-openai, api_tokens: [k] }", &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            prov.unwrap().base_url,
            "https://generativelanguage.googleapis.com/v1beta/openai"
        );
    }

    const SA_FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/gcp-test-service-account.json"
    );

    #[test]
    fn vertex_reads_its_service_account_and_places_its_urls() {
        let (prov, errors) = problems(
            &format!("{{ id: v, type: vertex-ai, location: europe-west4, auth: {{ gcp: {{ service_account_file: {SA_FILE} }} }} }}"),
            &[],
        );
        assert!(errors.is_empty(), "{errors:?}");
        let prov = prov.unwrap();
        assert_eq!(
            prov.base_url,
            "https://europe-west4-aiplatform.googleapis.com/v1"
        );
        assert!(matches!(prov.credentials, Credentials::Gcp(_)));
        let t = Target {
            endpoint: Endpoint::ChatCompletions,
            stream: false,
            batch: false,
        };
        assert_eq!(
            prov.uri(t, "gemini-2.0-flash").unwrap(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/gw-test-project/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent",
            "the project is the service account's"
        );
    }

    #[test]
    fn a_broken_service_account_is_named_without_its_text() {
        let (_, errors) = problems(
            "{ id: v, type: vertex-ai, project: p, auth: { gcp: { service_account_json: '{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":\"SECRET-NOT-A-KEY\"}' } } }",
            &[],
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("providers[0].auth.gcp.service_account_json")),
            "{errors:?}"
        );
        assert!(
            !errors.iter().any(|e| e.contains("SECRET-NOT-A-KEY")),
            "{errors:?}"
        );
    }

    #[test]
    fn vertex_takes_the_service_account_the_environment_names() {
        let (prov, errors) = problems(
            "{ id: v, type: vertex-ai }",
            &[("GOOGLE_APPLICATION_CREDENTIALS", SA_FILE)],
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(prov.unwrap().credentials, Credentials::Gcp(_)));
    }

    #[test]
    fn vertex_needs_a_service_account_and_a_generation_probe() {
        let (_, errors) = problems(
            "{ id: v, type: vertex-ai, project: p, checks: { active: { interval_s: 5 } } }",
            &[],
        );
        assert!(
            errors.iter().any(|e| e.contains("providers[0].auth.gcp")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("providers[0].checks.active.generate")),
            "{errors:?}"
        );
    }

    fn call(endpoint: Endpoint, stream: bool) -> Target {
        Target {
            endpoint,
            stream,
            batch: false,
        }
    }

    #[test]
    fn gemini_urls_name_model_and_method() {
        let u = |c, m| url(Flavor::Gemini, "https://g/v1beta", "", c, m).unwrap();
        assert_eq!(
            u(call(Endpoint::ChatCompletions, false), "gemini-2.0-flash").unwrap(),
            "https://g/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            u(call(Endpoint::Messages, true), "models/gemini-2.5-pro").unwrap(),
            "https://g/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        let batch = Target {
            endpoint: Endpoint::Embeddings,
            stream: false,
            batch: true,
        };
        assert_eq!(
            u(batch, "text-embedding-004").unwrap(),
            "https://g/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        for bad in ["a/b", "..", "x y", "", "m?alt=json", "m@1"] {
            assert!(
                u(call(Endpoint::ChatCompletions, false), bad).is_err(),
                "{bad}"
            );
        }
        assert!(u(call(Endpoint::Completions, false), "m").is_err());
    }

    #[test]
    fn vertex_urls_pick_the_publisher_by_model() {
        let u = |c, m| {
            url(
                Flavor::Vertex,
                "https://v/v1",
                "/projects/p/locations/l",
                c,
                m,
            )
            .unwrap()
        };
        assert_eq!(
            u(call(Endpoint::ChatCompletions, true), "gemini-2.0-flash").unwrap(),
            "https://v/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            u(call(Endpoint::Messages, false), "claude-sonnet-4@20250514").unwrap(),
            "https://v/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
        );
        assert_eq!(
            u(call(Endpoint::Messages, true), "claude-3-5-haiku@20241022").unwrap(),
            "https://v/v1/projects/p/locations/l/publishers/anthropic/models/claude-3-5-haiku@20241022:streamRawPredict"
        );
        assert!(u(call(Endpoint::Embeddings, false), "m").is_err());
        assert!(u(call(Endpoint::ChatCompletions, false), "../x").is_err());
    }

    #[test]
    fn bedrock_urls_encode_ids_and_arns_as_one_segment() {
        let u = |c, m| url(Flavor::Bedrock, "https://b", "", c, m).unwrap();
        assert_eq!(
            u(
                call(Endpoint::ChatCompletions, false),
                "anthropic.claude-3-5-sonnet-20240620-v1:0"
            )
            .unwrap(),
            "https://b/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            u(call(Endpoint::Messages, true), "arn:aws:bedrock:us-east-1:123:inference-profile/us.meta.llama3").unwrap(),
            "https://b/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.meta.llama3/converse-stream"
        );
        assert!(u(call(Endpoint::Embeddings, false), "m").is_err());
        assert!(url(
            Flavor::OpenAi,
            "x",
            "",
            call(Endpoint::Embeddings, false),
            "m"
        )
        .is_none());
    }
}
