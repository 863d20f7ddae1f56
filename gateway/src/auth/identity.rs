//! What a resolved key means on the data plane, prepared once per cache fill:
//! names for ai_log, the upstream consumer header value, compiled model globs and
//! the key's validity. Holds the digest (for the constant-time check) but never
//! prints it.

use crate::glob::{any_match, Glob};
use crate::keys::Digest32;
use crate::state::model::Identity;
use http::HeaderValue;

pub struct AuthIdentity {
    pub digest: Digest32,
    pub tenant: String,
    pub consumer: String,
    pub key_id: String,
    /// `tenant/consumer`, sent upstream in `auth.consumer_header`
    pub header_value: Option<HeaderValue>,
    /// the tenant's and the consumer's quotas
    pub quotas: Vec<std::sync::Arc<crate::quota::spec::Quota>>,
    tenant_models: Vec<Glob>,
    consumer_models: Vec<Glob>,
    expires_at: Option<u64>,
    revoked: bool,
    /// unix seconds of the last warning that this identity was used stale
    stale_warned: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for AuthIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthIdentity")
            .field("tenant", &self.tenant)
            .field("consumer", &self.consumer)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl crate::quota::spec::Who for AuthIdentity {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn consumer(&self) -> &str {
        &self.consumer
    }
}

/// Why a known key does not authenticate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Revoked,
    Expired,
}

impl AuthIdentity {
    pub fn new(digest: Digest32, id: &Identity) -> AuthIdentity {
        let globs = |v: &[String]| v.iter().map(|g| Glob::new(g)).collect();
        let label = format!("{}/{}", id.tenant.id, id.consumer.name);
        use crate::quota::spec::{Owner, Quota};
        let mut quotas =
            Quota::compile_all(&id.tenant.quotas, &Owner::Tenant(id.tenant.id.clone()));
        quotas.extend(Quota::compile_all(
            &id.consumer.quotas,
            &Owner::Consumer(id.tenant.id.clone(), id.consumer.name.clone()),
        ));
        AuthIdentity {
            digest,
            tenant: id.tenant.id.clone(),
            consumer: id.consumer.name.clone(),
            key_id: id.key.id.clone(),
            header_value: HeaderValue::from_str(&label).ok(),
            quotas,
            tenant_models: globs(&id.tenant.allowed_models),
            consumer_models: globs(&id.consumer.allowed_models),
            expires_at: id.key.expires_at,
            revoked: id.key.revoked,
            stale_warned: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether a stale use at unix time `now` should be logged: at most once a
    /// minute per key (this identity is the key's cache entry).
    pub fn warn_stale(&self, now: u64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.stale_warned.load(Ordering::Relaxed);
        now >= last.saturating_add(60)
            && self
                .stale_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether the key authenticates at unix time `now`.
    pub fn check(&self, now: u64) -> Result<(), Invalid> {
        if self.revoked {
            return Err(Invalid::Revoked);
        }
        if self.expires_at.is_some_and(|t| now >= t) {
            return Err(Invalid::Expired);
        }
        Ok(())
    }

    /// Both the tenant and the consumer allow `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        any_match(&self.tenant_models, model) && any_match(&self.consumer_models, model)
    }
}
