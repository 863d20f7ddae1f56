//! The Redis state backend: tenants, consumers and keys shared by every replica.
//!
//! Layout (`P` = `state.redis.key_prefix`); each hash tag keeps a script in one slot:
//! - `P{t:<tenant>}:tenant` tenant JSON; `P{t:<tenant>}:consumers` hash name -> JSON;
//!   `P{t:<tenant>}:keys` hash `<consumer>/<key id>` -> digest (the key index)
//! - `P{k:<digest>}` hash: one key record (never the key itself)
//! - `P{g}:tenants` set of tenant ids
//!
//! A key resolves only while its record, its tenant and its consumer all exist
//! and its consumer's index lists it under its digest (the lookup reads the
//! three from one slot in one round trip), so changes that span two slots are
//! made in an order where the first step alone already has the intended effect
//! (delete: the tenant/consumer and their index first, so a key record a failed
//! second step leaves behind never resolves again, even when the tenant and
//! consumer are made anew; insert: the record, then the index, undone if the
//! consumer vanished meanwhile).

use super::model::{Consumer, Identity, KeyRecord, Tenant};
use super::{Result, StateError};
use crate::redis_conn::{Budget, ConnSettings, RedisConn, SCRIPTS};
use std::collections::HashMap;

pub struct RedisStore {
    pub conn: std::sync::Arc<RedisConn>,
}

/// What a script answered: its status word and the rest.
fn status(v: Vec<String>, what: &str) -> Result<Vec<String>> {
    let mut it = v.into_iter();
    match it.next().as_deref() {
        Some("OK") => Ok(it.collect()),
        Some("NOTFOUND") => Err(StateError::NotFound(what.to_string())),
        Some("CONFLICT") => Err(StateError::Conflict(what.to_string())),
        other => Err(StateError::Unavailable(format!(
            "unexpected script answer {other:?}"
        ))),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(format!("stored {what} is not readable: {e}"))
}

fn key_fields(k: &KeyRecord) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("id", k.id.clone()),
        ("tenant", k.tenant.clone()),
        ("consumer", k.consumer.clone()),
        ("prefix", k.prefix.clone()),
        ("created_at", k.created_at.to_string()),
        ("revoked", if k.revoked { "1" } else { "0" }.to_string()),
    ];
    if let Some(n) = &k.name {
        f.push(("name", n.clone()));
    }
    if let Some(t) = k.expires_at {
        f.push(("expires_at", t.to_string()));
    }
    f
}

fn key_from_fields(digest: &str, m: &HashMap<String, String>) -> Result<KeyRecord> {
    let get = |f: &str| {
        m.get(f)
            .cloned()
            .ok_or_else(|| corrupt("key", format!("field {f} missing")))
    };
    let num = |s: &str| s.parse::<u64>().map_err(|e| corrupt("key", e));
    Ok(KeyRecord {
        id: get("id")?,
        tenant: get("tenant")?,
        consumer: get("consumer")?,
        name: m.get("name").cloned(),
        prefix: get("prefix")?,
        digest: digest.to_string(),
        created_at: num(&get("created_at")?)?,
        expires_at: m.get("expires_at").map(|s| num(s)).transpose()?,
        revoked: m.get("revoked").is_some_and(|v| v == "1"),
    })
}

/// The key index field of a key: `<consumer>/<key id>`.
fn index_field(consumer: &str, id: &str) -> String {
    format!("{consumer}/{id}")
}

fn pairs(flat: Vec<String>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        m.insert(k, v);
    }
    m
}

impl RedisStore {
    pub fn new(s: ConnSettings) -> std::result::Result<RedisStore, String> {
        Ok(RedisStore {
            conn: std::sync::Arc::new(RedisConn::new(s)?),
        })
    }

    fn p(&self) -> &str {
        &self.conn.prefix
    }
    fn tenant_key(&self, t: &str) -> String {
        format!("{}{{t:{t}}}:tenant", self.p())
    }
    fn consumers_key(&self, t: &str) -> String {
        format!("{}{{t:{t}}}:consumers", self.p())
    }
    fn index_key(&self, t: &str) -> String {
        format!("{}{{t:{t}}}:keys", self.p())
    }
    fn record_key(&self, digest: &str) -> String {
        format!("{}{{k:{digest}}}", self.p())
    }
    fn tenants_key(&self) -> String {
        format!("{}{{g}}:tenants", self.p())
    }
    fn marker_key(&self) -> String {
        format!("{}{{g}}:seeded", self.p())
    }

    /// Whether Redis still holds what this deployment wrote at start (a restart
    /// without persistence, a FLUSHALL or a failover to an empty node loses it).
    pub async fn is_prepared(&self) -> Result<bool> {
        let n: i64 = self
            .conn
            .query(Budget::Slow, redis::cmd("EXISTS").arg(self.marker_key()))
            .await?;
        Ok(n == 1)
    }

    /// Whether the node holding the global keys (`{g}`: the tenant list and
    /// the seed marker) is known to be unreachable.
    pub fn globals_down(&self) -> bool {
        self.conn.is_tag_down("g")
    }

    /// Records that scripts and seed are in place.
    pub async fn mark_prepared(&self) -> Result<()> {
        self.conn
            .query::<()>(
                Budget::Slow,
                redis::cmd("SET").arg(self.marker_key()).arg("1"),
            )
            .await
    }

    /// The pub/sub channel for change notifications.
    pub fn channel(&self) -> String {
        format!("{}changes", self.p())
    }

    /// Deletes key records; answers how many could not be deleted now.
    async fn drop_records(&self, digests: &[String]) -> usize {
        let mut left = 0usize;
        for d in digests {
            let gone = self
                .conn
                .query::<i64>(Budget::Slow, redis::cmd("DEL").arg(self.record_key(d)))
                .await;
            left += usize::from(gone.is_err());
        }
        left
    }

    /// The second step of a delete: the records of keys no index lists any
    /// more. One that cannot be deleted now stays behind unlisted, where it
    /// never resolves (the lookup checks the index): the delete has taken
    /// effect with the first step.
    async fn drop_unlisted(&self, digests: &[String]) {
        let left = self.drop_records(digests).await;
        if left > 0 {
            tracing::warn!(
                records = left,
                "key records of a deleted consumer or tenant could not be removed; they are no longer listed and never resolve"
            );
        }
    }

    pub async fn put_tenant(&self, t: Tenant) -> Result<Tenant> {
        let json = serde_json::to_string(&t).map_err(|e| corrupt("tenant", e))?;
        self.conn
            .query::<i64>(
                Budget::Slow,
                redis::cmd("SADD").arg(self.tenants_key()).arg(&t.id),
            )
            .await?;
        self.conn
            .query::<()>(
                Budget::Slow,
                redis::cmd("SET").arg(self.tenant_key(&t.id)).arg(json),
            )
            .await?;
        Ok(t)
    }

    async fn read_tenant(&self, budget: Budget, id: &str) -> Result<Option<Tenant>> {
        let raw: Option<String> = self
            .conn
            .query(budget, redis::cmd("GET").arg(self.tenant_key(id)))
            .await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("tenant", e)))
            .transpose()
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        self.read_tenant(Budget::Slow, id)
            .await?
            .ok_or_else(|| StateError::NotFound(format!("tenant {id:?}")))
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let mut ids: Vec<String> = self
            .conn
            .query(Budget::Slow, redis::cmd("SMEMBERS").arg(self.tenants_key()))
            .await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // a tenant deleted between the two reads is simply not listed
            if let Some(t) = self.read_tenant(Budget::Slow, &id).await? {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub async fn delete_tenant(&self, id: &str) -> Result<()> {
        let mut inv = SCRIPTS.tenant_delete.prepare_invoke();
        inv.key(self.tenant_key(id))
            .key(self.consumers_key(id))
            .key(self.index_key(id));
        let answer = self.conn.script(Budget::Slow, &inv).await?;
        let digests = status(answer, &format!("tenant {id:?}"))?;
        // the tenant is gone from here on: what follows only tidies up
        self.drop_unlisted(&digests).await;
        self.conn
            .query::<i64>(
                Budget::Slow,
                redis::cmd("SREM").arg(self.tenants_key()).arg(id),
            )
            .await?;
        Ok(())
    }

    pub async fn put_consumer(&self, c: Consumer) -> Result<Consumer> {
        let json = serde_json::to_string(&c).map_err(|e| corrupt("consumer", e))?;
        let mut inv = SCRIPTS.consumer_put.prepare_invoke();
        inv.key(self.tenant_key(&c.tenant))
            .key(self.consumers_key(&c.tenant))
            .arg(&c.name)
            .arg(json);
        let answer = self.conn.script(Budget::Slow, &inv).await?;
        status(answer, &format!("tenant {:?}", c.tenant))?;
        Ok(c)
    }

    async fn read_consumer(&self, tenant: &str, name: &str) -> Result<Option<Consumer>> {
        let raw: Option<String> = self
            .conn
            .query(
                Budget::Slow,
                redis::cmd("HGET").arg(self.consumers_key(tenant)).arg(name),
            )
            .await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("consumer", e)))
            .transpose()
    }

    pub async fn get_consumer(&self, tenant: &str, name: &str) -> Result<Consumer> {
        self.read_consumer(tenant, name)
            .await?
            .ok_or_else(|| StateError::NotFound(format!("consumer {tenant:?}/{name:?}")))
    }

    async fn require_tenant(&self, tenant: &str) -> Result<()> {
        let n: i64 = self
            .conn
            .query(
                Budget::Slow,
                redis::cmd("EXISTS").arg(self.tenant_key(tenant)),
            )
            .await?;
        if n == 0 {
            return Err(StateError::NotFound(format!("tenant {tenant:?}")));
        }
        Ok(())
    }

    pub async fn list_consumers(&self, tenant: &str) -> Result<Vec<Consumer>> {
        self.require_tenant(tenant).await?;
        let all: Vec<String> = self
            .conn
            .query(
                Budget::Slow,
                redis::cmd("HVALS").arg(self.consumers_key(tenant)),
            )
            .await?;
        let mut out = all
            .iter()
            .map(|s| serde_json::from_str::<Consumer>(s).map_err(|e| corrupt("consumer", e)))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn delete_consumer(&self, tenant: &str, name: &str) -> Result<()> {
        let mut inv = SCRIPTS.consumer_delete.prepare_invoke();
        inv.key(self.consumers_key(tenant))
            .key(self.index_key(tenant))
            .arg(name);
        let answer = self.conn.script(Budget::Slow, &inv).await?;
        let digests = status(answer, &format!("consumer {tenant:?}/{name:?}"))?;
        self.drop_unlisted(&digests).await;
        Ok(())
    }

    /// Stores a key record, then lists it under its consumer. Inserting a key
    /// that is already stored under the same tenant, consumer and id (the seed
    /// written again) changes nothing but lists it again should its index entry
    /// be missing (an insert interrupted between its two steps).
    pub async fn insert_key(&self, k: KeyRecord) -> Result<()> {
        let mut inv = SCRIPTS.key_insert.prepare_invoke();
        inv.key(self.record_key(&k.digest));
        for (f, v) in key_fields(&k) {
            inv.arg(f).arg(v);
        }
        let answer = self.conn.script(Budget::Slow, &inv).await?;
        let stored_now = match status(answer, "a key with this digest exists") {
            Ok(_) => true,
            Err(StateError::Conflict(what)) => {
                let same = self
                    .read_record(Budget::Slow, &k.digest)
                    .await?
                    .is_some_and(|o| {
                        (&o.tenant, &o.consumer, &o.id) == (&k.tenant, &k.consumer, &k.id)
                    });
                if !same {
                    return Err(StateError::Conflict(what));
                }
                false
            }
            Err(e) => return Err(e),
        };
        let mut idx = SCRIPTS.key_index.prepare_invoke();
        idx.key(self.consumers_key(&k.tenant))
            .key(self.index_key(&k.tenant))
            .arg(&k.consumer)
            .arg(&k.id)
            .arg(&k.digest);
        let indexed = self.conn.script(Budget::Slow, &idx).await;
        let what = format!("consumer {:?}/{:?}", k.tenant, k.consumer);
        match indexed.and_then(|a| status(a, &what)) {
            Ok(_) => Ok(()),
            Err(e) => {
                // not listed under a consumer: a record stored by this call must
                // not stay behind (one stored before is left as it was)
                if stored_now {
                    let _ = self.drop_records(std::slice::from_ref(&k.digest)).await;
                }
                Err(match e {
                    StateError::Conflict(_) => {
                        StateError::Conflict(format!("key id {:?} exists", k.id))
                    }
                    other => other,
                })
            }
        }
    }

    async fn index(&self, tenant: &str) -> Result<HashMap<String, String>> {
        let flat: Vec<String> = self
            .conn
            .query(
                Budget::Slow,
                redis::cmd("HGETALL").arg(self.index_key(tenant)),
            )
            .await?;
        Ok(pairs(flat))
    }

    async fn require_consumer(&self, tenant: &str, consumer: &str) -> Result<()> {
        if self.read_consumer(tenant, consumer).await?.is_none() {
            return Err(StateError::NotFound(format!(
                "consumer {tenant:?}/{consumer:?}"
            )));
        }
        Ok(())
    }

    async fn read_record(&self, budget: Budget, digest: &str) -> Result<Option<KeyRecord>> {
        let flat: Vec<String> = self
            .conn
            .query(budget, redis::cmd("HGETALL").arg(self.record_key(digest)))
            .await?;
        if flat.is_empty() {
            return Ok(None);
        }
        key_from_fields(digest, &pairs(flat)).map(Some)
    }

    pub async fn list_keys(&self, tenant: &str, consumer: &str) -> Result<Vec<KeyRecord>> {
        self.require_consumer(tenant, consumer).await?;
        let pfx = format!("{consumer}/");
        let mut out = Vec::new();
        for (field, digest) in self.index(tenant).await? {
            if field.starts_with(&pfx) {
                if let Some(k) = self.read_record(Budget::Slow, &digest).await? {
                    out.push(k);
                }
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn digest_of(&self, tenant: &str, consumer: &str, id: &str) -> Result<String> {
        let d: Option<String> = self
            .conn
            .query(
                Budget::Slow,
                redis::cmd("HGET")
                    .arg(self.index_key(tenant))
                    .arg(index_field(consumer, id)),
            )
            .await?;
        d.ok_or_else(|| StateError::NotFound(format!("key {id:?} of {tenant:?}/{consumer:?}")))
    }

    async fn update_key(
        &self,
        tenant: &str,
        consumer: &str,
        id: &str,
        action: &str,
        at: u64,
    ) -> Result<KeyRecord> {
        let digest = self.digest_of(tenant, consumer, id).await?;
        let mut inv = SCRIPTS.key_update.prepare_invoke();
        inv.key(self.record_key(&digest))
            .arg(tenant)
            .arg(consumer)
            .arg(id)
            .arg(action)
            .arg(at);
        let answer = self.conn.script(Budget::Slow, &inv).await?;
        let rest = status(answer, &format!("key {id:?} of {tenant:?}/{consumer:?}"))?;
        key_from_fields(&digest, &pairs(rest))
    }

    pub async fn revoke_key(&self, tenant: &str, consumer: &str, id: &str) -> Result<KeyRecord> {
        self.update_key(tenant, consumer, id, "revoke", 0).await
    }

    pub async fn rotate_key(
        &self,
        tenant: &str,
        consumer: &str,
        old_id: &str,
        old_expires_at: u64,
        new: KeyRecord,
    ) -> Result<()> {
        self.digest_of(tenant, consumer, old_id).await?;
        self.insert_key(new).await?;
        self.update_key(tenant, consumer, old_id, "expire", old_expires_at)
            .await
            .map(|_| ())
    }

    /// Two round trips: the key record, then tenant, consumer and the key's
    /// index entry (one slot, one pipeline). Runs within `state.redis.timeout_ms`
    /// each. A key that does not resolve costs one more, the seed marker, and
    /// then the same reads again.
    pub async fn lookup(&self, digest_hex: &str) -> Result<Option<Identity>> {
        if let Some(id) = self.resolve(digest_hex).await? {
            return Ok(Some(id));
        }
        // No record, or one whose tenant, consumer or index entry is missing.
        // Redis that lost its data (restarted empty, flushed) knows no key
        // until the monitor has written the seed again, and a replica writing
        // it (tenant, consumer, record, index entry, the marker last) may be
        // half-way: that is not "this key does not exist". Only a key that
        // still does not resolve once the marker was seen is unknown.
        let seeded: i64 = self
            .conn
            .query(Budget::Fast, redis::cmd("EXISTS").arg(self.marker_key()))
            .await?;
        if seeded == 0 {
            return Err(StateError::Unavailable(
                "Redis holds no data yet (restarted or flushed); the tenants seed is being written again".into(),
            ));
        }
        self.resolve(digest_hex).await
    }

    /// The identity of a key digest as Redis holds it now: the record, then
    /// its tenant, consumer and index entry; `None` when any is missing.
    async fn resolve(&self, digest_hex: &str) -> Result<Option<Identity>> {
        let Some(key) = self.read_record(Budget::Fast, digest_hex).await? else {
            return Ok(None);
        };
        let mut p = redis::pipe();
        p.cmd("GET")
            .arg(self.tenant_key(&key.tenant))
            .cmd("HGET")
            .arg(self.consumers_key(&key.tenant))
            .arg(&key.consumer)
            .cmd("HGET")
            .arg(self.index_key(&key.tenant))
            .arg(index_field(&key.consumer, &key.id));
        let (t, c, listed): (Option<String>, Option<String>, Option<String>) =
            self.conn.pipe(Budget::Fast, &p).await?;
        // tenant or consumer deleted, or the key no longer listed under its
        // consumer (a delete whose second step, removing the record, never
        // ran): the key does not resolve, even once the tenant and consumer
        // are made again
        let (Some(t), Some(c), true) = (t, c, listed.as_deref() == Some(digest_hex)) else {
            return Ok(None);
        };
        Ok(Some(Identity {
            tenant: serde_json::from_str(&t).map_err(|e| corrupt("tenant", e))?,
            consumer: serde_json::from_str(&c).map_err(|e| corrupt("consumer", e))?,
            key,
        }))
    }
}
