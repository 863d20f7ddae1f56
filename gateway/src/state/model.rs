//! What the state backend stores about tenants, consumers and keys. Plain serde
//! types: the memory backend keeps them as they are, the Redis backend as JSON.
//! A key record holds only the key's digest, never the key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::config::QuotaConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    #[serde(default = "star")]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    pub tenant: String,
    pub name: String,
    #[serde(default = "star")]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

fn star() -> Vec<String> {
    vec!["*".to_string()]
}

/// One API key of a consumer. Times are unix seconds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub consumer: String,
    #[serde(default)]
    pub name: Option<String>,
    /// first characters after `sk-gw-`, for people
    pub prefix: String,
    /// hex SHA-256 / HMAC-SHA-256 of the key
    pub digest: String,
    pub created_at: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub revoked: bool,
}

impl std::fmt::Debug for KeyRecord {
    // The digest identifies the key; it stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("consumer", &self.consumer)
            .field("prefix", &self.prefix)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// Whether the key authenticates at unix time `now`.
    pub fn is_valid_at(&self, now: u64) -> bool {
        !self.revoked && self.expires_at.is_none_or(|t| now < t)
    }

    /// What the admin API lists: never the key or its digest.
    pub fn public(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked": self.revoked,
        })
    }
}

/// Unix seconds now (key times are whole seconds).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub use crate::config::check_name;

/// The identity a valid key resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub key: KeyRecord,
    pub tenant: Tenant,
    pub consumer: Consumer,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyRecord {
        KeyRecord {
            id: "key_1".into(),
            tenant: "acme".into(),
            consumer: "bob".into(),
            name: None,
            prefix: "abcdefgh".into(),
            digest: "d".repeat(64),
            created_at: 100,
            expires_at: Some(200),
            revoked: false,
        }
    }

    #[test]
    fn validity() {
        let mut k = key();
        assert!(k.is_valid_at(199));
        assert!(!k.is_valid_at(200));
        k.expires_at = None;
        assert!(k.is_valid_at(u64::MAX));
        k.revoked = true;
        assert!(!k.is_valid_at(0));
    }

    #[test]
    fn names() {
        assert!(check_name("tenant", "acme-1.dev_x").is_ok());
        for bad in ["", "a/b", "a{b}", "a:b", "a b", &"x".repeat(65)] {
            assert!(check_name("tenant", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_secret_is_shown() {
        let k = key();
        let shown = k.public().to_string() + &format!("{k:?}");
        assert!(!shown.contains(&k.digest), "{shown}");
        assert!(shown.contains("abcdefgh"));
    }
}
