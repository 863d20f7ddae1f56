//! `server:` validated: listeners, TLS, request and connection bounds, who the
//! client is (trusted proxies, PROXY protocol).

use super::problems::Problems;
use shared::config::RawConfig;
use std::net::SocketAddr;
use std::time::Duration;

pub struct ServerRt {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<String>,
    /// the PEM files (the rustls config is built with the runtime: `Runtime::tls`)
    pub tls: Option<crate::tls::Files>,
    pub max_body_bytes: u64,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    /// accepting after SIGTERM (at most the grace)
    pub shutdown_delay: Duration,
    pub config_poll: Option<Duration>,
    /// `no_route` answers carry each route's mismatch
    pub verbose_errors: bool,
    /// upstream error bodies lose the gateway's account details
    pub redact_upstream_errors: bool,
    /// who may say who the client is
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    /// connections start with a PROXY protocol header
    pub proxy_protocol: bool,
    /// request bodies buffered at once, all requests together
    pub max_buffered_body_bytes: u64,
    pub body_read_timeout: Duration,
    pub conn: ConnLimits,
}

/// How connections are bounded (read when the listeners start: a change needs
/// a restart, except `client_write_timeout` and `idle_timeout`, read per
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
    pub idle_timeout: Duration,
    /// None: no PINGs
    pub http2_keepalive: Option<(Duration, Duration)>,
    pub client_write_timeout: Duration,
}

/// A day in ms: the longest time-out a `server.*_ms` key may set.
const DAY_MS: u64 = 86_400_000;

fn addr(p: &mut Problems, key: &str, value: &str) -> Option<SocketAddr> {
    value
        .parse()
        .map_err(|_| p.error(key, "not an ip:port address (e.g. 0.0.0.0:8080)"))
        .ok()
}

pub fn server(raw: &RawConfig, p: &mut Problems) -> Option<ServerRt> {
    let s = &raw.server;
    let listen = addr(p, "server.listen", &s.listen);
    let admin_listen = addr(p, "server.admin_listen", &s.admin_listen);
    if listen.is_some() && listen == admin_listen {
        p.error("server.admin_listen", "must differ from server.listen");
    }
    if s.max_body_bytes == 0 {
        p.error("server.max_body_bytes", "must be greater than 0");
    }
    if s.header_read_timeout_ms == 0 {
        p.error("server.header_read_timeout_ms", "must be greater than 0");
    }
    let admin_token = s
        .admin_token
        .as_ref()
        .map(|t| t.as_str().to_string())
        .filter(|t| !t.is_empty());
    if admin_token.is_none() {
        p.warn(
            "server.admin_token",
            "not set: /admin/* is off (health endpoints stay on)",
        );
    }
    let grace = Duration::from_secs(s.shutdown_grace_s);
    let mut shutdown_delay = Duration::from_millis(s.shutdown_delay_ms);
    if shutdown_delay > grace {
        p.warn(
            "server.shutdown_delay_ms",
            format!(
                "longer than shutdown_grace_s ({} s), of which it is a part: the whole grace is used",
                s.shutdown_grace_s
            ),
        );
        shutdown_delay = grace;
    }
    for (key, v) in [
        ("body_read_timeout_ms", s.body_read_timeout_ms),
        (
            "http2_max_concurrent_streams",
            u64::from(s.http2_max_concurrent_streams),
        ),
        ("max_connections", s.max_connections as u64),
        ("idle_timeout_ms", s.idle_timeout_ms),
        ("client_write_timeout_ms", s.client_write_timeout_ms),
    ] {
        if v == 0 {
            p.error(format!("server.{key}"), "must be greater than 0");
        }
    }
    for (key, v, most) in [
        ("body_read_timeout_ms", s.body_read_timeout_ms, DAY_MS),
        ("idle_timeout_ms", s.idle_timeout_ms, DAY_MS),
        ("client_write_timeout_ms", s.client_write_timeout_ms, DAY_MS),
        (
            "http2_keepalive_interval_ms",
            s.http2_keepalive_interval_ms,
            DAY_MS,
        ),
        (
            "http2_keepalive_timeout_ms",
            s.http2_keepalive_timeout_ms,
            DAY_MS,
        ),
        ("header_read_timeout_ms", s.header_read_timeout_ms, DAY_MS),
        ("max_connections", s.max_connections as u64, 1_000_000),
        (
            "http2_max_concurrent_streams",
            u64::from(s.http2_max_concurrent_streams),
            10_000,
        ),
    ] {
        if v > most {
            p.error(format!("server.{key}"), format!("must be at most {most}"));
        }
    }
    if s.http2_keepalive_interval_ms > 0 && s.http2_keepalive_timeout_ms == 0 {
        p.error(
            "server.http2_keepalive_timeout_ms",
            "must be greater than 0",
        );
    }
    if s.max_buffered_body_bytes < s.max_body_bytes {
        p.error(
            "server.max_buffered_body_bytes",
            "must be at least server.max_body_bytes, or no largest body fits",
        );
    }
    let trusted_proxies =
        crate::client_addr::TrustedProxies::parse(s.trusted_proxies.iter().map(String::as_str))
            .unwrap_or_else(|bad| {
                for i in bad {
                    p.error(
                        format!("server.trusted_proxies[{i}]"),
                        "not a CIDR (10.0.0.0/8) or an IP address",
                    );
                }
                Default::default()
            });
    if s.proxy_protocol && trusted_proxies.is_empty() {
        p.warn(
            "server.proxy_protocol",
            "no server.trusted_proxies: the PROXY header is required but its address never believed",
        );
    }
    Some(ServerRt {
        listen: listen?,
        admin_listen: admin_listen?,
        admin_token,
        tls: s.tls.as_ref().map(crate::tls::Files::from),
        max_body_bytes: s.max_body_bytes,
        header_read_timeout: Duration::from_millis(s.header_read_timeout_ms),
        shutdown_grace: grace,
        shutdown_delay,
        config_poll: (s.config_poll_ms > 0).then(|| Duration::from_millis(s.config_poll_ms)),
        verbose_errors: s.verbose_errors,
        redact_upstream_errors: s.redact_upstream_errors,
        trusted_proxies,
        proxy_protocol: s.proxy_protocol,
        max_buffered_body_bytes: s.max_buffered_body_bytes,
        body_read_timeout: Duration::from_millis(s.body_read_timeout_ms),
        conn: ConnLimits {
            max_connections: s.max_connections,
            http2_max_concurrent_streams: s.http2_max_concurrent_streams,
            idle_timeout: Duration::from_millis(s.idle_timeout_ms),
            http2_keepalive: (s.http2_keepalive_interval_ms > 0).then(|| {
                (
                    Duration::from_millis(s.http2_keepalive_interval_ms),
                    Duration::from_millis(s.http2_keepalive_timeout_ms),
                )
            }),
            client_write_timeout: Duration::from_millis(s.client_write_timeout_ms),
        },
    })
}
