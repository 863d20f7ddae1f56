//! `/admin/tenants/...`: tenant and consumer CRUD and consumer keys (create with
//! the plaintext shown once, list by prefix, rotate with grace, revoke). Every
//! write goes to the state backend and is announced to all replicas; with Redis
//! down, writes answer 503 and nothing is guessed.

use super::json as respond;
use crate::app::App;
use crate::config::validate::{quotas, Problems};
use crate::error::GatewayError;
use crate::state::change::Change;
use crate::state::model::{check_name, unix_now as now, Consumer, KeyRecord, Tenant};
use crate::state::StateError;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::config::QuotaConfig;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

type Answer = Result<Response<Full<Bytes>>, GatewayError>;

const MAX_BODY: usize = 1 << 20;
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// `grace_s` when a rotate request does not say.
const DEFAULT_GRACE_S: u64 = 3600;
/// Longest rotation grace: one year (a longer one is not a rotation).
const MAX_GRACE_S: u64 = 366 * 24 * 3600;

/// PUT body of a tenant or a consumer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    #[serde(default)]
    allowed_models: Option<Vec<String>>,
    #[serde(default)]
    quotas: Vec<QuotaConfig>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace_s: Option<u64>,
}

fn state_error(e: StateError) -> GatewayError {
    match e {
        StateError::NotFound(w) => GatewayError::not_found(format!("{w} not found")),
        StateError::Conflict(w) => GatewayError::conflict(w),
        StateError::Rejected(w) => GatewayError::internal(format!("state backend: {w}")),
        StateError::Unavailable(w) => GatewayError::state_unavailable(format!(
            "the state backend cannot be reached, so nothing was changed: {w}"
        )),
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(t: u64) -> Value {
    i64::try_from(t)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| d.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn parse_time(s: &str) -> Result<u64, GatewayError> {
    let bad = |why: String| GatewayError::bad_request("invalid_expires_at", why);
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| bad(format!("expires_at is not an RFC 3339 time: {e}")))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| bad("expires_at is before 1970".into()))
}

pub(super) async fn body<T: Default + for<'de> Deserialize<'de>>(
    req: Request<Incoming>,
) -> Result<T, GatewayError> {
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| GatewayError::request_timeout("the request body did not arrive in time".into()))?
    .map_err(|e| {
        GatewayError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
    })?
    .to_bytes();
    match collected.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        Some(b'{') => {}
        Some(_) => {
            return Err(GatewayError::bad_request(
                "invalid_body",
                "the request body must be a JSON object",
            ))
        }
    }
    let text = std::str::from_utf8(&collected).map_err(|_| {
        GatewayError::bad_request("invalid_body", "the request body is not UTF-8 text")
    })?;
    // every problem, each naming its key and never the value (a body may carry keys)
    crate::config::parse_json(text)
        .map_err(|problems| GatewayError::bad_request("invalid_body", problems.join("; ")))
}

fn name(what: &str, s: &str) -> Result<(), GatewayError> {
    check_name(what, s).map_err(|e| GatewayError::bad_request("invalid_name", e))
}

fn check_policy(b: &PolicyBody) -> Result<(), GatewayError> {
    let mut p = Problems::new("request");
    quotas(&b.quotas, "quotas", &mut p);
    if let Some(m) = &b.allowed_models {
        if m.iter().any(String::is_empty) {
            p.error("allowed_models", "an empty pattern matches no model");
        }
    }
    if p.errors.is_empty() {
        Ok(())
    } else {
        Err(GatewayError::bad_request(
            "invalid_body",
            p.messages().join("; "),
        ))
    }
}

fn ok(status: StatusCode, v: &Value) -> Answer {
    Ok(respond(status, v))
}

fn no_content() -> Answer {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What the admin API shows of a key (never the key or its digest).
fn key_json(k: &KeyRecord) -> Value {
    let mut v = k.public();
    v["created_at"] = rfc3339(k.created_at);
    v["expires_at"] = k.expires_at.map_or(Value::Null, rfc3339);
    v
}

pub async fn handle(app: &App, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    // "/admin/tenants", "/admin/tenants/a", "/admin/tenants/a/" ...; an empty
    // segment inside ("a//b") matches nothing
    let rest = path.strip_prefix("/admin/tenants").unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segs: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let method = req.method().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, []) => list_tenants(app).await,
        (&Method::GET, [t]) => ok(
            StatusCode::OK,
            &to_json(&store(app).get_tenant(t).await.map_err(state_error)?),
        ),
        (&Method::PUT, [t]) => put_tenant(app, t, body(req).await?).await,
        (&Method::DELETE, [t]) => {
            store(app).delete_tenant(t).await.map_err(state_error)?;
            app.auth.changed(&Change::Tenant(t.to_string())).await;
            no_content()
        }
        (&Method::GET, [t, "consumers"]) => {
            let list = store(app).list_consumers(t).await.map_err(state_error)?;
            ok(StatusCode::OK, &to_json(&list))
        }
        (&Method::GET, [t, "consumers", c]) => {
            let one = store(app).get_consumer(t, c).await.map_err(state_error)?;
            ok(StatusCode::OK, &to_json(&one))
        }
        (&Method::PUT, [t, "consumers", c]) => put_consumer(app, t, c, body(req).await?).await,
        (&Method::DELETE, [t, "consumers", c]) => {
            store(app)
                .delete_consumer(t, c)
                .await
                .map_err(state_error)?;
            app.auth.changed(&consumer_change(t, c)).await;
            no_content()
        }
        (&Method::GET, [t, "consumers", c, "keys"]) => {
            let keys = store(app).list_keys(t, c).await.map_err(state_error)?;
            ok(
                StatusCode::OK,
                &Value::Array(keys.iter().map(key_json).collect()),
            )
        }
        (&Method::POST, [t, "consumers", c, "keys"]) => {
            create_key(app, t, c, body(req).await?).await
        }
        (&Method::POST, [t, "consumers", c, "keys", id, "rotate"]) => {
            rotate_key(app, t, c, id, body(req).await?).await
        }
        (&Method::DELETE, [t, "consumers", c, "keys", id]) => {
            store(app).revoke_key(t, c, id).await.map_err(state_error)?;
            app.auth.changed(&key_change(t, c, id)).await;
            no_content()
        }
        _ => Err(GatewayError::no_route(format!(
            "no admin endpoint {method} {path}"
        ))),
    }
}

fn store(app: &App) -> &crate::state::Store {
    &app.auth.store
}

fn consumer_change(t: &str, c: &str) -> Change {
    Change::Consumer {
        tenant: t.to_string(),
        consumer: c.to_string(),
    }
}

fn key_change(t: &str, c: &str, id: &str) -> Change {
    Change::Key {
        tenant: t.to_string(),
        consumer: c.to_string(),
        id: id.to_string(),
    }
}

async fn list_tenants(app: &App) -> Answer {
    let list = store(app).list_tenants().await.map_err(state_error)?;
    ok(StatusCode::OK, &to_json(&list))
}

async fn put_tenant(app: &App, t: &str, b: PolicyBody) -> Answer {
    name("tenant id", t)?;
    check_policy(&b)?;
    let tenant = Tenant {
        id: t.to_string(),
        allowed_models: b.allowed_models.unwrap_or_else(|| vec!["*".into()]),
        quotas: b.quotas,
        metadata: b.metadata,
    };
    let saved = store(app).put_tenant(tenant).await.map_err(state_error)?;
    app.auth.changed(&Change::Tenant(t.to_string())).await;
    ok(StatusCode::OK, &to_json(&saved))
}

async fn put_consumer(app: &App, t: &str, c: &str, b: PolicyBody) -> Answer {
    name("consumer name", c)?;
    check_policy(&b)?;
    let consumer = Consumer {
        tenant: t.to_string(),
        name: c.to_string(),
        allowed_models: b.allowed_models.unwrap_or_else(|| vec!["*".into()]),
        quotas: b.quotas,
        metadata: b.metadata,
    };
    let saved = store(app)
        .put_consumer(consumer)
        .await
        .map_err(state_error)?;
    app.auth.changed(&consumer_change(t, c)).await;
    ok(StatusCode::OK, &to_json(&saved))
}

/// A fresh key record for `t/c` and its plaintext.
fn new_key(
    app: &App,
    t: &str,
    c: &str,
    name: Option<String>,
    expires_at: Option<u64>,
) -> Result<(KeyRecord, String), GatewayError> {
    let k = app
        .auth
        .hasher
        .generate()
        .map_err(|e| GatewayError::internal(e.to_string()))?;
    let rec = KeyRecord {
        id: k.id.clone(),
        tenant: t.to_string(),
        consumer: c.to_string(),
        name,
        prefix: k.prefix.clone(),
        digest: k.digest.to_hex(),
        created_at: now(),
        expires_at,
        revoked: false,
    };
    Ok((rec, k.plaintext))
}

/// The answer to a create or rotate: the only place the plaintext ever appears.
fn created(rec: &KeyRecord, plaintext: String) -> Answer {
    ok(
        StatusCode::CREATED,
        &json!({
            "id": rec.id,
            "key": plaintext,
            "prefix": rec.prefix,
            "name": rec.name,
            "created_at": rfc3339(rec.created_at),
            "expires_at": rec.expires_at.map_or(Value::Null, rfc3339),
        }),
    )
}

async fn create_key(app: &App, t: &str, c: &str, b: NewKeyBody) -> Answer {
    let expires_at = b.expires_at.as_deref().map(parse_time).transpose()?;
    if expires_at.is_some_and(|e| e <= now()) {
        return Err(GatewayError::bad_request(
            "invalid_expires_at",
            "expires_at is in the past",
        ));
    }
    if b.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(GatewayError::bad_request(
            "invalid_name",
            "name is longer than 200 bytes",
        ));
    }
    let (rec, plaintext) = new_key(app, t, c, b.name, expires_at)?;
    store(app)
        .insert_key(rec.clone())
        .await
        .map_err(state_error)?;
    app.auth.changed(&Change::NewKey).await;
    created(&rec, plaintext)
}

async fn rotate_key(app: &App, t: &str, c: &str, id: &str, b: RotateBody) -> Answer {
    let grace = b.grace_s.unwrap_or(DEFAULT_GRACE_S);
    if grace > MAX_GRACE_S {
        return Err(GatewayError::bad_request(
            "invalid_grace",
            format!("grace_s is at most {MAX_GRACE_S} (one year)"),
        ));
    }
    let old = store(app)
        .list_keys(t, c)
        .await
        .map_err(state_error)?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| GatewayError::not_found(format!("key {id:?} of {t:?}/{c:?} not found")))?;
    if old.revoked {
        return Err(GatewayError::conflict(format!(
            "key {id:?} is revoked; create a new key instead"
        )));
    }
    let (rec, plaintext) = new_key(app, t, c, old.name.clone(), None)?;
    store(app)
        .rotate_key(t, c, id, now().saturating_add(grace), rec.clone())
        .await
        .map_err(state_error)?;
    app.auth.changed(&Change::NewKey).await;
    app.auth.changed(&key_change(t, c, id)).await;
    created(&rec, plaintext)
}
