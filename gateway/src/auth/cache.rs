//! The replica's cache of key lookups. A positive entry is trusted for at most
//! `state.cache_ttl_ms`; an unknown key is remembered for the same time, so a
//! flood of one bad key is not a flood of Redis calls. Change notifications drop
//! entries at once; a lost subscription starts a new epoch in which no older
//! entry is trusted without asking the backend again. While the backend cannot
//! be reached, an entry that was valid may still be used for `stale_if_error`
//! (auth never fails open: unknown keys stay refused).

use super::identity::AuthIdentity;
use crate::keys::Digest32;
use crate::state::change::Change;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most unknown keys remembered; past it the negative cache starts over.
const NEGATIVE_CAP: usize = 100_000;

struct Entry {
    ident: Arc<AuthIdentity>,
    fetched: Instant,
    epoch: u64,
}

/// What the cache knows about a digest.
pub enum Cached {
    Fresh(Arc<AuthIdentity>),
    /// known but past its TTL or from an older epoch: ask the backend, use this
    /// only if the backend cannot answer
    Stale(Arc<AuthIdentity>, Instant),
    /// recently looked up and not found
    Unknown,
    Miss,
}

pub struct KeyCache {
    ttl: Duration,
    pub stale_if_error: Duration,
    epoch: AtomicU64,
    known: DashMap<Digest32, Entry>,
    unknown: DashMap<Digest32, (Instant, u64)>,
    /// one backend lookup per digest at a time: when an entry expires under load,
    /// the requests in flight wait for one answer instead of each asking Redis
    inflight: DashMap<Digest32, Arc<tokio::sync::Mutex<()>>>,
}

/// The right to look a digest up; dropping it lets the next waiter re-check the cache.
pub struct Turn<'a> {
    cache: &'a KeyCache,
    d: Digest32,
    gate: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.cache
            .inflight
            .remove_if(&self.d, |_, g| Arc::ptr_eq(g, &self.gate));
    }
}

impl KeyCache {
    pub fn new(ttl: Duration, stale_if_error: Duration) -> KeyCache {
        KeyCache {
            ttl,
            stale_if_error,
            epoch: AtomicU64::new(0),
            known: DashMap::new(),
            unknown: DashMap::new(),
            inflight: DashMap::new(),
        }
    }

    /// Waits until no other task is looking `d` up, then holds that right.
    pub async fn turn(&self, d: Digest32) -> Turn<'_> {
        let gate = self
            .inflight
            .entry(d)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let held = gate.clone().lock_owned().await;
        Turn {
            cache: self,
            d,
            gate,
            _held: held,
        }
    }

    pub fn get(&self, d: &Digest32) -> Cached {
        let epoch = self.epoch.load(Ordering::Relaxed);
        if let Some(e) = self.known.get(d) {
            // the map found it by digest; confirm the digest in constant time
            if e.ident.digest.ct_eq(d) {
                if e.epoch == epoch && e.fetched.elapsed() < self.ttl {
                    return Cached::Fresh(e.ident.clone());
                }
                return Cached::Stale(e.ident.clone(), e.fetched);
            }
        }
        if let Some(u) = self.unknown.get(d) {
            let (at, ep) = *u;
            if ep == epoch && at.elapsed() < self.ttl {
                return Cached::Unknown;
            }
        }
        Cached::Miss
    }

    /// Records what the backend said about `d` (None: no such key), as of the
    /// epoch the lookup started in, so an answer racing a flush is not trusted.
    pub fn put(&self, d: Digest32, ident: Option<Arc<AuthIdentity>>, epoch: u64) {
        match ident {
            Some(ident) => {
                self.unknown.remove(&d);
                self.known.insert(
                    d,
                    Entry {
                        ident,
                        fetched: Instant::now(),
                        epoch,
                    },
                );
            }
            None => {
                self.known.remove(&d);
                if self.unknown.len() >= NEGATIVE_CAP {
                    self.unknown.clear();
                }
                self.unknown.insert(d, (Instant::now(), epoch));
            }
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Trust nothing cached so far (the subscription was lost or re-made).
    pub fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.unknown.clear();
    }

    /// Forgets what a change makes out of date.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::NewKey => self.unknown.clear(),
            Change::Health(_) => {}
            Change::Tenant(t) => self.known.retain(|_, e| e.ident.tenant != *t),
            Change::Consumer { tenant, consumer } => self
                .known
                .retain(|_, e| !(e.ident.tenant == *tenant && e.ident.consumer == *consumer)),
            Change::Key {
                tenant,
                consumer,
                id,
            } => self.known.retain(|_, e| {
                !(e.ident.tenant == *tenant
                    && e.ident.consumer == *consumer
                    && e.ident.key_id == *id)
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{Consumer, Identity, KeyRecord, Tenant};

    fn ident(d: Digest32, id: &str) -> Arc<AuthIdentity> {
        let key = KeyRecord {
            id: id.into(),
            tenant: "acme".into(),
            consumer: "bob".into(),
            name: None,
            prefix: "abcdefgh".into(),
            digest: d.to_hex(),
            created_at: 0,
            expires_at: None,
            revoked: false,
        };
        let tenant: Tenant = serde_json::from_str(r#"{"id":"acme"}"#).unwrap();
        let consumer: Consumer = serde_json::from_str(r#"{"tenant":"acme","name":"bob"}"#).unwrap();
        Arc::new(AuthIdentity::new(
            d,
            &Identity {
                key,
                tenant,
                consumer,
            },
        ))
    }

    #[test]
    fn fresh_then_stale_after_ttl_or_flush() {
        let c = KeyCache::new(Duration::from_millis(30), Duration::from_secs(60));
        let d = Digest32([1; 32]);
        assert!(matches!(c.get(&d), Cached::Miss));
        c.put(d, Some(ident(d, "k1")), c.epoch());
        assert!(matches!(c.get(&d), Cached::Fresh(_)));
        c.flush();
        assert!(matches!(c.get(&d), Cached::Stale(..)));
        c.put(d, Some(ident(d, "k1")), c.epoch());
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(c.get(&d), Cached::Stale(..)));
    }

    #[test]
    fn unknown_keys_are_remembered_until_a_key_is_created() {
        let c = KeyCache::new(Duration::from_secs(5), Duration::from_secs(60));
        let d = Digest32([2; 32]);
        c.put(d, None, c.epoch());
        assert!(matches!(c.get(&d), Cached::Unknown));
        c.apply(&Change::NewKey);
        assert!(matches!(c.get(&d), Cached::Miss));
    }

    #[test]
    fn an_answer_from_an_older_epoch_is_not_fresh() {
        let c = KeyCache::new(Duration::from_secs(5), Duration::from_secs(60));
        let d = Digest32([3; 32]);
        let before = c.epoch();
        c.flush();
        c.put(d, Some(ident(d, "k1")), before);
        assert!(matches!(c.get(&d), Cached::Stale(..)));
    }

    #[tokio::test]
    async fn one_lookup_at_a_time_per_digest() {
        let c = Arc::new(KeyCache::new(
            Duration::from_secs(5),
            Duration::from_secs(60),
        ));
        let d = Digest32([6; 32]);
        let first = c.turn(d).await;
        let c2 = c.clone();
        let waiter = tokio::spawn(async move {
            let _t = c2.turn(d).await;
            matches!(c2.get(&d), Cached::Fresh(_))
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        c.put(d, Some(ident(d, "k1")), c.epoch());
        drop(first);
        assert!(
            waiter.await.unwrap(),
            "the waiter finds the first lookup's answer"
        );
        assert!(c.inflight.is_empty());
    }

    #[test]
    fn changes_drop_matching_entries_only() {
        let c = KeyCache::new(Duration::from_secs(5), Duration::from_secs(60));
        let (a, b) = (Digest32([4; 32]), Digest32([5; 32]));
        c.put(a, Some(ident(a, "k1")), 0);
        c.put(b, Some(ident(b, "k2")), 0);
        c.apply(&Change::Key {
            tenant: "acme".into(),
            consumer: "bob".into(),
            id: "k1".into(),
        });
        assert!(matches!(c.get(&a), Cached::Miss));
        assert!(matches!(c.get(&b), Cached::Fresh(_)));
        c.apply(&Change::Consumer {
            tenant: "acme".into(),
            consumer: "bob".into(),
        });
        assert!(c.is_empty());
    }
}
