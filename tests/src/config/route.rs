//! `routes:` of a test config: matching, upstreams, fallback, quotas, ai_log attributes.

use serde::Serialize;
use serde_json::{Map, Value};

// ------------------------------------------------------------------ routes

/// One of `routes:`.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub(super) name: String,
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
    /// a count, or (a budget) decimal text of the currency
    limit: Value,
    window: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alerts: Vec<u8>,
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
            limit: limit.into(),
            window: window.into(),
            timezone: None,
            alerts: Vec::new(),
        }
    }

    /// A budget: `strategy: cost` with `limit` an amount of the pricing
    /// currency as decimal text (`"12.50"`); `window` sliding (`1h`) or a
    /// calendar (`day`, `week`, `month`).
    pub fn budget(name: &str, by: &str, limit: &str, window: &str) -> Self {
        Quota {
            limit: Value::String(limit.into()),
            ..Quota::new(name, by, "cost", 0, window)
        }
    }

    /// `timezone:` of a calendar window (an IANA name).
    pub fn timezone(mut self, tz: &str) -> Self {
        self.timezone = Some(tz.into());
        self
    }

    /// `alerts:` percentages of the limit (calendar windows).
    pub fn alerts(mut self, percents: &[u8]) -> Self {
        self.alerts = percents.to_vec();
        self
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
