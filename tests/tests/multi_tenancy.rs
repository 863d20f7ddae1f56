//! Tenants, consumers and API keys shared by every replica through a real Redis:
//! two gateway processes (A and B) on one `redis-server`, the admin API on A and
//! the data plane on B. Covers identity sent upstream (and a client's forged
//! consumer header dropped), revoke propagation through pub/sub (measured), a
//! lost notification bounded by `state.cache_ttl_ms`, rotation with grace,
//! expiry, model/consumer refusals, a Redis outage and restart (stale-if-error,
//! degraded flag, recovery with empty data and no scripts), and a scan of every
//! log, upstream request and Redis value for planted plaintext keys.
//!
//! Every test has its own Redis, mock upstream and gateways.

use gateway_tests::client::{chat_body, chat_stream_body, HttpResponse, TestClient};
use gateway_tests::config::{Config, Consumer, Provider, Route, Server, State, Tenant, Timeouts};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::{metric, wait_metric};
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::redis::{restart_redis, start_redis, stop_redis, RedisServer};
use http::Method;
use serde_json::{json, Value};
use shared::ai_log::AccessLogLine;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The seeded consumer `acme/labubu` (allowed_models `gpt-*`) has this key.
const SEED_KEY: &str = "sk-seed-labubu-0123456789abcdef";

/// One replica's config.
struct Cfg<'a> {
    redis: &'a RedisServer,
    mock: &'a MockUpstream,
    cache_ttl_ms: u64,
    in_query: bool,
    allowed_consumers: &'a [&'a str],
    seed_key: &'a str,
    stale_if_error_s: u64,
}

impl<'a> Cfg<'a> {
    fn new(redis: &'a RedisServer, mock: &'a MockUpstream) -> Self {
        Cfg {
            redis,
            mock,
            cache_ttl_ms: 1000,
            in_query: false,
            allowed_consumers: &["*"],
            seed_key: SEED_KEY,
            stale_if_error_s: 3600,
        }
    }

    fn yaml(&self) -> String {
        Config::new()
            .server(Server::new().admin_token(ADMIN_TOKEN))
            .state(
                State::redis(&self.redis.url())
                    .redis_key("key_prefix", "gw:")
                    .redis_key("timeout_ms", 500)
                    .cache_ttl_ms(self.cache_ttl_ms)
                    .stale_if_error_s(self.stale_if_error_s),
            )
            .auth(json!({
                "keys": ["Authorization", "x-api-key", "api-key"],
                "in_query": self.in_query,
                "consumer_header": "x-gateway-consumer",
            }))
            .provider(
                Provider::openai("up1", &self.mock.base_url())
                    .token("sk-upstream-secret-1")
                    .timeouts(Timeouts::all(500, 5000, 5000, 10_000)),
            )
            .route(
                Route::new("chat", "/v1")
                    .auth(json!({
                        "enabled": true,
                        "allowed_tenants": ["*"],
                        "allowed_consumers": self.allowed_consumers,
                    }))
                    .upstream("up1"),
            )
            .tenant(
                Tenant::new("acme").allowed_models(&["*"]).consumer(
                    Consumer::new("labubu")
                        .key(self.seed_key)
                        .allowed_models(&["gpt-*"]),
                ),
            )
            .access_log()
            .yaml()
    }
}

async fn start_gw(cfg: &Cfg<'_>) -> Gateway {
    // an empty pepper is no pepper: key digests are plain SHA-256 whatever the
    // environment of the test run says
    Gateway::builder(&cfg.yaml())
        .env("GATEWAY_KEY_PEPPER", "")
        .start()
        .await
}

/// Replicas A and B, started together on the same Redis.
async fn replicas(a: &Cfg<'_>, b: &Cfg<'_>) -> (Gateway, Gateway) {
    tokio::join!(start_gw(a), start_gw(b))
}

// ------------------------------------------------------------------ admin API

fn policy(models: &[&str]) -> Value {
    json!({"allowed_models": models, "quotas": [], "metadata": {}})
}

async fn put_tenant(c: &TestClient, gw: &Gateway, t: &str, models: &[&str]) {
    let r = admin(
        c,
        gw,
        Method::PUT,
        &format!("/admin/tenants/{t}"),
        Some(&policy(models)),
    )
    .await;
    assert_eq!(r.status, 200, "PUT tenant {t}: {}", r.text());
    assert_eq!(r.json()["id"], t, "{}", r.text());
}

async fn put_consumer(c: &TestClient, gw: &Gateway, t: &str, name: &str, models: &[&str]) {
    let r = admin(
        c,
        gw,
        Method::PUT,
        &format!("/admin/tenants/{t}/consumers/{name}"),
        Some(&policy(models)),
    )
    .await;
    assert_eq!(r.status, 200, "PUT consumer {t}/{name}: {}", r.text());
}

/// A key as the create/rotate answer shows it (the only time the plaintext is
/// seen).
#[derive(Debug, Clone)]
struct NewKey {
    id: String,
    key: String,
    answer: Value,
}

fn new_key_from(r: &HttpResponse, what: &str) -> NewKey {
    assert_eq!(r.status, 201, "{what}: {}", r.text());
    let v = r.json();
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let key = v["key"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty() && !key.is_empty(), "{what}: {v}");
    for field in ["prefix", "created_at"] {
        assert!(v[field].is_string(), "{what}: no {field}: {v}");
    }
    NewKey { id, key, answer: v }
}

async fn create_key(c: &TestClient, gw: &Gateway, t: &str, cons: &str, body: &Value) -> NewKey {
    let r = admin(
        c,
        gw,
        Method::POST,
        &format!("/admin/tenants/{t}/consumers/{cons}/keys"),
        Some(body),
    )
    .await;
    new_key_from(&r, &format!("create key for {t}/{cons}"))
}

async fn revoke_key(c: &TestClient, gw: &Gateway, t: &str, cons: &str, id: &str) {
    let r = admin(
        c,
        gw,
        Method::DELETE,
        &format!("/admin/tenants/{t}/consumers/{cons}/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "revoke {t}/{cons}/{id}: {}", r.text());
}

/// Tenant `t` (all models) with consumer `cons` (all models) and one key, through
/// `gw`'s admin API.
async fn consumer_with_key(c: &TestClient, gw: &Gateway, t: &str, cons: &str) -> NewKey {
    put_tenant(c, gw, t, &["*"]).await;
    put_consumer(c, gw, t, cons, &["*"]).await;
    create_key(c, gw, t, cons, &json!({"name": format!("{cons}-key")})).await
}

// ------------------------------------------------------------------ data plane

fn chat_url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

/// A chat request with `Authorization: Bearer <key>`.
async fn chat(c: &TestClient, gw: &Gateway, key: &str, model: &str) -> HttpResponse {
    let bearer = format!("Bearer {key}");
    c.post_json_with(
        &chat_url(gw),
        &chat_body(model, "hello"),
        &[("authorization", bearer.as_str())],
    )
    .await
}

/// As [`chat`], through [`Gateway::chat_logged`]: the answer and its
/// access-log line.
async fn chat_logged(
    c: &TestClient,
    gw: &Gateway,
    key: &str,
    model: &str,
) -> (HttpResponse, AccessLogLine) {
    let bearer = format!("Bearer {key}");
    gw.chat_logged(
        c,
        &chat_body(model, "hello"),
        &[("authorization", bearer.as_str())],
    )
    .await
}

fn message(r: &HttpResponse) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn assert_refused(r: &HttpResponse, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: body {}", r.text());
    assert_eq!(
        r.error_code().as_deref(),
        Some(code),
        "{what}: body {}",
        r.text()
    );
}

/// Sends with `key` to `gw` every `every` until the answer is not 200; panics if
/// that takes longer than `within` or an answer is neither 200 nor 401. Returns
/// the refusal, the time from `since` and how many 200s were seen meanwhile.
async fn poll_until_refused(
    c: &TestClient,
    gw: &Gateway,
    key: &str,
    since: Instant,
    every: Duration,
    within: Duration,
) -> (HttpResponse, Duration, usize) {
    let mut served = 0;
    loop {
        let r = chat(c, gw, key, "gpt-4o").await;
        match r.status {
            200 => served += 1,
            401 => return (r, since.elapsed(), served),
            other => panic!(
                "unexpected {other} while waiting for a refusal: {}",
                r.text()
            ),
        }
        if since.elapsed() > within {
            panic!(
                "key still accepted {:?} after the change ({served} answers 200); stderr:\n{}",
                since.elapsed(),
                gw.stderr()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until `gateway_state_degraded` of `gw` is `want`; returns how long that
/// took from `since` (at most `within` from `since`).
async fn wait_degraded(gw: &Gateway, want: f64, since: Instant, within: Duration) -> Duration {
    let left = within.saturating_sub(since.elapsed());
    let what = format!("{want}, {within:?} after the change");
    wait_metric(
        gw,
        "gateway_state_degraded",
        &[],
        |v| v == want,
        &what,
        left,
    )
    .await;
    since.elapsed()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as RFC 3339 in UTC with a `Z`.
fn rfc3339(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// SHA-256 of `data` as lower-case hex, as the gateway stores it (no pepper).
fn sha256_hex(data: &[u8]) -> String {
    gateway::keys::KeyHasher::new(None)
        .digest(std::str::from_utf8(data).unwrap())
        .to_hex()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ------------------------------------------------------------------ tests

/// 1. A key created through A's admin API works on B; the upstream sees the
///    gateway's `x-gateway-consumer: tenant/consumer` (never the client's forged
///    value) and the upstream token (never the consumer key); B's ai_log names
///    tenant, consumer and key id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_created_on_a_works_on_b_and_identity_goes_upstream() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let cfg = Cfg::new(&redis, &mock);
    let (a, b) = replicas(&cfg, &cfg).await;
    let c = TestClient::new();

    let k = consumer_with_key(&c, &a, "globex", "wile").await;
    assert!(k.key.starts_with("sk-gw-"), "{:?}", k.answer);
    assert_eq!(k.answer["name"], "wile-key");
    assert!(k.answer["expires_at"].is_null(), "{:?}", k.answer);

    // B's admin API lists it too (without the key)
    let list = admin(
        &c,
        &b,
        Method::GET,
        "/admin/tenants/globex/consumers/wile/keys",
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let keys = list.json();
    let listed = keys
        .as_array()
        .and_then(|v| v.iter().find(|x| x["id"] == k.id.as_str()))
        .unwrap_or_else(|| panic!("key {} not listed on B: {keys}", k.id))
        .clone();
    assert_eq!(listed["revoked"], false, "{listed}");
    assert_eq!(listed["prefix"], k.answer["prefix"], "{listed}");
    assert!(listed.get("key").is_none(), "{listed}");
    assert!(!list.text().contains(&k.key), "{}", list.text());

    let bearer = format!("Bearer {}", k.key);
    let (r, line) = b
        .chat_logged(
            &c,
            &chat_body("gpt-4o", "who am I"),
            &[
                ("authorization", bearer.as_str()),
                ("x-gateway-consumer", "evil/mallory"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "B: {}", r.text());

    let up = mock.last_request().expect("the upstream got the request");
    let consumer_values: Vec<&str> = up
        .headers
        .iter()
        .filter(|(n, _)| n == "x-gateway-consumer")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        consumer_values,
        vec!["globex/wile"],
        "the upstream must see exactly the gateway's consumer header; headers: {:?}",
        up.headers
    );
    assert_eq!(
        up.header("authorization"),
        Some("Bearer sk-upstream-secret-1"),
        "headers: {:?}",
        up.headers
    );
    assert!(
        up.headers.iter().all(|(_, v)| !v.contains(&k.key)),
        "the consumer key went upstream: {:?}",
        up.headers
    );

    assert_eq!(line.response_code, 200);
    assert_eq!(line.ai_log.tenant.as_deref(), Some("globex"), "{line:?}");
    assert_eq!(line.ai_log.consumer.as_deref(), Some("wile"), "{line:?}");
    assert_eq!(
        line.ai_log.key_id.as_deref(),
        Some(k.id.as_str()),
        "{line:?}"
    );

    // and the seeded consumer works on both replicas, named as tenant/consumer
    for gw in [&a, &b] {
        let r = chat(&c, gw, SEED_KEY, "gpt-4o-mini").await;
        assert_eq!(r.status, 200, "seeded key: {}", r.text());
        let up = mock.last_request().expect("upstream request");
        assert_eq!(up.header("x-gateway-consumer"), Some("acme/labubu"));
    }
}

/// 2. A revoke through A is refused on B well within 1 s, even though B's cache
///    would trust the key for 30 s: the pub/sub notification does it. Measured
///    over 20 fresh keys, each warmed on B first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_on_a_is_refused_on_b_within_a_second() {
    const ROUNDS: usize = 20;
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let mut cfg = Cfg::new(&redis, &mock);
    // a TTL far above the bound: only the notification can make it in time
    cfg.cache_ttl_ms = 30_000;
    let (a, b) = replicas(&cfg, &cfg).await;
    let c = TestClient::new();
    put_tenant(&c, &a, "initech", &["*"]).await;
    put_consumer(&c, &a, "initech", "peter", &["*"]).await;

    let mut from_request = Vec::new();
    let mut from_answer = Vec::new();
    let mut served_after = 0;
    for i in 0..ROUNDS {
        let k = create_key(
            &c,
            &a,
            "initech",
            "peter",
            &json!({"name": format!("r{i}")}),
        )
        .await;
        // warm B's cache (twice: the second answer comes from the cache)
        for _ in 0..2 {
            let r = chat(&c, &b, &k.key, "gpt-4o").await;
            assert_eq!(r.status, 200, "round {i}, warm-up on B: {}", r.text());
        }
        let t0 = Instant::now();
        revoke_key(&c, &a, "initech", "peter", &k.id).await;
        let answered = t0.elapsed();
        let (r, delay, served) = poll_until_refused(
            &c,
            &b,
            &k.key,
            t0,
            Duration::from_millis(20),
            Duration::from_secs(5),
        )
        .await;
        assert_refused(&r, 401, "invalid_api_key", "revoked key on B");
        assert_eq!(message(&r), "this API key has been revoked", "{}", r.text());
        served_after += served;
        from_request.push(delay);
        from_answer.push(delay.saturating_sub(answered));
    }
    from_request.sort();
    from_answer.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "revoke propagation A -> B over {ROUNDS} keys (cache_ttl_ms 30000, polling B every 20 ms): \
         from sending DELETE: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         from the 204: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         200s answered by B after the DELETE was sent: {served_after}",
        ms(percentile(&from_request, 50.0)),
        ms(percentile(&from_request, 99.0)),
        ms(percentile(&from_request, 100.0)),
        ms(percentile(&from_answer, 50.0)),
        ms(percentile(&from_answer, 99.0)),
        ms(percentile(&from_answer, 100.0)),
    );
    let p99 = percentile(&from_request, 99.0);
    assert!(
        p99 < Duration::from_secs(1),
        "p99 revoke propagation {p99:?} >= 1 s: {from_request:?}"
    );
}

/// 3. A change written to Redis behind the gateways' back (no notification) is
///    picked up by B within `cache_ttl_ms` (1 s) plus slack, and B answers from
///    its cache until then; A, which never cached the key, refuses at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_notification_is_bounded_by_the_cache_ttl() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let cfg = Cfg::new(&redis, &mock);
    let (a, b) = replicas(&cfg, &cfg).await;
    let c = TestClient::new();
    let k = consumer_with_key(&c, &a, "umbrella", "alice").await;

    let digest = redis.cli(&["HGET", "gw:{t:umbrella}:keys", &format!("alice/{}", k.id)]);
    assert_eq!(digest.len(), 64, "the key index gave {digest:?}");
    assert_eq!(
        digest,
        sha256_hex(k.key.as_bytes()),
        "the stored digest is the SHA-256 of the key"
    );
    let record = format!("gw:{{k:{digest}}}");
    assert_eq!(redis.cli(&["HGET", &record, "revoked"]), "0");

    let warmed = Instant::now();
    let r = chat(&c, &b, &k.key, "gpt-4o").await;
    assert_eq!(r.status, 200, "warm-up on B: {}", r.text());

    let t0 = Instant::now();
    redis.cli(&["HSET", &record, "revoked", "1"]);
    let written = t0.elapsed();
    let first = chat(&c, &b, &k.key, "gpt-4o").await;
    let first_at = t0.elapsed();

    // A has no cache entry for this key: it asks Redis and refuses at once
    let ra = chat(&c, &a, &k.key, "gpt-4o").await;
    assert_refused(&ra, 401, "invalid_api_key", "A after the direct write");
    assert_eq!(message(&ra), "this API key has been revoked");

    let (r, delay, served) = poll_until_refused(
        &c,
        &b,
        &k.key,
        t0,
        Duration::from_millis(20),
        Duration::from_secs(5),
    )
    .await;
    assert_refused(&r, 401, "invalid_api_key", "B after the TTL");
    assert_eq!(message(&r), "this API key has been revoked");
    eprintln!(
        "lost notification: HSET took {written:?}; first request on B after it ({first_at:?}) got {} \
         (200 = served from B's cache); B refused after {delay:?} with {served} more answers 200 \
         from its cache meanwhile (cache_ttl_ms 1000)",
        first.status
    );
    // B cached the key in the warm-up, and nothing told it about the write:
    // within cache_ttl_ms of the warm-up it answers from that entry
    if warmed.elapsed() < Duration::from_millis(1000) {
        assert_eq!(
            first.status,
            200,
            "B's first answer after the direct write, {:?} after the warm-up cached the key: {}",
            warmed.elapsed(),
            first.text()
        );
    } else {
        eprintln!(
            "the first request after the write came {:?} after the warm-up (past cache_ttl_ms): its 200 is not checked",
            warmed.elapsed()
        );
    }
    assert!(
        delay < Duration::from_millis(1500),
        "B kept trusting its cache for {delay:?} (> cache_ttl_ms 1000 + 500 ms slack)"
    );
}

/// 4. Rotation with `grace_s: 2` through A: the new key works on B at once, the
///    old one keeps working on B during the grace period and is refused after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_grace_across_replicas() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let cfg = Cfg::new(&redis, &mock);
    let (a, b) = replicas(&cfg, &cfg).await;
    let c = TestClient::new();
    let old = consumer_with_key(&c, &a, "hooli", "gavin").await;
    let r = chat(&c, &b, &old.key, "gpt-4o").await;
    assert_eq!(r.status, 200, "old key before rotation: {}", r.text());

    let t0 = Instant::now();
    let r = admin(
        &c,
        &a,
        Method::POST,
        &format!(
            "/admin/tenants/hooli/consumers/gavin/keys/{}/rotate",
            old.id
        ),
        Some(&json!({"grace_s": 2})),
    )
    .await;
    let new = new_key_from(&r, "rotate");
    assert_ne!(new.id, old.id);
    assert_ne!(new.key, old.key);

    let r = chat(&c, &b, &new.key, "gpt-4o").await;
    assert_eq!(
        r.status,
        200,
        "new key on B right after rotation: {}",
        r.text()
    );
    let up = mock.last_request().expect("upstream request");
    assert_eq!(up.header("x-gateway-consumer"), Some("hooli/gavin"));

    // the old key expires at (whole seconds at rotation) + 2, so at least 1 s
    // after the rotation: it must still work now
    let r = chat(&c, &b, &old.key, "gpt-4o").await;
    let at = t0.elapsed();
    if at < Duration::from_millis(900) {
        assert_eq!(
            r.status,
            200,
            "old key on B {at:?} into a 2 s grace: {}",
            r.text()
        );
    }

    let list = admin(
        &c,
        &b,
        Method::GET,
        "/admin/tenants/hooli/consumers/gavin/keys",
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let keys = list.json();
    let find = |id: &str| {
        keys.as_array()
            .and_then(|v| v.iter().find(|x| x["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {keys}"))
    };
    assert!(find(&old.id)["expires_at"].is_string(), "{keys}");
    assert!(find(&new.id)["expires_at"].is_null(), "{keys}");

    let (r, delay, served) = poll_until_refused(
        &c,
        &b,
        &old.key,
        t0,
        Duration::from_millis(50),
        Duration::from_secs(5),
    )
    .await;
    assert_refused(&r, 401, "invalid_api_key", "old key after the grace");
    assert_eq!(message(&r), "this API key has expired", "{}", r.text());
    eprintln!("rotation: old key refused on B {delay:?} after the rotate call ({served} answers 200 during the grace)");
    assert!(
        delay >= Duration::from_millis(900),
        "old key refused after only {delay:?} of a 2 s grace"
    );
    assert!(
        delay < Duration::from_millis(3500),
        "old key still accepted {delay:?} after a 2 s grace"
    );
    assert!(served >= 1, "the old key never worked during the grace");

    for gw in [&a, &b] {
        let r = chat(&c, gw, &new.key, "gpt-4o").await;
        assert_eq!(r.status, 200, "new key after the grace: {}", r.text());
        let r = chat(&c, gw, &old.key, "gpt-4o").await;
        assert_refused(&r, 401, "invalid_api_key", "old key after the grace");
    }
}

/// 5. A key created with `expires_at` 2 s ahead works, then is refused as expired
///    on both replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_expires_at_its_expiry_time() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let cfg = Cfg::new(&redis, &mock);
    let (a, b) = replicas(&cfg, &cfg).await;
    let c = TestClient::new();
    put_tenant(&c, &a, "tyrell", &["*"]).await;
    put_consumer(&c, &a, "tyrell", "roy", &["*"]).await;

    // a bad time is refused with 400
    let r = admin(
        &c,
        &a,
        Method::POST,
        "/admin/tenants/tyrell/consumers/roy/keys",
        Some(&json!({"expires_at": "tomorrow"})),
    )
    .await;
    assert_refused(&r, 400, "invalid_expires_at", "expires_at: tomorrow");

    let t0 = Instant::now();
    let expires = rfc3339(unix_now() + 2);
    let k = create_key(
        &c,
        &a,
        "tyrell",
        "roy",
        &json!({"expires_at": expires, "name": "short-lived"}),
    )
    .await;
    assert_eq!(k.answer["expires_at"], expires.as_str(), "{:?}", k.answer);
    assert_eq!(k.answer["name"], "short-lived");

    let r = chat(&c, &b, &k.key, "gpt-4o").await;
    let at = t0.elapsed();
    if at < Duration::from_millis(900) {
        assert_eq!(r.status, 200, "key on B {at:?} before expiry: {}", r.text());
    }
    let (r, delay, served) = poll_until_refused(
        &c,
        &b,
        &k.key,
        t0,
        Duration::from_millis(50),
        Duration::from_secs(5),
    )
    .await;
    assert_refused(&r, 401, "invalid_api_key", "expired key on B");
    assert_eq!(message(&r), "this API key has expired", "{}", r.text());
    eprintln!("expiry: key (expires_at {expires}) refused on B {delay:?} after creation ({served} answers 200 before)");
    assert!(
        delay < Duration::from_millis(3500),
        "expired key accepted for {delay:?}"
    );
    let r = chat(&c, &a, &k.key, "gpt-4o").await;
    assert_refused(&r, 401, "invalid_api_key", "expired key on A");
    assert_eq!(message(&r), "this API key has expired");
}

/// 6. Refusals: no key, unknown key, a model the consumer or its tenant may not
///    use (and a policy change on A applied by B at once), a consumer the route
///    does not admit. The upstream never sees a refused request; ai_log still
///    names a refused caller whose key resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_models_and_consumers() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let cfg_a = Cfg::new(&redis, &mock);
    let mut cfg_b = Cfg::new(&redis, &mock);
    cfg_b.allowed_consumers = &["acme/other"];
    let (a, b) = replicas(&cfg_a, &cfg_b).await;
    let c = TestClient::new();

    // no key / unknown key
    let r = c
        .post_json(&chat_url(&a), &chat_body("gpt-4o", "no key"))
        .await;
    assert_refused(&r, 401, "missing_api_key", "no key");
    let unknown = format!("sk-gw-{}", "Q".repeat(43));
    for _ in 0..2 {
        let r = chat(&c, &a, &unknown, "gpt-4o").await;
        assert_refused(&r, 401, "invalid_api_key", "unknown key");
    }
    let r = chat(&c, &a, "not-even-a-key", "gpt-4o").await;
    assert_refused(&r, 401, "invalid_api_key", "foreign token");

    // the seeded consumer may use gpt-* only
    let hits = mock.hits();
    let (r, line) = chat_logged(&c, &a, SEED_KEY, "claude-3").await;
    assert_refused(&r, 403, "model_not_allowed", "labubu asking for claude-3");
    assert_eq!(mock.hits(), hits, "a refused request reached the upstream");
    assert_eq!(line.response_code, 403);
    assert_eq!(line.ai_log.tenant.as_deref(), Some("acme"), "{line:?}");
    assert_eq!(line.ai_log.consumer.as_deref(), Some("labubu"), "{line:?}");
    assert!(
        line.ai_log
            .key_id
            .as_deref()
            .is_some_and(|id| id.starts_with("seed_")),
        "{line:?}"
    );
    let r = chat(&c, &a, SEED_KEY, "gpt-4o").await;
    assert_eq!(r.status, 200, "labubu asking for gpt-4o: {}", r.text());

    // B's route admits acme/other only
    let (r, line) = chat_logged(&c, &b, SEED_KEY, "gpt-4o").await;
    assert_refused(&r, 403, "consumer_not_allowed", "labubu on B's route");
    assert_eq!(line.ai_log.consumer.as_deref(), Some("labubu"), "{line:?}");

    put_consumer(&c, &a, "acme", "other", &["*"]).await;
    let other = create_key(&c, &a, "acme", "other", &json!({})).await;
    let r = chat(&c, &b, &other.key, "claude-3").await;
    assert_eq!(r.status, 200, "acme/other on B: {}", r.text());
    let up = mock.last_request().expect("upstream request");
    assert_eq!(up.header("x-gateway-consumer"), Some("acme/other"));

    // narrowing acme/other's models on A applies on B at once (notification)
    put_consumer(&c, &a, "acme", "other", &["gpt-*"]).await;
    let t0 = Instant::now();
    loop {
        let r = chat(&c, &b, &other.key, "claude-3").await;
        if r.status == 403 {
            assert_refused(&r, 403, "model_not_allowed", "after narrowing");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "B still applies the old allowed_models {:?} after the change",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // the tenant's allowed_models apply on top of the consumer's
    put_tenant(&c, &a, "soylent", &["gpt-4o"]).await;
    put_consumer(&c, &a, "soylent", "green", &["*"]).await;
    let g = create_key(&c, &a, "soylent", "green", &json!({})).await;
    let r = chat(&c, &a, &g.key, "gpt-4o-mini").await;
    assert_refused(&r, 403, "model_not_allowed", "tenant allows gpt-4o only");
    let r = chat(&c, &a, &g.key, "gpt-4o").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // ... and B's route does not admit soylent/green at all
    let r = chat(&c, &b, &g.key, "gpt-4o").await;
    assert_refused(&r, 403, "consumer_not_allowed", "soylent/green on B");
}

/// 7b. A replica cut off from Redis admits a key it had cached for
///     `stale_if_error_s` only (a revocation made meanwhile would be missed), and
///     says so at warn level once per key and minute, naming the key by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_admissions_are_bounded_and_logged_once_per_key() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let mut cfg = Cfg::new(&redis, &mock);
    cfg.stale_if_error_s = 2;
    let gw = start_gw(&cfg).await;
    let c = TestClient::new();
    let k = consumer_with_key(&c, &gw, "cyberdyne", "miles").await;
    let r = chat(&c, &gw, &k.key, "gpt-4o").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cached_at = Instant::now();

    let _redis = stop_redis(redis).await;
    wait_degraded(&gw, 1.0, Instant::now(), Duration::from_secs(2)).await;
    for _ in 0..3 {
        let r = chat(&c, &gw, &k.key, "gpt-4o").await;
        assert_eq!(
            r.status,
            200,
            "cached key within stale_if_error_s: {}",
            r.text()
        );
    }
    let warned = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| {
                l.contains("WARN") && l.contains("without checking it") && l.contains(&k.id)
            })
            .count()
    };
    let stderr = gw.stderr();
    assert_eq!(
        warned(&stderr),
        1,
        "one warning for three stale admissions:\n{stderr}"
    );
    assert!(!stderr.contains(&k.key), "the key itself is never logged");

    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(cached_at.elapsed()) + Duration::from_millis(200),
    )
    .await;
    let r = chat(&c, &gw, &k.key, "gpt-4o").await;
    assert_refused(
        &r,
        503,
        "state_unavailable",
        "cached key past stale_if_error_s",
    );
}

/// 7. Redis stops: the degraded flag rises, a key B has cached keeps working, a
///    key a replica cannot check is refused (503, never 200), admin writes
///    answer 503. Redis comes back empty and without scripts: the replicas
///    recover by themselves, the seed is back, admin writes work and a new key
///    works on the other replica; a SCRIPT FLUSH is survived as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_restart() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let cfg = Cfg::new(&redis, &mock);
    let (a, b) = replicas(&cfg, &cfg).await;
    let c = TestClient::new();
    let before = consumer_with_key(&c, &a, "cyberdyne", "miles").await;
    assert_eq!(metric(&b, "gateway_state_degraded").await, 0.0);

    let r = chat(&c, &b, SEED_KEY, "gpt-4o").await;
    assert_eq!(r.status, 200, "seeded key on B: {}", r.text());

    let mut redis = stop_redis(redis).await;
    let t_stop = Instant::now();
    let up_b = wait_degraded(&b, 1.0, t_stop, Duration::from_secs(2)).await;
    let up_a = wait_degraded(&a, 1.0, t_stop, Duration::from_secs(2)).await;
    eprintln!("redis stopped: gateway_state_degraded 1 on B after {up_b:?}, on A after {up_a:?}");

    // B has the seeded key cached: still served (stale-if-error), also past the TTL
    for round in 0..2 {
        let r = chat(&c, &b, SEED_KEY, "gpt-4o").await;
        assert_eq!(
            r.status,
            200,
            "cached key on B during the outage (round {round}): {}",
            r.text()
        );
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    // a key B never saw cannot be checked: refused, never let through
    let unknown = format!("sk-gw-{}", "Z".repeat(43));
    let r = chat(&c, &b, &unknown, "gpt-4o").await;
    assert!(
        r.status == 503 || r.status == 401,
        "unknown key during the outage: {} {}",
        r.status,
        r.text()
    );
    if r.status == 503 {
        assert_eq!(r.error_code().as_deref(), Some("state_unavailable"));
    }
    eprintln!(
        "unknown key on B during the outage: {} {:?}",
        r.status,
        r.error_code()
    );
    // A never looked the valid keys up: it cannot check them, so 503
    for key in [SEED_KEY, before.key.as_str()] {
        let r = chat(&c, &a, key, "gpt-4o").await;
        assert_refused(&r, 503, "state_unavailable", "uncached valid key on A");
    }
    // admin writes are refused
    let r = admin(
        &c,
        &a,
        Method::PUT,
        "/admin/tenants/skynet",
        Some(&policy(&["*"])),
    )
    .await;
    assert_refused(&r, 503, "state_unavailable", "PUT tenant during the outage");
    let r = admin(
        &c,
        &a,
        Method::POST,
        "/admin/tenants/cyberdyne/consumers/miles/keys",
        Some(&json!({})),
    )
    .await;
    assert_refused(&r, 503, "state_unavailable", "POST key during the outage");

    // back, empty, without scripts
    redis = restart_redis(redis).await;
    let t_back = Instant::now();
    let down_a = wait_degraded(&a, 0.0, t_back, Duration::from_secs(3)).await;
    let down_b = wait_degraded(&b, 0.0, t_back, Duration::from_secs(3)).await;

    // the seed is written again: the seeded key works on both replicas
    let mut seed_back = Vec::new();
    for gw in [&a, &b] {
        loop {
            let r = chat(&c, gw, SEED_KEY, "gpt-4o").await;
            if r.status == 200 {
                seed_back.push(t_back.elapsed());
                break;
            }
            assert!(
                t_back.elapsed() < Duration::from_secs(3),
                "seeded key after the restart: {} {}; stderr:\n{}",
                r.status,
                r.text(),
                gw.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "redis restarted empty: degraded 0 on A after {down_a:?}, on B after {down_b:?}; \
         seeded key accepted again on A/B after {seed_back:?}"
    );
    // the admin-created key is gone with Redis's data
    let r = chat(&c, &b, &before.key, "gpt-4o").await;
    assert_refused(
        &r,
        401,
        "invalid_api_key",
        "key created before an empty restart",
    );

    // admin writes work again and the new key works on the other replica
    let k = consumer_with_key(&c, &a, "skynet", "t800").await;
    let r = chat(&c, &b, &k.key, "gpt-4o").await;
    assert_eq!(
        r.status,
        200,
        "key created after the restart, on B: {}",
        r.text()
    );
    let up = mock.last_request().expect("upstream request");
    assert_eq!(up.header("x-gateway-consumer"), Some("skynet/t800"));

    // scripts flushed behind the gateways' back (no outage seen): EVALSHA gets
    // NOSCRIPT and must reload; writes go on working on both replicas
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    let k2 = create_key(&c, &b, "skynet", "t800", &json!({"name": "after-flush"})).await;
    let r = chat(&c, &a, &k2.key, "gpt-4o").await;
    assert_eq!(
        r.status,
        200,
        "key created after SCRIPT FLUSH: {}",
        r.text()
    );
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    revoke_key(&c, &a, "skynet", "t800", &k2.id).await;
    let r = chat(&c, &b, &k2.key, "gpt-4o").await;
    assert_refused(&r, 401, "invalid_api_key", "revoked after SCRIPT FLUSH");
}

/// Every value stored under every key of `redis`, with the key names.
fn redis_dump(redis: &RedisServer) -> String {
    let mut out = String::new();
    let names = redis.cli(&["--scan"]);
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let kind = redis.cli(&["TYPE", name]);
        let value = match kind.as_str() {
            "string" => redis.cli(&["GET", name]),
            "hash" => redis.cli(&["HGETALL", name]),
            "set" => redis.cli(&["SMEMBERS", name]),
            "zset" => redis.cli(&["ZRANGE", name, "0", "-1", "WITHSCORES"]),
            "list" => redis.cli(&["LRANGE", name, "0", "-1"]),
            "stream" => redis.cli(&["XRANGE", name, "-", "+"]),
            other => panic!("key {name} has an unexpected type {other:?}"),
        };
        out.push_str(&format!("{name} ({kind}):\n{value}\n"));
    }
    out
}

/// 8. Planted keys (one seeded, one created through the admin API) used on both
///    replicas in every way a key can be sent (Authorization, x-api-key, api-key,
///    `?key=` where `auth.in_query` is on and where it is off), for successes,
///    streams and refusals: the plaintext appears in no access log, no gateway
///    stdout/stderr, no upstream request (headers, URL, body), no Redis key or
///    value, and no answer the clients got; the SHA-256 digest appears in no log
///    either (it is, as expected, in Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_keys_appear_nowhere() {
    const PLANTED: &str = "sk-planted-SEED-7Hq2ZxW9mKd4Lr8Vt3Pn";
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "the local SHA-256"
    );
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let mut cfg_a = Cfg::new(&redis, &mock);
    cfg_a.in_query = true;
    cfg_a.seed_key = PLANTED;
    let mut cfg_b = Cfg::new(&redis, &mock);
    cfg_b.seed_key = PLANTED;
    let (a, b) = replicas(&cfg_a, &cfg_b).await;
    let c = TestClient::new();

    put_tenant(&c, &a, "wonka", &["*"]).await;
    put_consumer(&c, &a, "wonka", "charlie", &["gpt-*"]).await;
    let made = create_key(&c, &a, "wonka", "charlie", &json!({"name": "planted"})).await;
    let secrets = [PLANTED.to_string(), made.key.clone()];
    let digests: Vec<String> = secrets.iter().map(|k| sha256_hex(k.as_bytes())).collect();

    let mut answers: Vec<String> = Vec::new();
    let record = |answers: &mut Vec<String>, what: &str, r: &HttpResponse| {
        answers.push(format!("{what}: {} {:?} {}", r.status, r.headers, r.text()));
    };
    let mut sent = [0usize; 2];
    for (gi, gw) in [&a, &b].into_iter().enumerate() {
        for key in &secrets {
            let bearer = format!("Bearer {key}");
            let url = chat_url(gw);
            for (header, value) in [
                ("authorization", bearer.as_str()),
                ("x-api-key", key.as_str()),
                ("api-key", key.as_str()),
            ] {
                let r = c
                    .post_json_with(&url, &chat_body("gpt-4o", "planted"), &[(header, value)])
                    .await;
                assert_eq!(r.status, 200, "{header} on replica {gi}: {}", r.text());
                record(&mut answers, header, &r);
            }
            let r = chat(&c, gw, key, "claude-3").await;
            assert_refused(&r, 403, "model_not_allowed", "planted key, claude-3");
            record(&mut answers, "refused", &r);
            let s = c
                .post_sse(
                    &url,
                    &chat_stream_body("gpt-4o-mini", "planted stream"),
                    &[("authorization", bearer.as_str())],
                )
                .await;
            assert_eq!(s.status, 200, "stream on replica {gi}: {}", s.raw);
            assert!(s.done, "{}", s.raw);
            answers.push(format!("stream: {:?} {}", s.headers, s.raw));
            let r = c
                .post_json_with(
                    &format!("{url}?key={key}&x=1"),
                    &chat_body("gpt-4o", "planted in query"),
                    &[],
                )
                .await;
            if gi == 0 {
                assert_eq!(r.status, 200, "?key= with in_query on A: {}", r.text());
            } else {
                assert_refused(&r, 401, "missing_api_key", "?key= with in_query off on B");
            }
            record(&mut answers, "query", &r);
            sent[gi] += 6;
        }
    }
    // a revoked key is refused (its identity resolved) on both replicas
    revoke_key(&c, &a, "wonka", "charlie", &made.id).await;
    for (gi, gw) in [&a, &b].into_iter().enumerate() {
        let (r, _, _) = poll_until_refused(
            &c,
            gw,
            &made.key,
            Instant::now(),
            Duration::from_millis(20),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(message(&r), "this API key has been revoked");
        record(&mut answers, "revoked", &r);
        sent[gi] += 1;
    }
    for (gi, gw) in [&a, &b].into_iter().enumerate() {
        let lines = gw
            .wait_for_log_lines(sent[gi], Duration::from_secs(5))
            .await;
        // the log is the right one: it names the planted callers
        assert!(
            lines
                .iter()
                .any(|l| l.ai_log.key_id.as_deref() == Some(made.id.as_str())),
            "replica {gi}: no line with key_id {}",
            made.id
        );
        assert!(
            lines
                .iter()
                .any(|l| l.ai_log.consumer.as_deref() == Some("labubu")),
            "replica {gi}: no line for the seeded consumer"
        );
    }
    for gw in [&a, &b] {
        for (t, cons) in [("acme", "labubu"), ("wonka", "charlie")] {
            let r = admin(
                &c,
                gw,
                Method::GET,
                &format!("/admin/tenants/{t}/consumers/{cons}/keys"),
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            record(&mut answers, "admin list", &r);
        }
    }

    let mut places: Vec<(String, String)> = Vec::new();
    for (name, gw) in [("A", &a), ("B", &b)] {
        places.push((format!("access log of {name}"), gw.access_log_text()));
        places.push((format!("stdout of {name}"), gw.stdout()));
        places.push((format!("stderr of {name}"), gw.stderr()));
    }
    let upstream: String = mock
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {}\n{}\n{}\n",
                r.method,
                r.path_and_query,
                r.headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {v}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                String::from_utf8_lossy(&r.raw_body)
            )
        })
        .collect();
    assert!(
        mock.requests().len() >= 16,
        "the upstream got {} requests",
        mock.requests().len()
    );
    places.push(("upstream requests".into(), upstream));
    places.push(("answers to the clients".into(), answers.join("\n")));
    let dump = {
        let r = &redis;
        tokio::task::block_in_place(|| redis_dump(r))
    };
    for d in &digests {
        assert!(
            dump.contains(d.as_str()),
            "the Redis dump does not hold the digest {d}: is the dump complete?\n{dump}"
        );
    }

    let mut leaks = Vec::new();
    for (where_, text) in places.iter().chain([&("redis".to_string(), dump.clone())]) {
        for (i, s) in secrets.iter().enumerate() {
            if text.contains(s.as_str()) {
                leaks.push(format!("plaintext key #{i} found in {where_}"));
            }
        }
        if where_ != "redis" {
            for (i, d) in digests.iter().enumerate() {
                if text.contains(d.as_str()) {
                    leaks.push(format!("SHA-256 digest of key #{i} found in {where_}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
    eprintln!(
        "planted-key scan: {} places, {} bytes of Redis dump, {} upstream requests: no plaintext, no digest outside Redis",
        places.len() + 1,
        dump.len(),
        mock.requests().len()
    );
}

/// The first step of each delete (its script), run alone: as when the gateway
/// stopped before its second step, deleting the key records.
const CONSUMER_DELETE: &str = include_str!("../../lua/consumer_delete.v1.lua");
const TENANT_DELETE: &str = include_str!("../../lua/tenant_delete.v1.lua");

/// Sends with `key` every 50 ms until the answer is `want`; panics after `within`.
async fn wait_status(c: &TestClient, gw: &Gateway, key: &str, want: u16, within: Duration) {
    let t = Instant::now();
    loop {
        let r = chat(c, gw, key, "gpt-4o").await;
        if r.status == want {
            return;
        }
        if t.elapsed() > within {
            panic!(
                "still {} instead of {want} after {within:?}: {}; stderr:\n{}",
                r.status,
                r.text(),
                gw.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 9. A delete interrupted after its first step leaves the key records in
///    Redis: the old keys stay refused (401) when the consumer is made again
///    through the admin API, when the config seed writes the seeded consumer
///    again (as after an outage), and when a deleted tenant and its consumer are
///    made again; the seeded key works again, because the config lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_left_by_an_interrupted_delete_stay_dead() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let gw = start_gw(&Cfg::new(&redis, &mock)).await;
    let c = TestClient::new();
    let record = |key: &str| format!("gw:{{k:{}}}", sha256_hex(key.as_bytes()));

    // the seeded consumer acme/labubu gets a second key through the admin API
    let extra = create_key(&c, &gw, "acme", "labubu", &json!({"name": "extra"})).await;
    for k in [SEED_KEY, extra.key.as_str()] {
        let r = chat(&c, &gw, k, "gpt-4o").await;
        assert_eq!(r.status, 200, "before the delete: {}", r.text());
    }
    redis.cli(&[
        "EVAL",
        CONSUMER_DELETE,
        "2",
        "gw:{t:acme}:consumers",
        "gw:{t:acme}:keys",
        "labubu",
    ]);
    assert_eq!(redis.cli(&["EXISTS", &record(&extra.key)]), "1");

    // made again through the admin API (which drops the cached keys)
    put_consumer(&c, &gw, "acme", "labubu", &["gpt-*"]).await;
    let r = chat(&c, &gw, &extra.key, "gpt-4o").await;
    assert_refused(&r, 401, "invalid_api_key", "old key, consumer made again");

    // written again by the seed, as after an outage (the marker of written data
    // gone makes the gateway write scripts and seed again and flush its cache)
    redis.cli(&["DEL", "gw:{g}:seeded"]);
    wait_status(&c, &gw, SEED_KEY, 200, Duration::from_secs(5)).await;
    assert_eq!(redis.cli(&["EXISTS", "gw:{g}:seeded"]), "1");
    let r = chat(&c, &gw, &extra.key, "gpt-4o").await;
    assert_refused(&r, 401, "invalid_api_key", "old key, seed written again");

    // a tenant and its consumer deleted the same way, then made again
    let old = consumer_with_key(&c, &gw, "beta", "bob").await;
    let r = chat(&c, &gw, &old.key, "gpt-4o").await;
    assert_eq!(r.status, 200, "{}", r.text());
    redis.cli(&[
        "EVAL",
        TENANT_DELETE,
        "3",
        "gw:{t:beta}:tenant",
        "gw:{t:beta}:consumers",
        "gw:{t:beta}:keys",
    ]);
    assert_eq!(redis.cli(&["EXISTS", &record(&old.key)]), "1");
    put_tenant(&c, &gw, "beta", &["*"]).await;
    put_consumer(&c, &gw, "beta", "bob", &["*"]).await;
    let r = chat(&c, &gw, &old.key, "gpt-4o").await;
    assert_refused(&r, 401, "invalid_api_key", "old key, tenant made again");
}
