//! `tenants:` of a test config and their consumers.

use super::Quota;
use serde::Serialize;
use serde_json::{Map, Value};

// ------------------------------------------------------------------ tenants

/// One of `tenants:`.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quotas: Vec<Quota>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    consumers: Vec<Consumer>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Value>,
}

/// One of `consumers:` of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Consumer {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quotas: Vec<Quota>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Value>,
}

impl Tenant {
    pub fn new(id: &str) -> Self {
        Tenant {
            id: id.into(),
            allowed_models: None,
            quotas: Vec::new(),
            consumers: Vec::new(),
            metadata: Map::new(),
        }
    }

    pub fn allowed_models(mut self, globs: &[&str]) -> Self {
        self.allowed_models = Some(globs.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn quota(mut self, q: Quota) -> Self {
        self.quotas.push(q);
        self
    }

    pub fn consumer(mut self, c: Consumer) -> Self {
        self.consumers.push(c);
        self
    }

    pub fn metadata(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), v.into());
        self
    }
}

impl Consumer {
    pub fn new(name: &str) -> Self {
        Consumer {
            name: name.into(),
            keys: Vec::new(),
            allowed_models: None,
            quotas: Vec::new(),
            metadata: Map::new(),
        }
    }

    /// Adds one of the consumer's API keys.
    pub fn key(mut self, k: &str) -> Self {
        self.keys.push(k.into());
        self
    }

    pub fn allowed_models(mut self, globs: &[&str]) -> Self {
        self.allowed_models = Some(globs.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn quota(mut self, q: Quota) -> Self {
        self.quotas.push(q);
        self
    }

    pub fn metadata(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), v.into());
        self
    }
}
