//! `providers:` of a test config.

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
        }
    }

    /// `type: openai-compatible` at `base_url`.
    pub fn openai(id: &str, base_url: &str) -> Self {
        Provider::new(id, "openai-compatible").base_url(base_url)
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

    /// Adds one of `models` (listed by `GET /v1/models`).
    pub fn model(mut self, m: &str) -> Self {
        self.models.push(m.into());
        self
    }
}
