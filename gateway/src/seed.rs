//! The static `tenants:` seed of the config file, written into the state backend
//! at start, after each reload and whenever Redis comes back from an outage.
//! Seeded tenants and consumers are (re)written as the file says; seeded keys are
//! added when missing (their id is derived from their digest, so every replica
//! writes the same record). The admin API manages everything else.

use crate::keys::{shown_prefix, Digest32, KeyHasher};
use crate::state::model::{unix_now, Consumer, KeyRecord, Tenant};
use crate::state::{StateError, Store};
use sha2::{Digest, Sha256};
use shared::config::TenantConfig;
use std::sync::Arc;

/// A consumer of the seed with the digests of its keys (never the keys).
#[derive(Debug, Clone)]
pub struct SeedConsumer {
    pub consumer: Consumer,
    /// (digest, shown prefix)
    pub keys: Vec<(Digest32, String)>,
}

#[derive(Debug, Clone)]
pub struct SeedTenant {
    pub tenant: Tenant,
    pub consumers: Vec<SeedConsumer>,
}

/// The seed of the config version in use, for the tasks that write it again
/// when Redis comes back (set on every reload).
pub struct Current(arc_swap::ArcSwap<Vec<SeedTenant>>);

impl Current {
    pub fn new(seed: Arc<Vec<SeedTenant>>) -> Current {
        Current(arc_swap::ArcSwap::new(seed))
    }

    pub fn get(&self) -> Arc<Vec<SeedTenant>> {
        self.0.load_full()
    }

    pub fn set(&self, seed: Arc<Vec<SeedTenant>>) {
        self.0.store(seed);
    }
}

/// Turns the validated `tenants:` section into seed records.
pub fn from_config(raw: &[TenantConfig], hasher: &KeyHasher) -> Vec<SeedTenant> {
    raw.iter()
        .map(|t| SeedTenant {
            tenant: Tenant {
                id: t.id.clone(),
                allowed_models: t.allowed_models.clone(),
                quotas: t.quotas.clone(),
                metadata: t.metadata.clone(),
            },
            consumers: t
                .consumers
                .iter()
                .map(|c| SeedConsumer {
                    consumer: Consumer {
                        tenant: t.id.clone(),
                        name: c.name.clone(),
                        allowed_models: c.allowed_models.clone(),
                        quotas: c.quotas.clone(),
                        metadata: c.metadata.clone(),
                    },
                    keys: c
                        .keys
                        .iter()
                        .map(|k| {
                            (
                                hasher.digest(k.as_str()),
                                shown_prefix(k.as_str()).to_string(),
                            )
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// The key id of a seeded key: stable across replicas, and not the digest.
fn seed_key_id(d: &Digest32) -> String {
    let h = Sha256::new()
        .chain_update(b"gateway seed key id\0")
        .chain_update(d.0)
        .finalize();
    let hex = Digest32(h.into()).to_hex();
    format!("seed_{}", &hex[..16])
}

/// Writes the seed into the backend.
pub async fn apply(store: &Store, seed: &[SeedTenant]) -> Result<(), StateError> {
    let now = unix_now();
    for t in seed {
        store.put_tenant(t.tenant.clone()).await?;
        for c in &t.consumers {
            store.put_consumer(c.consumer.clone()).await?;
            for (digest, prefix) in &c.keys {
                let rec = KeyRecord {
                    id: seed_key_id(digest),
                    tenant: t.tenant.id.clone(),
                    consumer: c.consumer.name.clone(),
                    name: Some("seed".into()),
                    prefix: prefix.clone(),
                    digest: digest.to_hex(),
                    created_at: now,
                    expires_at: None,
                    revoked: false,
                };
                match store.insert_key(rec).await {
                    Ok(()) => {}
                    Err(StateError::Conflict(_)) => {
                        // written before (by us or another replica), or the same key
                        // given to two consumers: say so without naming the key
                        if let Some(other) = store.lookup(&digest.to_hex()).await? {
                            if other.tenant.id != t.tenant.id
                                || other.consumer.name != c.consumer.name
                            {
                                tracing::warn!(
                                    tenant = %t.tenant.id,
                                    consumer = %c.consumer.name,
                                    key_id = %other.key.id,
                                    owner = %format!("{}/{}", other.tenant.id, other.consumer.name),
                                    "a seeded key already belongs to another consumer; left with its owner"
                                );
                            }
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seeding_twice_is_harmless() {
        let text = "id: acme\nconsumers:\n  - name: bob\n    keys: [sk-seed-1]\n";
        let t: TenantConfig = serde_yaml_ng::from_str(text).unwrap();
        let h = KeyHasher::new(None);
        let seed = from_config(&[t], &h);
        let store = Store::memory();
        apply(&store, &seed).await.unwrap();
        apply(&store, &seed).await.unwrap();
        let keys = store.list_keys("acme", "bob").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].id.starts_with("seed_"));
        let found = store.lookup(&h.digest("sk-seed-1").to_hex()).await.unwrap();
        assert_eq!(found.unwrap().consumer.name, "bob");
    }
}
