//! The OpenAI-style `x-ratelimit-*` response headers: for tokens and for
//! requests, the most constraining quota that applied to the request.

use http::{HeaderMap, HeaderName, HeaderValue};

/// One quota's state as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// The tightest token quota and the tightest request quota seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub tokens: Option<Standing>,
    pub requests: Option<Standing>,
}

impl RateHeaders {
    pub fn note(&mut self, tokens: bool, s: Standing) {
        let slot = if tokens {
            &mut self.tokens
        } else {
            &mut self.requests
        };
        if slot.is_none_or(|old| s.remaining < old.remaining) {
            *slot = Some(s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_none() && self.requests.is_none()
    }

    /// Writes the headers (replacing any the upstream sent).
    pub fn apply(&self, h: &mut HeaderMap) {
        const NAMES: [[HeaderName; 3]; 2] = [
            [
                HeaderName::from_static("x-ratelimit-limit-tokens"),
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderName::from_static("x-ratelimit-reset-tokens"),
            ],
            [
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderName::from_static("x-ratelimit-remaining-requests"),
                HeaderName::from_static("x-ratelimit-reset-requests"),
            ],
        ];
        for (s, [limit, remaining, reset]) in [self.tokens, self.requests].into_iter().zip(NAMES) {
            if let Some(s) = s {
                h.insert(limit, HeaderValue::from(s.limit));
                h.insert(remaining, HeaderValue::from(s.remaining));
                if let Ok(v) = HeaderValue::from_str(&duration(s.reset_ms)) {
                    h.insert(reset, v);
                }
            }
        }
    }
}

/// OpenAI's reset format: `20ms`, `1s`, `6m0s`, `1h2m3s`.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_look_like_openai() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(20), "20ms");
        assert_eq!(duration(1000), "1s");
        assert_eq!(duration(1001), "2s");
        assert_eq!(duration(360_000), "6m0s");
        assert_eq!(duration(3_723_000), "1h2m3s");
    }

    #[test]
    fn tightest_quota_wins() {
        let mut r = RateHeaders::default();
        r.note(
            true,
            Standing {
                limit: 100,
                remaining: 50,
                reset_ms: 10,
            },
        );
        r.note(
            true,
            Standing {
                limit: 1000,
                remaining: 20,
                reset_ms: 10,
            },
        );
        r.note(
            true,
            Standing {
                limit: 10,
                remaining: 30,
                reset_ms: 10,
            },
        );
        r.note(
            false,
            Standing {
                limit: 5,
                remaining: 4,
                reset_ms: 1500,
            },
        );
        let mut h = HeaderMap::new();
        r.apply(&mut h);
        assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
        assert_eq!(h["x-ratelimit-remaining-tokens"], "20");
        assert_eq!(h["x-ratelimit-reset-requests"], "2s");
        assert_eq!(h["x-ratelimit-remaining-requests"], "4");
    }
}
