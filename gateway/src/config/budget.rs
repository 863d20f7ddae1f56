//! `ledger` and `budget_alerts`: how long the usage ledger keeps its days and
//! where budget alerts are posted, validated.

use super::problems::Problems;
use shared::config::RawConfig;
use std::time::Duration;

/// The usage ledger and budget alerts as the runtime uses them.
#[derive(Debug, Clone, Default)]
pub struct BudgetRt {
    /// days a ledger day is kept
    pub retention_days: u32,
    pub webhook: Option<WebhookRt>,
}

/// `budget_alerts.webhook`, checked.
#[derive(Debug, Clone)]
pub struct WebhookRt {
    pub url: http::Uri,
    pub headers: http::HeaderMap,
    pub timeout: Duration,
    pub max_retries: u32,
}

/// The most days a ledger day may be kept (ten years).
const MAX_RETENTION: u32 = 3650;
/// The most retries of one alert post.
const MAX_RETRIES: u32 = 10;

pub fn budget(raw: &RawConfig, p: &mut Problems) -> BudgetRt {
    let retention_days = raw.ledger.retention_days;
    if !(1..=MAX_RETENTION).contains(&retention_days) {
        p.error("ledger.retention_days", "between 1 and 3650 days");
    }
    BudgetRt {
        retention_days: retention_days.clamp(1, MAX_RETENTION),
        webhook: raw.budget_alerts.webhook.as_ref().and_then(|w| {
            let k = "budget_alerts.webhook";
            let url = match w.url.parse::<http::Uri>() {
                Ok(u)
                    if matches!(u.scheme_str(), Some("http" | "https"))
                        && u.host().is_some_and(|h| !h.is_empty()) =>
                {
                    Some(u)
                }
                _ => {
                    p.error(format!("{k}.url"), "an http:// or https:// URL with a host");
                    None
                }
            };
            let mut headers = http::HeaderMap::new();
            for (name, value) in &w.headers {
                let n = http::HeaderName::from_bytes(name.as_bytes());
                let v = http::HeaderValue::from_str(value.as_str());
                match (n, v) {
                    (Ok(n), Ok(mut v)) => {
                        v.set_sensitive(true);
                        headers.insert(n, v);
                    }
                    (Err(_), _) => p.error(format!("{k}.headers"), "a header name is not valid"),
                    (_, Err(_)) => p.error(
                        format!("{k}.headers.{name}"),
                        "the value is not a valid header value",
                    ),
                }
            }
            if !(1..=60_000).contains(&w.timeout_ms) {
                p.error(format!("{k}.timeout_ms"), "between 1 and 60000 ms");
            }
            if w.max_retries > MAX_RETRIES {
                p.error(format!("{k}.max_retries"), "at most 10");
            }
            Some(WebhookRt {
                url: url?,
                headers,
                timeout: Duration::from_millis(w.timeout_ms.clamp(1, 60_000)),
                max_retries: w.max_retries.min(MAX_RETRIES),
            })
        }),
    }
}
