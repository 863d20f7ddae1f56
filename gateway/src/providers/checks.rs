//! A provider's health settings, validated: `passive` (outlier detection from
//! traffic) and `checks.active` (probes). See `health/`.

use crate::config::health::{Passive, ProbeRule};
use crate::config::validate::Problems;
use shared::config::ProviderConfig;
use std::time::Duration;

/// `checks.active`, ready to run.
#[derive(Debug, Clone)]
pub struct ActiveCheck {
    pub uri: http::Uri,
    pub interval: Duration,
    pub timeout: Duration,
    pub rule: ProbeRule,
    pub healthy_statuses: Vec<u16>,
    pub unhealthy_statuses: Vec<u16>,
    /// probe with a minimal generation of this upstream model (not a GET of `uri`)
    pub generate: Option<String>,
}

/// The chat request a generation probe sends (translated into the provider's
/// API): one word in, one token out.
const PROBE_CHAT: &str = r#"{"messages":[{"role":"user","content":"ping"}],"max_tokens":1}"#;

impl super::Provider {
    /// A generation probe of `model`: [`PROBE_CHAT`] in the provider's API, to
    /// its URL, with its headers (credentials are added by the caller).
    pub fn probe_request(&self, model: &str) -> Result<http::Request<bytes::Bytes>, String> {
        use crate::endpoint::Endpoint;
        use crate::protocol::{Inbound, RequestOpts, Seam};
        let raw = bytes::Bytes::from_static(PROBE_CHAT.as_bytes());
        let client = crate::request_body::ClientBody::parse(&raw).map_err(|e| e.message)?;
        let inbound = Inbound::OpenAi(Endpoint::ChatCompletions);
        let seam = Seam {
            inbound,
            dialect: self.dialect_for(inbound, model),
        };
        let opts = RequestOpts {
            model,
            default_max_tokens: 1,
            options: &self.options,
        };
        let up = seam
            .request(&client, &raw, &opts, false)
            .map_err(|e| e.message)?;
        let target = super::native::Target {
            endpoint: up.endpoint,
            stream: false,
            batch: up.batch,
        };
        let uri = self.uri(target, model).map_err(|e| e.to_string())?;
        let mut req = http::Request::new(up.body);
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        seam.dialect.headers(&self.api_version, h);
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(req)
    }
}

/// Most failures `passive.failures` / the probe thresholds may ask for.
const MAX_COUNT: u32 = 100;

pub fn passive(raw: &ProviderConfig, key: &str, p: &mut Problems) -> Option<Passive> {
    let c = raw.passive.as_ref()?;
    let k = format!("{key}.passive");
    if c.failures == 0 || c.failures > MAX_COUNT {
        p.error(
            format!("{k}.failures"),
            format!("must be between 1 and {MAX_COUNT}"),
        );
    }
    if c.window_s == 0 || c.window_s > 86_400 {
        p.error(format!("{k}.window_s"), "must be between 1 and 86400");
    }
    if c.ejection_s == 0 || c.ejection_s > 86_400 {
        p.error(format!("{k}.ejection_s"), "must be between 1 and 86400");
    }
    Some(Passive {
        failures: c.failures.clamp(1, MAX_COUNT),
        window_ms: c.window_s.clamp(1, 86_400) * 1000,
        ejection_ms: c.ejection_s.clamp(1, 86_400) * 1000,
    })
}

/// `base` is the provider's base URL (no trailing slash); None for the mock.
pub fn active(
    raw: &ProviderConfig,
    key: &str,
    base: Option<&str>,
    p: &mut Problems,
) -> Option<ActiveCheck> {
    let c = raw.checks.as_ref()?.active.as_ref()?;
    let k = format!("{key}.checks.active");
    let Some(base) = base else {
        p.error(k, "type mock has nothing to probe; remove checks");
        return None;
    };
    let generate = c.generate.as_ref().map(|g| g.model.clone());
    if generate.is_none() && crate::providers::native::placed(raw.kind) {
        p.error(
            format!("{k}.generate"),
            "this type's runtime endpoint has no models call: probe with generate.model",
        );
    }
    if generate
        .as_ref()
        .is_some_and(|m| m.is_empty() || m.len() > 256)
    {
        p.error(format!("{k}.generate.model"), "must be 1 to 256 characters");
    }
    if !c.http_path.starts_with('/') {
        p.error(format!("{k}.http_path"), "must start with /");
    }
    if c.interval_s == 0 || c.interval_s > 3_600 {
        p.error(format!("{k}.interval_s"), "must be between 1 and 3600");
    }
    if c.timeout_ms == 0 || c.timeout_ms > c.interval_s.saturating_mul(1000) {
        p.error(
            format!("{k}.timeout_ms"),
            "must be greater than 0 and not longer than interval_s",
        );
    }
    for (name, v) in [
        ("healthy.successes", c.healthy.successes),
        ("unhealthy.failures", c.unhealthy.failures),
    ] {
        if v == 0 || v > MAX_COUNT {
            p.error(
                format!("{k}.{name}"),
                format!("must be between 1 and {MAX_COUNT}"),
            );
        }
    }
    for (name, list) in [
        ("healthy.http_statuses", &c.healthy.http_statuses),
        ("unhealthy.http_statuses", &c.unhealthy.http_statuses),
    ] {
        if list.iter().any(|s| !(100..=599).contains(s)) {
            p.error(format!("{k}.{name}"), "HTTP statuses are 100 to 599");
        }
    }
    if let Some(i) = c
        .unhealthy
        .http_statuses
        .iter()
        .position(|s| c.healthy.http_statuses.contains(s))
    {
        p.error(
            format!("{k}.unhealthy.http_statuses[{i}]"),
            "also listed in healthy.http_statuses",
        );
    }
    let uri = match http::Uri::try_from(format!("{base}{}", c.http_path)) {
        Ok(u) => u,
        Err(e) => {
            p.error(
                format!("{k}.http_path"),
                format!("does not form a valid URL: {e}"),
            );
            return None;
        }
    };
    let interval = Duration::from_secs(c.interval_s.max(1));
    Some(ActiveCheck {
        uri,
        interval,
        timeout: Duration::from_millis(c.timeout_ms.max(1)),
        rule: ProbeRule {
            healthy: c.healthy.successes.clamp(1, MAX_COUNT),
            unhealthy: c.unhealthy.failures.clamp(1, MAX_COUNT),
            // a failing provider stays out while probes keep failing; if the
            // probing stops (checks removed), it comes back after 3 intervals
            hold_ms: u64::try_from(interval.as_millis() * 3).unwrap_or(u64::MAX),
        },
        healthy_statuses: c.healthy.http_statuses.clone(),
        unhealthy_statuses: c.unhealthy.http_statuses.clone(),
        generate,
    })
}
