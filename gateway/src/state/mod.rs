//! The state backend seam: tenants, consumers and API keys, shared by every
//! replica. `memory` keeps them in this process (single replica, the default);
//! the Redis backend (same operations, Lua scripts) comes next and must pass the
//! same conformance tests (`tests` below run against every backend).

pub mod memory;
pub mod model;

use model::{Consumer, Identity, KeyRecord, Tenant};
use std::fmt;

/// Why a state operation failed; the admin API maps these to 404 / 409 / 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    NotFound(String),
    Conflict(String),
    /// The backend cannot be reached (Redis down): writes fail, nothing is guessed.
    Unavailable(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotFound(w) => write!(f, "{w} not found"),
            StateError::Conflict(w) => write!(f, "conflict: {w}"),
            StateError::Unavailable(w) => write!(f, "state backend unavailable: {w}"),
        }
    }
}

impl std::error::Error for StateError {}

pub type Result<T> = std::result::Result<T, StateError>;

/// The configured backend.
pub enum Store {
    Memory(memory::MemoryStore),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(memory::MemoryStore::default())
    }

    pub async fn put_tenant(&self, t: Tenant) -> Result<Tenant> {
        match self {
            Store::Memory(m) => m.put_tenant(t),
        }
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        match self {
            Store::Memory(m) => m.get_tenant(id),
        }
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        match self {
            Store::Memory(m) => m.list_tenants(),
        }
    }

    /// Removes the tenant with its consumers and keys.
    pub async fn delete_tenant(&self, id: &str) -> Result<()> {
        match self {
            Store::Memory(m) => m.delete_tenant(id),
        }
    }

    pub async fn put_consumer(&self, c: Consumer) -> Result<Consumer> {
        match self {
            Store::Memory(m) => m.put_consumer(c),
        }
    }

    pub async fn get_consumer(&self, tenant: &str, name: &str) -> Result<Consumer> {
        match self {
            Store::Memory(m) => m.get_consumer(tenant, name),
        }
    }

    pub async fn list_consumers(&self, tenant: &str) -> Result<Vec<Consumer>> {
        match self {
            Store::Memory(m) => m.list_consumers(tenant),
        }
    }

    /// Removes the consumer with its keys.
    pub async fn delete_consumer(&self, tenant: &str, name: &str) -> Result<()> {
        match self {
            Store::Memory(m) => m.delete_consumer(tenant, name),
        }
    }

    pub async fn insert_key(&self, k: KeyRecord) -> Result<()> {
        match self {
            Store::Memory(m) => m.insert_key(k),
        }
    }

    pub async fn list_keys(&self, tenant: &str, consumer: &str) -> Result<Vec<KeyRecord>> {
        match self {
            Store::Memory(m) => m.list_keys(tenant, consumer),
        }
    }

    pub async fn revoke_key(&self, tenant: &str, consumer: &str, id: &str) -> Result<KeyRecord> {
        match self {
            Store::Memory(m) => m.revoke_key(tenant, consumer, id),
        }
    }

    /// Adds `new` and makes the key `old_id` expire at `old_expires_at` (or keep an
    /// earlier expiry), as one change.
    pub async fn rotate_key(
        &self,
        tenant: &str,
        consumer: &str,
        old_id: &str,
        old_expires_at: u64,
        new: KeyRecord,
    ) -> Result<()> {
        match self {
            Store::Memory(m) => m.rotate_key(tenant, consumer, old_id, old_expires_at, new),
        }
    }

    /// The identity behind a key digest (valid or not: the caller checks
    /// `KeyRecord::is_valid_at`). None when no key has that digest.
    pub async fn lookup(&self, digest_hex: &str) -> Result<Option<Identity>> {
        match self {
            Store::Memory(m) => m.lookup(digest_hex),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The conformance suite: every backend must pass it.
    use super::*;
    use serde_json::Map;

    fn tenant(id: &str) -> Tenant {
        Tenant {
            id: id.into(),
            allowed_models: vec!["*".into()],
            quotas: vec![],
            metadata: Map::new(),
        }
    }

    fn consumer(t: &str, n: &str) -> Consumer {
        Consumer {
            tenant: t.into(),
            name: n.into(),
            allowed_models: vec!["gpt-*".into()],
            quotas: vec![],
            metadata: Map::new(),
        }
    }

    fn key(t: &str, c: &str, id: &str, digest: char) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            tenant: t.into(),
            consumer: c.into(),
            name: None,
            prefix: "abcdefgh".into(),
            digest: digest.to_string().repeat(64),
            created_at: 10,
            expires_at: None,
            revoked: false,
        }
    }

    async fn conformance(s: Store) {
        // tenants
        assert_eq!(s.put_tenant(tenant("acme")).await.unwrap().id, "acme");
        s.put_tenant(tenant("beta")).await.unwrap();
        let ids: Vec<String> = s
            .list_tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, vec!["acme", "beta"]);
        assert!(matches!(
            s.get_tenant("nope").await,
            Err(StateError::NotFound(_))
        ));
        // consumers need their tenant
        assert!(matches!(
            s.put_consumer(consumer("nope", "bob")).await,
            Err(StateError::NotFound(_))
        ));
        s.put_consumer(consumer("acme", "bob")).await.unwrap();
        s.put_consumer(consumer("acme", "amy")).await.unwrap();
        let names: Vec<String> = s
            .list_consumers("acme")
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, vec!["amy", "bob"]);
        // keys need their consumer; digests are unique
        assert!(matches!(
            s.insert_key(key("acme", "zed", "k0", 'z')).await,
            Err(StateError::NotFound(_))
        ));
        s.insert_key(key("acme", "bob", "k1", 'a')).await.unwrap();
        assert!(matches!(
            s.insert_key(key("acme", "amy", "k9", 'a')).await,
            Err(StateError::Conflict(_))
        ));
        let id = s.lookup(&"a".repeat(64)).await.unwrap().unwrap();
        assert_eq!(
            (
                id.tenant.id.as_str(),
                id.consumer.name.as_str(),
                id.key.id.as_str()
            ),
            ("acme", "bob", "k1")
        );
        assert_eq!(id.consumer.allowed_models, vec!["gpt-*"]);
        assert!(s.lookup(&"f".repeat(64)).await.unwrap().is_none());
        // rotate: new key in, old one expires at the grace end
        s.rotate_key("acme", "bob", "k1", 500, key("acme", "bob", "k2", 'b'))
            .await
            .unwrap();
        let keys = s.list_keys("acme", "bob").await.unwrap();
        assert_eq!(keys.len(), 2);
        let old = s.lookup(&"a".repeat(64)).await.unwrap().unwrap().key;
        assert_eq!(old.expires_at, Some(500));
        assert!(old.is_valid_at(499) && !old.is_valid_at(500));
        assert!(matches!(
            s.rotate_key("acme", "bob", "nope", 1, key("acme", "bob", "k3", 'c'))
                .await,
            Err(StateError::NotFound(_))
        ));
        // revoke
        assert!(s.revoke_key("acme", "bob", "k2").await.unwrap().revoked);
        assert!(!s
            .lookup(&"b".repeat(64))
            .await
            .unwrap()
            .unwrap()
            .key
            .is_valid_at(0));
        // deleting a consumer removes its keys; deleting a tenant removes everything under it
        s.insert_key(key("acme", "amy", "k4", 'd')).await.unwrap();
        s.delete_consumer("acme", "bob").await.unwrap();
        assert!(s.lookup(&"a".repeat(64)).await.unwrap().is_none());
        assert!(matches!(
            s.list_keys("acme", "bob").await,
            Err(StateError::NotFound(_))
        ));
        s.delete_tenant("acme").await.unwrap();
        assert!(s.lookup(&"d".repeat(64)).await.unwrap().is_none());
        assert!(matches!(
            s.list_consumers("acme").await,
            Err(StateError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_tenant("acme").await,
            Err(StateError::NotFound(_))
        ));
        assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn memory_backend_conforms() {
        conformance(Store::memory()).await;
    }
}
