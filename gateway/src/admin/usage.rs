//! `GET /admin/usage` (what every quota window holds, fleet-wide) and
//! `POST /admin/usage/reset` (empty the windows of one quota).

use super::json as respond;
use crate::app::App;
use crate::error::GatewayError;
use crate::quota::now_ms;
use crate::quota::spec::{By, Owner, Quota};
use crate::state::model::Tenant;
use crate::state::StateError;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

type Answer = Result<Response<Full<Bytes>>, GatewayError>;

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
    /// the subject (tenant, tenant/consumer, route, provider, IP, header value);
    /// none: every window of the quota
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

/// One window of one quota.
struct Entry {
    quota: Arc<Quota>,
    tag: String,
    subject: String,
    used: u64,
    reset_ms: u64,
}

impl Filter {
    pub fn from_query(q: Option<&str>) -> Result<Filter, GatewayError> {
        let mut f = Filter::default();
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            let v = Some(v.into_owned()).filter(|v| !v.is_empty());
            match k.as_ref() {
                "tenant" => f.tenant = v,
                "consumer" => f.consumer = v,
                "route" => f.route = v,
                other => {
                    return Err(GatewayError::bad_request(
                        "invalid_query",
                        format!("unknown parameter {other:?}: use tenant, consumer, route"),
                    ))
                }
            }
        }
        f.check("invalid_query")?;
        Ok(f)
    }

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

/// The windows of `quotas` that `f` asks for, with their use now.
async fn entries(
    app: &App,
    quotas: Vec<Arc<Quota>>,
    f: &Filter,
) -> Result<Vec<Entry>, GatewayError> {
    let cfg = app.config();
    let mut providers: Vec<&str> = cfg.providers.keys().map(String::as_str).collect();
    providers.sort_unstable();
    let mut windows: HashMap<String, Vec<(String, u64, u64)>> = HashMap::new();
    let mut out = Vec::new();
    for q in quotas {
        let tags: Vec<String> = if q.by == By::Upstream {
            providers.iter().map(|p| q.tag(Some(p))).collect()
        } else {
            vec![q.tag(None)]
        };
        let mut seen_fixed = false;
        for tag in tags {
            if !windows.contains_key(&tag) {
                let w = app
                    .quotas
                    .store
                    .usage(&tag, crate::quota::TOMBSTONE_MS)
                    .await
                    .map_err(unavailable)?;
                windows.insert(tag.clone(), w);
            }
            for (key, used, reset_ms) in windows.get(&tag).into_iter().flatten() {
                let Some(subject) = q.subject_of(&tag, key) else {
                    continue;
                };
                if q.fixed_subject().as_deref() == Some(subject) {
                    seen_fixed = true;
                }
                if f.keeps(&q, subject) {
                    out.push(Entry {
                        quota: q.clone(),
                        tag: tag.clone(),
                        subject: subject.to_string(),
                        used: *used,
                        reset_ms: *reset_ms,
                    });
                }
            }
        }
        // a quota nobody used yet still shows, at zero
        if let (false, Some(subject)) = (seen_fixed, q.fixed_subject()) {
            if f.keeps(&q, &subject) {
                out.push(Entry {
                    tag: q.tag(None),
                    quota: q,
                    subject,
                    used: 0,
                    reset_ms: 0,
                });
            }
        }
    }
    Ok(out)
}

fn entry_json(e: &Entry, now: u64) -> Value {
    let q = &e.quota;
    let strategy = serde_json::to_value(q.strategy).unwrap_or(Value::Null);
    json!({
        "quota": q.name,
        "owner": q.owner_label(),
        "by": q.by_name(),
        "key": e.subject,
        "strategy": strategy,
        "limit": q.limit,
        "window": q.window,
        "used": e.used,
        "remaining": q.limit.saturating_sub(e.used),
        "reset_at": super::tenants::rfc3339((now + e.reset_ms).div_ceil(1000)),
    })
}

pub async fn get(app: &App, query: Option<&str>) -> Answer {
    let f = Filter::from_query(query)?;
    let quotas = all_quotas(app, &f).await?;
    let list = entries(app, quotas, &f).await?;
    let now = now_ms();
    let data: Vec<Value> = list.iter().map(|e| entry_json(e, now)).collect();
    Ok(respond(StatusCode::OK, &Value::Array(data)))
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
    let list = entries(app, quotas, &f).await?;
    let keys: Vec<String> = list
        .iter()
        .filter(|e| b.key.as_ref().is_none_or(|k| *k == e.subject))
        .map(|e| e.quota.key(&e.tag, &e.subject))
        .collect();
    app.quotas
        .store
        .reset(&keys)
        .await
        .map_err(|e| GatewayError::state_unavailable(format!("nothing was reset: {e}")))?;
    tracing::info!(quota = %b.quota, windows = keys.len(), "quota usage reset");
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}
