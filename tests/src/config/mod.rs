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

mod pricing;
mod provider;
mod route;
mod server;
mod tenant;

pub use pricing::{Price, Pricing};
pub use provider::{AwsAuth, GcpAuth, Provider, Timeouts};
pub use route::{Attribute, Fallback, Quota, Route};
pub use server::{Server, State, Telemetry};
pub use tenant::{Consumer, Tenant};

use serde::Serialize;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

/// `pub fn key(self, v: T) -> Self` setting `Some(v)`, for each `key: T`.
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
pub(crate) use setters;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<Pricing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    budget_alerts: Option<Value>,
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

    /// `pricing:` (the currency, the built-in table, price entries).
    pub fn pricing(mut self, p: Pricing) -> Self {
        self.pricing = Some(p);
        self
    }

    /// `ledger.retention_days`.
    pub fn ledger_retention_days(mut self, days: u32) -> Self {
        let mut l = self.ledger.take().unwrap_or_else(|| serde_json::json!({}));
        l["retention_days"] = days.into();
        self.ledger = Some(l);
        self
    }

    /// `ledger.enabled: false`: no usage ledger (no ledger-only settle calls).
    pub fn no_ledger(mut self) -> Self {
        let mut l = self.ledger.take().unwrap_or_else(|| serde_json::json!({}));
        l["enabled"] = false.into();
        self.ledger = Some(l);
        self
    }

    /// `budget_alerts.webhook`: alerts POSTed to `url`, each attempt within
    /// `timeout_ms`, retried `max_retries` times.
    pub fn budget_alerts_webhook(mut self, url: &str, timeout_ms: u64, max_retries: u32) -> Self {
        self.budget_alerts = Some(serde_json::json!({
            "webhook": { "url": url, "timeout_ms": timeout_ms, "max_retries": max_retries }
        }));
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

/// The config of the fleet tests (replicas sharing one Redis): `state`
/// under `on_redis_error: fail_closed` (a quota call that fails shows as a
/// 503, never as a request admitted unchecked, so no test passes by luck
/// while scripts or connections misbehave) with `expected_replicas: 3`, one
/// openai-compatible provider `up1` at `base_url` (token
/// `sk-upstream-secret-1`, timeouts connect 1 s, first byte and idle 10 s,
/// total 30 s), one route `chat` on `/v1` keyed for every tenant and
/// consumer; the server with the admin token. The tenants are the test's.
pub fn keyed_fleet(state: State, base_url: &str) -> Config {
    Config::new()
        .server(Server::new().admin_token(crate::harness::ADMIN_TOKEN))
        .state(state.on_redis_error("fail_closed").expected_replicas(3))
        .provider(
            Provider::openai("up1", base_url)
                .token("sk-upstream-secret-1")
                .timeouts(Timeouts::all(1000, 10_000, 10_000, 30_000)),
        )
        .route(
            Route::new("chat", "/v1")
                .keyed_for(&["*"], &["*"])
                .upstream("up1"),
        )
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
            .pricing(
                Pricing::only()
                    .currency("EUR")
                    .price(Price::new("mock-*", "2.50", "10").cached_input("1.25"))
                    .price(
                        Price::new("mock-large", "3", "15")
                            .provider("up1")
                            .cache_write("3.75")
                            .reasoning("20"),
                    ),
            )
            .access_log()
            .set("server.max_connections", 7)
            .yaml();
        let v: Yaml = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(v["server"]["listen"].as_str(), Some("{{listen}}"));
        assert_eq!(v["server"]["max_connections"].as_u64(), Some(7));
        assert_eq!(v["pricing"]["models"][1]["reasoning"].as_str(), Some("20"));
        assert_eq!(
            v["telemetry"]["access_log"]["path"].as_str(),
            Some("{{access_log}}")
        );
        // the mapping keeps its order (the first match wins)
        let pos = |k: &str| yaml.find(k).unwrap();
        assert!(pos("gpt-4*") < pos("mock-small"), "{yaml}");
    }

    #[test]
    fn cloud_providers_are_built_with_their_keys() {
        use crate::mock_upstream::{
            AWS_TEST_ACCESS_KEY_ID, AWS_TEST_REGION, AWS_TEST_SESSION_TOKEN, GCP_TEST_PROJECT,
            GEMINI_API_KEY,
        };
        let yaml = Config::new()
            .provider(Provider::gemini("g", "http://127.0.0.1:1/v1beta").token(GEMINI_API_KEY))
            .provider(
                Provider::vertex(
                    "v",
                    "http://127.0.0.1:1/v1",
                    GCP_TEST_PROJECT,
                    "us-central1",
                )
                .gcp(
                    GcpAuth::test_account("http://127.0.0.1:1/token")
                        .expire_early_secs(60)
                        .max_ttl(600),
                ),
            )
            .provider(
                Provider::bedrock("b", "http://127.0.0.1:1", AWS_TEST_REGION)
                    .aws(AwsAuth::test().session_token(AWS_TEST_SESSION_TOKEN)),
            )
            .route(Route::new("chat", "/v1").upstream("g"))
            .yaml();
        let v: Yaml = serde_yaml_ng::from_str(&yaml).unwrap();
        let p = &v["providers"];
        assert_eq!(p[0]["type"].as_str(), Some("gemini"));
        assert_eq!(p[0]["api_tokens"][0].as_str(), Some(GEMINI_API_KEY));
        assert_eq!(p[1]["type"].as_str(), Some("vertex-ai"));
        assert_eq!(p[1]["project"].as_str(), Some(GCP_TEST_PROJECT));
        let gcp = &p[1]["auth"]["gcp"];
        let file = gcp["service_account_file"].as_str().unwrap();
        assert!(std::path::Path::new(file).is_file(), "{file}");
        assert_eq!(gcp["token_url"].as_str(), Some("http://127.0.0.1:1/token"));
        assert_eq!(gcp["max_ttl"].as_u64(), Some(600));
        assert_eq!(p[2]["region"].as_str(), Some(AWS_TEST_REGION));
        let aws = &p[2]["auth"]["aws"];
        assert_eq!(aws["access_key_id"].as_str(), Some(AWS_TEST_ACCESS_KEY_ID));
        assert_eq!(aws["session_token"].as_str(), Some(AWS_TEST_SESSION_TOKEN));
    }

    #[test]
    #[should_panic(expected = "does not accept")]
    fn a_misspelt_key_fails_where_the_config_is_built() {
        Config::new().set("server.config_pol_ms", 5).yaml();
    }
}
