//! `tenants[]`: the static seed of tenants and their consumers.

use super::{d_star, QuotaConfig};
use crate::env::EnvString;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

// ---------------------------------------------------------------- tenants

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
