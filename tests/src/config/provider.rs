//! `providers:` of a test config.

use crate::mock_upstream::{
    gcp_test_service_account_file, AWS_TEST_ACCESS_KEY_ID, AWS_TEST_SECRET_ACCESS_KEY,
};
use serde::Serialize;
use serde_json::{Map, Value};

// ------------------------------------------------------------------ providers

/// One of `providers:`.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub(super) id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    api_tokens: Vec<String>,
    /// in order: the first matching pattern wins
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ordered_map")]
    model_mapping: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeouts: Option<Timeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passive: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<Auth>,
}

/// `auth:` of a provider: `gcp` (vertex-ai) or `aws` (bedrock).
#[derive(Debug, Clone, Default, Serialize)]
struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    gcp: Option<GcpAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws: Option<AwsAuth>,
}

/// `auth.gcp`: a service account exchanged for OAuth 2.0 access tokens (each unset
/// key keeps its default: `expire_early_secs` 60, the cloud-platform scope, the
/// account's own `token_uri`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcpAuth {
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_early_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
}

impl GcpAuth {
    /// The test service account (`service_account_file`: the key file in
    /// `tests/fixtures`), its tokens from `token_url` (the mock's
    /// `MockUpstream::token_url()`, the only audience its token endpoint accepts).
    pub fn test_account(token_url: &str) -> Self {
        let file = gcp_test_service_account_file();
        GcpAuth::default()
            .service_account_file(&file.to_string_lossy())
            .token_url(token_url)
    }

    /// `service_account_file`: a path to the key file.
    pub fn service_account_file(mut self, path: &str) -> Self {
        self.service_account_file = Some(path.into());
        self
    }

    /// `service_account_json`: the key file's text (or `${ENV}`).
    pub fn service_account_json(mut self, text: &str) -> Self {
        self.service_account_json = Some(text.into());
        self
    }

    /// `max_ttl`: the longest a token is used, seconds.
    pub fn max_ttl(mut self, secs: u64) -> Self {
        self.max_ttl = Some(secs);
        self
    }

    /// `expire_early_secs`: how long before its expiry a token is replaced.
    pub fn expire_early_secs(mut self, secs: u64) -> Self {
        self.expire_early_secs = Some(secs);
        self
    }

    /// `token_url`: the OAuth 2.0 token endpoint.
    pub fn token_url(mut self, url: &str) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// `scopes`, replacing the default.
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
        self
    }
}

/// `auth.aws`: static credentials for SigV4.
#[derive(Debug, Clone, Serialize)]
pub struct AwsAuth {
    access_key_id: String,
    secret_access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

impl AwsAuth {
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Self {
        AwsAuth {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// The credentials the mock verifies signatures against
    /// (`AWS_TEST_ACCESS_KEY_ID`, `AWS_TEST_SECRET_ACCESS_KEY`).
    pub fn test() -> Self {
        AwsAuth::new(AWS_TEST_ACCESS_KEY_ID, AWS_TEST_SECRET_ACCESS_KEY)
    }

    /// `session_token` (the mock checks it once `set_aws_session_token` set it).
    pub fn session_token(mut self, token: &str) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

fn ordered_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// `timeouts:` of a provider (each unset one keeps its default).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
}

impl Timeouts {
    /// All four: connect, first byte, idle, total (ms).
    pub fn all(connect_ms: u64, first_byte_ms: u64, idle_ms: u64, total_ms: u64) -> Self {
        Timeouts {
            connect_ms: Some(connect_ms),
            first_byte_ms: Some(first_byte_ms),
            idle_ms: Some(idle_ms),
            total_ms: Some(total_ms),
        }
    }
}

impl Provider {
    /// A provider of `kind` (`openai-compatible`, `azure-openai`, `mock`, ...).
    pub fn new(id: &str, kind: &str) -> Self {
        Provider {
            id: id.into(),
            kind: kind.into(),
            base_url: None,
            api_version: None,
            api_tokens: Vec::new(),
            model_mapping: Vec::new(),
            options: Map::new(),
            timeouts: None,
            checks: None,
            passive: None,
            models: Vec::new(),
            project: None,
            location: None,
            region: None,
            auth: None,
        }
    }

    /// `type: openai-compatible` at `base_url`.
    pub fn openai(id: &str, base_url: &str) -> Self {
        Provider::new(id, "openai-compatible").base_url(base_url)
    }

    /// `type: gemini` (Gemini's native API) at `base_url` (the mock's
    /// `gemini_base_url()`, `.../v1beta`); its api key goes in with [`Provider::token`].
    pub fn gemini(id: &str, base_url: &str) -> Self {
        Provider::new(id, "gemini").base_url(base_url)
    }

    /// `type: vertex-ai` at `base_url` (the mock's `vertex_base_url()`, `.../v1`)
    /// in `project` and `location`; its service account with [`Provider::gcp`].
    pub fn vertex(id: &str, base_url: &str, project: &str, location: &str) -> Self {
        Provider::new(id, "vertex-ai")
            .base_url(base_url)
            .project(project)
            .location(location)
    }

    /// `type: bedrock` at `base_url` (the mock's `bedrock_base_url()`) in `region`;
    /// its credentials with [`Provider::aws`].
    pub fn bedrock(id: &str, base_url: &str, region: &str) -> Self {
        Provider::new(id, "bedrock")
            .base_url(base_url)
            .region(region)
    }

    /// `type: mock` (the gateway answers itself).
    pub fn mock(id: &str) -> Self {
        Provider::new(id, "mock")
    }

    pub fn base_url(mut self, url: &str) -> Self {
        self.base_url = Some(url.into());
        self
    }

    pub fn api_version(mut self, v: &str) -> Self {
        self.api_version = Some(v.into());
        self
    }

    /// Adds one of `api_tokens`.
    pub fn token(mut self, t: &str) -> Self {
        self.api_tokens.push(t.into());
        self
    }

    /// `api_tokens`, replacing any set before.
    pub fn tokens(mut self, tokens: &[&str]) -> Self {
        self.api_tokens = tokens.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Adds `pattern -> model` to `model_mapping` (after those already there).
    pub fn map(mut self, pattern: &str, model: &str) -> Self {
        self.model_mapping.push((pattern.into(), model.into()));
        self
    }

    /// Adds one of `options` (fields set on every request).
    pub fn option(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.options.insert(key.into(), v.into());
        self
    }

    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = Some(t);
        self
    }

    /// `checks:` as a JSON object (`{ active: { ... } }`).
    pub fn checks(mut self, v: Value) -> Self {
        self.checks = Some(v);
        self
    }

    /// `passive: { failures, window_s, ejection_s }`.
    pub fn passive(mut self, failures: u32, window_s: u64, ejection_s: u64) -> Self {
        self.passive = Some(serde_json::json!({
            "failures": failures, "window_s": window_s, "ejection_s": ejection_s
        }));
        self
    }

    /// `project` (vertex-ai).
    pub fn project(mut self, p: &str) -> Self {
        self.project = Some(p.into());
        self
    }

    /// `location` (vertex-ai).
    pub fn location(mut self, l: &str) -> Self {
        self.location = Some(l.into());
        self
    }

    /// `region` (bedrock).
    pub fn region(mut self, r: &str) -> Self {
        self.region = Some(r.into());
        self
    }

    /// `auth.gcp` (vertex-ai).
    pub fn gcp(mut self, gcp: GcpAuth) -> Self {
        self.auth.get_or_insert_with(Auth::default).gcp = Some(gcp);
        self
    }

    /// `auth.aws` (bedrock).
    pub fn aws(mut self, aws: AwsAuth) -> Self {
        self.auth.get_or_insert_with(Auth::default).aws = Some(aws);
        self
    }

    /// Adds one of `models` (listed by `GET /v1/models`).
    pub fn model(mut self, m: &str) -> Self {
        self.models.push(m.into());
        self
    }
}
