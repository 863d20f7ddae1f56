//! Validating `state:` (which backend, how to reach Redis, cache times) and the
//! `tenants:` seed (unique, well-formed ids and names).

use super::validate::{quotas, Problems};
use shared::config::{Backend, OnRedisError, RawConfig};
use std::collections::HashSet;
use std::time::Duration;

/// The validated `state:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRt {
    pub backend: BackendRt,
    pub cache_ttl: Duration,
    pub stale_if_error: Duration,
    pub quotas: QuotaSettings,
}

/// How quotas behave, from `state:` (validated with the rest of the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSettings {
    pub on_error: OnRedisError,
    pub expected_replicas: u32,
    /// completion tokens reserved when a request sets no max_tokens
    pub default_max_tokens: u64,
    /// a reservation's lease; None: the route's longest upstream total timeout + 30 s
    pub lease_ms: Option<u64>,
    pub settle_queue: usize,
}

/// The largest amount the quota scripts take (their numbers are exact below 2^53).
pub const MAX_AMOUNT: u64 = 1 << 53;

/// Where Redis is: one server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// Tenant ids, consumer names and key ids: 1 to 64 of `A-Z a-z 0-9 . _ -`, so
/// they are safe in Redis hash tags, `tenant/consumer` labels and URL paths.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a {what} is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        ))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendRt {
    Memory,
    Redis {
        target: Target,
        pool_size: usize,
        timeout: Duration,
        key_prefix: String,
    },
}

fn redis_url(p: &mut Problems, key: &str, url: &str) -> Option<String> {
    match redis::parse_redis_url(url) {
        Some(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {
            Some(url.to_string())
        }
        _ => {
            p.error(key, "not a redis:// URL");
            None
        }
    }
}

pub fn state(raw: &RawConfig, p: &mut Problems) -> Option<StateRt> {
    let st = &raw.state;
    if st.expected_replicas == 0 {
        p.error("state.expected_replicas", "must be at least 1");
    }
    if st.settle_queue_size == 0 {
        p.error("state.settle_queue_size", "must be at least 1");
    }
    if st.cache_ttl_ms == 0 {
        p.error(
            "state.cache_ttl_ms",
            "must be greater than 0 (every key lookup would go to the backend)",
        );
    }
    let backend = match st.backend {
        Backend::Memory => BackendRt::Memory,
        Backend::Redis => {
            let Some(r) = &st.redis else {
                p.error(
                    "state.redis",
                    "state.backend is redis but state.redis is missing",
                );
                return None;
            };
            let target = match (&r.url, &r.cluster_nodes) {
                (Some(u), None) => Target::Single(redis_url(p, "state.redis.url", u.as_str())?),
                (None, Some(nodes)) if !nodes.is_empty() => {
                    let mut urls = Vec::new();
                    for (i, n) in nodes.iter().enumerate() {
                        urls.push(redis_url(
                            p,
                            &format!("state.redis.cluster_nodes[{i}]"),
                            n.as_str(),
                        )?);
                    }
                    Target::Cluster(urls)
                }
                (Some(_), Some(_)) => {
                    p.error(
                        "state.redis",
                        "set either url (standalone) or cluster_nodes (Redis Cluster), not both",
                    );
                    return None;
                }
                _ => {
                    p.error(
                        "state.redis",
                        "set url (standalone) or cluster_nodes (Redis Cluster)",
                    );
                    return None;
                }
            };
            if r.pool_size == 0 {
                p.error("state.redis.pool_size", "must be at least 1");
            }
            if r.timeout_ms == 0 {
                p.error("state.redis.timeout_ms", "must be greater than 0");
            }
            if r.key_prefix.contains(['{', '}']) {
                p.error(
                    "state.redis.key_prefix",
                    "must not contain '{' or '}' (the gateway adds its own hash tags)",
                );
            }
            BackendRt::Redis {
                target,
                pool_size: usize::try_from(r.pool_size).unwrap_or(usize::MAX),
                timeout: Duration::from_millis(r.timeout_ms),
                key_prefix: r.key_prefix.clone(),
            }
        }
    };
    Some(StateRt {
        backend,
        cache_ttl: Duration::from_millis(st.cache_ttl_ms),
        stale_if_error: Duration::from_secs(st.stale_if_error_s),
        quotas: QuotaSettings {
            on_error: st.on_redis_error,
            expected_replicas: st.expected_replicas,
            default_max_tokens: st.quota_max_tokens,
            lease_ms: (st.quota_lease_s > 0).then(|| st.quota_lease_s.saturating_mul(1000)),
            settle_queue: st.settle_queue_size,
        },
    })
}

pub fn tenants(raw: &RawConfig, p: &mut Problems) {
    let mut ids = HashSet::new();
    for (i, t) in raw.tenants.iter().enumerate() {
        let key = format!("tenants[{i}]");
        if let Err(e) = check_name("tenant id", &t.id) {
            p.error(format!("{key}.id"), e);
        }
        if !ids.insert(t.id.as_str()) {
            p.error(format!("{key}.id"), "another tenant has the same id");
        }
        quotas(&t.quotas, &format!("{key}.quotas"), p);
        let mut names = HashSet::new();
        for (j, c) in t.consumers.iter().enumerate() {
            let ck = format!("{key}.consumers[{j}]");
            if let Err(e) = check_name("consumer name", &c.name) {
                p.error(format!("{ck}.name"), e);
            }
            if !names.insert(c.name.as_str()) {
                p.error(
                    format!("{ck}.name"),
                    "another consumer of this tenant has the same name",
                );
            }
            for (k, key_text) in c.keys.iter().enumerate() {
                if key_text.as_str().trim().len() < 8 {
                    p.error(
                        format!("{ck}.keys[{k}]"),
                        "a consumer key must be at least 8 characters",
                    );
                }
            }
            quotas(&c.quotas, &format!("{ck}.quotas"), p);
        }
    }
}
