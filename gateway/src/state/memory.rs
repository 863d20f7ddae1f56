//! The in-process state backend: one replica's maps behind a lock. Each operation
//! is one critical section, so compound changes (rotate, cascading deletes) are
//! atomic as they will be in the Redis scripts.

use super::model::{Consumer, Identity, KeyRecord, Tenant};
use super::{Result, StateError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Default)]
struct Inner {
    tenants: BTreeMap<String, Tenant>,
    /// (tenant, consumer name) -> consumer
    consumers: BTreeMap<(String, String), Consumer>,
    /// digest -> key record
    keys: HashMap<String, KeyRecord>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

fn not_found(what: String) -> StateError {
    StateError::NotFound(what)
}

impl MemoryStore {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put_tenant(&self, t: Tenant) -> Result<Tenant> {
        self.write().tenants.insert(t.id.clone(), t.clone());
        Ok(t)
    }

    pub fn get_tenant(&self, id: &str) -> Result<Tenant> {
        self.read()
            .tenants
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(format!("tenant {id:?}")))
    }

    pub fn list_tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self.read().tenants.values().cloned().collect())
    }

    pub fn delete_tenant(&self, id: &str) -> Result<()> {
        let mut g = self.write();
        g.tenants
            .remove(id)
            .ok_or_else(|| not_found(format!("tenant {id:?}")))?;
        g.consumers.retain(|(t, _), _| t != id);
        g.keys.retain(|_, k| k.tenant != id);
        Ok(())
    }

    pub fn put_consumer(&self, c: Consumer) -> Result<Consumer> {
        let mut g = self.write();
        if !g.tenants.contains_key(&c.tenant) {
            return Err(not_found(format!("tenant {:?}", c.tenant)));
        }
        g.consumers
            .insert((c.tenant.clone(), c.name.clone()), c.clone());
        Ok(c)
    }

    pub fn get_consumer(&self, tenant: &str, name: &str) -> Result<Consumer> {
        self.read()
            .consumers
            .get(&(tenant.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| not_found(format!("consumer {tenant:?}/{name:?}")))
    }

    pub fn list_consumers(&self, tenant: &str) -> Result<Vec<Consumer>> {
        let g = self.read();
        if !g.tenants.contains_key(tenant) {
            return Err(not_found(format!("tenant {tenant:?}")));
        }
        Ok(g.consumers
            .values()
            .filter(|c| c.tenant == tenant)
            .cloned()
            .collect())
    }

    pub fn delete_consumer(&self, tenant: &str, name: &str) -> Result<()> {
        let mut g = self.write();
        g.consumers
            .remove(&(tenant.to_string(), name.to_string()))
            .ok_or_else(|| not_found(format!("consumer {tenant:?}/{name:?}")))?;
        g.keys
            .retain(|_, k| !(k.tenant == tenant && k.consumer == name));
        Ok(())
    }

    fn check_consumer(g: &Inner, tenant: &str, consumer: &str) -> Result<()> {
        if g.consumers
            .contains_key(&(tenant.to_string(), consumer.to_string()))
        {
            Ok(())
        } else {
            Err(not_found(format!("consumer {tenant:?}/{consumer:?}")))
        }
    }

    /// Adds a key; the same key again (tenant, consumer, id and digest: the
    /// seed written again) changes nothing.
    fn add_key(g: &mut Inner, k: KeyRecord) -> Result<()> {
        Self::check_consumer(g, &k.tenant, &k.consumer)?;
        if let Some(o) = g.keys.get(&k.digest) {
            if (&o.tenant, &o.consumer, &o.id) == (&k.tenant, &k.consumer, &k.id) {
                return Ok(());
            }
            return Err(StateError::Conflict("a key with this digest exists".into()));
        }
        if g.keys
            .values()
            .any(|o| o.tenant == k.tenant && o.consumer == k.consumer && o.id == k.id)
        {
            return Err(StateError::Conflict(format!("key id {:?} exists", k.id)));
        }
        g.keys.insert(k.digest.clone(), k);
        Ok(())
    }

    pub fn insert_key(&self, k: KeyRecord) -> Result<()> {
        Self::add_key(&mut self.write(), k)
    }

    pub fn list_keys(&self, tenant: &str, consumer: &str) -> Result<Vec<KeyRecord>> {
        let g = self.read();
        Self::check_consumer(&g, tenant, consumer)?;
        let mut keys: Vec<KeyRecord> = g
            .keys
            .values()
            .filter(|k| k.tenant == tenant && k.consumer == consumer)
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    fn key_mut<'a>(
        g: &'a mut Inner,
        tenant: &str,
        consumer: &str,
        id: &str,
    ) -> Result<&'a mut KeyRecord> {
        g.keys
            .values_mut()
            .find(|k| k.tenant == tenant && k.consumer == consumer && k.id == id)
            .ok_or_else(|| not_found(format!("key {id:?} of {tenant:?}/{consumer:?}")))
    }

    pub fn revoke_key(&self, tenant: &str, consumer: &str, id: &str) -> Result<KeyRecord> {
        let mut g = self.write();
        let k = Self::key_mut(&mut g, tenant, consumer, id)?;
        k.revoked = true;
        Ok(k.clone())
    }

    pub fn rotate_key(
        &self,
        tenant: &str,
        consumer: &str,
        old_id: &str,
        old_expires_at: u64,
        new: KeyRecord,
    ) -> Result<()> {
        let mut g = self.write();
        Self::key_mut(&mut g, tenant, consumer, old_id)?;
        Self::add_key(&mut g, new)?;
        let old = Self::key_mut(&mut g, tenant, consumer, old_id)?;
        old.expires_at = Some(
            old.expires_at
                .map_or(old_expires_at, |t| t.min(old_expires_at)),
        );
        Ok(())
    }

    pub fn lookup(&self, digest_hex: &str) -> Result<Option<Identity>> {
        let g = self.read();
        let Some(key) = g.keys.get(digest_hex) else {
            return Ok(None);
        };
        let tenant = g.tenants.get(&key.tenant).cloned();
        let consumer = g
            .consumers
            .get(&(key.tenant.clone(), key.consumer.clone()))
            .cloned();
        Ok(tenant.zip(consumer).map(|(tenant, consumer)| Identity {
            key: key.clone(),
            tenant,
            consumer,
        }))
    }
}
