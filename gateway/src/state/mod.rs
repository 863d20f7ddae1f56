//! The state backend seam: tenants, consumers and API keys, shared by every
//! replica. `memory` keeps them in this process (single replica, the default);
//! `redis` shares them through Redis with Lua scripts. Both pass one conformance
//! suite (`conformance.rs`, run against memory here and against standalone Redis
//! and a Redis Cluster by the integration tests).

pub mod change;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;
pub mod model;
pub mod redis;

use model::{Consumer, Identity, KeyRecord, Tenant};

pub use crate::redis_conn::{Result, StateError};

/// The configured backend.
pub enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

/// Calls the same operation on whichever backend is configured.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Memory($s) => $call,
            Store::Redis($s) => $call.await,
        }
    };
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(memory::MemoryStore::default())
    }

    /// True while the backend, or any node of it, cannot be reached (never for
    /// memory).
    pub fn is_degraded(&self) -> bool {
        match self {
            Store::Memory(_) => false,
            Store::Redis(r) => r.conn.is_degraded(),
        }
    }

    /// Each Redis node (`host:port`) with whether it cannot be reached: the
    /// server, or the masters of a cluster (none for memory).
    pub fn nodes(&self) -> Vec<(String, bool)> {
        match self {
            Store::Memory(_) => Vec::new(),
            Store::Redis(r) => r.conn.reach.nodes(),
        }
    }

    /// Tells the other replicas about a change (nothing to do in memory).
    pub async fn publish(&self, change: &change::Change) -> Result<()> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.conn.publish(&r.channel(), &change.encode()).await,
        }
    }

    pub async fn put_tenant(&self, t: Tenant) -> Result<Tenant> {
        dispatch!(self, m => m.put_tenant(t))
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        dispatch!(self, m => m.get_tenant(id))
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        dispatch!(self, m => m.list_tenants())
    }

    /// Removes the tenant with its consumers and keys.
    pub async fn delete_tenant(&self, id: &str) -> Result<()> {
        dispatch!(self, m => m.delete_tenant(id))
    }

    pub async fn put_consumer(&self, c: Consumer) -> Result<Consumer> {
        dispatch!(self, m => m.put_consumer(c))
    }

    pub async fn get_consumer(&self, tenant: &str, name: &str) -> Result<Consumer> {
        dispatch!(self, m => m.get_consumer(tenant, name))
    }

    pub async fn list_consumers(&self, tenant: &str) -> Result<Vec<Consumer>> {
        dispatch!(self, m => m.list_consumers(tenant))
    }

    /// Removes the consumer with its keys.
    pub async fn delete_consumer(&self, tenant: &str, name: &str) -> Result<()> {
        dispatch!(self, m => m.delete_consumer(tenant, name))
    }

    /// Adds a key under its consumer. The same key again (tenant, consumer, id
    /// and digest) changes nothing, except that Redis lists it again when its
    /// index entry is missing.
    pub async fn insert_key(&self, k: KeyRecord) -> Result<()> {
        dispatch!(self, m => m.insert_key(k))
    }

    pub async fn list_keys(&self, tenant: &str, consumer: &str) -> Result<Vec<KeyRecord>> {
        dispatch!(self, m => m.list_keys(tenant, consumer))
    }

    pub async fn revoke_key(&self, tenant: &str, consumer: &str, id: &str) -> Result<KeyRecord> {
        dispatch!(self, m => m.revoke_key(tenant, consumer, id))
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
        dispatch!(self, m => m.rotate_key(tenant, consumer, old_id, old_expires_at, new))
    }

    /// The identity behind a key digest (valid or not: the caller checks
    /// `KeyRecord::is_valid_at`). None when no key has that digest, or its
    /// tenant, consumer or index entry is gone.
    pub async fn lookup(&self, digest_hex: &str) -> Result<Option<Identity>> {
        dispatch!(self, m => m.lookup(digest_hex))
    }
}
