//! Route matching: hosts (exact or `*.` wildcard), path (prefix, exact or regex),
//! header predicates and model globs. The first matching route wins; a miss names
//! what did not match in each route.

use crate::auth::RoutePolicy;
use crate::balance::{Balancer, HashOn, Instance};
use crate::config::problems::regex_reason;
use crate::config::validate::Problems;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::glob::{any_match, Glob};
use crate::providers::Provider;
use http::{HeaderMap, HeaderName};
use regex::Regex;
use shared::config::{Algorithm, FallbackOn, ProviderConfig, RouteConfig};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

pub struct Route {
    pub name: Arc<str>,
    hosts: Vec<Glob>,
    path: PathMatch,
    headers: Vec<(HeaderName, Vec<String>)>,
    models: Vec<Glob>,
    /// None: an open route (no `auth:` block, or `enabled: false`)
    pub auth: Option<RoutePolicy>,
    pub balancer: Balancer,
    pub fallback: Fallback,
    /// `quotas:` of the route (owner `r:<route>`)
    pub quotas: Vec<Arc<crate::quota::spec::Quota>>,
    /// a quota reservation's default lease: fallback.within_ms + the longest
    /// upstream total timeout + 30 s
    pub lease_ms: u64,
    /// `ai_log.attributes` (and the built-in question/answer with
    /// `telemetry.log_payloads`); set by the config's validation
    pub attributes: Option<Arc<crate::telemetry::attributes::Attributes>>,
}

enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

pub struct Fallback {
    on: Vec<FallbackOn>,
    pub max_retries: u32,
    pub within: Duration,
}

impl Fallback {
    pub fn allows(&self, reason: FallbackOn) -> bool {
        self.on.contains(&reason)
    }
}

/// What a request offers to route matching.
pub struct MatchInput<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// None for requests without a model (e.g. `GET /v1/models`): not checked.
    pub model: Option<&'a str>,
    /// the endpoint the path names: a route's path must name it exactly under its
    /// prefix (`<prefix>/v1/chat/completions` or `<prefix>/chat/completions`)
    pub endpoint: Option<Endpoint>,
}

impl Route {
    pub fn build(
        rc: &RouteConfig,
        key: &str,
        raw_providers: &[ProviderConfig],
        providers: &HashMap<String, Arc<Provider>>,
        p: &mut Problems,
    ) -> Option<Route> {
        let errors_before = p.errors.len();
        let m = &rc.matcher;
        for (i, h) in m.hosts.iter().enumerate() {
            if let Err(e) = check_host_pattern(h) {
                p.error(format!("{key}.match.hosts[{i}]"), e);
            }
        }
        for (i, g) in m.models.iter().enumerate() {
            if g.is_empty() || g.chars().any(char::is_whitespace) {
                p.error(
                    format!("{key}.match.models[{i}]"),
                    "not a model glob: empty or contains spaces",
                );
            }
        }
        let hosts = m
            .hosts
            .iter()
            .map(|h| Glob::new(&h.to_ascii_lowercase()))
            .collect();
        let path_kinds = [
            m.path_prefix.is_some(),
            m.path_exact.is_some(),
            m.path_regex.is_some(),
        ];
        if path_kinds.iter().filter(|&&x| x).count() > 1 {
            p.error(
                format!("{key}.match"),
                "set only one of path_prefix, path_exact, path_regex",
            );
        }
        let path = if let Some(prefix) = &m.path_prefix {
            if !prefix.starts_with('/') {
                p.error(format!("{key}.match.path_prefix"), "must start with /");
            }
            PathMatch::Prefix(prefix.clone())
        } else if let Some(exact) = &m.path_exact {
            if !exact.starts_with('/') {
                p.error(format!("{key}.match.path_exact"), "must start with /");
            }
            PathMatch::Exact(exact.clone())
        } else if let Some(re) = &m.path_regex {
            match Regex::new(re) {
                Ok(r) => PathMatch::Regex(r),
                Err(e) => {
                    p.error(format!("{key}.match.path_regex"), regex_reason(&e));
                    PathMatch::Any
                }
            }
        } else {
            PathMatch::Any
        };
        let mut headers = Vec::new();
        for (name, values) in &m.headers {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => headers.push((h, values.clone())),
                Err(_) => p.error(
                    format!("{key}.match.headers.{name}"),
                    "not a valid header name",
                ),
            }
        }
        let models = m.models.iter().map(|g| Glob::new(g)).collect();

        let auth = rc.auth.as_ref().and_then(RoutePolicy::build);
        if rc.upstreams.is_empty() {
            p.error(
                format!("{key}.upstreams"),
                "a route needs at least one upstream",
            );
        }
        let mut instances = Vec::new();
        for (i, u) in rc.upstreams.iter().enumerate() {
            let uk = format!("{key}.upstreams[{i}]");
            if u.weight == 0 || u.weight > 10_000 {
                p.error(format!("{uk}.weight"), "must be between 1 and 10000");
            }
            if rc.upstreams[..i]
                .iter()
                .any(|prev| prev.provider == u.provider)
            {
                p.error(
                    format!("{uk}.provider"),
                    "this provider is already listed in an earlier upstream",
                );
            }
            match providers.get(&u.provider) {
                Some(prov) => instances.push(Instance {
                    provider: prov.clone(),
                    priority: u.priority,
                    weight: u.weight,
                }),
                // A provider that exists but failed validation already has its own
                // error; so does one without an id, which may be the one meant.
                None if raw_providers
                    .iter()
                    .any(|rp| rp.id == u.provider || rp.id.is_empty()) => {}
                None => p.error(
                    format!("{uk}.provider"),
                    "unknown provider: no provider has this id",
                ),
            }
        }
        let b = &rc.balancer;
        let hash_on = match b.hash_on.as_deref().map(HashOn::parse) {
            None => HashOn::Consumer,
            Some(Some(h)) => h,
            Some(None) => {
                p.error(
                    format!("{key}.balancer.hash_on"),
                    "not one of consumer, ip, header:<name>, cookie:<name>",
                );
                HashOn::Consumer
            }
        };
        let checked = instances
            .iter()
            .any(|i| i.provider.passive.is_some() || i.provider.active.is_some());
        if checked && !rc.fallback.on.contains(&FallbackOn::Unhealthy) {
            p.warn(
                format!("{key}.fallback.on"),
                "does not list unhealthy: this route ignores upstream health and picks ejected instances and api tokens too",
            );
        }
        if b.algorithm == Algorithm::Chash && hash_on == HashOn::Consumer && auth.is_none() {
            p.warn(
                format!("{key}.balancer.hash_on"),
                "consumer needs auth on the route; without it requests hash on the client address",
            );
        }
        if p.errors.len() > errors_before {
            return None;
        }
        let name: Arc<str> = Arc::from(rc.name.as_str());
        let quotas = crate::quota::spec::Quota::compile_all(
            &rc.quotas,
            &crate::quota::spec::Owner::Route(name.clone()),
        );
        if auth.is_none() {
            for (i, q) in rc.quotas.iter().enumerate() {
                if matches!(q.by.as_str(), "tenant" | "consumer") {
                    p.error(
                        format!("{key}.quotas[{i}].by"),
                        format!(
                            "counts by {} but the route has no auth (enable auth so callers are known)",
                            q.by
                        ),
                    );
                }
            }
        }
        let longest = instances
            .iter()
            .map(|i| i.provider.timeouts.total)
            .max()
            .unwrap_or_default();
        // the reservation is made before the first attempt; fallback can add
        // attempts for up to within_ms before the last one streams
        let lease_ms = u64::try_from(longest.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(rc.fallback.within_ms)
            .saturating_add(30_000);
        if p.errors.len() > errors_before {
            return None;
        }
        Some(Route {
            quotas,
            lease_ms,
            attributes: None,
            name,
            hosts,
            path,
            headers,
            models,
            auth,
            balancer: Balancer::new(instances, b.algorithm, hash_on),
            fallback: Fallback {
                on: rc.fallback.on.clone(),
                max_retries: rc.fallback.max_retries,
                within: Duration::from_millis(rc.fallback.within_ms),
            },
        })
    }

    /// Whether the request matches (no message is built: see [`Route::check`]).
    pub fn matches(&self, r: &MatchInput<'_>) -> bool {
        self.miss(r).is_none()
    }

    /// What does not match first, if anything.
    fn miss(&self, r: &MatchInput<'_>) -> Option<Miss<'_>> {
        if !self.hosts.is_empty() && !any_match(&self.hosts, r.host) {
            return Some(Miss::Host);
        }
        let names = |prefix: &str| r.endpoint.is_none_or(|e| names_endpoint(r.path, e, prefix));
        let path_ok = match &self.path {
            PathMatch::Any => names(""),
            PathMatch::Prefix(p) => r.path.starts_with(p.as_str()) && names(p),
            PathMatch::Exact(p) => r.path == p,
            PathMatch::Regex(re) => re.is_match(r.path),
        };
        if !path_ok {
            return Some(Miss::Path);
        }
        for (name, values) in &self.headers {
            let got = r.headers.get(name).and_then(|v| v.to_str().ok());
            if !got.is_some_and(|g| values.iter().any(|v| v == g)) {
                return Some(Miss::Header(name));
            }
        }
        match r.model {
            Some(m) if !self.models.is_empty() && !any_match(&self.models, m) => Some(Miss::Model),
            _ => None,
        }
    }

    /// Ok when the request matches; otherwise why not.
    pub fn check(&self, r: &MatchInput<'_>) -> Result<(), String> {
        let Some(miss) = self.miss(r) else {
            return Ok(());
        };
        Err(match miss {
            Miss::Host => format!("host {:?} is not one of {}", r.host, list(&self.hosts)),
            Miss::Path => {
                let want = match &self.path {
                    PathMatch::Prefix(p) => format!("is not {p:?} followed by an endpoint"),
                    PathMatch::Exact(p) => format!("is not {p:?}"),
                    PathMatch::Regex(re) => format!("does not match {:?}", re.as_str()),
                    PathMatch::Any => "is not an endpoint under / or /v1".to_string(),
                };
                format!("path {:?} {want}", r.path)
            }
            // the expected values are not shown: a header may act as a shared secret
            Miss::Header(name) => format!("header {name} does not have an accepted value"),
            Miss::Model => format!(
                "model {:?} is not one of {}",
                r.model.unwrap_or_default(),
                list(&self.models)
            ),
        })
    }

    /// The model names `match.models` lists exactly.
    pub fn exact_models(&self) -> impl Iterator<Item = &str> {
        self.models
            .iter()
            .filter(|g| g.is_exact())
            .map(Glob::as_str)
    }

    /// Where a request for `model` may go: each upstream's provider id with the
    /// model its `model_mapping` makes of `model` (what a budget's worst case
    /// is priced by).
    pub fn upstream_models<'a>(
        &'a self,
        model: &'a str,
    ) -> impl Iterator<Item = (&'a str, std::borrow::Cow<'a, str>)> {
        self.balancer
            .instances()
            .iter()
            .map(move |i| (&*i.provider.id, i.provider.mapping.map(model)))
    }

    /// The `match.models` glob `model` matched, for metric labels (None when the
    /// route matches any model).
    pub fn model_glob(&self, model: &str) -> Option<Arc<str>> {
        self.models
            .iter()
            .find(|g| g.matches(model))
            .map(Glob::shared)
    }

    /// Model ids this route offers for `GET /v1/models`: its exact `match.models` and
    /// what its providers list; globs name no model.
    pub fn offered_models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |m: &str| {
            let routable = self.models.is_empty() || any_match(&self.models, m);
            if routable && !out.iter().any(|x| x == m) {
                out.push(m.to_string());
            }
        };
        for g in self.models.iter().filter(|g| g.is_exact()) {
            push(g.as_str());
        }
        for inst in self.balancer.instances() {
            for m in inst.provider.offered_models() {
                push(m);
            }
        }
        out
    }
}

/// Host patterns: `*`, an exact host name, or `*.` followed by a host name.
fn check_host_pattern(h: &str) -> Result<(), String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '[' | ']'));
    if h == "*" || valid_name {
        Ok(())
    } else {
        Err("not a host pattern: use an exact host, \"*.example.com\" or \"*\"".to_string())
    }
}

fn list(globs: &[Glob]) -> String {
    let mut s = String::from("[");
    for (i, g) in globs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(g.as_str());
    }
    s.push(']');
    s
}

/// The first predicate of a route a request fails.
enum Miss<'r> {
    Host,
    Path,
    Header(&'r HeaderName),
    Model,
}

/// `path` names `e` exactly: its suffix (`/chat/completions`, with or without a
/// trailing slash) right after the API root (`` or `/v1`), or right after the
/// route's `prefix` (or that prefix + `/v1`); nothing else in between.
fn names_endpoint(path: &str, e: Endpoint, prefix: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    let Some(base) = path.strip_suffix(e.suffix()) else {
        return false;
    };
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    let root = base.strip_suffix("/v1").unwrap_or(base);
    root.is_empty() || root == prefix
}

/// No route matched: what each one found wrong with the request. That tells
/// how the gateway is set up, so it goes to the log, and to the client only
/// under `server.verbose_errors`.
#[derive(Debug)]
pub struct NoRoute {
    why: Vec<(Arc<str>, String)>,
}

impl NoRoute {
    /// Per route, what did not match (the first five routes).
    pub fn detail(&self) -> String {
        if self.why.is_empty() {
            return "no routes are configured".to_string();
        }
        let mut msg = String::new();
        for (i, (name, e)) in self.why.iter().enumerate() {
            if i == 5 {
                let _ = write!(msg, "; and {} more routes", self.why.len() - 5);
                break;
            }
            let sep = if i == 0 { "" } else { "; " };
            let _ = write!(msg, "{sep}route {name:?}: {e}");
        }
        msg
    }

    /// The 404 answer: the request's own facts, and the detail when `verbose`.
    pub fn error(&self, input: &MatchInput<'_>, verbose: bool) -> GatewayError {
        let detail = self.detail();
        tracing::debug!(host = %input.host, path = %input.path, model = input.model, %detail, "no route matches");
        let mut msg = format!(
            "no route matches path {:?} on host {:?}",
            input.path, input.host
        );
        if let Some(m) = input.model {
            let _ = write!(msg, " with model {m:?}");
        }
        crate::text::cut(&mut msg, 1024);
        if verbose {
            let _ = write!(msg, ": {detail}");
        }
        GatewayError::no_route(msg)
    }
}

/// Whether every route that can take the request (its model not yet known)
/// needs a key; what each route found wrong when none can.
pub fn all_need_a_key(routes: &[Route], input: &MatchInput<'_>) -> Result<bool, NoRoute> {
    let mut can = routes.iter().filter(|r| r.matches(input)).peekable();
    if can.peek().is_none() {
        return find(routes, input).map(|_| false);
    }
    Ok(can.all(|r| r.auth.is_some()))
}

/// The first route that matches, or what each route found wrong.
pub fn find<'r>(routes: &'r [Route], input: &MatchInput<'_>) -> Result<&'r Route, NoRoute> {
    if let Some(r) = routes.iter().find(|r| r.matches(input)) {
        return Ok(r);
    }
    let why = routes
        .iter()
        .filter_map(|r| r.check(input).err().map(|e| (r.name.clone(), e)))
        .collect();
    Err(NoRoute { why })
}

#[cfg(test)]
mod tests;
