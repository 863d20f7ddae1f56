//! Authentication on the data plane: find the consumer key in the request
//! (`auth.keys` headers, `?key=` when `auth.in_query`), resolve it to
//! (tenant, consumer) through the replica cache or the state backend, then check
//! the key's validity, the route's `allowed_tenants`/`allowed_consumers` and the
//! tenant's and consumer's `allowed_models`. 401 for a missing or bad key, 403 for
//! a caller that may not do this, 503 when a key cannot be checked (never open).

pub mod cache;
pub mod identity;
pub mod sync;

use crate::error::GatewayError;
use crate::glob::{any_match, Glob};
use crate::keys::{Digest32, KeyHasher};
use crate::state::model::unix_now;
use crate::state::Store;
use cache::{Cached, KeyCache};
use http::{HeaderMap, HeaderName, Uri};
use identity::{AuthIdentity, Invalid};
use shared::config::RouteAuthConfig;
use std::borrow::Cow;
use std::sync::Arc;

/// The process-wide part of authentication: the backend, the digest and the cache.
pub struct Auth {
    pub store: Arc<Store>,
    pub hasher: KeyHasher,
    pub cache: KeyCache,
}

/// A route's `auth:` block, compiled. Routes without one (or with
/// `enabled: false`) are open.
#[derive(Debug)]
pub struct RoutePolicy {
    tenants: Vec<Glob>,
    consumers: Vec<Glob>,
}

impl RoutePolicy {
    pub fn build(c: &RouteAuthConfig) -> Option<RoutePolicy> {
        c.enabled.then(|| RoutePolicy {
            tenants: c.allowed_tenants.iter().map(|g| Glob::new(g)).collect(),
            consumers: c.allowed_consumers.iter().map(|g| Glob::new(g)).collect(),
        })
    }

    fn allows(&self, id: &AuthIdentity) -> bool {
        if !any_match(&self.tenants, &id.tenant) {
            return false;
        }
        // patterns are "tenant/consumer"; compare without building the string when
        // the pattern is the catch-all
        self.consumers
            .iter()
            .any(|g| g.as_str() == "*" || g.matches(&format!("{}/{}", id.tenant, id.consumer)))
    }
}

/// A credential header's value without its `Bearer ` scheme (any case) and
/// surrounding blanks; values without the scheme come back trimmed.
pub fn strip_bearer(v: &str) -> &str {
    let s = v.trim();
    match (s.get(..6), s.as_bytes().get(6)) {
        (Some(b), None | Some(b' ')) if b.eq_ignore_ascii_case("bearer") => s[6..].trim_start(),
        _ => s,
    }
}

/// The consumer key the request carries, if any. `Authorization: Bearer` is
/// unwrapped; other headers carry the key as is.
pub fn find_key<'a>(
    headers: &'a HeaderMap,
    uri: &Uri,
    names: &[HeaderName],
    in_query: bool,
) -> Option<Cow<'a, str>> {
    for name in names {
        for v in headers.get_all(name) {
            let Ok(s) = v.to_str() else { continue };
            let s = strip_bearer(s);
            if !s.is_empty() {
                return Some(Cow::Borrowed(s));
            }
        }
    }
    if in_query {
        let q = uri.query()?;
        return form_urlencoded::parse(q.as_bytes())
            .find(|(k, v)| k == "key" && !v.is_empty())
            .map(|(_, v)| Cow::Owned(v.into_owned()));
    }
    None
}

fn invalid_key() -> GatewayError {
    GatewayError::unauthenticated("invalid_api_key", "invalid API key")
}

impl Auth {
    pub fn new(store: Arc<Store>, hasher: KeyHasher, cache: KeyCache) -> Auth {
        Auth {
            store,
            hasher,
            cache,
        }
    }

    /// Tells this replica's cache and every other replica (through the backend)
    /// that something changed. A lost notification is covered by the cache TTL.
    pub async fn changed(&self, change: &crate::state::change::Change) {
        self.cache.apply(change);
        if let Err(e) = self.store.publish(change).await {
            tracing::warn!(error = %e, "change notification not sent; other replicas see it within state.cache_ttl_ms");
        }
    }

    /// Key -> identity: the cache when fresh (no backend call), else the backend.
    async fn resolve(&self, key: &str) -> Result<Arc<AuthIdentity>, GatewayError> {
        let d = self.hasher.digest(key);
        let stale = match self.cache.get(&d) {
            Cached::Fresh(i) => return Ok(i),
            Cached::Unknown => return Err(invalid_key()),
            Cached::Stale(i, at) => Some((i, at)),
            Cached::Miss => None,
        };
        // boxed: the backend call is a large future, and the cache hit above is
        // the common case that should not carry its size in every request
        Box::pin(self.lookup(d, stale)).await
    }

    /// The cache could not answer: ask the backend (one lookup per key at a time),
    /// falling back to a stale entry for `stale_if_error` when it cannot answer.
    async fn lookup(
        &self,
        d: Digest32,
        stale: Option<(Arc<AuthIdentity>, std::time::Instant)>,
    ) -> Result<Arc<AuthIdentity>, GatewayError> {
        // a lookup whose Redis node is known to be out is refused at once (the
        // other nodes' keys are looked up as usual)
        let why = {
            let _turn = self.cache.turn(d).await;
            // another request may have looked it up while this one waited
            match self.cache.get(&d) {
                Cached::Fresh(i) => return Ok(i),
                Cached::Unknown => return Err(invalid_key()),
                Cached::Stale(..) | Cached::Miss => {}
            }
            let epoch = self.cache.epoch();
            match self.store.lookup(&d.to_hex()).await {
                Ok(Some(found)) => {
                    let ident = Arc::new(AuthIdentity::new(d, &found));
                    self.cache.put(d, Some(ident.clone()), epoch);
                    return Ok(ident);
                }
                Ok(None) => {
                    self.cache.put(d, None, epoch);
                    return Err(invalid_key());
                }
                Err(e) => e.to_string(),
            }
        };
        match stale {
            Some((ident, at)) if at.elapsed() < self.cache.stale_if_error => {
                if ident.warn_stale(unix_now()) {
                    tracing::warn!(
                        tenant = %ident.tenant,
                        consumer = %ident.consumer,
                        key_id = %ident.key_id,
                        checked_s_ago = at.elapsed().as_secs(),
                        stale_if_error_s = self.cache.stale_if_error.as_secs(),
                        reason = %why,
                        "API key admitted from the cache without checking it (the state backend cannot answer): \
                         a revocation made meanwhile is not seen until it answers again"
                    );
                }
                Ok(ident)
            }
            _ => Err(GatewayError::state_unavailable(format!(
                "cannot check the API key now ({why}); try again shortly"
            ))),
        }
    }

    /// The whole check for a route with `auth` enabled. `who` gets the identity
    /// as soon as the key resolves, so a refused caller is still named in ai_log.
    pub async fn authenticate(
        &self,
        key: Option<&str>,
        policy: &RoutePolicy,
        route: &str,
        model: Option<&str>,
        who: &mut Option<Arc<AuthIdentity>>,
    ) -> Result<Arc<AuthIdentity>, GatewayError> {
        let ident = self.identify(key).await;
        if let Ok(i) | Err((Some(i), _)) = &ident {
            *who = Some(i.clone());
        }
        let ident = ident.map_err(|(_, e)| e)?;
        authorize(&ident, policy, route, model)?;
        Ok(ident)
    }

    /// Who the key belongs to, if it is one that authenticates now; a known key
    /// that does not (revoked, expired) is named with its refusal.
    pub async fn identify(
        &self,
        key: Option<&str>,
    ) -> Result<Arc<AuthIdentity>, (Option<Arc<AuthIdentity>>, GatewayError)> {
        let key = key.ok_or_else(|| {
            let e = GatewayError::unauthenticated(
                "missing_api_key",
                "this route needs an API key: send it as Authorization: Bearer <key>",
            );
            (None, e)
        })?;
        let ident = self.resolve(key).await.map_err(|e| (None, e))?;
        let why = match ident.check(unix_now()) {
            Ok(()) => return Ok(ident),
            Err(Invalid::Revoked) => "this API key has been revoked",
            Err(Invalid::Expired) => "this API key has expired",
        };
        Err((
            Some(ident),
            GatewayError::unauthenticated("invalid_api_key", why),
        ))
    }
}

/// Whether the key's consumer may use `route` (its `allowed_tenants` and
/// `allowed_consumers`) and `model` (the tenant's and consumer's `allowed_models`).
pub fn authorize(
    ident: &AuthIdentity,
    policy: &RoutePolicy,
    route: &str,
    model: Option<&str>,
) -> Result<(), GatewayError> {
    if !policy.allows(ident) {
        return Err(GatewayError::forbidden(
            "consumer_not_allowed",
            format!(
                "consumer {}/{} may not use route {route}",
                ident.tenant, ident.consumer
            ),
        ));
    }
    if let Some(m) = model {
        if !ident.allows_model(m) {
            return Err(GatewayError::forbidden(
                "model_not_allowed",
                format!(
                    "consumer {}/{} may not use model {m:?}",
                    ident.tenant, ident.consumer
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn names() -> Vec<HeaderName> {
        vec![
            HeaderName::from_static("authorization"),
            HeaderName::from_static("x-api-key"),
        ]
    }

    #[test]
    fn key_from_headers_and_query() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/v1/chat/completions?key=sk-q&x=1".parse().unwrap();
        assert_eq!(find_key(&h, &uri, &names(), false), None);
        assert_eq!(find_key(&h, &uri, &names(), true).as_deref(), Some("sk-q"));
        h.insert("x-api-key", HeaderValue::from_static("sk-x"));
        assert_eq!(find_key(&h, &uri, &names(), true).as_deref(), Some("sk-x"));
        h.insert("authorization", HeaderValue::from_static("bearer  sk-a"));
        assert_eq!(find_key(&h, &uri, &names(), true).as_deref(), Some("sk-a"));
        h.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(find_key(&h, &uri, &names(), false).as_deref(), Some("sk-x"));
    }
}
