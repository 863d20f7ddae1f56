//! One runtime config version: the validated config (`config`, pure) and what is
//! built from it: providers with their HTTP clients, routes with their compiled
//! ai_log attributes, the TLS server config, the seed with its key digests.
//! Every problem, of the text, of the values and of the building, is reported at
//! once, as `file: key: reason (line L column C)`.

use crate::config::validate::{AccessLogRt, OtlpRt, Problems};
use crate::config::{self, ConfigError, Problem, ServerRt, StateRt};
use crate::providers::{ClientCache, Provider};
use crate::route::Route;
use shared::config::RawConfig;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// One config version. Requests hold an `Arc` of the version they started on.
pub struct Runtime {
    pub version: u64,
    pub source: String,
    pub server: ServerRt,
    /// `server.tls`, built (None: plain HTTP)
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// the state backend settings (read at start; a change needs a restart)
    pub state: StateRt,
    /// `tenants:`, written into the backend at start and on reload
    pub seed: Arc<Vec<crate::seed::SeedTenant>>,
    /// `auth.in_query`: `?key=` also carries a consumer key
    pub key_in_query: bool,
    pub providers: HashMap<String, Arc<Provider>>,
    pub routes: Vec<Route>,
    pub key_headers: Vec<http::HeaderName>,
    pub consumer_header: http::HeaderName,
    /// `key_headers` and `consumer_header`: client headers never sent upstream
    pub secret_headers: Vec<http::HeaderName>,
    pub access_log: AccessLogRt,
    /// `telemetry.otlp` (the exporter itself is set up at start; a change of its
    /// endpoint, protocol or headers needs a restart)
    pub otlp: Option<OtlpRt>,
    /// `telemetry.value_length_limit`: longer ai_log attribute values are cut
    pub value_length_limit: usize,
    /// `telemetry.prometheus`: request metrics on `/metrics`
    pub prometheus: bool,
    /// `ledger` and `budget_alerts`
    pub budget: crate::config::budget::BudgetRt,
    /// every model name the config spells out: the only model metric labels
    pub known_models: Arc<crate::telemetry::labels::KnownModels>,
    /// `pricing` (over the built-in table): what requests started on this
    /// version cost
    pub pricing: Arc<crate::cost::Pricing>,
    pub warnings: Vec<String>,
    /// the text it was read from, its secrets masked (`GET /admin/config`;
    /// Null when built from a parsed config)
    pub masked: Arc<serde_json::Value>,
}

impl Runtime {
    /// What health follows of this version (see `Health::ensure`).
    pub fn followed(&self) -> crate::health::Followed {
        crate::health::Followed {
            providers: self.providers.clone(),
            cache_ttl: self.state.cache_ttl,
            least_busy: self
                .routes
                .iter()
                .any(|r| r.balancer.algorithm() == shared::config::Algorithm::LeastBusy),
        }
    }
}

/// Reads a config file's text.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::one(format!(
            "{}: cannot read the config file: {e}",
            path.display()
        ))
    })
}

/// Parses (`${NAME}` from the process environment), validates and builds config
/// text (read from `name`) as version `version`; every problem is placed on its
/// line.
pub fn load_text(
    name: &str,
    text: &str,
    version: u64,
    clients: &ClientCache,
) -> Result<Runtime, ConfigError> {
    // `${NAME}` in the text: the process environment
    let env = std::rc::Rc::new(|n: &str| std::env::var(n).ok());
    let mut rt = config::load_text(name, text, env, |raw| check(raw, name, version, clients))?;
    // (a text that parsed as a config is a YAML document)
    rt.masked = Arc::new(config::masked::masked(text).unwrap_or_default());
    Ok(rt)
}

/// Validates and builds `raw` (read from `source`) into version `version`.
/// ([`load_text`] also puts each problem's line on it.)
pub fn build(
    raw: &RawConfig,
    source: &str,
    version: u64,
    clients: &ClientCache,
) -> Result<Runtime, ConfigError> {
    check(raw, source, version, clients).map_err(|found| ConfigError {
        problems: found.iter().map(|p| p.render(source)).collect(),
    })
}

/// [`build`], with the problems as key + reason.
pub fn check(
    raw: &RawConfig,
    source: &str,
    version: u64,
    clients: &ClientCache,
) -> Result<Runtime, Vec<Problem>> {
    let mut p = Problems::new(source);
    let (config, (tls, providers, routes)) = config::check(raw, &mut p, |p| {
        let tls = tls(raw, p);
        let providers = providers(raw, clients, p);
        let routes = routes(raw, &providers, p);
        (tls, providers, routes)
    });
    let seed = crate::seed::from_config(&raw.tenants, &crate::keys::KeyHasher::from_env()).into();
    let known_models = Arc::new(known_models(&routes, &providers));
    let pricing = crate::cost::Pricing::compile(&raw.pricing)
        .map_err(|e| p.error("pricing.defaults", e))
        .ok();
    let (Some(c), Some(pricing), true) = (config, pricing, p.errors.is_empty()) else {
        return Err(p.errors);
    };
    Ok(Runtime {
        version,
        source: source.to_string(),
        server: c.server,
        tls,
        state: c.state,
        seed,
        key_in_query: c.key_in_query,
        providers,
        routes,
        key_headers: c.key_headers,
        consumer_header: c.consumer_header,
        secret_headers: c.secret_headers,
        access_log: c.access_log,
        otlp: c.otlp,
        value_length_limit: c.value_length_limit,
        prometheus: c.prometheus,
        budget: c.budget,
        known_models,
        pricing: Arc::new(pricing),
        warnings: p.warnings,
        masked: Arc::default(),
    })
}

/// `server.tls`: the certificate and key read and paired (from the raw config, so
/// that its problems are reported also when other `server` keys have some).
fn tls(raw: &RawConfig, p: &mut Problems) -> Option<Arc<rustls::ServerConfig>> {
    let files = crate::tls::Files::from(raw.server.tls.as_ref()?);
    crate::tls::server_config(&files)
        .map(Arc::new)
        .map_err(|(field, e)| p.error(format!("server.tls{field}"), e))
        .ok()
}

fn providers(
    raw: &RawConfig,
    clients: &ClientCache,
    p: &mut Problems,
) -> HashMap<String, Arc<Provider>> {
    let mut providers = HashMap::new();
    let mut ids = HashSet::new();
    for (i, pc) in raw.providers.iter().enumerate() {
        let key = format!("providers[{i}]");
        if !ids.insert(pc.id.as_str()) {
            p.error(format!("{key}.id"), "another provider has the same id");
            continue;
        }
        if let Some(prov) = Provider::build(pc, &key, clients, p) {
            providers.insert(pc.id.clone(), Arc::new(prov));
        }
    }
    providers
}

/// The routes, each with its compiled `ai_log` attributes.
fn routes(
    raw: &RawConfig,
    providers: &HashMap<String, Arc<Provider>>,
    p: &mut Problems,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut names = HashSet::new();
    for (i, rc) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if !names.insert(rc.name.as_str()) {
            p.error(format!("{key}.name"), "another route has the same name");
            continue;
        }
        let attributes = crate::telemetry::attributes::Attributes::compile(
            rc.ai_log.as_ref(),
            raw.telemetry.log_payloads,
            &key,
            p,
        );
        if let Some(mut route) = Route::build(rc, &key, &raw.providers, providers, p) {
            route.attributes = attributes;
            routes.push(route);
        }
    }
    routes
}

/// The model names routes and providers spell out (see `telemetry::labels`).
fn known_models(
    routes: &[Route],
    providers: &HashMap<String, Arc<Provider>>,
) -> crate::telemetry::labels::KnownModels {
    let routes = routes.iter().flat_map(Route::exact_models);
    let providers = providers
        .values()
        .flat_map(|p| p.offered_models().chain(p.mapping.literal_targets()));
    crate::telemetry::labels::KnownModels::new(routes.chain(providers))
}

#[cfg(test)]
#[path = "runtime_proptests.rs"]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_text;

    fn check(yaml: &str) -> Result<Runtime, ConfigError> {
        let raw = parse_text("t.yaml", yaml)?;
        build(&raw, "t.yaml", 1, &ClientCache::default())
    }

    const BASE: &str = "server: { listen: 127.0.0.1:1, admin_listen: 127.0.0.1:2 }\n";

    #[test]
    fn embedded_default_is_valid() {
        let raw = parse_text("d", crate::config::EMBEDDED_DEFAULT).unwrap();
        let rt = build(&raw, "d", 1, &ClientCache::default()).unwrap();
        assert_eq!(rt.routes.len(), 1);
    }

    #[test]
    fn names_every_problem() {
        let yaml = format!(
            "{BASE}providers:\n  - {{ id: a, type: openai-compatible }}\n  - {{ id: a, type: mock }}\n  - {{ id: b, type: mock, model_mapping: {{ \"~(\": x }} }}\n\
             routes:\n  - name: r\n    match: {{ path_regex: \"(\" }}\n    upstreams: [{{ provider: nope }}]\n    quotas: [{{ name: q, by: tenant, strategy: requests, limit: 1, window: 5w }}]\n  - name: r\n"
        );
        let e = check(&yaml).err().unwrap();
        let all = e.to_string();
        for needle in [
            "t.yaml: providers[0].base_url: required",
            "t.yaml: providers[1].id: another provider has the same id",
            "t.yaml: providers[2].model_mapping.~(: not a valid regex: unclosed group",
            "t.yaml: routes[0].match.path_regex: not a valid regex",
            "t.yaml: routes[0].upstreams[0].provider: unknown provider",
            "t.yaml: routes[0].quotas[0].window: a window's unit is s, m, h or d",
            "t.yaml: routes[1].name: another route has the same name",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(
            !all.contains("nope") && !all.contains("5w"),
            "values are not quoted:\n{all}"
        );
    }

    #[test]
    fn bad_listen_address() {
        let e = check("server: { listen: nowhere }\n").err().unwrap();
        assert!(e.to_string().contains("server.listen"), "{e}");
    }
}
