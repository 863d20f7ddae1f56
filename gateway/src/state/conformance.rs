//! The conformance suite every state backend must pass: the unit tests run it on
//! the memory backend, the integration tests on standalone Redis and on a 3-node
//! Redis Cluster (feature `conformance`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::model::{Consumer, KeyRecord, Tenant};
use super::{StateError, Store};
use serde_json::Map;

/// A tenant allowing every model.
pub fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        allowed_models: vec!["*".into()],
        quotas: vec![],
        metadata: Map::new(),
    }
}

/// A consumer allowed `gpt-*`.
pub fn consumer(t: &str, n: &str) -> Consumer {
    Consumer {
        tenant: t.into(),
        name: n.into(),
        allowed_models: vec!["gpt-*".into()],
        quotas: vec![],
        metadata: Map::new(),
    }
}

/// A key record whose digest is `digest` 64 times.
pub fn key(t: &str, c: &str, id: &str, digest: char) -> KeyRecord {
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

/// Runs every operation of the seam against `s`, which must start empty.
pub async fn run(s: &Store) {
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
    // key ids are unique per consumer; a refused key leaves nothing behind
    assert!(matches!(
        s.insert_key(key("acme", "bob", "k1", 'e')).await,
        Err(StateError::Conflict(_))
    ));
    assert!(s.lookup(&"e".repeat(64)).await.unwrap().is_none());
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
    // the same key inserted again (the seed written again) changes nothing: a
    // revoked key stays revoked
    s.insert_key(key("acme", "bob", "k2", 'b')).await.unwrap();
    assert!(
        s.lookup(&"b".repeat(64))
            .await
            .unwrap()
            .unwrap()
            .key
            .revoked
    );
    assert_eq!(s.list_keys("acme", "bob").await.unwrap().len(), 2);
    // deleting a consumer removes its keys; deleting a tenant removes everything under it
    s.insert_key(key("acme", "amy", "k4", 'd')).await.unwrap();
    s.delete_consumer("acme", "bob").await.unwrap();
    assert!(s.lookup(&"a".repeat(64)).await.unwrap().is_none());
    assert!(matches!(
        s.list_keys("acme", "bob").await,
        Err(StateError::NotFound(_))
    ));
    // a consumer made again under the same name does not get the old keys back
    s.put_consumer(consumer("acme", "bob")).await.unwrap();
    assert!(s.lookup(&"a".repeat(64)).await.unwrap().is_none());
    assert!(s.lookup(&"b".repeat(64)).await.unwrap().is_none());
    assert!(s.list_keys("acme", "bob").await.unwrap().is_empty());
    s.delete_tenant("acme").await.unwrap();
    assert!(s.lookup(&"d".repeat(64)).await.unwrap().is_none());
    assert!(matches!(
        s.list_consumers("acme").await,
        Err(StateError::NotFound(_))
    ));
    // nor does a tenant made again with its consumers
    s.put_tenant(tenant("acme")).await.unwrap();
    s.put_consumer(consumer("acme", "amy")).await.unwrap();
    assert!(s.lookup(&"d".repeat(64)).await.unwrap().is_none());
    assert!(s.list_keys("acme", "amy").await.unwrap().is_empty());
    s.delete_tenant("acme").await.unwrap();
    assert!(matches!(
        s.delete_tenant("acme").await,
        Err(StateError::NotFound(_))
    ));
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_backend_conforms() {
        super::run(&super::Store::memory()).await;
    }
}
