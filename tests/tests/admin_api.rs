//! The admin API for tenants, consumers and keys (`/admin/tenants/...`) against one
//! gateway on the default memory state backend: the admin token, CRUD and
//! validation of tenants and consumers, keys (create, list without secrets, rotate
//! with grace, revoke, expiry), the data plane with those keys (every key header,
//! `allowed_models` of tenant and consumer, `/v1/models`), cascading deletes, and
//! an access log that names the caller and never holds a key.

use gateway_tests::client::{chat_body, HttpResponse, TestClient};
use gateway_tests::config::{Config, Provider, Route, Server};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use http::Method;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LOG_WAIT: Duration = Duration::from_secs(5);

/// The built-in mock (three models) behind one keyed route; admin API on.
fn config() -> String {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::mock("m")
                .model("gpt-4o")
                .model("gpt-4o-mini")
                .model("claude-3"),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("m"))
        .access_log()
        .yaml()
}

// ------------------------------------------------------------------ helpers

/// Admin calls with the admin token.
struct Admin {
    client: TestClient,
    base: String,
}

impl Admin {
    fn new(gw: &Gateway) -> Admin {
        Admin {
            client: TestClient::new(),
            base: gw.admin_url(),
        }
    }

    async fn raw(&self, method: Method, path: &str, body: &str) -> HttpResponse {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        self.client
            .request(
                method,
                &format!("{}{path}", self.base),
                &headers,
                body.to_string(),
            )
            .await
    }

    async fn get(&self, path: &str) -> HttpResponse {
        self.raw(Method::GET, path, "").await
    }

    async fn delete(&self, path: &str) -> HttpResponse {
        self.raw(Method::DELETE, path, "").await
    }

    async fn put(&self, path: &str, body: &Value) -> HttpResponse {
        self.raw(Method::PUT, path, &body.to_string()).await
    }

    async fn post(&self, path: &str, body: &Value) -> HttpResponse {
        self.raw(Method::POST, path, &body.to_string()).await
    }

    /// PUT that must answer 200; returns the body.
    async fn put_ok(&self, path: &str, body: &Value) -> Value {
        let r = self.put(path, body).await;
        assert_eq!(r.status, 200, "PUT {path} {body}: {}", r.text());
        r.json()
    }

    async fn tenant(&self, t: &str, body: &Value) -> Value {
        self.put_ok(&format!("/admin/tenants/{t}"), body).await
    }

    async fn consumer(&self, t: &str, c: &str, body: &Value) -> Value {
        self.put_ok(&format!("/admin/tenants/{t}/consumers/{c}"), body)
            .await
    }

    /// Creates a key; checks the answer's shape; returns it.
    async fn new_key(&self, t: &str, c: &str, body: &Value) -> Value {
        let path = format!("/admin/tenants/{t}/consumers/{c}/keys");
        let r = self.post(&path, body).await;
        assert_eq!(r.status, 201, "POST {path} {body}: {}", r.text());
        let v = r.json();
        assert_created_key(&v);
        v
    }

    async fn list_keys(&self, t: &str, c: &str) -> Vec<Value> {
        let path = format!("/admin/tenants/{t}/consumers/{c}/keys");
        let r = self.get(&path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        let text = r.text();
        assert!(
            !contains_hex64(&text),
            "the key listing holds a 64-hex string (a digest?): {text}"
        );
        match r.json() {
            Value::Array(a) => a,
            other => panic!("GET {path} is not an array: {other}"),
        }
    }
}

/// Data-plane calls; remembers every request id so the test can wait for all of
/// their access-log lines.
struct DataPlane {
    client: TestClient,
    base: String,
    prefix: &'static str,
    ids: Mutex<Vec<String>>,
}

impl DataPlane {
    fn new(gw: &Gateway, prefix: &'static str) -> DataPlane {
        DataPlane {
            client: TestClient::new(),
            base: gw.url(),
            prefix,
            ids: Mutex::new(Vec::new()),
        }
    }

    fn next_id(&self) -> String {
        let mut ids = self.ids.lock().unwrap();
        let id = format!("{}-{}", self.prefix, ids.len() + 1);
        ids.push(id.clone());
        id
    }

    /// POST /v1/chat/completions for `model` with `headers`; (answer, request id).
    async fn chat_with(&self, model: &str, headers: &[(&str, &str)]) -> (HttpResponse, String) {
        let rid = self.next_id();
        let mut h: Vec<(&str, &str)> = vec![("x-request-id", &rid)];
        h.extend_from_slice(headers);
        let r = self
            .client
            .post_json_with(
                &format!("{}/v1/chat/completions", self.base),
                &chat_body(model, "hi"),
                &h,
            )
            .await;
        (r, rid)
    }

    /// Chat with `Authorization: Bearer <key>`.
    async fn chat(&self, key: &str, model: &str) -> HttpResponse {
        let bearer = format!("Bearer {key}");
        self.chat_with(model, &[("authorization", &bearer)]).await.0
    }

    /// Chat with `key` that must answer 200 with usage.
    async fn chat_ok(&self, key: &str, model: &str) {
        let r = self.chat(key, model).await;
        assert_eq!(r.status, 200, "chat {model}: {}", r.text());
        assert_chat_answer(&r);
    }

    /// Chat with `key` that must be refused with `status`/`code`.
    async fn chat_refused(&self, key: &str, model: &str, status: u16, code: &str) {
        let r = self.chat(key, model).await;
        assert_error(&r, status, code);
    }

    async fn models(&self, headers: &[(&str, &str)]) -> HttpResponse {
        let rid = self.next_id();
        let mut h: Vec<(&str, &str)> = vec![("x-request-id", &rid)];
        h.extend_from_slice(headers);
        self.client
            .get_with(&format!("{}/v1/models", self.base), &h)
            .await
    }

    /// Waits for the access-log line of every request made so far.
    async fn wait_for_all_lines(&self, gw: &Gateway) {
        let ids = self.ids.lock().unwrap().clone();
        gw.wait_for_log_lines_of(&ids, LOG_WAIT).await;
    }
}

/// An OpenAI-shaped error with this status and code.
fn assert_error(r: &HttpResponse, status: u16, code: &str) {
    r.assert_openai_error(status, code);
}

/// An OpenAI-shaped error with this status (any code).
fn assert_error_status(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    for f in ["message", "type", "code"] {
        assert!(v["error"][f].is_string(), "error.{f}: {v}");
    }
}

fn assert_chat_answer(r: &HttpResponse) {
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The answer to a key create or rotate.
fn assert_created_key(v: &Value) {
    let key = v["key"].as_str().unwrap_or_else(|| panic!("no key: {v}"));
    let secret = key
        .strip_prefix("sk-gw-")
        .unwrap_or_else(|| panic!("key without sk-gw-: {v}"));
    assert_eq!(secret.len(), 43, "43 base62 characters after sk-gw-: {v}");
    assert!(is_base62(secret), "base62 after sk-gw-: {v}");
    assert_eq!(v["prefix"].as_str(), Some(&secret[..8]), "prefix: {v}");
    assert!(v["id"].as_str().is_some_and(|id| !id.is_empty()), "id: {v}");
    assert!(
        v["id"].as_str() != Some(key) && !key.contains(v["id"].as_str().unwrap_or("")),
        "the id must not reveal the key: {v}"
    );
    let created = v["created_at"]
        .as_str()
        .unwrap_or_else(|| panic!("created_at is not a string: {v}"));
    let created = parse_rfc3339(created).unwrap_or_else(|| panic!("created_at RFC 3339: {v}"));
    assert!(
        (created - now_unix()).abs() <= 60,
        "created_at is not about now: {v}"
    );
    assert!(
        v["expires_at"].is_null() || v["expires_at"].as_str().and_then(parse_rfc3339).is_some(),
        "expires_at: {v}"
    );
    let obj = v.as_object().unwrap();
    assert!(obj.contains_key("name"), "name: {v}");
    assert!(obj.contains_key("expires_at"), "expires_at: {v}");
}

fn s(v: &Value, f: &str) -> String {
    v[f].as_str()
        .unwrap_or_else(|| panic!("{f} is not a string: {v}"))
        .to_string()
}

/// Whether `text` holds 64 hex digits in a row.
fn contains_hex64(text: &str) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        if b.is_ascii_hexdigit() {
            run += 1;
            if run >= 64 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn format_rfc3339(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let sod = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Unix seconds of an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Neither the whole key nor its random part is anywhere in the access log, nor
/// in the gateway's own output.
fn assert_keys_not_logged(gw: &Gateway, keys: &[String]) {
    let log = gw.access_log_text();
    assert!(!log.is_empty(), "the access log is empty");
    let output = gw.stderr() + &gw.stdout();
    for k in keys {
        let secret = k.strip_prefix("sk-gw-").unwrap_or(k);
        assert!(
            !log.contains(k.as_str()) && !log.contains(secret),
            "a plaintext key ({k}) is in the access log:\n{log}"
        );
        assert!(
            !output.contains(secret),
            "a plaintext key ({k}) is in the gateway's stdout/stderr:\n{output}"
        );
    }
}

fn ids_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| s(v, field))
        .collect()
}

// -------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_is_required_and_errors_are_json() {
    let gw = Gateway::start(&config()).await;
    let c = TestClient::new();
    let admin = Admin::new(&gw);
    let url = |p: &str| format!("{}{p}", gw.admin_url());

    // no token, wrong token, right token in the wrong scheme
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong-token")],
        vec![("authorization", "Bearer test-admin-token-and-more")],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Basic test-admin-token")],
        vec![("authorization", "test-admin-token")],
        vec![("x-api-key", "test-admin-token")],
    ] {
        let r = c.get_with(&url("/admin/tenants"), &headers).await;
        assert_error_status(&r, 401);
        assert_eq!(r.status, 401, "{headers:?}");
    }

    // writes without the token change nothing
    let body = json!({"allowed_models": ["*"]}).to_string();
    let r = c
        .request(
            Method::PUT,
            &url("/admin/tenants/sneaky"),
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
    assert_error_status(&r, 401);
    let r = c
        .request(
            Method::PUT,
            &url("/admin/tenants/sneaky"),
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer nope"),
            ],
            body,
        )
        .await;
    assert_error_status(&r, 401);
    assert_error(&admin.get("/admin/tenants/sneaky").await, 404, "not_found");
    admin.tenant("acme", &json!({})).await;
    admin.consumer("acme", "bob", &json!({})).await;
    for (method, path) in [
        (Method::GET, "/admin/tenants/acme"),
        (Method::DELETE, "/admin/tenants/acme"),
        (Method::GET, "/admin/tenants/acme/consumers"),
        (Method::DELETE, "/admin/tenants/acme/consumers/bob"),
        (Method::POST, "/admin/tenants/acme/consumers/bob/keys"),
        (Method::GET, "/admin/tenants/acme/consumers/bob/keys"),
        (Method::GET, "/admin/no-such-thing"),
    ] {
        let r = c.request(method.clone(), &url(path), &[], "").await;
        assert_error_status(&r, 401);
        assert_eq!(r.status, 401, "{method} {path} without the token");
    }
    assert_eq!(admin.get("/admin/tenants/acme").await.status, 200);
    assert!(admin.list_keys("acme", "bob").await.is_empty());

    // unknown admin paths (with the token): 404 with a JSON error
    for path in [
        "/admin/no-such-thing",
        "/admin/tenants/acme/consumers/bob/keys/x/y/z",
        "/admin/tenants/acme/nope",
    ] {
        assert_error_status(&admin.get(path).await, 404);
    }
    let r = admin.raw(Method::PATCH, "/admin/tenants/acme", "{}").await;
    assert!(matches!(r.status, 404 | 405), "PATCH: {}", r.text());
    assert_error_status(&r, r.status);
    assert_error_status(&c.get(&url("/no-such-thing")).await, 404);

    // the probes need no token
    assert_eq!(c.get(&url("/healthz")).await.status, 200);
    assert_eq!(c.get(&url("/readyz")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_crud_and_validation() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);

    let r = admin.get("/admin/tenants").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!([]), "no tenants at start");

    // defaults
    let v = admin.tenant("t-zeta", &json!({})).await;
    assert_eq!(
        v,
        json!({"id": "t-zeta", "allowed_models": ["*"], "quotas": [], "metadata": {}}),
    );
    // an empty body is an empty policy too
    let r = admin.raw(Method::PUT, "/admin/tenants/t-mid", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["allowed_models"], json!(["*"]));

    // everything given
    let quota = json!({"name": "tpm", "by": "consumer", "strategy": "total_tokens", "limit": 1000, "window": "1m"});
    let full = json!({
        "allowed_models": ["gpt-*", "claude-3"],
        "quotas": [quota],
        "metadata": {"team": "ml", "cost_center": 42, "nested": {"a": [1, 2]}},
    });
    let v = admin.tenant("t-alpha", &full).await;
    assert_eq!(v["id"], "t-alpha");
    assert_eq!(v["allowed_models"], full["allowed_models"]);
    assert_eq!(v["quotas"], full["quotas"]);
    assert_eq!(v["metadata"], full["metadata"]);
    let r = admin.get("/admin/tenants/t-alpha").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), v, "GET answers what PUT stored");

    // the list, sorted by id
    let r = admin.get("/admin/tenants").await;
    assert_eq!(r.status, 200);
    let list = r.json();
    assert_eq!(
        ids_of(&list, "id"),
        ["t-alpha", "t-mid", "t-zeta"],
        "{list}"
    );
    assert_eq!(list[0], v);

    // PUT replaces
    let v2 = admin
        .tenant("t-alpha", &json!({"metadata": {"team": "infra"}}))
        .await;
    assert_eq!(
        v2,
        json!({"id": "t-alpha", "allowed_models": ["*"], "quotas": [], "metadata": {"team": "infra"}}),
    );
    assert_eq!(admin.get("/admin/tenants/t-alpha").await.json(), v2);

    // invalid bodies: 400 invalid_body, nothing stored
    let bad_quota = |patch: Value| {
        let mut q = quota.clone();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                q.as_object_mut().unwrap().remove(k);
            } else {
                q[k] = val.clone();
            }
        }
        json!({"quotas": [q]})
    };
    for body in [
        bad_quota(json!({"window": "5x"})),
        bad_quota(json!({"window": ""})),
        bad_quota(json!({"by": "nope"})),
        bad_quota(json!({"limit": 0})),
        bad_quota(json!({"limit": -1})),
        bad_quota(json!({"strategy": "bogus"})),
        bad_quota(json!({"unknown_field": 1})),
        bad_quota(json!({"name": null})),
        json!({"quotas": [quota, quota]}),
        json!({"allowed_models": [""]}),
        json!({"allowed_models": "gpt-4o"}),
        json!({"metadata": [1, 2]}),
        json!({"allowed_model": ["*"]}),
    ] {
        let r = admin.put("/admin/tenants/t-bad", &body).await;
        assert_error(&r, 400, "invalid_body");
        assert!(
            r.text().len() < 2000,
            "a short error for {body}: {}",
            r.text()
        );
    }
    for raw in ["{", "not json", "{\"allowed_models\": [\"*\"],}", "null"] {
        let r = admin.raw(Method::PUT, "/admin/tenants/t-bad", raw).await;
        assert_error_status(&r, 400);
    }
    // an invalid quota on an existing tenant leaves it as it was
    let r = admin
        .put(
            "/admin/tenants/t-alpha",
            &bad_quota(json!({"window": "5x"})),
        )
        .await;
    assert_error(&r, 400, "invalid_body");
    assert_eq!(admin.get("/admin/tenants/t-alpha").await.json(), v2);

    // invalid ids: 400 invalid_name
    let long = "x".repeat(65);
    for id in ["a{b}", "a:b", "a%20b", "a%2Fb", "a*b", long.as_str()] {
        let r = admin.put(&format!("/admin/tenants/{id}"), &json!({})).await;
        assert_error(&r, 400, "invalid_name");
    }
    let ok64 = "y".repeat(64);
    assert_eq!(admin.tenant(&ok64, &json!({})).await["id"], ok64.as_str());
    assert_eq!(admin.tenant("A.b_c-9", &json!({})).await["id"], "A.b_c-9");
    assert_error(&admin.get("/admin/tenants/t-bad").await, 404, "not_found");
    let list = admin.get("/admin/tenants").await.json();
    assert_eq!(
        ids_of(&list, "id"),
        ["A.b_c-9", "t-alpha", "t-mid", "t-zeta", ok64.as_str()],
        "{list}"
    );

    // missing
    assert_error(&admin.get("/admin/tenants/nobody").await, 404, "not_found");
    assert_error(
        &admin.delete("/admin/tenants/nobody").await,
        404,
        "not_found",
    );

    // delete
    let r = admin.delete("/admin/tenants/t-mid").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty(), "204 has no body: {}", r.text());
    assert_error(&admin.get("/admin/tenants/t-mid").await, 404, "not_found");
    assert_error(
        &admin.delete("/admin/tenants/t-mid").await,
        404,
        "not_found",
    );
    let list = admin.get("/admin/tenants").await.json();
    assert!(
        !ids_of(&list, "id").contains(&"t-mid".to_string()),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_crud_and_validation() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);

    // the tenant must exist, and a refused PUT leaves no consumer behind
    let r = admin
        .put("/admin/tenants/acme/consumers/bob", &json!({}))
        .await;
    assert_error(&r, 404, "not_found");
    assert_error(
        &admin.get("/admin/tenants/acme/consumers").await,
        404,
        "not_found",
    );
    admin.tenant("acme", &json!({})).await;
    admin.tenant("other", &json!({})).await;
    let r = admin.get("/admin/tenants/acme/consumers").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!([]));

    let v = admin.consumer("acme", "zed", &json!({})).await;
    assert_eq!(
        v,
        json!({"tenant": "acme", "name": "zed", "allowed_models": ["*"], "quotas": [], "metadata": {}}),
    );
    let full = json!({
        "allowed_models": ["gpt-*"],
        "quotas": [{"name": "rpm", "by": "consumer", "strategy": "requests", "limit": 5, "window": "60s"}],
        "metadata": {"email": "amy@example.com"},
    });
    let amy = admin.consumer("acme", "amy", &full).await;
    assert_eq!(amy["tenant"], "acme");
    assert_eq!(amy["name"], "amy");
    assert_eq!(amy["allowed_models"], full["allowed_models"]);
    assert_eq!(amy["quotas"], full["quotas"]);
    assert_eq!(amy["metadata"], full["metadata"]);
    admin.consumer("acme", "bob", &json!({})).await;
    // same name in another tenant: a different consumer
    admin
        .consumer("other", "amy", &json!({"allowed_models": ["claude-*"]}))
        .await;

    let r = admin.get("/admin/tenants/acme/consumers/amy").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), amy);
    let list = admin.get("/admin/tenants/acme/consumers").await.json();
    assert_eq!(ids_of(&list, "name"), ["amy", "bob", "zed"], "{list}");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["tenant"] == "acme"));
    let list = admin.get("/admin/tenants/other/consumers").await.json();
    assert_eq!(ids_of(&list, "name"), ["amy"], "{list}");
    assert_eq!(list[0]["allowed_models"], json!(["claude-*"]));

    // PUT replaces
    let v = admin
        .consumer("acme", "amy", &json!({"allowed_models": ["claude-3"]}))
        .await;
    assert_eq!(v["allowed_models"], json!(["claude-3"]));
    assert_eq!(v["quotas"], json!([]));
    assert_eq!(
        admin.get("/admin/tenants/acme/consumers/amy").await.json(),
        v
    );

    // validation
    for body in [
        json!({"quotas": [{"name": "q", "by": "consumer", "strategy": "requests", "limit": 1, "window": "5x"}]}),
        json!({"quotas": [{"name": "q", "by": "nope", "strategy": "requests", "limit": 1, "window": "1m"}]}),
        json!({"quotas": [{"name": "q", "by": "consumer", "strategy": "requests", "limit": 0, "window": "1m"}]}),
        json!({"quotas": [{"name": "q", "by": "consumer", "strategy": "requests", "limit": 1, "window": "1m", "x": 1}]}),
        json!({"extra": true}),
    ] {
        let r = admin.put("/admin/tenants/acme/consumers/bad", &body).await;
        assert_error(&r, 400, "invalid_body");
    }
    let r = admin
        .raw(Method::PUT, "/admin/tenants/acme/consumers/bad", "{oops")
        .await;
    assert_error_status(&r, 400);
    let long = "c".repeat(65);
    for name in ["a{b}", "a:b", "a%20b", long.as_str()] {
        let r = admin
            .put(&format!("/admin/tenants/acme/consumers/{name}"), &json!({}))
            .await;
        assert_error(&r, 400, "invalid_name");
    }
    assert_error(
        &admin.get("/admin/tenants/acme/consumers/bad").await,
        404,
        "not_found",
    );

    // missing
    assert_error(
        &admin.get("/admin/tenants/acme/consumers/nobody").await,
        404,
        "not_found",
    );
    assert_error(
        &admin.delete("/admin/tenants/acme/consumers/nobody").await,
        404,
        "not_found",
    );
    assert_error(
        &admin.get("/admin/tenants/nobody/consumers/amy").await,
        404,
        "not_found",
    );

    // delete
    let r = admin.delete("/admin/tenants/acme/consumers/zed").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert_error(
        &admin.get("/admin/tenants/acme/consumers/zed").await,
        404,
        "not_found",
    );
    assert_error(
        &admin.delete("/admin/tenants/acme/consumers/zed").await,
        404,
        "not_found",
    );
    let list = admin.get("/admin/tenants/acme/consumers").await.json();
    assert_eq!(ids_of(&list, "name"), ["amy", "bob"], "{list}");
    // the other tenant's amy is untouched
    assert_eq!(
        admin.get("/admin/tenants/other/consumers/amy").await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_and_work_on_the_data_plane() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    let dp = DataPlane::new(&gw, "keys");
    admin.tenant("acme", &json!({})).await;
    admin.consumer("acme", "bob", &json!({})).await;
    let keys_path = "/admin/tenants/acme/consumers/bob/keys";

    // create: no body, an empty object, a name and an expiry
    let r = admin.raw(Method::POST, keys_path, "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let k1 = r.json();
    assert_created_key(&k1);
    assert!(k1["expires_at"].is_null(), "{k1}");
    let k2 = admin.new_key("acme", "bob", &json!({})).await;
    let k3 = admin
        .new_key(
            "acme",
            "bob",
            &json!({"name": "ci", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(k3["name"], "ci");
    assert_eq!(
        k3["expires_at"].as_str().and_then(parse_rfc3339),
        parse_rfc3339("2099-01-01T00:00:00Z"),
        "{k3}"
    );
    // an offset is the same instant
    let k4 = admin
        .new_key(
            "acme",
            "bob",
            &json!({"expires_at": "2099-01-01T02:00:00+02:00"}),
        )
        .await;
    assert_eq!(
        k4["expires_at"].as_str().and_then(parse_rfc3339),
        parse_rfc3339("2099-01-01T00:00:00Z"),
        "{k4}"
    );
    let all = [&k1, &k2, &k3, &k4];
    let plaintexts: Vec<String> = all.iter().map(|k| s(k, "key")).collect();
    let ids: Vec<String> = all.iter().map(|k| s(k, "id")).collect();
    let mut uniq = plaintexts.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4, "keys are distinct");
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4, "ids are distinct");

    // refused creates
    for (body, code) in [
        (
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            "invalid_expires_at",
        ),
        (
            json!({"expires_at": format_rfc3339(now_unix() - 5)}),
            "invalid_expires_at",
        ),
    ] {
        assert_error(&admin.post(keys_path, &body).await, 400, code);
    }
    for body in [
        json!({"expires_at": "tomorrow"}),
        json!({"expires_at": "2099-01-01"}),
        json!({"expires_at": "2099-01-01 00:00:00"}),
        json!({"expires_at": 4_070_908_800_u64}),
        json!({"nmae": "typo"}),
    ] {
        assert_error_status(&admin.post(keys_path, &body).await, 400);
    }
    assert_error_status(&admin.raw(Method::POST, keys_path, "{").await, 400);
    assert_error(
        &admin
            .post("/admin/tenants/acme/consumers/nobody/keys", &json!({}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &admin
            .post("/admin/tenants/nobody/consumers/bob/keys", &json!({}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &admin.get("/admin/tenants/acme/consumers/nobody/keys").await,
        404,
        "not_found",
    );

    // the listing: public fields only
    let r = admin.get(keys_path).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for p in &plaintexts {
        let secret = p.strip_prefix("sk-gw-").unwrap();
        assert!(!text.contains(secret), "a key is in the listing: {text}");
    }
    assert!(!contains_hex64(&text), "a digest is in the listing: {text}");
    let list = admin.list_keys("acme", "bob").await;
    assert_eq!(list.len(), 4, "{text}");
    for k in &all {
        let id = s(k, "id");
        let listed = list
            .iter()
            .find(|l| l["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not listed: {text}"));
        let obj = listed.as_object().unwrap();
        for f in [
            "id",
            "prefix",
            "name",
            "created_at",
            "expires_at",
            "revoked",
        ] {
            assert!(obj.contains_key(f), "{f} missing: {listed}");
        }
        assert!(
            !obj.contains_key("key") && !obj.contains_key("digest") && !obj.contains_key("hash"),
            "{listed}"
        );
        assert_eq!(listed["prefix"], k["prefix"]);
        assert_eq!(listed["name"], k["name"]);
        assert_eq!(listed["revoked"], false);
        assert_eq!(
            listed["created_at"].as_str().and_then(parse_rfc3339),
            k["created_at"].as_str().and_then(parse_rfc3339),
            "created_at as RFC 3339 in the listing: {listed}"
        );
        assert_eq!(
            listed["expires_at"].as_str().and_then(parse_rfc3339),
            k["expires_at"].as_str().and_then(parse_rfc3339),
            "expires_at as RFC 3339 in the listing: {listed}"
        );
    }

    // the data plane: every key header
    let key = s(&k1, "key");
    let bearer = format!("Bearer {key}");
    let (r, rid_bearer) = dp.chat_with("gpt-4o", &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_chat_answer(&r);
    let (r, rid_x) = dp.chat_with("gpt-4o", &[("x-api-key", &key)]).await;
    assert_eq!(r.status, 200, "x-api-key: {}", r.text());
    let (r, _) = dp.chat_with("gpt-4o", &[("api-key", &key)]).await;
    assert_eq!(r.status, 200, "api-key: {}", r.text());
    for k in &plaintexts[1..] {
        dp.chat_ok(k, "gpt-4o").await;
    }

    // no key, a wrong key, a key-like string that was never issued
    let (r, rid_missing) = dp.chat_with("gpt-4o", &[]).await;
    assert_error(&r, 401, "missing_api_key");
    let (r, _) = dp
        .chat_with("gpt-4o", &[("authorization", "Bearer ")])
        .await;
    assert_error(&r, 401, "missing_api_key");
    let forged = format!("sk-gw-{}", "A".repeat(43));
    let mut tampered = key.clone();
    let last = if tampered.ends_with('a') { "b" } else { "a" };
    tampered.pop();
    tampered.push_str(last);
    for bad in [forged.as_str(), tampered.as_str(), "not-a-key"] {
        let r = dp.chat(bad, "gpt-4o").await;
        assert_error_status(&r, 401);
    }

    // /v1/models
    let r = dp.models(&[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let models = r.json();
    let listed = ids_of(&models["data"], "id");
    for m in ["gpt-4o", "gpt-4o-mini", "claude-3"] {
        assert!(listed.contains(&m.to_string()), "{m} in {models}");
    }
    let r = dp.models(&[]).await;
    assert_error(&r, 401, "missing_api_key");
    let r = dp
        .models(&[("authorization", &format!("Bearer {forged}"))])
        .await;
    assert_error_status(&r, 401);

    // the access log names the caller and never holds a key
    dp.wait_for_all_lines(&gw).await;
    for rid in [&rid_bearer, &rid_x] {
        let line = gw.wait_for_log_line(rid, LOG_WAIT).await;
        assert_eq!(line.response_code, 200, "{line:?}");
        assert_eq!(line.ai_log.tenant.as_deref(), Some("acme"), "{line:?}");
        assert_eq!(line.ai_log.consumer.as_deref(), Some("bob"), "{line:?}");
        assert_eq!(
            line.ai_log.key_id.as_deref(),
            Some(ids[0].as_str()),
            "{line:?}"
        );
    }
    let line = gw.wait_for_log_line(&rid_missing, LOG_WAIT).await;
    assert_eq!(line.response_code, 401);
    assert_eq!(line.ai_log.key_id, None, "{line:?}");
    let mut secrets = plaintexts.clone();
    secrets.push(forged);
    secrets.push(tampered);
    assert_keys_not_logged(&gw, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_with_grace_revoke_and_expiry() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    let dp = DataPlane::new(&gw, "rot");
    admin.tenant("acme", &json!({})).await;
    admin.consumer("acme", "bob", &json!({})).await;
    let base = "/admin/tenants/acme/consumers/bob/keys";
    let mut secrets = Vec::new();

    // a key that expires on its own in ~3 s
    let short = admin
        .new_key(
            "acme",
            "bob",
            &json!({"expires_at": format_rfc3339(now_unix() + 3)}),
        )
        .await;
    secrets.push(s(&short, "key"));
    dp.chat_ok(&s(&short, "key"), "gpt-4o").await;

    // rotate with a long grace: both keys work, the old one now expires
    let a = admin
        .new_key("acme", "bob", &json!({"name": "deploy"}))
        .await;
    let (a_id, a_key) = (s(&a, "id"), s(&a, "key"));
    secrets.push(a_key.clone());
    dp.chat_ok(&a_key, "gpt-4o").await;
    let before = now_unix();
    let r = admin
        .post(&format!("{base}/{a_id}/rotate"), &json!({"grace_s": 3600}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let b = r.json();
    assert_created_key(&b);
    let (b_id, b_key) = (s(&b, "id"), s(&b, "key"));
    secrets.push(b_key.clone());
    assert_ne!(b_id, a_id);
    assert_ne!(b_key, a_key);
    assert!(
        b["expires_at"].is_null(),
        "the new key does not expire: {b}"
    );
    dp.chat_ok(&a_key, "gpt-4o").await;
    dp.chat_ok(&b_key, "gpt-4o").await;
    let list = admin.list_keys("acme", "bob").await;
    let find = |list: &[Value], id: &str| -> Value {
        list.iter()
            .find(|k| k["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list:?}"))
    };
    let old = find(&list, &a_id);
    let old_exp = old["expires_at"]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("the rotated key's expires_at is set: {old}"));
    assert!(
        old_exp >= before + 3600 - 2 && old_exp <= now_unix() + 3600 + 2,
        "expires_at = rotation + grace_s: {old} (now {})",
        now_unix()
    );
    assert_eq!(old["revoked"], false, "{old}");
    let new = find(&list, &b_id);
    assert!(new["expires_at"].is_null(), "{new}");
    assert_eq!(new["revoked"], false);
    let secret_b = b_key.strip_prefix("sk-gw-").unwrap();
    let listing = serde_json::to_string(&list).unwrap();
    assert!(!listing.contains(secret_b) && !listing.contains(&a_key[6..]));

    // rotate with a short grace: the old key works now and stops within ~2 s
    let r = admin
        .post(&format!("{base}/{b_id}/rotate"), &json!({"grace_s": 2}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = r.json();
    assert_created_key(&c);
    let (c_id, c_key) = (s(&c, "id"), s(&c, "key"));
    secrets.push(c_key.clone());
    dp.chat_ok(&b_key, "gpt-4o").await;
    dp.chat_ok(&c_key, "gpt-4o").await;

    // rotate with no body: the default grace keeps the old key working
    let r = admin
        .raw(Method::POST, &format!("{base}/{c_id}/rotate"), "")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let d = r.json();
    assert_created_key(&d);
    let (d_id, d_key) = (s(&d, "id"), s(&d, "key"));
    secrets.push(d_key.clone());
    dp.chat_ok(&c_key, "gpt-4o").await;
    dp.chat_ok(&d_key, "gpt-4o").await;
    let c_exp = find(&admin.list_keys("acme", "bob").await, &c_id)["expires_at"]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("the rotated key's expires_at is set"));
    assert!(c_exp > now_unix() + 60, "a default grace: {c_exp}");

    // rotate: unknown id 404, bad body 400, unknown consumer 404
    assert_error(
        &admin
            .post(
                &format!("{base}/key_doesnotexist/rotate"),
                &json!({"grace_s": 1}),
            )
            .await,
        404,
        "not_found",
    );
    assert_error_status(
        &admin
            .post(
                &format!("{base}/{d_id}/rotate"),
                &json!({"grace_s": "soon"}),
            )
            .await,
        400,
    );
    assert_error_status(
        &admin
            .post(&format!("{base}/{d_id}/rotate"), &json!({"grace_s": -1}))
            .await,
        400,
    );
    assert_error(
        &admin
            .post(
                &format!("/admin/tenants/acme/consumers/nobody/keys/{d_id}/rotate"),
                &json!({}),
            )
            .await,
        404,
        "not_found",
    );

    // revoke: 204, listed as revoked, refused at once; rotate it: 409
    let r = admin.delete(&format!("{base}/{d_id}")).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    dp.chat_refused(&d_key, "gpt-4o", 401, "invalid_api_key")
        .await;
    let r = dp
        .models(&[("authorization", &format!("Bearer {d_key}"))])
        .await;
    assert_error(&r, 401, "invalid_api_key");
    let revoked = find(&admin.list_keys("acme", "bob").await, &d_id);
    assert_eq!(revoked["revoked"], true, "{revoked}");
    assert_error(
        &admin
            .post(&format!("{base}/{d_id}/rotate"), &json!({"grace_s": 10}))
            .await,
        409,
        "conflict",
    );
    assert_error(
        &admin.delete(&format!("{base}/key_doesnotexist")).await,
        404,
        "not_found",
    );
    // revoking a key does not touch the others
    dp.chat_ok(&a_key, "gpt-4o").await;
    dp.chat_ok(&c_key, "gpt-4o").await;
    // a rotated key (still in its grace) can be revoked too
    assert_eq!(admin.delete(&format!("{base}/{a_id}")).await.status, 204);
    dp.chat_refused(&a_key, "gpt-4o", 401, "invalid_api_key")
        .await;

    // after the grace / expiry: B and the short key are refused, C still works
    let short_key = s(&short, "key");
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let b_gone = dp.chat(&b_key, "gpt-4o").await.status == 401;
        let short_gone = dp.chat(&short_key, "gpt-4o").await.status == 401;
        if b_gone && short_gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B (grace_s 2) and the key with a 3 s expiry stop working"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dp.chat_refused(&b_key, "gpt-4o", 401, "invalid_api_key")
        .await;
    dp.chat_refused(&s(&short, "key"), "gpt-4o", 401, "invalid_api_key")
        .await;
    dp.chat_ok(&c_key, "gpt-4o").await;

    dp.wait_for_all_lines(&gw).await;
    assert_keys_not_logged(&gw, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_consumer_or_tenant_stops_their_keys() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    let dp = DataPlane::new(&gw, "del");
    admin.tenant("acme", &json!({})).await;
    admin.tenant("other", &json!({})).await;
    admin.consumer("acme", "c1", &json!({})).await;
    admin.consumer("acme", "c2", &json!({})).await;
    admin.consumer("other", "c1", &json!({})).await;
    let k1 = s(&admin.new_key("acme", "c1", &json!({})).await, "key");
    let k2 = s(&admin.new_key("acme", "c2", &json!({})).await, "key");
    let k3 = s(&admin.new_key("other", "c1", &json!({})).await, "key");
    for k in [&k1, &k2, &k3] {
        dp.chat_ok(k, "gpt-4o").await; // and cached
    }

    // consumer: its keys stop at once, the rest go on
    let r = admin.delete("/admin/tenants/acme/consumers/c1").await;
    assert_eq!(r.status, 204, "{}", r.text());
    dp.chat_refused(&k1, "gpt-4o", 401, "invalid_api_key").await;
    dp.chat_ok(&k2, "gpt-4o").await;
    dp.chat_ok(&k3, "gpt-4o").await;
    assert_error(
        &admin.get("/admin/tenants/acme/consumers/c1/keys").await,
        404,
        "not_found",
    );
    // a new consumer of the same name does not bring the old keys back
    admin.consumer("acme", "c1", &json!({})).await;
    assert!(admin.list_keys("acme", "c1").await.is_empty());
    dp.chat_refused(&k1, "gpt-4o", 401, "invalid_api_key").await;

    // tenant: all its consumers' keys stop at once, other tenants go on
    let r = admin.delete("/admin/tenants/acme").await;
    assert_eq!(r.status, 204, "{}", r.text());
    dp.chat_refused(&k2, "gpt-4o", 401, "invalid_api_key").await;
    let r = dp
        .models(&[("authorization", &format!("Bearer {k2}"))])
        .await;
    assert_error(&r, 401, "invalid_api_key");
    dp.chat_ok(&k3, "gpt-4o").await;
    assert_error(&admin.get("/admin/tenants/acme").await, 404, "not_found");
    assert_error(
        &admin.get("/admin/tenants/acme/consumers").await,
        404,
        "not_found",
    );
    assert_error(
        &admin.get("/admin/tenants/acme/consumers/c2").await,
        404,
        "not_found",
    );
    assert_error(&admin.delete("/admin/tenants/acme").await, 404, "not_found");
    // recreated tenant and consumer: empty, and the old keys stay dead
    admin.tenant("acme", &json!({})).await;
    let r = admin.get("/admin/tenants/acme/consumers").await;
    assert_eq!(r.json(), json!([]), "consumers went with the tenant");
    admin.consumer("acme", "c2", &json!({})).await;
    assert!(admin.list_keys("acme", "c2").await.is_empty());
    dp.chat_refused(&k2, "gpt-4o", 401, "invalid_api_key").await;
    let fresh = s(&admin.new_key("acme", "c2", &json!({})).await, "key");
    dp.chat_ok(&fresh, "gpt-4o").await;

    dp.wait_for_all_lines(&gw).await;
    assert_keys_not_logged(&gw, &[k1, k2, k3, fresh]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_models_of_tenant_and_consumer_both_apply_at_once() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    let dp = DataPlane::new(&gw, "pol");
    admin.tenant("pol", &json!({})).await;
    admin
        .consumer("pol", "narrow", &json!({"allowed_models": ["gpt-*"]}))
        .await;
    let k = admin.new_key("pol", "narrow", &json!({})).await;
    let (key, key_id) = (s(&k, "key"), s(&k, "id"));
    let bearer = format!("Bearer {key}");

    dp.chat_ok(&key, "gpt-4o").await;
    let (r, rid_refused) = dp
        .chat_with("claude-3", &[("authorization", &bearer)])
        .await;
    assert_error(&r, 403, "model_not_allowed");
    let r = dp.models(&[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = ids_of(&r.json()["data"], "id");
    assert!(listed.contains(&"gpt-4o".to_string()), "{listed:?}");
    assert!(listed.contains(&"gpt-4o-mini".to_string()), "{listed:?}");
    assert!(!listed.contains(&"claude-3".to_string()), "{listed:?}");

    // the consumer's allowed_models change for the very next request
    admin
        .consumer("pol", "narrow", &json!({"allowed_models": ["claude-*"]}))
        .await;
    dp.chat_ok(&key, "claude-3").await;
    dp.chat_refused(&key, "gpt-4o", 403, "model_not_allowed")
        .await;

    // the tenant's too; both must allow
    admin
        .tenant("pol", &json!({"allowed_models": ["gpt-*"]}))
        .await;
    assert_eq!(
        admin
            .get("/admin/tenants/pol/consumers/narrow")
            .await
            .status,
        200,
        "a tenant PUT keeps its consumers"
    );
    dp.chat_refused(&key, "claude-3", 403, "model_not_allowed")
        .await;
    dp.chat_refused(&key, "gpt-4o", 403, "model_not_allowed")
        .await;
    let r = dp.models(&[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ids_of(&r.json()["data"], "id"),
        Vec::<String>::new(),
        "no model is allowed by both"
    );
    admin
        .consumer("pol", "narrow", &json!({"allowed_models": ["*"]}))
        .await;
    dp.chat_ok(&key, "gpt-4o").await;
    dp.chat_ok(&key, "gpt-4o-mini").await;
    dp.chat_refused(&key, "claude-3", 403, "model_not_allowed")
        .await;
    admin
        .consumer("pol", "narrow", &json!({"allowed_models": ["*-mini"]}))
        .await;
    dp.chat_ok(&key, "gpt-4o-mini").await;
    dp.chat_refused(&key, "gpt-4o", 403, "model_not_allowed")
        .await;
    admin.tenant("pol", &json!({})).await;
    admin.consumer("pol", "narrow", &json!({})).await;
    dp.chat_ok(&key, "claude-3").await;
    dp.chat_ok(&key, "gpt-4o").await;

    // a refused caller is still named in ai_log
    dp.wait_for_all_lines(&gw).await;
    let line = gw.wait_for_log_line(&rid_refused, LOG_WAIT).await;
    assert_eq!(line.response_code, 403);
    assert_eq!(line.ai_log.tenant.as_deref(), Some("pol"), "{line:?}");
    assert_eq!(line.ai_log.consumer.as_deref(), Some("narrow"), "{line:?}");
    assert_eq!(line.ai_log.key_id.as_deref(), Some(key_id.as_str()));
    for l in gw.access_log_lines() {
        if l.path == "/v1/chat/completions" {
            assert_eq!(l.ai_log.key_id.as_deref(), Some(key_id.as_str()), "{l:?}");
        }
    }
    assert_keys_not_logged(&gw, &[key]);
}

// ------------------------------------------------- known deviations (ignored)
//
// Each of these fails today; run them with `--ignored`. Remove the `ignore` once
// the gateway is fixed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn unknown_admin_path_next_to_tenants_is_404() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    // `/admin/tenantsfoo` is no admin endpoint; today it creates tenant "foo"
    let r = admin.put("/admin/tenantsfoo", &json!({})).await;
    assert_error_status(&r, 404);
    assert_error_status(&admin.get("/admin/tenantsfoo").await, 404);
    let r = admin.get("/admin/tenants").await;
    assert_eq!(r.json(), json!([]), "no tenant was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_in_bodies_are_all_named_without_their_values() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    let body = json!({
        "allowed_models": "sk-live-SECRET123",
        "quotas": [{"name": "q", "by": "tenant", "strategy": "requests", "limit": "lots", "window": "1m"}],
        "bogus": 1,
    });
    for path in ["/admin/tenants/acme", "/admin/tenants/acme/consumers/bob"] {
        let r = admin.put(path, &body).await;
        assert_error(&r, 400, "invalid_body");
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        for needle in [
            "allowed_models: expected a list",
            "quotas[0].limit: is not a decimal number",
            "bogus: unknown field `bogus`",
        ] {
            assert!(msg.contains(needle), "{path}: missing {needle:?} in {msg}");
        }
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("lots"),
            "{path}: {}",
            r.text()
        );
    }
    assert_error(&admin.get("/admin/tenants/acme").await, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn json_array_bodies_are_refused() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    for body in [
        json!([]),
        json!([["gpt-*"]]),
        json!([["gpt-*"], [], {"a": 1}]),
    ] {
        assert_error(
            &admin.put("/admin/tenants/acme", &body).await,
            400,
            "invalid_body",
        );
    }
    assert_error(&admin.get("/admin/tenants/acme").await, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn rotate_grace_is_bounded_and_listed_as_the_old_keys_expiry() {
    let gw = Gateway::start(&config()).await;
    let admin = Admin::new(&gw);
    admin.tenant("acme", &json!({})).await;
    admin.consumer("acme", "bob", &json!({})).await;
    let old_id = s(&admin.new_key("acme", "bob", &json!({})).await, "id");
    let rotate = format!("/admin/tenants/acme/consumers/bob/keys/{old_id}/rotate");
    // more than a year is not a rotation
    let r = admin
        .post(&rotate, &json!({"grace_s": 1_000_000_000_000_u64}))
        .await;
    assert_error(&r, 400, "invalid_grace");
    // a year is: the old key expires a year from now, as the listing says
    const YEAR_S: i64 = 366 * 24 * 3600;
    let before = now_unix();
    let r = admin.post(&rotate, &json!({"grace_s": YEAR_S})).await;
    let after = now_unix();
    assert_eq!(r.status, 201, "{}", r.text());
    let list = admin.list_keys("acme", "bob").await;
    let old = list.iter().find(|k| k["id"] == old_id.as_str()).unwrap();
    let expires = old["expires_at"]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("the rotated key's expires_at is an RFC 3339 time: {old}"));
    assert!(
        (before + YEAR_S..=after + YEAR_S).contains(&expires),
        "expires_at {} is not the rotation time + grace_s ({}..{})",
        old["expires_at"],
        format_rfc3339(before + YEAR_S),
        format_rfc3339(after + YEAR_S)
    );
}
