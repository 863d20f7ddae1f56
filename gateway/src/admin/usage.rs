//! `GET /admin/usage` (what every quota window holds, fleet-wide, a page at a
//! time) and `POST /admin/usage/reset` (empty the windows of one quota).
//!
//! A listing goes through the hash tags the quotas live under in order; in
//! each, first the windows of quotas with one fixed subject (tenant, consumer,
//! route: shown at 0 when unused), then the tag's window index a page at a
//! time (client IPs, header digests, ...). The cursor says where it stopped.

use super::json as respond;
use super::usage_cursor::{Cursor, Phase};
use crate::app::App;
use crate::error::GatewayError;
use crate::quota::now_ms;
use crate::quota::spec::{header_subject, By, Owner, Quota};
use crate::state::model::Tenant;
use crate::state::StateError;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

type Answer = Result<Response<Full<Bytes>>, GatewayError>;

/// Windows per page: the default and the most `limit` may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Index entries one listing call reads at most, as a multiple of its limit
/// (entries the filter drops count too); past it the page ends early.
const READ_BUDGET: usize = 10;
/// The response header that carries the next cursor too.
const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// `?tenant=&consumer=&route=`; each one narrows the list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    consumer: Option<String>,
    #[serde(default)]
    route: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    #[serde(default)]
    quota: String,
    /// the subject (tenant, tenant/consumer, route, provider, IP, header value
    /// or its digest); none: every window of the quota
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    consumer: Option<String>,
    #[serde(default)]
    route: Option<String>,
}

fn unavailable(e: StateError) -> GatewayError {
    GatewayError::state_unavailable(format!("quota usage cannot be read: {e}"))
}

pub(super) fn bad_query(msg: impl Into<String>) -> GatewayError {
    GatewayError::bad_request("invalid_query", msg)
}

/// The 400 for a query parameter the endpoint does not take (its name cut to
/// 40 bytes), naming those it does (`allowed`).
pub(super) fn unknown_parameter(name: &str, allowed: &str) -> GatewayError {
    let mut name = name.to_string();
    crate::text::cut(&mut name, 40);
    bad_query(format!("unknown parameter {name:?}: use {allowed}"))
}

/// One window of one quota.
struct Entry {
    quota: Arc<Quota>,
    tag: String,
    subject: String,
    used: u64,
    reset_ms: u64,
}

/// `GET /admin/usage` query: the filter and the page.
struct Query {
    filter: Filter,
    cursor: Option<Cursor>,
    limit: usize,
    /// `cursor` or `limit` was given: the answer is `{"data", "next_cursor"}`
    paged: bool,
}

impl Query {
    fn parse(q: Option<&str>) -> Result<Query, GatewayError> {
        let mut out = Query {
            filter: Filter::default(),
            cursor: None,
            limit: MAX_LIMIT,
            paged: false,
        };
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            let v = Some(v.into_owned()).filter(|v| !v.is_empty());
            match k.as_ref() {
                "tenant" => out.filter.tenant = v,
                "consumer" => out.filter.consumer = v,
                "route" => out.filter.route = v,
                "limit" => {
                    out.paged = true;
                    out.limit = v
                        .and_then(|v| v.parse::<usize>().ok())
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad_query(format!("limit must be a number from 1 to {MAX_LIMIT}"))
                        })?;
                }
                "cursor" => {
                    out.paged = true;
                    if let Some(v) = v {
                        out.cursor = Some(Cursor::decode(&v).ok_or_else(|| {
                            bad_query("cursor is not one this endpoint answered (next_cursor)")
                        })?);
                    }
                }
                other => {
                    return Err(unknown_parameter(
                        other,
                        "tenant, consumer, route, limit, cursor",
                    ))
                }
            }
        }
        out.filter.check("invalid_query")?;
        Ok(out)
    }
}

impl Filter {
    /// `consumer` names one only together with `tenant`.
    fn check(&self, code: &'static str) -> Result<(), GatewayError> {
        if self.consumer.is_some() && self.tenant.is_none() {
            return Err(GatewayError::bad_request(
                code,
                "consumer needs tenant (consumer names are unique within a tenant)",
            ));
        }
        Ok(())
    }

    /// Whether some window of `q` can be asked for (`keeps` decides each).
    fn may_keep(&self, q: &Quota) -> bool {
        if let Some(r) = &self.route {
            match &q.owner {
                Owner::Route(name) if **name == **r => {}
                Owner::Route(_) => return false,
                _ if self.tenant.is_none() => return false,
                _ => {}
            }
        }
        match (&self.tenant, &q.owner) {
            (Some(t), Owner::Tenant(o) | Owner::Consumer(o, _)) if o != t => {
                matches!(q.by, By::Tenant | By::Consumer)
            }
            _ => true,
        }
    }

    /// Whether a window of `q` counting `subject` is asked for.
    fn keeps(&self, q: &Quota, subject: &str) -> bool {
        let owner_tenant = match &q.owner {
            Owner::Tenant(t) | Owner::Consumer(t, _) => Some(t.as_str()),
            Owner::Route(_) => None,
        };
        if let Some(r) = &self.route {
            match &q.owner {
                Owner::Route(name) if **name == **r => {}
                Owner::Route(_) => return false,
                // tenant and consumer quotas apply on every route
                _ if self.tenant.is_none() => return false,
                _ => {}
            }
        }
        if let Some(t) = &self.tenant {
            let subject_tenant = match q.by {
                By::Tenant => Some(subject),
                By::Consumer => subject.split('/').next(),
                _ => None,
            };
            if owner_tenant != Some(t.as_str()) && subject_tenant != Some(t.as_str()) {
                return false;
            }
            if let Some(c) = &self.consumer {
                let tc = format!("{t}/{c}");
                let fits = match (&q.owner, &q.by) {
                    (Owner::Consumer(_, qc), _) => qc == c,
                    (_, By::Consumer) => subject == tc,
                    (Owner::Tenant(_), _) => true,
                    (Owner::Route(_), By::Tenant) => true,
                    _ => false,
                };
                if !fits {
                    return false;
                }
            }
        }
        true
    }
}

/// Every quota the config and the state backend define.
async fn all_quotas(app: &App, f: &Filter) -> Result<Vec<Arc<Quota>>, GatewayError> {
    let cfg = app.config();
    let mut out = Vec::new();
    for r in &cfg.routes {
        out.extend(r.quotas.iter().cloned());
    }
    let store = &app.auth.store;
    let tenants: Vec<Tenant> = match &f.tenant {
        Some(t) => match store.get_tenant(t).await {
            Ok(t) => vec![t],
            Err(StateError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(unavailable(e)),
        },
        None => store.list_tenants().await.map_err(unavailable)?,
    };
    for t in tenants {
        out.extend(Quota::compile_all(&t.quotas, &Owner::Tenant(t.id.clone())));
        let consumers = store.list_consumers(&t.id).await.map_err(unavailable)?;
        for c in consumers {
            let owner = Owner::Consumer(t.id.clone(), c.name.clone());
            out.extend(Quota::compile_all(&c.quotas, &owner));
        }
    }
    Ok(out)
}

/// The quotas that live under one hash tag.
#[derive(Default)]
struct TagQuotas {
    /// window key prefix (`{tag}:q:<owner>:<quota>:`) -> quota
    by_prefix: HashMap<String, Arc<Quota>>,
    /// (window key, quota, subject) of the fixed-subject quotas asked for, by key
    fixed: Vec<(String, Arc<Quota>, String)>,
    fixed_keys: HashSet<String>,
}

impl TagQuotas {
    /// The quota a window key of this tag belongs to, and its subject (which
    /// may hold colons: an IPv6 address).
    fn quota_of<'k>(&self, key: &'k str) -> Option<(&Arc<Quota>, &'k str)> {
        key.match_indices(':').find_map(|(i, _)| {
            let (prefix, subject) = key.split_at(i + 1);
            self.by_prefix.get(prefix).map(|q| (q, subject))
        })
    }
}

/// The tags of `quotas` that `f` may ask for, in order.
fn plan(app: &App, quotas: Vec<Arc<Quota>>, f: &Filter) -> BTreeMap<String, TagQuotas> {
    let cfg = app.config();
    let mut providers: Vec<&str> = cfg.providers.keys().map(String::as_str).collect();
    providers.sort_unstable();
    let mut tags: BTreeMap<String, TagQuotas> = BTreeMap::new();
    for q in quotas.into_iter().filter(|q| f.may_keep(q)) {
        let names: Vec<String> = if q.by == By::Upstream {
            providers.iter().map(|p| q.tag(Some(p))).collect()
        } else {
            vec![q.tag(None)]
        };
        for tag in names {
            let tq = tags.entry(tag.clone()).or_default();
            tq.by_prefix.insert(q.key(&tag, ""), q.clone());
            if let Some(subject) = q.fixed_subject().filter(|s| f.keeps(&q, s)) {
                let key = q.key(&tag, &subject);
                if tq.fixed_keys.insert(key.clone()) {
                    tq.fixed.push((key, q.clone(), subject));
                }
            }
        }
    }
    for tq in tags.values_mut() {
        tq.fixed.sort_by(|a, b| a.0.cmp(&b.0));
    }
    tags
}

/// One page of the windows of `tags` that `f` asks for, from `from` on: at
/// most `limit`, and the cursor of the next page (None: that was the last).
async fn page(
    app: &App,
    tags: &BTreeMap<String, TagQuotas>,
    f: &Filter,
    from: Option<Cursor>,
    limit: usize,
) -> Result<(Vec<Entry>, Option<Cursor>), GatewayError> {
    let store = &app.quotas.store;
    let tomb = crate::quota::TOMBSTONE_MS;
    let mut out = Vec::new();
    let mut budget = limit.saturating_mul(READ_BUDGET);
    let from = from.unwrap_or(Cursor {
        tag: String::new(),
        phase: Phase::Fixed(0),
    });
    // the cursor's tag may have gone since: then from the next one on
    for (tag, tq) in tags.range(from.tag.clone()..) {
        let mut phase = if *tag == from.tag {
            from.phase.clone()
        } else {
            Phase::Fixed(0)
        };
        loop {
            let room = limit.saturating_sub(out.len()).min(budget);
            if room == 0 {
                let next = Cursor {
                    tag: tag.clone(),
                    phase,
                };
                return Ok((out, Some(next)));
            }
            match phase {
                Phase::Fixed(i) => {
                    let rest = tq.fixed.get(i..).unwrap_or_default();
                    let batch = rest.get(..room.min(rest.len())).unwrap_or_default();
                    if batch.is_empty() {
                        phase = Phase::Index(None);
                        continue;
                    }
                    let names: Vec<String> = batch.iter().map(|(k, _, _)| k.clone()).collect();
                    let p = store
                        .usage(tag, tomb, &names, 0, None)
                        .await
                        .map_err(unavailable)?;
                    for ((_, q, subject), (_, used, reset_ms)) in batch.iter().zip(p.windows) {
                        out.push(Entry {
                            quota: q.clone(),
                            tag: tag.clone(),
                            subject: subject.clone(),
                            used,
                            reset_ms,
                        });
                    }
                    phase = Phase::Fixed(i + batch.len());
                }
                Phase::Index(after) => {
                    let p = store
                        .usage(tag, tomb, &[], room, after.as_ref())
                        .await
                        .map_err(unavailable)?;
                    budget = budget.saturating_sub(room);
                    for (key, used, reset_ms) in p.windows {
                        if tq.fixed_keys.contains(&key) {
                            continue;
                        }
                        let Some((q, subject)) = tq.quota_of(&key) else {
                            continue; // a quota no longer defined
                        };
                        if f.keeps(q, subject) {
                            out.push(Entry {
                                quota: q.clone(),
                                tag: tag.clone(),
                                subject: subject.to_string(),
                                used,
                                reset_ms,
                            });
                        }
                    }
                    match p.next {
                        Some(a) => phase = Phase::Index(Some(a)),
                        None => break,
                    }
                }
            }
        }
    }
    Ok((out, None))
}

/// One window as listed; a budget's (`strategy: cost`) amounts are decimal
/// text in `currency`.
fn entry_json(e: &Entry, now: u64, currency: &str) -> Value {
    let q = &e.quota;
    let strategy = serde_json::to_value(q.strategy).unwrap_or(Value::Null);
    let remaining = q.limit.saturating_sub(e.used);
    let mut v = json!({
        "quota": q.name,
        "owner": q.owner_label(),
        "by": q.by_name(),
        "key": e.subject,
        "strategy": strategy,
        "limit": q.limit,
        "window": q.window,
        "used": e.used,
        "remaining": remaining,
        "reset_at": super::tenants::rfc3339((now + e.reset_ms).div_ceil(1000)),
    });
    if q.strategy == shared::config::QuotaStrategy::Cost {
        let money = shared::money::format_nanos;
        v["limit"] = json!(money(q.limit));
        v["used"] = json!(money(e.used));
        v["remaining"] = json!(money(remaining));
        v["currency"] = json!(currency);
    }
    if let Some(c) = &q.calendar {
        v["timezone"] = json!(c.zone());
    }
    v
}

/// `GET /admin/usage`: a list (the first page) without `limit` and `cursor`,
/// `{"data": [...], "next_cursor": ...}` with either; the next cursor is also
/// in the `x-next-cursor` header when there is one.
pub async fn get(app: &App, query: Option<&str>) -> Answer {
    let q = Query::parse(query)?;
    let tags = plan(app, all_quotas(app, &q.filter).await?, &q.filter);
    // taken before the read: the store counts a window's reset from its own
    // clock during the read, so `now + reset` is at most the true end and
    // rounding up lands on it (taken after, a whole-second end read 1 ms
    // late showed as one second later)
    let now = now_ms();
    let (list, next) = page(app, &tags, &q.filter, q.cursor, q.limit).await?;
    let currency = app.currency();
    let data: Vec<Value> = list.iter().map(|e| entry_json(e, now, &currency)).collect();
    let next = next.map(|c| c.encode());
    let body = if q.paged {
        json!({"data": data, "next_cursor": next})
    } else {
        Value::Array(data)
    };
    let mut r = respond(StatusCode::OK, &body);
    if let Some(v) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(NEXT_CURSOR_HEADER, v);
    }
    Ok(r)
}

/// The window keys of `tags` counting `subject` (for a header quota, the
/// value is also taken as a plain header value and hashed as requests are).
fn keys_of(tags: &BTreeMap<String, TagQuotas>, f: &Filter, subject: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (tag, tq) in tags {
        for q in tq.by_prefix.values() {
            let hashed =
                matches!(q.by, By::Header(_)).then(|| header_subject(Some(subject.as_bytes())));
            for s in std::iter::once(subject).chain(hashed.as_deref()) {
                if f.keeps(q, s) {
                    out.push(q.key(tag, s));
                }
            }
        }
    }
    out
}

pub async fn reset(app: &App, req: Request<Incoming>) -> Answer {
    let b: ResetBody = super::tenants::body(req).await?;
    if b.quota.is_empty() {
        return Err(GatewayError::bad_request(
            "invalid_body",
            "quota: the name of the quota to reset is required",
        ));
    }
    let f = Filter {
        tenant: b.tenant,
        consumer: b.consumer,
        route: b.route,
    };
    f.check("invalid_body")?;
    let quotas: Vec<Arc<Quota>> = all_quotas(app, &f)
        .await?
        .into_iter()
        .filter(|q| q.name == b.quota)
        .collect();
    if quotas.is_empty() {
        return Err(GatewayError::not_found(format!(
            "no quota named {:?}",
            b.quota
        )));
    }
    let tags = plan(app, quotas, &f);
    let store = &app.quotas.store;
    let failed = |e: StateError| GatewayError::state_unavailable(format!("nothing was reset: {e}"));
    let mut windows = 0;
    match &b.key {
        Some(k) => {
            let keys = keys_of(&tags, &f, k);
            windows = keys.len();
            store.reset(&keys).await.map_err(failed)?;
        }
        None => {
            // every window of the quota, a page at a time
            let mut from = None;
            loop {
                let (list, next) = page(app, &tags, &f, from, MAX_LIMIT).await?;
                let keys: Vec<String> = list
                    .iter()
                    .map(|e| e.quota.key(&e.tag, &e.subject))
                    .collect();
                windows += keys.len();
                store.reset(&keys).await.map_err(failed)?;
                match next {
                    Some(c) => from = Some(c),
                    None => break,
                }
            }
        }
    }
    tracing::info!(quota = %b.quota, windows, "quota usage reset");
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_unknown_parameters_are_refused() {
        for q in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "cursor=zz",
            "page=2",
            "consumer=bob",
        ] {
            assert!(Query::parse(Some(q)).is_err(), "{q}");
        }
        let q = Query::parse(Some("tenant=acme&limit=5")).unwrap();
        assert!(q.paged && q.limit == 5 && q.cursor.is_none());
        let q = Query::parse(None).unwrap();
        assert!(!q.paged && q.limit == MAX_LIMIT);
    }

    #[test]
    fn an_unknown_parameter_is_named_cut_short() {
        let long = "p".repeat(5000);
        let Err(e) = Query::parse(Some(&format!("{long}=1"))) else {
            panic!("an unknown parameter was taken");
        };
        assert!(
            e.message.starts_with("unknown parameter \"ppp"),
            "{}",
            e.message
        );
        assert!(e.message.len() < 120, "{}", e.message);
        assert!(e
            .message
            .ends_with("use tenant, consumer, route, limit, cursor"));
    }
}
