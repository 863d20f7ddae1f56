//! `ledger` and `budget_alerts`: how long the usage ledger keeps its days and
//! where budget alerts are posted, validated.

use super::problems::Problems;
use shared::config::RawConfig;
use std::time::Duration;

/// The usage ledger and budget alerts as the runtime uses them.
#[derive(Debug, Clone, Default)]
pub struct BudgetRt {
    /// `ledger.enabled`: requests are added to the usage ledger
    pub ledger: bool,
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
        ledger: raw.ledger.enabled,
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

#[cfg(test)]
mod tests {
    /// Every problem of `text` as `--check-config` reports it (file `c.yaml`).
    fn problems(text: &str) -> Vec<String> {
        match crate::runtime::load_text("c.yaml", text, 1, &Default::default()) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    /// A provider, and a route `r` with `quotas` (YAML flow mappings, one a
    /// line from line 7), then `rest`.
    fn with_quotas(quotas: &[&str], rest: &str) -> String {
        let mut text = "providers:\n  - { id: up1, type: mock }\nroutes:\n  - name: r\n    upstreams: [{ provider: up1 }]\n    quotas:\n".to_string();
        for q in quotas {
            text.push_str(&format!("      - {{ by: route, {q} }}\n"));
        }
        text + rest
    }

    #[test]
    fn budget_keys_are_checked_by_key_and_line_without_their_value() {
        let text = with_quotas(
            &[
                "name: a, strategy: cost, limit: 1, window: 1h, alerts: [50]",
                "name: b, strategy: cost, limit: 1, window: 1h, timezone: Europe/Berlin",
                "name: c, strategy: cost, limit: 1, window: month, timezone: Mars/Secret-Zone",
                "name: d, strategy: cost, limit: 1, window: month, alerts: [0, 50, 101]",
                "name: e, strategy: cost, limit: \"9007199.254740993\", window: day",
                "name: f, strategy: total_tokens, limit: 1.5, window: day",
                "name: g, strategy: cost, limit: \"9007199.254740992\", window: week, timezone: Asia/Kolkata, alerts: [1, 100]",
            ],
            "budget_alerts:\n  webhook: { url: \"ftp://hooks.secret.example/x\" }\n",
        );
        let all = problems(&text);
        assert_eq!(
            all,
            [
                "c.yaml: routes[0].quotas[0].alerts: alerts are sent once per period: only calendar windows (day, week, month) have them (line 7 column 77)",
                "c.yaml: routes[0].quotas[1].timezone: only calendar windows (day, week, month) have a time zone (line 8 column 79)",
                "c.yaml: routes[0].quotas[2].timezone: not a time zone of the IANA database (e.g. Europe/Berlin) (line 9 column 82)",
                "c.yaml: routes[0].quotas[3].alerts[0]: a percentage of the limit, 1 to 100 (line 10 column 81)",
                "c.yaml: routes[0].quotas[3].alerts[2]: a percentage of the limit, 1 to 100 (line 10 column 88)",
                "c.yaml: routes[0].quotas[4].limit: a cost limit is at most 9007199.254740992 (2^53 nano-units of the currency) (line 11 column 54)",
                "c.yaml: routes[0].quotas[5].limit: counts tokens or requests: a whole number (line 12 column 62)",
                "c.yaml: budget_alerts.webhook.url: an http:// or https:// URL with a host (line 15 column 19)",
            ]
        );
        let joined = all.concat();
        for value in [
            "Secret-Zone",
            "secret.example",
            "9007199.254740993",
            "1.5",
            "101",
        ] {
            assert!(!joined.contains(value), "{value} quoted: {joined}");
        }
        for url in ["not a url", "http://", "https:///path", "/hooks/budget"] {
            let text = format!("budget_alerts:\n  webhook: {{ url: \"{url}\" }}\n");
            assert_eq!(
                problems(&text),
                ["c.yaml: budget_alerts.webhook.url: an http:// or https:// URL with a host (line 2 column 19)"],
                "{url}"
            );
        }
    }

    #[test]
    fn a_limit_that_is_no_decimal_hides_no_other_problem() {
        let text = with_quotas(
            &[
                "name: a, strategy: cost, limit: \"0.0000000001\", window: day",
                "name: b, strategy: cost, limit: 0.1234567891, window: month, alerts: [300]",
                "name: c, strategy: cost, limit: -1, window: month",
                "name: d, strategy: cost, limit: 1, window: 1h, alerts: [50]",
            ],
            "budget_alerts:\n  webhook: { url: \"not a url\" }\n",
        );
        assert_eq!(
            problems(&text),
            [
                "c.yaml: routes[0].quotas[0].limit: has more than 9 decimal places (line 7 column 54)",
                "c.yaml: routes[0].quotas[1].limit: has more than 9 decimal places (line 8 column 54)",
                "c.yaml: routes[0].quotas[1].alerts[0]: expected an integer from 0 to 255, found an integer out of range (line 8 column 92)",
                "c.yaml: routes[0].quotas[2].limit: is negative (line 9 column 54)",
                "c.yaml: routes[0].quotas[3].alerts: alerts are sent once per period: only calendar windows (day, week, month) have them (line 10 column 77)",
                "c.yaml: budget_alerts.webhook.url: an http:// or https:// URL with a host (line 12 column 19)",
            ]
        );
    }
}
