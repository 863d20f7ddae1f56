//! The config file schema, every key of which `deploy/gateway.reference.yaml` shows.
//! Raw serde structs only (`deny_unknown_fields`); the gateway validates them into
//! runtime types. Defaults here are the documented defaults.

mod pricing;
mod provider;
mod route;
mod telemetry;
mod tenant;

pub use pricing::*;
pub use provider::*;
pub use route::*;
pub use telemetry::*;
pub use tenant::*;

use crate::env::EnvString;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub pricing: PricingConfig,
    #[serde(default)]
    pub ledger: LedgerConfig,
    #[serde(default)]
    pub budget_alerts: BudgetAlertsConfig,
}

// ---------------------------------------------------------------- server

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "d_listen")]
    pub listen: EnvString,
    #[serde(default = "d_admin_listen")]
    pub admin_listen: EnvString,
    /// Bearer token for `/admin/*`; absent or empty = admin API off.
    #[serde(default)]
    pub admin_token: Option<EnvString>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    #[serde(default = "d_header_timeout")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "d_grace")]
    pub shutdown_grace_s: u64,
    /// Added key: after SIGTERM (and `/readyz` 503), new connections are still
    /// accepted this long, while balancers take the replica out; part of the grace.
    #[serde(default = "d_shutdown_delay")]
    pub shutdown_delay_ms: u64,
    /// Added key: how often the config file is checked for changes (0 = never).
    #[serde(default = "d_reload_poll")]
    pub config_poll_ms: u64,
    /// Added key: a 404 `no_route` answer says what each route found wrong with
    /// the request (hosts, paths, model globs): for development only.
    #[serde(default)]
    pub verbose_errors: bool,
    /// Added key: upstream error bodies have what belongs to the gateway's own
    /// credentials and account (api keys, masked or whole; organisation, project
    /// and user ids) replaced by `[redacted]`.
    #[serde(default = "d_true")]
    pub redact_upstream_errors: bool,
    /// Added key: CIDRs (or addresses) of the proxies in front of the gateway;
    /// from them, `X-Forwarded-For` (and the PROXY protocol) name the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Added key: every data-plane connection starts with a PROXY protocol (v1
    /// or v2) header; its source address is believed from trusted proxies only.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Added key: request-body bytes buffered at once by all requests; a body
    /// that would go past it is answered 503 `overloaded`.
    #[serde(default = "d_max_buffered")]
    pub max_buffered_body_bytes: u64,
    /// Added key: the whole request body must arrive within this (408 otherwise).
    #[serde(default = "d_body_timeout")]
    pub body_read_timeout_ms: u64,
    /// Added key: streams one HTTP/2 client connection may have open at once.
    #[serde(default = "d_h2_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Added key: data-plane connections open at once; more wait in the
    /// listen backlog until one closes.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// Added key: an HTTP/1 keep-alive connection waiting for its next request,
    /// or an HTTP/2 connection with no open stream, is closed after this long.
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Added key: HTTP/2 PING every this often (0 = off) ...
    #[serde(default = "d_h2_ping")]
    pub http2_keepalive_interval_ms: u64,
    /// Added key: ... and the connection is closed when its answer takes longer.
    #[serde(default = "d_h2_ping_timeout")]
    pub http2_keepalive_timeout_ms: u64,
    /// Added key: a client that accepts no bytes of its answer for this long is
    /// cut (its usage is settled and logged, flag `DC`).
    #[serde(default = "d_client_write_timeout")]
    pub client_write_timeout_ms: u64,
}

fn d_max_buffered() -> u64 {
    256 * 1024 * 1024
}
fn d_body_timeout() -> u64 {
    60_000
}
fn d_h2_streams() -> u32 {
    100
}
fn d_max_connections() -> usize {
    10_000
}
fn d_idle_timeout() -> u64 {
    60_000
}
fn d_h2_ping() -> u64 {
    20_000
}
fn d_h2_ping_timeout() -> u64 {
    10_000
}
fn d_client_write_timeout() -> u64 {
    30_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: d_listen(),
            admin_listen: d_admin_listen(),
            admin_token: None,
            tls: None,
            max_body_bytes: d_max_body(),
            header_read_timeout_ms: d_header_timeout(),
            shutdown_grace_s: d_grace(),
            shutdown_delay_ms: d_shutdown_delay(),
            config_poll_ms: d_reload_poll(),
            verbose_errors: false,
            redact_upstream_errors: true,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            max_buffered_body_bytes: d_max_buffered(),
            body_read_timeout_ms: d_body_timeout(),
            http2_max_concurrent_streams: d_h2_streams(),
            max_connections: d_max_connections(),
            idle_timeout_ms: d_idle_timeout(),
            http2_keepalive_interval_ms: d_h2_ping(),
            http2_keepalive_timeout_ms: d_h2_ping_timeout(),
            client_write_timeout_ms: d_client_write_timeout(),
        }
    }
}

fn d_listen() -> EnvString {
    "0.0.0.0:8080".into()
}
fn d_admin_listen() -> EnvString {
    "127.0.0.1:8001".into()
}
fn d_max_body() -> u64 {
    10 * 1024 * 1024
}
fn d_header_timeout() -> u64 {
    10_000
}
fn d_grace() -> u64 {
    30
}
fn d_shutdown_delay() -> u64 {
    2000
}
fn d_reload_poll() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: EnvString,
    pub key: EnvString,
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub on_redis_error: OnRedisError,
    #[serde(default = "d_one")]
    pub expected_replicas: u32,
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl_ms: u64,
    /// added: how long a key that was valid stays usable from the cache while the
    /// backend cannot be reached (unknown keys are refused meanwhile)
    #[serde(default = "d_stale_if_error")]
    pub stale_if_error_s: u64,
    /// added: completion tokens a quota reserves for a request that sets no
    /// max_tokens (its real usage is settled afterwards)
    #[serde(default = "d_quota_max_tokens")]
    pub quota_max_tokens: u64,
    /// added: how long a quota reservation is held for a replica that never
    /// settles it (killed); 0 = the route's longest upstream total timeout + 30 s
    #[serde(default)]
    pub quota_lease_s: u64,
    /// added: settlements kept for Redis while it is unreachable (oldest dropped)
    #[serde(default = "d_settle_queue")]
    pub settle_queue_size: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: Backend::Memory,
            redis: None,
            on_redis_error: OnRedisError::FailOpen,
            expected_replicas: 1,
            cache_ttl_ms: d_cache_ttl(),
            stale_if_error_s: d_stale_if_error(),
            quota_max_tokens: d_quota_max_tokens(),
            quota_lease_s: 0,
            settle_queue_size: d_settle_queue(),
        }
    }
}

fn d_quota_max_tokens() -> u64 {
    4096
}
fn d_settle_queue() -> usize {
    100_000
}
fn d_one() -> u32 {
    1
}
fn d_stale_if_error() -> u64 {
    300
}
fn d_cache_ttl() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    #[default]
    FailOpen,
    FailClosed,
    Local,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default)]
    pub url: Option<EnvString>,
    #[serde(default)]
    pub cluster_nodes: Option<Vec<EnvString>>,
    #[serde(default = "d_pool")]
    pub pool_size: u32,
    #[serde(default = "d_redis_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "d_prefix")]
    pub key_prefix: String,
}

fn d_pool() -> u32 {
    32
}
fn d_redis_timeout() -> u64 {
    50
}
fn d_prefix() -> String {
    "gw:".to_string()
}

// ---------------------------------------------------------------- auth

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "d_key_headers")]
    pub keys: Vec<String>,
    #[serde(default)]
    pub in_query: bool,
    #[serde(default = "d_consumer_header")]
    pub consumer_header: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            keys: d_key_headers(),
            in_query: false,
            consumer_header: d_consumer_header(),
        }
    }
}

fn d_key_headers() -> Vec<String> {
    vec!["Authorization".into(), "x-api-key".into(), "api-key".into()]
}
fn d_consumer_header() -> String {
    "x-gateway-consumer".into()
}

// ---------------------------------------------------------------- shared defaults

fn d_true() -> bool {
    true
}
fn d_star() -> Vec<String> {
    vec!["*".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_replica_trusts_cached_keys_for_five_minutes_by_default() {
        assert_eq!(StateConfig::default().stale_if_error_s, 300);
    }
}
