//! `server:`, `state:` and `telemetry:` of a test config.

use super::setters;
use serde::Serialize;
use serde_json::{Map, Value};

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
