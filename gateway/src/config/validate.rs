//! Raw config -> validated config (pure: no file, env, TLS or HTTP client; those
//! are `runtime`'s). Collects every problem (file, key, reason) instead of stopping
//! at the first, and lists what deserves a second look as warnings.

use super::parse_window;
pub use super::problems::Problems;
pub use super::server::{ConnLimits, ServerRt};
use super::state::{check_name, StateRt, MAX_AMOUNT};
use shared::config::{QuotaConfig, QuotaStrategy, RawConfig};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogRt {
    pub enabled: bool,
    /// None = stdout
    pub path: Option<PathBuf>,
    pub queue_size: usize,
}

/// `telemetry.otlp`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpRt {
    /// the collector's base URL (`/v1/traces`, `/v1/logs`, `/v1/metrics` are added
    /// for the http protocol)
    pub endpoint: String,
    pub protocol: shared::config::OtlpProtocol,
    pub traces: bool,
    pub logs: bool,
    pub metrics: bool,
    pub sampling_ratio: f64,
    /// when a client's sampled flag is followed over `sampling_ratio`
    pub honor_client: ClientSampling,
    /// sent with every export (e.g. authorization for a hosted collector)
    pub headers: Vec<(String, String)>,
    pub queue_size: usize,
    pub batch_size: usize,
    pub timeout: Duration,
    pub service_name: String,
}

/// `telemetry.otlp.honor_client_sampling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSampling {
    Always,
    Never,
    /// at most this many client-sampled traces a second (per replica)
    PerSecond(u32),
}

impl ClientSampling {
    pub fn parse(s: &str) -> Option<ClientSampling> {
        match s.trim() {
            "always" => Some(ClientSampling::Always),
            "never" => Some(ClientSampling::Never),
            other => other
                .strip_suffix("/s")
                .and_then(|n| n.trim().parse().ok())
                .map(ClientSampling::PerSecond),
        }
    }
}

impl OtlpRt {
    /// What the exporter is built with at start: a change needs a restart (traces,
    /// logs and sampling_ratio apply on reload; metrics on or off does not).
    pub fn exporter(&self) -> impl PartialEq + '_ {
        (
            (&self.endpoint, self.protocol, &self.headers, self.metrics),
            (
                self.queue_size,
                self.batch_size,
                self.timeout,
                &self.service_name,
            ),
        )
    }
}

/// The validated config: what the file says, as data (what is built from it,
/// providers with their clients, routes, TLS, is in `runtime::Runtime`).
pub struct Config {
    pub server: ServerRt,
    /// the state backend settings (read at start; a change needs a restart)
    pub state: StateRt,
    /// `auth.in_query`: `?key=` also carries a consumer key
    pub key_in_query: bool,
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
    pub budget: super::budget::BudgetRt,
}

/// Validates `raw` into [`Config`], every problem into `p`. `assemble` builds
/// what the runtime makes of the providers and routes; it runs where their
/// section is validated, so problems and warnings come in the order of the file's
/// sections. The config is None when a section could not be read at all (its
/// problems are in `p`).
pub fn check<T>(
    raw: &RawConfig,
    p: &mut Problems,
    assemble: impl FnOnce(&mut Problems) -> T,
) -> (Option<Config>, T) {
    let server = super::server::server(raw, p);
    let state = super::state::state(raw, p);
    let assembled = assemble(p);
    let mut names = HashSet::new();
    for (i, rc) in raw.routes.iter().enumerate() {
        // a route whose name is taken is reported (and left out) by the assembly
        if names.insert(rc.name.as_str()) {
            quotas(&rc.quotas, &format!("routes[{i}].quotas"), p);
        }
    }
    if raw.routes.is_empty() {
        p.warn(
            "routes",
            "no route is configured: every request will get 404",
        );
    }
    super::state::tenants(raw, p);
    let key_headers = auth_headers(raw, p);
    let consumer_header = http::HeaderName::from_bytes(raw.auth.consumer_header.as_bytes())
        .map_err(|_| p.error("auth.consumer_header", "not a valid header name"))
        .ok();
    let access_log = access_log(raw, p);
    telemetry_warnings(raw, p);
    let otlp = otlp(raw, p);
    super::pricing::pricing(raw, p);
    let budget = super::budget::budget(raw, p);
    let config = match (server, state, consumer_header) {
        (Some(server), Some(state), Some(consumer_header)) => Some(Config {
            server,
            state,
            key_in_query: raw.auth.in_query,
            secret_headers: key_headers
                .iter()
                .cloned()
                .chain([consumer_header.clone()])
                .collect(),
            key_headers,
            consumer_header,
            access_log,
            otlp,
            value_length_limit: raw.telemetry.value_length_limit,
            prometheus: raw.telemetry.prometheus,
            budget,
        }),
        _ => None,
    };
    (config, assembled)
}

#[cfg(test)]
pub fn test_problems() -> Problems {
    Problems::new("t")
}

pub(crate) fn quotas(list: &[QuotaConfig], key: &str, p: &mut Problems) {
    let mut names = HashSet::new();
    for (i, q) in list.iter().enumerate() {
        let k = format!("{key}[{i}]");
        if !names.insert(q.name.as_str()) {
            p.error(
                format!("{k}.name"),
                "another quota in this list has the same name",
            );
        }
        if let Err(e) = check_name("quota name", &q.name) {
            p.error(format!("{k}.name"), e);
        }
        let calendar = crate::calendar::Period::parse(&q.window).is_some();
        if !calendar {
            if let Err(e) = parse_window(&q.window) {
                p.error(
                    format!("{k}.window"),
                    format!("{e}, or a calendar window: day, week, month"),
                );
            }
            if q.timezone.is_some() {
                p.error(
                    format!("{k}.timezone"),
                    "only calendar windows (day, week, month) have a time zone",
                );
            }
            if !q.alerts.is_empty() {
                p.error(
                    format!("{k}.alerts"),
                    "alerts are sent once per period: only calendar windows (day, week, month) have them",
                );
            }
        } else if let Err(e) = crate::calendar::Calendar::of(&q.window, q.timezone.as_deref()) {
            p.error(format!("{k}.timezone"), e);
        }
        for (j, a) in q.alerts.iter().enumerate() {
            if !(1..=100).contains(a) {
                p.error(
                    format!("{k}.alerts[{j}]"),
                    "a percentage of the limit, 1 to 100",
                );
            }
        }
        let by_ok = matches!(
            q.by.as_str(),
            "route" | "tenant" | "consumer" | "upstream" | "ip"
        ) || q
            .by
            .strip_prefix("header:")
            .is_some_and(|h| http::HeaderName::from_bytes(h.as_bytes()).is_ok());
        if !by_ok {
            p.error(
                format!("{k}.by"),
                "not one of route, tenant, consumer, upstream, ip, header:<name>",
            );
        }
        if let Err(e) = quota_limit(q) {
            p.error(format!("{k}.limit"), e);
        }
    }
}

/// The limit in the quota's unit: a count, or nano-units of the currency for
/// `strategy: cost`.
pub(crate) fn quota_limit(q: &QuotaConfig) -> Result<u64, &'static str> {
    let n = if q.strategy == QuotaStrategy::Cost {
        q.limit
            .to_nanos()
            .filter(|n| *n <= MAX_AMOUNT)
            .ok_or("a cost limit is at most 9007199.254740992 (2^53 nano-units of the currency)")?
    } else if !q.limit.is_whole() {
        return Err("counts tokens or requests: a whole number");
    } else {
        q.limit.whole
    };
    if n == 0 || n > MAX_AMOUNT {
        return Err("must be between 1 and 2^53 (9007199254740992)");
    }
    Ok(n)
}

fn auth_headers(raw: &RawConfig, p: &mut Problems) -> Vec<http::HeaderName> {
    let mut out = Vec::new();
    for (i, h) in raw.auth.keys.iter().enumerate() {
        match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => out.push(n),
            Err(_) => p.error(format!("auth.keys[{i}]"), "not a valid header name"),
        }
    }
    out
}

fn access_log(raw: &RawConfig, p: &mut Problems) -> AccessLogRt {
    let a = &raw.telemetry.access_log;
    if a.queue_size == 0 {
        p.error("telemetry.access_log.queue_size", "must be greater than 0");
    }
    let path = match a.path.as_str() {
        "stdout" | "-" | "" => None,
        other => Some(PathBuf::from(other)),
    };
    AccessLogRt {
        enabled: a.enabled,
        path,
        queue_size: a.queue_size.max(1),
    }
}

fn telemetry_warnings(raw: &RawConfig, p: &mut Problems) {
    if raw.telemetry.value_length_limit == 0 {
        p.error("telemetry.value_length_limit", "must be at least 1");
    }
}

fn otlp(raw: &RawConfig, p: &mut Problems) -> Option<OtlpRt> {
    let o = raw.telemetry.otlp.as_ref()?;
    if !(0.0..=1.0).contains(&o.sampling_ratio) {
        p.error(
            "telemetry.otlp.sampling_ratio",
            "must be between 0.0 and 1.0",
        );
    }
    let endpoint = o.endpoint.as_str().trim_end_matches('/').to_string();
    match endpoint.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some() => {
            if u.query().is_some() {
                p.error("telemetry.otlp.endpoint", "must not carry a query string");
            } else if o.protocol == shared::config::OtlpProtocol::Grpc
                && !matches!(u.path(), "" | "/")
            {
                p.error(
                    "telemetry.otlp.endpoint",
                    "a gRPC endpoint is scheme://host:port, without a path",
                );
            }
        }
        _ => p.error("telemetry.otlp.endpoint", "not an http:// or https:// URL"),
    }
    for (name, value) in &o.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value.as_str()).is_err()
        {
            // the value may be a secret: only the name is shown
            p.error(
                format!("telemetry.otlp.headers.{name}"),
                "is not a valid HTTP header name and value",
            );
        }
    }
    for (key, v) in [("queue_size", o.queue_size), ("batch_size", o.batch_size)] {
        if v == 0 {
            p.error(format!("telemetry.otlp.{key}"), "must be greater than 0");
        }
    }
    if o.timeout_ms == 0 {
        p.error("telemetry.otlp.timeout_ms", "must be greater than 0");
    }
    let honor_client = ClientSampling::parse(&o.honor_client_sampling).unwrap_or_else(|| {
        p.error(
            "telemetry.otlp.honor_client_sampling",
            "must be always, never or <N>/s (e.g. 100/s)",
        );
        ClientSampling::Never
    });
    if !o.traces && !o.logs && !o.metrics {
        p.warn(
            "telemetry.otlp",
            "traces, logs and metrics are all off: nothing is exported",
        );
    }
    Some(OtlpRt {
        endpoint,
        protocol: o.protocol,
        traces: o.traces,
        logs: o.logs,
        metrics: o.metrics,
        sampling_ratio: o.sampling_ratio.clamp(0.0, 1.0),
        honor_client,
        headers: o
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().to_string()))
            .collect(),
        queue_size: o.queue_size.max(1),
        batch_size: o.batch_size.max(1),
        timeout: Duration::from_millis(o.timeout_ms.max(1)),
        service_name: o.service_name.clone(),
    })
}
