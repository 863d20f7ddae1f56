//! A quota as the data plane uses it: compiled from `quotas:` entries of a
//! route, tenant or consumer, and turned into concrete windows (hash tag, key,
//! amount) for one request.

use super::ops::Span;
use crate::config::window::parse_window;
use http::HeaderName;
use shared::config::{QuotaConfig, QuotaStrategy};
use shared::usage::Usage;
use std::sync::Arc;

/// What a quota counts separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    Tenant,
    Consumer,
    Route,
    Upstream,
    Ip,
    Header(HeaderName),
}

/// Where a quota is defined; names are unique only within one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Route(Arc<str>),
    Tenant(String),
    /// tenant, consumer
    Consumer(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub name: String,
    pub owner: Owner,
    pub by: By,
    pub strategy: QuotaStrategy,
    pub limit: u64,
    /// a sliding window's length; a calendar's longest period (for the
    /// `x-ratelimit` reset when nothing better is known)
    pub window_ms: u64,
    /// as written in the config (`1m`, `month`), for the admin API
    pub window: String,
    /// a calendar window's calendar (None: sliding)
    pub calendar: Option<crate::calendar::Calendar>,
    /// alert percentages, ascending (calendar windows)
    pub alerts: Arc<[u8]>,
}

impl PartialEq for crate::calendar::Calendar {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
    }
}
impl Eq for crate::calendar::Calendar {}

impl Quota {
    /// Compiles a validated entry; None (with a warning) for one that is not valid,
    /// which can only come from a state backend written by another version.
    pub fn compile(q: &QuotaConfig, owner: Owner) -> Option<Arc<Quota>> {
        let by = match q.by.as_str() {
            "tenant" => By::Tenant,
            "consumer" => By::Consumer,
            "route" => By::Route,
            "upstream" => By::Upstream,
            "ip" => By::Ip,
            other => match other
                .strip_prefix("header:")
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            {
                Some(h) => By::Header(h),
                None => {
                    tracing::warn!(quota = %q.name, by = %q.by, "quota ignored: unknown `by`");
                    return None;
                }
            },
        };
        let calendar = match crate::calendar::Calendar::of(&q.window, q.timezone.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(quota = %q.name, error = %e, "quota ignored");
                return None;
            }
        };
        let window = match (&calendar, parse_window(&q.window)) {
            (Some(c), _) => c.longest(),
            (None, Ok(w)) => w,
            (None, Err(e)) => {
                tracing::warn!(quota = %q.name, error = %e, "quota ignored");
                return None;
            }
        };
        let mut alerts = q.alerts.clone();
        alerts.sort_unstable();
        alerts.dedup();
        let limit = match crate::config::validate::quota_limit(q) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(quota = %q.name, error = e, "quota ignored: limit out of range");
                return None;
            }
        };
        Some(Arc::new(Quota {
            name: q.name.clone(),
            owner,
            by,
            strategy: q.strategy,
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            window: q.window.clone(),
            calendar,
            alerts: alerts.into(),
        }))
    }

    pub fn compile_all(list: &[QuotaConfig], owner: &Owner) -> Vec<Arc<Quota>> {
        list.iter()
            .filter_map(|q| Quota::compile(q, owner.clone()))
            .collect()
    }

    /// The window as the store counts it at `now_ms`.
    pub fn span(&self, now_ms: u64) -> Span {
        match &self.calendar {
            None => Span::Sliding(self.window_ms),
            Some(c) => Span::Calendar {
                name: c.name.clone(),
                bounds: c.bounds(now_ms),
            },
        }
    }

    /// `route`, `tenant`, ... as in the config
    pub fn by_name(&self) -> String {
        match &self.by {
            By::Tenant => "tenant".into(),
            By::Consumer => "consumer".into(),
            By::Route => "route".into(),
            By::Upstream => "upstream".into(),
            By::Ip => "ip".into(),
            By::Header(h) => format!("header:{h}"),
        }
    }

    pub fn counts_tokens(&self) -> bool {
        !matches!(self.strategy, QuotaStrategy::Requests | QuotaStrategy::Cost)
    }

    /// The hash tag the quota's windows live under (see lua/README.md).
    pub fn tag(&self, provider: Option<&str>) -> String {
        match (&self.by, &self.owner) {
            (By::Upstream, _) => format!("u:{}", clean_tag(provider.unwrap_or(""))),
            (_, Owner::Route(r)) => route_tag(r),
            (_, Owner::Tenant(t) | Owner::Consumer(t, _)) => tenant_tag(t),
        }
    }

    /// The subject of a window key of this quota under `tag`, if it is one.
    pub fn subject_of<'k>(&self, tag: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.key(tag, ""))
    }

    /// The subject of a window key of this quota (`{tag}:q:<owner>:<quota>:<subject>`:
    /// tags hold no braces, but a subject may hold colons, an IPv6 address or
    /// a header digest), or "".
    pub fn subject_in<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix('{')
            .and_then(|k| k.split_once('}'))
            .and_then(|(tag, _)| self.subject_of(tag, key))
            .unwrap_or("")
    }

    /// An amount of this quota as text: decimal money for a budget, else a count.
    pub fn show_amount(&self, n: u64) -> String {
        match self.strategy {
            QuotaStrategy::Cost => shared::money::format_nanos(n),
            _ => n.to_string(),
        }
    }

    /// The one subject a quota counts, when it does not depend on the caller.
    pub fn fixed_subject(&self) -> Option<String> {
        match (&self.by, &self.owner) {
            (By::Route, Owner::Route(r)) => Some(r.to_string()),
            (By::Tenant, Owner::Tenant(t) | Owner::Consumer(t, _)) => Some(t.clone()),
            (By::Consumer, Owner::Consumer(t, c)) => Some(format!("{t}/{c}")),
            _ => None,
        }
    }

    /// `t:<tenant>`, `c:<tenant>/<consumer>` or `r:<route>`
    pub fn owner_label(&self) -> String {
        match &self.owner {
            Owner::Route(r) => format!("r:{r}"),
            Owner::Tenant(t) => format!("t:{t}"),
            Owner::Consumer(t, c) => format!("c:{t}/{c}"),
        }
    }

    /// The window key (without the store prefix) for one subject.
    pub fn key(&self, tag: &str, subject: &str) -> String {
        format!("{{{tag}}}:q:{}:{}:{subject}", self.owner_label(), self.name)
    }

    /// The amount this quota counts of what a request spent.
    pub fn amount(&self, s: &Spend) -> u64 {
        let u = &s.usage;
        match self.strategy {
            QuotaStrategy::TotalTokens => u.prompt_tokens.saturating_add(u.completion_tokens),
            QuotaStrategy::PromptTokens => u.prompt_tokens,
            QuotaStrategy::CompletionTokens => u.completion_tokens,
            QuotaStrategy::Requests => 1,
            QuotaStrategy::Cost => s.cost,
        }
    }
}

/// Braces would end a hash tag early: tenant ids cannot hold them, route
/// names and provider ids might.
fn clean_tag(s: &str) -> String {
    s.replace(['{', '}'], "_")
}

/// The hash tag of what tenant `t` owns (its and its consumers' quotas, its
/// ledger days).
pub fn tenant_tag(t: &str) -> String {
    format!("t:{t}")
}

/// The hash tag of what route `r` owns.
pub fn route_tag(r: &str) -> String {
    format!("r:{}", clean_tag(r))
}

/// What a request spent, as the quotas count it: its usage and what that cost
/// (nano-units of the pricing currency, at the prices the request started with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    pub usage: Usage,
    pub cost: shared::money::Nanos,
}

/// A header value as a window subject: always its digest
/// (`keys::subject_digest`), never the value, which is often a credential;
/// a request without the header counts under `-`.
pub fn header_subject(v: Option<&[u8]>) -> String {
    v.map_or_else(|| "-".to_string(), crate::keys::subject_digest)
}

/// Who sent a request, as far as quotas count it (an authenticated key's
/// tenant and consumer).
pub trait Who {
    fn tenant(&self) -> &str;
    fn consumer(&self) -> &str;
}

/// The windows of `quotas` that apply to a request. `provider` None: every quota
/// except `by: upstream` ones (reserved at admission); Some: only those, for
/// that provider (reserved when it is picked).
pub fn claims<'a, W: Who + ?Sized>(
    quotas: impl Iterator<Item = &'a Arc<Quota>>,
    who: Option<&W>,
    route: &str,
    remote: std::net::IpAddr,
    headers: &http::HeaderMap,
    provider: Option<&str>,
) -> Vec<super::Claim> {
    let mut out = Vec::new();
    for q in quotas {
        if (q.by == By::Upstream) != provider.is_some() {
            continue;
        }
        let subject = match &q.by {
            By::Tenant => match who {
                Some(w) => w.tenant().to_string(),
                None => continue,
            },
            By::Consumer => match who {
                Some(w) => format!("{}/{}", w.tenant(), w.consumer()),
                None => continue,
            },
            By::Route => route.to_string(),
            By::Upstream => provider.unwrap_or_default().to_string(),
            By::Ip => remote.to_string(),
            By::Header(h) => header_subject(headers.get(h).map(|v| v.as_bytes())),
        };
        out.push(super::Claim {
            tag: q.tag(provider),
            quota: q.clone(),
            subject,
        });
    }
    out
}
