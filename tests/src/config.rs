//! Gateway configs for the tests, built as typed values instead of YAML
//! assembled with `format!`.
//!
//! ```ignore
//! let yaml = Config::new()
//!     .server(Server::new().admin_token(ADMIN_TOKEN).config_poll_ms(200))
//!     .provider(Provider::openai("up1", &mock.base_url()).token("sk-upstream-secret-1"))
//!     .route(Route::new("chat", "/v1").upstream("up1"))
//!     .access_log()
//!     .yaml();
//! let gw = Gateway::start(&yaml).await;
//! ```
//!
//! Keys are spelled exactly as the gateway reads them (`shared::config`), and
//! [`Config::yaml`] checks that: the YAML it returns is parsed as a
//! `shared::config::RawConfig` (which denies unknown fields) and a key the
//! gateway would refuse panics there, naming it. A config that is wrong on
//! purpose (for `--check-config` or a refused reload) goes through
//! [`Config::yaml_unchecked`]. What has no typed setter is set with
//! [`Config::set`] (a dotted path and a JSON value), checked the same way.
//!
//! Unset optional keys are left out, so the gateway's defaults apply. The
//! server's listeners default to the harness placeholders `{{listen}}` and
//! `{{admin}}`, and [`Config::access_log`] writes to `{{access_log}}`.

use serde::Serialize;
use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, v: $ty) -> Self {
                self.$name = Some(v);
                self
            }
        )*
    };
}

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Config {
    server: Server,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<State>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    providers: Vec<Provider>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tenants: Vec<Tenant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    telemetry: Option<Telemetry>,
    /// `(dotted path, value)` set after serialising ([`Config::set`]).
    #[serde(skip)]
    overrides: Vec<(String, Value)>,
}

impl Config {
    /// Listeners on the harness placeholders; nothing else set.
    pub fn new() -> Self {
        Config::default()
    }

    pub fn server(mut self, s: Server) -> Self {
        self.server = s;
        self
    }

    pub fn state(mut self, s: State) -> Self {
        self.state = Some(s);
        self
    }

    /// `auth.keys`: the headers a client key is read from.
    pub fn key_headers(self, headers: &[&str]) -> Self {
        self.auth(serde_json::json!({ "keys": headers }))
    }

    /// `auth:` (key headers, `in_query`, `consumer_header`) as a JSON object.
    pub fn auth(mut self, v: Value) -> Self {
        self.auth = Some(v);
        self
    }

    pub fn provider(mut self, p: Provider) -> Self {
        self.providers.push(p);
        self
    }

    pub fn route(mut self, r: Route) -> Self {
        self.routes.push(r);
        self
    }

    pub fn tenant(mut self, t: Tenant) -> Self {
        self.tenants.push(t);
        self
    }

    pub fn telemetry(mut self, t: Telemetry) -> Self {
        self.telemetry = Some(t);
        self
    }

    /// Changes the server part with `f`.
    pub fn with_server(mut self, f: impl FnOnce(Server) -> Server) -> Self {
        self.server = f(self.server);
        self
    }

    /// Changes provider `id` with `f` (panics when there is none).
    pub fn with_provider(mut self, id: &str, f: impl FnOnce(Provider) -> Provider) -> Self {
        let i = self
            .providers
            .iter()
            .position(|p| p.id == id)
            .unwrap_or_else(|| panic!("no provider {id} in the config"));
        let p = self.providers.remove(i);
        self.providers.insert(i, f(p));
        self
    }

    /// Changes route `name` with `f` (panics when there is none).
    pub fn with_route(mut self, name: &str, f: impl FnOnce(Route) -> Route) -> Self {
        let i = self
            .routes
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no route {name} in the config"));
        let r = self.routes.remove(i);
        self.routes.insert(i, f(r));
        self
    }

    /// The access log on, to the harness's `{{access_log}}` file.
    pub fn access_log(self) -> Self {
        let t = self.telemetry.clone().unwrap_or_default();
        self.telemetry(t.access_log("{{access_log}}"))
    }

    /// The access log off.
    pub fn no_access_log(self) -> Self {
        let t = self.telemetry.clone().unwrap_or_default();
        self.telemetry(t.access_log_off())
    }

    /// Sets the key at `path` (dots between keys, list items by index:
    /// `routes.0.fallback.within_ms`) to `value`, creating objects on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        self.overrides.push((path.to_string(), value.into()));
        self
    }

    /// The config as a YAML value (overrides applied; key order kept, which
    /// `model_mapping` needs).
    pub fn to_value(&self) -> Yaml {
        let mut v = serde_yaml_ng::to_value(self).unwrap_or_else(|e| panic!("config: {e}"));
        for (path, value) in &self.overrides {
            let value = serde_yaml_ng::to_value(value).unwrap_or_else(|e| panic!("{path}: {e}"));
            set_path(&mut v, path, value);
        }
        v
    }

    /// The YAML text, checked against the gateway's schema (panics naming the
    /// key it does not accept).
    pub fn yaml(&self) -> String {
        let v = self.to_value();
        let text = to_yaml(&v);
        if let Err(e) = check_schema(&v) {
            panic!("the test config has a key the gateway does not accept: {e}\n{text}");
        }
        text
    }

    /// The YAML text without the schema check (for configs wrong on purpose).
    pub fn yaml_unchecked(&self) -> String {
        to_yaml(&self.to_value())
    }
}

fn to_yaml(v: &Yaml) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_else(|e| panic!("config to YAML: {e}"))
}

/// Parses `v` as the gateway's raw config: unknown keys and wrong types are
/// errors. `${NAME}` values are not expanded here (the test process need not
/// have the gateway's environment).
pub fn check_schema(v: &Yaml) -> Result<(), String> {
    let mut v = v.clone();
    blank_env_refs(&mut v);
    serde_yaml_ng::from_value::<shared::config::RawConfig>(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn blank_env_refs(v: &mut Yaml) {
    match v {
        Yaml::String(s) if s.contains("${") => *s = "env".into(),
        Yaml::Sequence(a) => a.iter_mut().for_each(blank_env_refs),
        Yaml::Mapping(o) => o.values_mut().for_each(blank_env_refs),
        _ => {}
    }
}

fn set_path(v: &mut Yaml, path: &str, value: Yaml) {
    let mut cur = v;
    for (i, p) in path.split('.').enumerate() {
        if !matches!(cur, Yaml::Sequence(_) | Yaml::Mapping(_)) {
            *cur = Yaml::Mapping(Default::default());
        }
        cur = match cur {
            Yaml::Sequence(a) => {
                let n: usize = p
                    .parse()
                    .unwrap_or_else(|_| panic!("{path}: {p} is not a list index"));
                a.get_mut(n)
                    .unwrap_or_else(|| panic!("{path}: no item {n}"))
            }
            Yaml::Mapping(o) => o.entry(Yaml::String(p.to_string())).or_insert(Yaml::Null),
            _ => panic!("{path}: step {i} is not a mapping"),
        };
    }
    *cur = value;
}

/// The config most tests start from: one openai-compatible provider `up1` at
/// `base_url` (token `sk-upstream-secret-1`), mapping `gpt-4*` -> `mock-large`,
/// `~^claude-(.*)$` -> `anthropic-$1`, `*` -> `mock-small`, options
/// `temperature: 0`, timeouts connect 500 ms, first byte 2 s, idle 1 s, total
/// 10 s; one route `chat` on `/v1` falling back on 5xx, 429, connect errors and
/// timeouts (2 retries); server with the admin token [`crate::harness::ADMIN_TOKEN`],
/// a 1 MiB body limit, a 1 s header timeout, polling the file every 200 ms;
/// access log to `{{access_log}}`.
pub fn single_provider(base_url: &str) -> Config {
    Config::new()
        .server(
            Server::new()
                .admin_token(crate::harness::ADMIN_TOKEN)
                .max_body_bytes(1_048_576)
                .header_read_timeout_ms(1000)
                .config_poll_ms(200),
        )
        .provider(
            Provider::openai("up1", base_url)
                .token("sk-upstream-secret-1")
                .map("gpt-4*", "mock-large")
                .map("~^claude-(.*)$", "anthropic-$1")
                .map("*", "mock-small")
                .option("temperature", 0)
                .timeouts(Timeouts::all(500, 2000, 1000, 10_000)),
        )
        .route(
            Route::new("chat", "/v1")
                .upstream("up1")
                .fallback(Fallback::on(
                    &["http_5xx", "http_429", "connect_error", "timeout"],
                    2,
                )),
        )
        .access_log()
}

// ------------------------------------------------------------------ server

/// `server:`. Its listeners are `{{listen}}` and `{{admin}}`.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    listen: String,
    admin_listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_read_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shutdown_grace_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shutdown_delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config_poll_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verbose_errors: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redact_upstream_errors: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_proxies: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_protocol: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_buffered_body_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_read_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http2_max_concurrent_streams: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http2_keepalive_interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http2_keepalive_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_write_timeout_ms: Option<u64>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "{{listen}}".into(),
            admin_listen: "{{admin}}".into(),
            admin_token: None,
            tls: None,
            max_body_bytes: None,
            header_read_timeout_ms: None,
            shutdown_grace_s: None,
            shutdown_delay_ms: None,
            config_poll_ms: None,
            verbose_errors: None,
            redact_upstream_errors: None,
            trusted_proxies: None,
            proxy_protocol: None,
            max_buffered_body_bytes: None,
            body_read_timeout_ms: None,
            http2_max_concurrent_streams: None,
            max_connections: None,
            idle_timeout_ms: None,
            http2_keepalive_interval_ms: None,
            http2_keepalive_timeout_ms: None,
            client_write_timeout_ms: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Tls {
    cert: String,
    key: String,
}

impl Server {
    pub fn new() -> Self {
        Server::default()
    }

    /// The data-plane listener (default `{{listen}}`).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.into();
        self
    }

    /// The admin listener (default `{{admin}}`).
    pub fn admin_listen(mut self, addr: &str) -> Self {
        self.admin_listen = addr.into();
        self
    }

    /// `tls: { cert, key }` (file paths).
    pub fn tls(mut self, cert: &str, key: &str) -> Self {
        self.tls = Some(Tls {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    pub fn admin_token(mut self, t: &str) -> Self {
        self.admin_token = Some(t.into());
        self
    }

    /// `trusted_proxies`: CIDRs or addresses.
    pub fn trusted_proxies(mut self, nets: &[&str]) -> Self {
        self.trusted_proxies = Some(nets.iter().map(|s| s.to_string()).collect());
        self
    }

    setters! {
        max_body_bytes: u64,
        header_read_timeout_ms: u64,
        shutdown_grace_s: u64,
        shutdown_delay_ms: u64,
        config_poll_ms: u64,
        verbose_errors: bool,
        redact_upstream_errors: bool,
        proxy_protocol: bool,
        max_buffered_body_bytes: u64,
        body_read_timeout_ms: u64,
        http2_max_concurrent_streams: u32,
        max_connections: u64,
        idle_timeout_ms: u64,
        http2_keepalive_interval_ms: u64,
        http2_keepalive_timeout_ms: u64,
        client_write_timeout_ms: u64,
    }
}

// ------------------------------------------------------------------ state

/// `state:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_redis_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_if_error_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_lease_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settle_queue_size: Option<u64>,
}

impl State {
    /// `backend: memory`.
    pub fn memory() -> Self {
        State {
            backend: Some("memory".into()),
            ..State::default()
        }
    }

    /// `backend: redis` with `redis: { url }`.
    pub fn redis(url: &str) -> Self {
        State {
            backend: Some("redis".into()),
            redis: Some(serde_json::json!({ "url": url })),
            ..State::default()
        }
    }

    /// `backend: redis` with `redis: { cluster_nodes }`.
    pub fn redis_cluster(nodes: &[String]) -> Self {
        State {
            backend: Some("redis".into()),
            redis: Some(serde_json::json!({ "cluster_nodes": nodes })),
            ..State::default()
        }
    }

    /// A key of `redis:` (`key_prefix`, `timeout_ms`, `pool_size`).
    pub fn redis_key(mut self, key: &str, value: impl Into<Value>) -> Self {
        let r = self.redis.get_or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = r {
            o.insert(key.into(), value.into());
        }
        self
    }

    /// `on_redis_error`: `fail_open`, `fail_closed` or `local`.
    pub fn on_redis_error(mut self, v: &str) -> Self {
        self.on_redis_error = Some(v.into());
        self
    }

    setters! {
        expected_replicas: u32,
        cache_ttl_ms: u64,
        stale_if_error_s: u64,
        quota_max_tokens: u64,
        quota_lease_s: u64,
        settle_queue_size: u64,
    }
}

// ------------------------------------------------------------------ providers

/// One of `providers:`.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    api_tokens: Vec<String>,
    /// in order: the first matching pattern wins
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ordered_map")]
    model_mapping: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeouts: Option<Timeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passive: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<String>,
}

fn ordered_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// `timeouts:` of a provider (each unset one keeps its default).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
}

impl Timeouts {
    /// All four: connect, first byte, idle, total (ms).
    pub fn all(connect_ms: u64, first_byte_ms: u64, idle_ms: u64, total_ms: u64) -> Self {
        Timeouts {
            connect_ms: Some(connect_ms),
            first_byte_ms: Some(first_byte_ms),
            idle_ms: Some(idle_ms),
            total_ms: Some(total_ms),
        }
    }
}

impl Provider {
    /// A provider of `kind` (`openai-compatible`, `azure-openai`, `mock`, ...).
    pub fn new(id: &str, kind: &str) -> Self {
        Provider {
            id: id.into(),
            kind: kind.into(),
            base_url: None,
            api_version: None,
            api_tokens: Vec::new(),
            model_mapping: Vec::new(),
            options: Map::new(),
            timeouts: None,
            checks: None,
            passive: None,
            models: Vec::new(),
        }
    }

    /// `type: openai-compatible` at `base_url`.
    pub fn openai(id: &str, base_url: &str) -> Self {
        Provider::new(id, "openai-compatible").base_url(base_url)
    }

    /// `type: mock` (the gateway answers itself).
    pub fn mock(id: &str) -> Self {
        Provider::new(id, "mock")
    }

    pub fn base_url(mut self, url: &str) -> Self {
        self.base_url = Some(url.into());
        self
    }

    pub fn api_version(mut self, v: &str) -> Self {
        self.api_version = Some(v.into());
        self
    }

    /// Adds one of `api_tokens`.
    pub fn token(mut self, t: &str) -> Self {
        self.api_tokens.push(t.into());
        self
    }

    /// `api_tokens`, replacing any set before.
    pub fn tokens(mut self, tokens: &[&str]) -> Self {
        self.api_tokens = tokens.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Adds `pattern -> model` to `model_mapping` (after those already there).
    pub fn map(mut self, pattern: &str, model: &str) -> Self {
        self.model_mapping.push((pattern.into(), model.into()));
        self
    }

    /// Adds one of `options` (fields set on every request).
    pub fn option(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.options.insert(key.into(), v.into());
        self
    }

    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = Some(t);
        self
    }

    /// `checks:` as a JSON object (`{ active: { ... } }`).
    pub fn checks(mut self, v: Value) -> Self {
        self.checks = Some(v);
        self
    }

    /// `passive: { failures, window_s, ejection_s }`.
    pub fn passive(mut self, failures: u32, window_s: u64, ejection_s: u64) -> Self {
        self.passive = Some(serde_json::json!({
            "failures": failures, "window_s": window_s, "ejection_s": ejection_s
        }));
        self
    }

    /// Adds one of `models` (listed by `GET /v1/models`).
    pub fn model(mut self, m: &str) -> Self {
        self.models.push(m.into());
        self
    }
}

// ------------------------------------------------------------------ routes

/// One of `routes:`.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    name: String,
    #[serde(rename = "match")]
    matcher: Match,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<Value>,
    upstreams: Vec<Upstream>,
    #[serde(skip_serializing_if = "Option::is_none")]
    balancer: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<Fallback>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quotas: Vec<Quota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ai_log: Option<AiLog>,
}

/// `ai_log:` of a route.
#[derive(Debug, Clone, Default, Serialize)]
struct AiLog {
    attributes: Vec<Attribute>,
}

/// One of `ai_log.attributes` of a route.
#[derive(Debug, Clone, Serialize)]
pub struct Attribute {
    key: String,
    value_source: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_value: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    apply_to_log: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    apply_to_span: bool,
}

impl Attribute {
    /// An attribute `key` for the access log, read from `value_source`
    /// (`fixed_value`, `request_header`, `request_body`, `response_header`,
    /// `response_body`, `response_streaming_body`) at `value`.
    pub fn log(key: &str, value_source: &str, value: &str) -> Self {
        Attribute {
            key: key.into(),
            value_source: value_source.into(),
            value: value.into(),
            rule: None,
            default_value: None,
            apply_to_log: true,
            apply_to_span: false,
        }
    }

    /// As [`Attribute::log`], for the span only.
    pub fn span(key: &str, value_source: &str, value: &str) -> Self {
        Attribute {
            apply_to_log: false,
            apply_to_span: true,
            ..Attribute::log(key, value_source, value)
        }
    }

    /// Applies to the span too.
    pub fn on_span(mut self) -> Self {
        self.apply_to_span = true;
        self
    }

    /// `rule`: `first`, `replace` or `append`.
    pub fn rule(mut self, rule: &str) -> Self {
        self.rule = Some(rule.into());
        self
    }

    pub fn default_value(mut self, v: &str) -> Self {
        self.default_value = Some(v.into());
        self
    }
}

/// `match:` of a route.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Match {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_regex: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    headers: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<String>,
}

/// One of `upstreams:` of a route.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
}

/// `fallback:` of a route.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fallback {
    #[serde(skip_serializing_if = "Option::is_none")]
    on: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    within_ms: Option<u64>,
}

impl Fallback {
    /// `on:` the given reasons (`http_5xx`, `http_429`, `connect_error`,
    /// `timeout`, ...), `max_retries`.
    pub fn on(on: &[&str], max_retries: u32) -> Self {
        Fallback {
            on: Some(on.iter().map(|s| s.to_string()).collect()),
            max_retries: Some(max_retries),
            within_ms: None,
        }
    }

    pub fn within_ms(mut self, ms: u64) -> Self {
        self.within_ms = Some(ms);
        self
    }
}

/// One of `quotas:` (of a route, tenant or consumer).
#[derive(Debug, Clone, Serialize)]
pub struct Quota {
    name: String,
    by: String,
    strategy: String,
    limit: u64,
    window: String,
}

impl Quota {
    /// `{ name, by, strategy, limit, window }`; `by` is `route`, `tenant`,
    /// `consumer`, `upstream`, `ip` or `header:<name>`; `strategy` is
    /// `total_tokens`, `prompt_tokens`, `completion_tokens` or `requests`.
    pub fn new(name: &str, by: &str, strategy: &str, limit: u64, window: &str) -> Self {
        Quota {
            name: name.into(),
            by: by.into(),
            strategy: strategy.into(),
            limit,
            window: window.into(),
        }
    }
}

impl Route {
    /// A route matching paths under `path_prefix`.
    pub fn new(name: &str, path_prefix: &str) -> Self {
        Route {
            name: name.into(),
            matcher: Match {
                path_prefix: Some(path_prefix.into()),
                ..Match::default()
            },
            auth: None,
            upstreams: Vec::new(),
            balancer: None,
            fallback: None,
            quotas: Vec::new(),
            ai_log: None,
        }
    }

    /// Adds an upstream instance (priority and weight left at their defaults).
    pub fn upstream(mut self, provider: &str) -> Self {
        self.upstreams.push(Upstream {
            provider: provider.into(),
            priority: None,
            weight: None,
        });
        self
    }

    /// Adds an upstream instance with a `priority` (lower first).
    pub fn upstream_priority(mut self, provider: &str, priority: i32) -> Self {
        self.upstreams.push(Upstream {
            provider: provider.into(),
            priority: Some(priority),
            weight: None,
        });
        self
    }

    /// Adds an upstream instance with a `priority` and a `weight`.
    pub fn upstream_at(mut self, provider: &str, priority: i32, weight: u32) -> Self {
        self.upstreams.push(Upstream {
            provider: provider.into(),
            priority: Some(priority),
            weight: Some(weight),
        });
        self
    }

    /// Adds an upstream instance with a `weight`.
    pub fn upstream_weight(mut self, provider: &str, weight: u32) -> Self {
        self.upstreams.push(Upstream {
            provider: provider.into(),
            priority: None,
            weight: Some(weight),
        });
        self
    }

    /// Adds one of `match.models` (globs).
    pub fn model(mut self, glob: &str) -> Self {
        self.matcher.models.push(glob.into());
        self
    }

    /// Adds one of `match.hosts`.
    pub fn host(mut self, host: &str) -> Self {
        self.matcher.hosts.push(host.into());
        self
    }

    /// `match.headers.<name>: [values]`.
    pub fn header(mut self, name: &str, values: &[&str]) -> Self {
        self.matcher
            .headers
            .insert(name.into(), serde_json::json!(values));
        self
    }

    /// Matches `path_exact` instead of the prefix.
    pub fn path_exact(mut self, path: &str) -> Self {
        self.matcher.path_prefix = None;
        self.matcher.path_exact = Some(path.into());
        self
    }

    /// `auth: { enabled: true }`: every request needs a key.
    pub fn keyed(mut self) -> Self {
        self.auth = Some(serde_json::json!({ "enabled": true }));
        self
    }

    /// `auth: { enabled: true, allowed_tenants, allowed_consumers }`.
    pub fn keyed_for(mut self, tenants: &[&str], consumers: &[&str]) -> Self {
        self.auth = Some(serde_json::json!({
            "enabled": true,
            "allowed_tenants": tenants,
            "allowed_consumers": consumers,
        }));
        self
    }

    /// `auth:` as a JSON object (`enabled`, `allowed_tenants`, `allowed_consumers`).
    pub fn auth(mut self, v: Value) -> Self {
        self.auth = Some(v);
        self
    }

    /// `balancer: { algorithm }` (`roundrobin`, `least_busy`).
    pub fn balancer(mut self, algorithm: &str) -> Self {
        self.balancer = Some(serde_json::json!({ "algorithm": algorithm }));
        self
    }

    /// `balancer: { algorithm: chash, hash_on }` (`header:<name>`,
    /// `cookie:<name>`, `consumer`, ...).
    pub fn chash(mut self, hash_on: &str) -> Self {
        self.balancer = Some(serde_json::json!({ "algorithm": "chash", "hash_on": hash_on }));
        self
    }

    pub fn fallback(mut self, f: Fallback) -> Self {
        self.fallback = Some(f);
        self
    }

    pub fn quota(mut self, q: Quota) -> Self {
        self.quotas.push(q);
        self
    }

    /// Adds one of `ai_log.attributes`.
    pub fn attribute(mut self, a: Attribute) -> Self {
        self.ai_log
            .get_or_insert_with(AiLog::default)
            .attributes
            .push(a);
        self
    }
}

// ------------------------------------------------------------------ tenants

/// One of `tenants:`.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quotas: Vec<Quota>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    consumers: Vec<Consumer>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Value>,
}

/// One of `consumers:` of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Consumer {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quotas: Vec<Quota>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Value>,
}

impl Tenant {
    pub fn new(id: &str) -> Self {
        Tenant {
            id: id.into(),
            allowed_models: None,
            quotas: Vec::new(),
            consumers: Vec::new(),
            metadata: Map::new(),
        }
    }

    pub fn allowed_models(mut self, globs: &[&str]) -> Self {
        self.allowed_models = Some(globs.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn quota(mut self, q: Quota) -> Self {
        self.quotas.push(q);
        self
    }

    pub fn consumer(mut self, c: Consumer) -> Self {
        self.consumers.push(c);
        self
    }

    pub fn metadata(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), v.into());
        self
    }
}

impl Consumer {
    pub fn new(name: &str) -> Self {
        Consumer {
            name: name.into(),
            keys: Vec::new(),
            allowed_models: None,
            quotas: Vec::new(),
            metadata: Map::new(),
        }
    }

    /// Adds one of the consumer's API keys.
    pub fn key(mut self, k: &str) -> Self {
        self.keys.push(k.into());
        self
    }

    pub fn allowed_models(mut self, globs: &[&str]) -> Self {
        self.allowed_models = Some(globs.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn quota(mut self, q: Quota) -> Self {
        self.quotas.push(q);
        self
    }

    pub fn metadata(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), v.into());
        self
    }
}

// ------------------------------------------------------------------ telemetry

/// `telemetry:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Telemetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_log: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prometheus: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_payloads: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_length_limit: Option<u64>,
}

impl Telemetry {
    pub fn new() -> Self {
        Telemetry::default()
    }

    /// `access_log: { enabled: true, path }`.
    pub fn access_log(mut self, path: &str) -> Self {
        self.access_log = Some(serde_json::json!({ "enabled": true, "path": path }));
        self
    }

    /// `access_log: { enabled: false }`.
    pub fn access_log_off(mut self) -> Self {
        self.access_log = Some(serde_json::json!({ "enabled": false }));
        self
    }

    /// `otlp:` as a JSON object (`endpoint`, `protocol`, ...).
    pub fn otlp(mut self, v: Value) -> Self {
        self.otlp = Some(v);
        self
    }

    setters! {
        prometheus: bool,
        log_payloads: bool,
        value_length_limit: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_config_is_one_the_gateway_accepts() {
        let yaml = Config::new()
            .server(Server::new().admin_token("t").config_poll_ms(200))
            .state(State::redis("redis://127.0.0.1:1").redis_key("key_prefix", "gw:"))
            .provider(
                Provider::openai("up1", "http://127.0.0.1:1/v1")
                    .token("sk-1")
                    .map("gpt-4*", "mock-large")
                    .map("*", "mock-small")
                    .option("temperature", 0)
                    .timeouts(Timeouts::all(500, 2000, 1000, 10_000)),
            )
            .route(
                Route::new("chat", "/v1")
                    .upstream("up1")
                    .keyed()
                    .fallback(Fallback::on(&["http_5xx"], 1))
                    .quota(Quota::new("rpm", "consumer", "requests", 5, "1m")),
            )
            .tenant(Tenant::new("acme").consumer(Consumer::new("bob").key("sk-bob")))
            .access_log()
            .set("server.max_connections", 7)
            .yaml();
        let v: Yaml = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(v["server"]["listen"].as_str(), Some("{{listen}}"));
        assert_eq!(v["server"]["max_connections"].as_u64(), Some(7));
        assert_eq!(
            v["telemetry"]["access_log"]["path"].as_str(),
            Some("{{access_log}}")
        );
        // the mapping keeps its order (the first match wins)
        let pos = |k: &str| yaml.find(k).unwrap();
        assert!(pos("gpt-4*") < pos("mock-small"), "{yaml}");
    }

    #[test]
    #[should_panic(expected = "does not accept")]
    fn a_misspelt_key_fails_where_the_config_is_built() {
        Config::new().set("server.config_pol_ms", 5).yaml();
    }
}
