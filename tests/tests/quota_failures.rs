//! Quotas when things go wrong, with real processes: a `redis-server`, gateway
//! replicas and a mock OpenAI upstream.
//!
//! * a replica SIGKILLed mid-request: its reservation holds until the lease ends,
//!   then another replica admits again and the held tokens are gone;
//! * Redis down under each `on_redis_error` mode (`fail_open`, `fail_closed`,
//!   `local`) and back again (empty, as after a real restart): what is admitted,
//!   what is refused, and what is charged to Redis when it returns;
//! * `by: upstream` quotas with and without the `rate_limiting` fallback;
//! * `GET /admin/usage` filters and `POST /admin/usage/reset`;
//! * the memory backend with the same consumer quotas;
//! * route quotas `by: header:<name>` and `by: ip`;
//! * SIGTERM with streams in flight (one finishing within the grace, one cut at
//!   its end): both settled in Redis before the process exits.
//!
//! Every test has its own Redis, mock upstream(s) and gateways, and polls with
//! deadlines rather than sleeping fixed times.

use gateway_tests::client::{HttpResponse, TestClient};
use gateway_tests::config::{
    Config, Consumer, Fallback, Provider, Quota, Route, Server, State, Tenant, Timeouts,
};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::{metric, wait_metric};
use gateway_tests::mock_upstream::{text_tokens, MockUpstream, CHUNK_TEXT, DEFAULT_STREAM_CHUNKS};
use gateway_tests::redis::lease::lease_counts;
use gateway_tests::redis::{restart_redis, start_redis, stop_redis, RedisServer};
use http::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use shared::ai_log::AccessLogLine;
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys of the seeded consumers.
const KEY_LABUBU: &str = "sk-quota-labubu-0123456789abcdef";
const KEY_BOB: &str = "sk-quota-bob-0123456789abcdef0123";
const KEY_FREE: &str = "sk-quota-free-0123456789abcdef012";
const KEY_WILE: &str = "sk-quota-wile-0123456789abcdef012";

/// Server with the admin token, keys in `Authorization` only, access log on.
fn base() -> Config {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .key_headers(&["Authorization"])
        .access_log()
}

/// `state:` on `redis` under `prefix`.
fn redis_state(redis: &RedisServer, prefix: &str) -> State {
    State::redis(&redis.url())
        .redis_key("key_prefix", prefix)
        .redis_key("timeout_ms", 300)
}

/// Provider `id` at `mock`.
fn provider(id: &str, mock: &MockUpstream) -> Provider {
    Provider::openai(id, &mock.base_url())
        .token("sk-upstream-secret")
        .timeouts(Timeouts::all(500, 5000, 5000, 20_000))
}

/// A quota of `by` (`route`, `tenant`, `consumer`, `upstream`, `ip`, `header:..`).
fn quota(name: &str, by: &str, strategy: &str, limit: u64, window: &str) -> Quota {
    Quota::new(name, by, strategy, limit, window)
}

/// A consumer quota.
fn consumer_quota(name: &str, strategy: &str, limit: u64, window: &str) -> Quota {
    quota(name, "consumer", strategy, limit, window)
}

async fn start_gw(yaml: &str) -> Gateway {
    Gateway::builder(yaml)
        .env("GATEWAY_KEY_PEPPER", "")
        .start()
        .await
}

// ------------------------------------------------------------------ requests

fn chat_url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

/// A chat body with one user message and, if given, `max_tokens`.
fn body(model: &str, content: &str, max_tokens: Option<u64>) -> Value {
    let mut b = json!({"model": model, "messages": [{"role": "user", "content": content}]});
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    b
}

/// The total tokens the mock reports for a non-streamed chat with `content`.
fn usage_of(content: &str) -> u64 {
    text_tokens(content.len()) + DEFAULT_STREAM_CHUNKS as u64
}

/// POSTs `body` to `gw`'s chat endpoint, with `Authorization: Bearer <key>` when
/// a key is given and `extra` headers.
async fn chat(
    c: &TestClient,
    gw: &Gateway,
    key: Option<&str>,
    body: &Value,
    extra: &[(&str, &str)],
) -> HttpResponse {
    let bearer = key.map(|k| format!("Bearer {k}"));
    c.post_json_with(&chat_url(gw), body, &with_key(&bearer, extra))
        .await
}

/// `extra` headers and `Authorization: <bearer>` when there is one.
fn with_key<'a>(
    bearer: &'a Option<String>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut h = extra.to_vec();
    if let Some(b) = bearer {
        h.push(("authorization", b.as_str()));
    }
    h
}

/// As [`chat`], through [`Gateway::chat_logged`]: the answer and the request's
/// access-log line.
async fn chat_logged(
    c: &TestClient,
    gw: &Gateway,
    key: Option<&str>,
    body: &Value,
    extra: &[(&str, &str)],
) -> (HttpResponse, AccessLogLine) {
    let bearer = key.map(|k| format!("Bearer {k}"));
    gw.chat_logged(c, body, &with_key(&bearer, extra)).await
}

fn request_id(r: &HttpResponse) -> String {
    r.header("x-request-id").unwrap_or_default().to_string()
}

/// Asserts a quota refusal: 429, `rate_limit_exceeded`, `error.type` `kind`,
/// `Retry-After` (whole seconds, at least 1) unless `retry` is false.
fn assert_limited(r: &HttpResponse, kind: &str, retry: bool, what: &str) -> Value {
    assert_eq!(r.status, 429, "{what}: {}", r.text());
    let v = r.assert_openai_error(429, "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], kind, "{what}: {v}");
    let ra = r.header("retry-after");
    if retry {
        let secs: u64 = ra
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: Retry-After {ra:?} is not whole seconds; {v}"));
        assert!(secs >= 1, "{what}: Retry-After {secs}");
    } else {
        assert!(ra.is_none(), "{what}: unexpected Retry-After {ra:?}: {v}");
    }
    v
}

// ------------------------------------------------------------------ admin

/// `GET /admin/usage<query>` (query with its `?`, or empty) as a list.
async fn usage(c: &TestClient, gw: &Gateway, query: &str) -> Vec<Value> {
    let r = admin(c, gw, Method::GET, &format!("/admin/usage{query}"), None).await;
    assert_eq!(r.status, 200, "GET /admin/usage{query}: {}", r.text());
    match r.json() {
        Value::Array(v) => v,
        other => panic!("GET /admin/usage{query} is not a list: {other}"),
    }
}

fn entry<'a>(list: &'a [Value], quota: &str, key: &str) -> Option<&'a Value> {
    list.iter().find(|e| e["quota"] == quota && e["key"] == key)
}

/// `used` of the window (`quota`, `key`) in `GET /admin/usage<query>`; None when
/// it is not listed.
async fn used(c: &TestClient, gw: &Gateway, query: &str, quota: &str, key: &str) -> Option<u64> {
    let list = usage(c, gw, query).await;
    entry(&list, quota, key).and_then(|e| e["used"].as_u64())
}

/// Waits until `used` of (`quota`, `key`) is `want` (settlements are sent to the
/// store off the request path); returns how long that took.
async fn wait_used(
    c: &TestClient,
    gw: &Gateway,
    query: &str,
    quota: &str,
    key: &str,
    want: u64,
    within: Duration,
) -> Duration {
    let t = Instant::now();
    loop {
        let got = used(c, gw, query, quota, key).await;
        if got == Some(want) {
            return t.elapsed();
        }
        if t.elapsed() > within {
            panic!(
                "/admin/usage{query}: {quota}/{key} used is {got:?}, not {want}, after {within:?}:\n{:#}\nstderr:\n{}",
                Value::Array(usage(c, gw, query).await),
                gw.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(quota, key)` of every listed window.
fn pairs(list: &[Value]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|e| {
            (
                e["quota"].as_str().unwrap_or_default().to_string(),
                e["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(q, k)| (q.to_string(), k.to_string()))
        .collect()
}

async fn reset(c: &TestClient, gw: &Gateway, body: &Value) -> HttpResponse {
    admin(c, gw, Method::POST, "/admin/usage/reset", Some(body)).await
}

async fn wait_degraded(gw: &Gateway, want: f64) {
    wait_metric(
        gw,
        "gateway_state_degraded",
        &[],
        |v| v == want,
        &want.to_string(),
        Duration::from_secs(5),
    )
    .await;
}

/// After Redis is back, a replica keeps its outage policy for 300 ms
/// while every replica lands what it served meanwhile (the quotas' settle
/// period): waits it out.
async fn wait_settle_period() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ------------------------------------------------------------------ tests

/// 1. Replica A reserves a large request (max_tokens 600 of a 1000-token quota)
///    and is SIGKILLed mid-stream: it never settles. Replica B refuses the next
///    such request while A's lease (`quota_lease_s: 2`) holds, admits it once
///    the lease has ended, and `/admin/usage` no longer shows A's 602 tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_request_lease_returns_tokens() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    // a stream takes 8 x 400 ms: A is still serving it when it is killed
    mock.set_chunk_delay(400);
    let yaml = base()
        .state(redis_state(&redis, "gw:").quota_lease_s(2))
        .provider(provider("up1", &mock))
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .tenant(
            Tenant::new("acme").consumer(
                Consumer::new("labubu")
                    .key(KEY_LABUBU)
                    .quota(consumer_quota("labubu-tpm", "total_tokens", 1000, "1m")),
            ),
        )
        .yaml();
    let (mut a, b) = tokio::join!(start_gw(&yaml), start_gw(&yaml));
    let c = TestClient::new();
    let bearer = format!("Bearer {KEY_LABUBU}");
    let reservation = text_tokens("hello".len()) + 600;
    let query = "?tenant=acme&consumer=labubu";

    // A: a stream that reserves 602 tokens, held open
    let mut big = body("gpt-4o", "hello", Some(600));
    big["stream"] = json!(true);
    let t_sent = Instant::now();
    let mut s = c
        .open_sse(&chat_url(&a), &big, &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(s.status, 200, "stream on A");
    assert_eq!(
        s.headers
            .get("x-ratelimit-remaining-tokens")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        Some((1000 - reservation).to_string()),
        "A's reservation as the headers tell it"
    );
    assert!(s.next_event().await.is_some(), "first event of A's stream");
    let a_pid = a.pid();
    a.kill();
    assert!(!a.is_running(), "replica A (pid {a_pid}) still runs");
    drop(s);
    let killed_at = t_sent.elapsed();

    // B: the same request does not fit next to A's reservation
    let nonstream = body("gpt-4o", "hello", Some(600));
    let r = chat(&c, &b, Some(KEY_LABUBU), &nonstream, &[]).await;
    let first_refusal_at = t_sent.elapsed();
    let v = assert_limited(&r, "tokens", true, "B while A's lease holds");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("labubu-tpm"), "{msg}");
    assert!(
        first_refusal_at < Duration::from_millis(1800),
        "the first request on B came {first_refusal_at:?} after A's reservation: too late to see the lease"
    );
    // B's admin API sees the tokens A holds
    let held = used(&c, &b, query, "labubu-tpm", "acme/labubu").await;
    assert_eq!(
        held,
        Some(reservation),
        "usage while A's reservation is held: {:#}",
        Value::Array(usage(&c, &b, query).await)
    );

    // ... until the lease has ended
    let mut refusals = 1;
    let admitted_at = loop {
        let r = chat(&c, &b, Some(KEY_LABUBU), &nonstream, &[]).await;
        if r.status == 200 {
            break t_sent.elapsed();
        }
        assert_limited(&r, "tokens", true, "B polling for the lease to end");
        refusals += 1;
        assert!(
            t_sent.elapsed() < Duration::from_secs(6),
            "B still refuses {:?} after A's reservation (lease 2 s); usage: {:#}\nB stderr:\n{}",
            t_sent.elapsed(),
            Value::Array(usage(&c, &b, query).await),
            b.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "A killed {killed_at:?} after its reservation; B refused {refusals} time(s), \
         first at {first_refusal_at:?}, admitted at {admitted_at:?}"
    );
    assert!(
        admitted_at >= Duration::from_millis(1500),
        "B admitted {admitted_at:?} after A's reservation, before its 2 s lease could end"
    );
    // A's 602 are gone: the window holds B's request only, settled to its usage
    wait_used(
        &c,
        &b,
        query,
        "labubu-tpm",
        "acme/labubu",
        usage_of("hello"),
        Duration::from_secs(3),
    )
    .await;
    assert!(mock.hits() >= 2, "mock hits {}", mock.hits());
}

/// 2. `fail_open`: with Redis stopped requests are still served, counted in
///    `gateway_quota_bypassed_total`, logged `bypassed`, and their settlements
///    wait in the queue; when Redis is back (empty) the queue drains and the
///    tokens and requests of the outage are charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fail_open() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:").on_redis_error("fail_open"))
        .provider(provider("up1", &mock))
        .route(
            Route::new("chat", "/v1")
                .upstream("up1")
                .quota(quota("chat-tpm", "route", "total_tokens", 100_000, "1m"))
                .quota(quota("chat-rpm", "route", "requests", 1000, "1m")),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let q = "?route=chat";

    let (r, line) = chat_logged(&c, &gw, None, &body("gpt-4o", "before", None), &[]).await;
    assert_eq!(r.status, 200, "before the outage: {}", r.text());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("1000"));
    assert_eq!(line.ai_log.quota_status.as_deref(), Some("allowed"));
    wait_used(&c, &gw, q, "chat-rpm", "chat", 1, Duration::from_secs(3)).await;

    let redis = stop_redis(redis).await;
    wait_degraded(&gw, 1.0).await;
    let bypassed_before = metric(&gw, "gateway_quota_bypassed_total").await;

    let contents = [
        "outage one",
        "outage number two",
        "three, during the outage",
    ];
    for content in contents {
        let (r, line) = chat_logged(&c, &gw, None, &body("gpt-4o", content, None), &[]).await;
        assert_eq!(r.status, 200, "fail_open during the outage: {}", r.text());
        assert_eq!(
            line.ai_log.quota_status.as_deref(),
            Some("bypassed"),
            "{line:?}"
        );
    }
    let bypassed = metric(&gw, "gateway_quota_bypassed_total").await;
    assert!(
        bypassed - bypassed_before >= contents.len() as f64,
        "gateway_quota_bypassed_total {bypassed_before} -> {bypassed}"
    );
    let queued = wait_metric(
        &gw,
        "gateway_quota_settle_queue",
        &[],
        |v| v > 0.0,
        "> 0 while Redis is down",
        Duration::from_secs(3),
    )
    .await;
    // admin usage cannot be read meanwhile
    let r = admin(&c, &gw, Method::GET, "/admin/usage", None).await;
    assert_eq!(r.status, 503, "usage during the outage: {}", r.text());

    let _redis = restart_redis(redis).await;
    let t_back = Instant::now();
    wait_metric(
        &gw,
        "gateway_quota_settle_queue",
        &[],
        |v| v == 0.0,
        "0 after Redis returned",
        Duration::from_secs(5),
    )
    .await;
    let drained = t_back.elapsed();
    // Redis came back empty: the windows hold exactly what the outage used
    let tokens: u64 = contents.iter().map(|c| usage_of(c)).sum();
    wait_used(
        &c,
        &gw,
        q,
        "chat-tpm",
        "chat",
        tokens,
        Duration::from_secs(5),
    )
    .await;
    wait_used(
        &c,
        &gw,
        q,
        "chat-rpm",
        "chat",
        contents.len() as u64,
        Duration::from_secs(5),
    )
    .await;
    eprintln!(
        "fail_open: {} settlement(s) queued during the outage, drained {drained:?} after the restart; \
         {tokens} tokens charged",
        queued
    );

    wait_settle_period().await;
    let (r, line) = chat_logged(&c, &gw, None, &body("gpt-4o", "after", None), &[]).await;
    assert_eq!(r.status, 200, "after the restart: {}", r.text());
    assert_eq!(line.ai_log.quota_status.as_deref(), Some("allowed"));
}

/// 3. `fail_closed`: with Redis stopped a request its quotas apply to is
///    refused 503 `quota_unavailable` (OpenAI-shaped, `Retry-After`); a cached
///    key without quotas and an open route without quotas still work; after the
///    restart the quota'd consumer is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fail_closed() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:").on_redis_error("fail_closed"))
        .provider(provider("up1", &mock))
        .route(Route::new("open", "/v1").model("open-*").upstream("up1"))
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .tenant(
            Tenant::new("acme")
                .consumer(
                    Consumer::new("labubu")
                        .key(KEY_LABUBU)
                        .quota(consumer_quota("labubu-rpm", "requests", 100, "1m")),
                )
                .consumer(Consumer::new("free").key(KEY_FREE)),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let quota_body = body("gpt-4o", "hello", None);
    let open_body = body("open-model", "hello", None);

    // before: all three work, and both keys get cached
    let r = chat(&c, &gw, Some(KEY_LABUBU), &quota_body, &[]).await;
    assert_eq!(r.status, 200, "labubu before: {}", r.text());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("100"));
    let r = chat(&c, &gw, Some(KEY_FREE), &quota_body, &[]).await;
    assert_eq!(r.status, 200, "free before: {}", r.text());
    assert!(r.header("x-ratelimit-limit-requests").is_none());
    let r = chat(&c, &gw, None, &open_body, &[]).await;
    assert_eq!(r.status, 200, "open route before: {}", r.text());

    let redis = stop_redis(redis).await;
    wait_degraded(&gw, 1.0).await;

    let (r, line) = chat_logged(&c, &gw, Some(KEY_LABUBU), &quota_body, &[]).await;
    let v = r.assert_openai_error(503, "quota_unavailable");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    assert_eq!(r.header("retry-after"), Some("1"), "{v}");
    assert_eq!(line.response_code, 503);
    assert_eq!(line.ai_log.quota_status.as_deref(), Some("unavailable"));
    let hits = mock.hits();

    // a cached key whose consumer has no quota, and an open route: served
    for round in 0..2 {
        let r = chat(&c, &gw, Some(KEY_FREE), &quota_body, &[]).await;
        assert_eq!(
            r.status,
            200,
            "cached key without quotas during the outage (round {round}): {}",
            r.text()
        );
        let r = chat(&c, &gw, None, &open_body, &[]).await;
        assert_eq!(
            r.status,
            200,
            "open route during the outage (round {round}): {}",
            r.text()
        );
    }
    assert_eq!(
        mock.hits(),
        hits + 4,
        "only the admitted requests went upstream"
    );
    let unavailable = metric(&gw, "gateway_quota_unavailable_total").await;
    assert!(
        unavailable >= 1.0,
        "gateway_quota_unavailable_total {unavailable:?}"
    );

    let _redis = restart_redis(redis).await;
    let t_back = Instant::now();
    loop {
        let r = chat(&c, &gw, Some(KEY_LABUBU), &quota_body, &[]).await;
        if r.status == 200 {
            break;
        }
        assert!(
            r.status == 503,
            "labubu after the restart: {} {}",
            r.status,
            r.text()
        );
        assert!(
            t_back.elapsed() < Duration::from_secs(5),
            "labubu still refused {:?} after the restart: {}\nstderr:\n{}",
            t_back.elapsed(),
            r.text(),
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "fail_closed: quota'd requests served again {:?} after the restart",
        t_back.elapsed()
    );
    let r = chat(&c, &gw, None, &open_body, &[]).await;
    assert_eq!(r.status, 200, "open route after: {}", r.text());
}

/// 4. `local` with `expected_replicas: 2`: while Redis is down each replica
///    admits its share, ceil(10 / 2) = 5 requests, then 429. When Redis is back
///    the 10 admitted during the outage are charged to it, and the global limit
///    of 10 holds again across both replicas (no longer 5 per replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_local() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(
            redis_state(&redis, "gw:")
                .on_redis_error("local")
                .expected_replicas(2),
        )
        .provider(provider("up1", &mock))
        .route(
            Route::new("chat", "/v1")
                .upstream("up1")
                .quota(quota("chat-rpm", "route", "requests", 10, "1m")),
        )
        .yaml();
    let (a, b) = tokio::join!(start_gw(&yaml), start_gw(&yaml));
    let c = TestClient::new();
    let req = body("gpt-4o", "hello", None);
    let q = "?route=chat";

    for _ in 0..2 {
        let r = chat(&c, &a, None, &req, &[]).await;
        assert_eq!(r.status, 200, "before the outage: {}", r.text());
    }
    wait_used(&c, &a, q, "chat-rpm", "chat", 2, Duration::from_secs(3)).await;

    let redis = stop_redis(redis).await;
    wait_degraded(&a, 1.0).await;
    wait_degraded(&b, 1.0).await;

    for (name, gw) in [("A", &a), ("B", &b)] {
        let mut statuses = Vec::new();
        let mut last = None;
        for _ in 0..7 {
            let r = chat(&c, gw, None, &req, &[]).await;
            statuses.push(r.status);
            if r.status == 200 {
                let line = gw
                    .wait_for_log_line(&request_id(&r), Duration::from_secs(5))
                    .await;
                assert_eq!(
                    line.ai_log.quota_status.as_deref(),
                    Some("local"),
                    "{line:?}"
                );
            }
            last = Some(r);
        }
        assert_eq!(
            statuses,
            [200, 200, 200, 200, 200, 429, 429],
            "replica {name} while Redis is down (limit 10 over 2 replicas)"
        );
        let r = last.expect("a response");
        assert_limited(
            &r,
            "requests",
            true,
            &format!("replica {name}, local share used"),
        );
        eprintln!(
            "local: replica {name} refuses with x-ratelimit-limit-requests {:?}, remaining {:?}",
            r.header("x-ratelimit-limit-requests"),
            r.header("x-ratelimit-remaining-requests")
        );
        let local = metric(gw, "gateway_quota_local_total").await;
        assert_eq!(local, 5.0, "gateway_quota_local_total of {name}");
    }

    let _redis = restart_redis(redis).await;
    for gw in [&a, &b] {
        wait_degraded(gw, 0.0).await;
        wait_metric(
            gw,
            "gateway_quota_settle_queue",
            &[],
            |v| v == 0.0,
            "0 after Redis returned",
            Duration::from_secs(5),
        )
        .await;
    }
    // Redis came back empty; what the replicas admitted meanwhile is charged
    wait_used(&c, &a, q, "chat-rpm", "chat", 10, Duration::from_secs(5)).await;
    wait_settle_period().await;
    for (name, gw) in [("A", &a), ("B", &b)] {
        let r = chat(&c, gw, None, &req, &[]).await;
        assert_limited(
            &r,
            "requests",
            true,
            &format!("replica {name}: the outage's 10 requests count globally"),
        );
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("10"));
    }

    // emptied: 10 pass on A alone (the per-replica share is gone), then both refuse
    let r = reset(&c, &a, &json!({"quota": "chat-rpm", "key": "chat"})).await;
    assert_eq!(r.status, 204, "reset: {}", r.text());
    for i in 0..10 {
        let (r, line) = chat_logged(&c, &a, None, &req, &[]).await;
        assert_eq!(
            r.status,
            200,
            "request {i} on A after the reset: {}",
            r.text()
        );
        assert_eq!(line.ai_log.quota_status.as_deref(), Some("allowed"));
    }
    for (name, gw) in [("B", &b), ("A", &a)] {
        let r = chat(&c, gw, None, &req, &[]).await;
        assert_limited(
            &r,
            "requests",
            true,
            &format!("replica {name} after 10 on A"),
        );
    }
}

/// 5. A route `by: upstream` requests quota (2 per provider) with
///    `fallback.on: [rate_limiting]`: requests 1-2 go to p1, 3-4 fall back to p2,
///    the 5th finds both exhausted (429). Without `rate_limiting`, the 3rd is a
///    429 and p2 is never tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_quota_falls_back() {
    let redis = start_redis().await;
    let c = TestClient::new();
    let req = body("gpt-4o", "hello", None);
    let route = |on: &[&str]| {
        Route::new("chat", "/v1")
            .upstream_priority("p1", 0)
            .upstream_priority("p2", 1)
            .fallback(Fallback::on(on, 3))
            .quota(quota("per-upstream", "upstream", "requests", 2, "1m"))
    };

    // with rate_limiting
    let (m1, m2) = (MockUpstream::start_default(), MockUpstream::start_default());
    let yaml = base()
        .state(redis_state(&redis, "gw1:"))
        .provider(provider("p1", &m1))
        .provider(provider("p2", &m2))
        .route(route(&["rate_limiting"]))
        .yaml();
    let gw = start_gw(&yaml).await;
    let mut served_by = Vec::new();
    for i in 1..=4 {
        let (r, line) = chat_logged(&c, &gw, None, &req, &[]).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
        served_by.push(line.ai_log.provider.clone().unwrap_or_default());
        assert_eq!(line.ai_log.quota_status.as_deref(), Some("allowed"));
        if i > 2 {
            assert_eq!(line.ai_log.attempts.len(), 2, "request {i}: {line:?}");
        }
    }
    assert_eq!(served_by, ["p1", "p1", "p2", "p2"]);
    assert_eq!((m1.hits(), m2.hits()), (2, 2));
    let (r, line) = chat_logged(&c, &gw, None, &req, &[]).await;
    let v = assert_limited(
        &r,
        "requests",
        true,
        "5th request, both providers exhausted",
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("per-upstream")),
        "{v}"
    );
    assert_eq!(line.response_code, 429);
    assert!(line.response_flags.contains("RL"), "{line:?}");
    assert_eq!(line.ai_log.quota_status.as_deref(), Some("limited"));
    assert_eq!(line.ai_log.quota.as_deref(), Some("per-upstream"));
    assert_eq!((m1.hits(), m2.hits()), (2, 2), "no upstream saw the 5th");
    let list = usage(&c, &gw, "?route=chat").await;
    for p in ["p1", "p2"] {
        let e = entry(&list, "per-upstream", p)
            .unwrap_or_else(|| panic!("no per-upstream/{p} in {list:?}"));
        assert_eq!(e["used"], 2, "{e}");
        assert_eq!(e["by"], "upstream", "{e}");
    }

    // without rate_limiting (http_429 is the upstream's 429, not a quota's)
    let (n1, n2) = (MockUpstream::start_default(), MockUpstream::start_default());
    let yaml = base()
        .state(redis_state(&redis, "gw2:"))
        .provider(provider("p1", &n1))
        .provider(provider("p2", &n2))
        .route(route(&["http_429", "http_5xx", "connect_error"]))
        .yaml();
    let gw2 = start_gw(&yaml).await;
    for i in 1..=2 {
        let r = chat(&c, &gw2, None, &req, &[]).await;
        assert_eq!(
            r.status,
            200,
            "request {i} without rate_limiting: {}",
            r.text()
        );
    }
    let (r, line) = chat_logged(&c, &gw2, None, &req, &[]).await;
    assert_limited(&r, "requests", true, "3rd request without rate_limiting");
    assert_eq!(line.ai_log.provider.as_deref(), Some("p1"), "{line:?}");
    assert_eq!(line.ai_log.attempts.len(), 1, "{line:?}");
    assert_eq!((n1.hits(), n2.hits()), (2, 0), "p2 must not be tried");
}

/// 6. `GET /admin/usage` with and without filters, field by field; a bad query
///    is a 400; `POST /admin/usage/reset` empties one window (204) and admits
///    again, an unknown quota is a 404, and no admin token is a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_usage_and_reset() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:"))
        .provider(provider("up1", &mock))
        .route(
            Route::new("chat", "/v1")
                .keyed()
                .upstream("up1")
                .quota(quota("chat-rpm", "route", "requests", 100, "1m")),
        )
        .tenant(
            Tenant::new("acme")
                .quota(quota(
                    "acme-daily",
                    "tenant",
                    "total_tokens",
                    1_000_000,
                    "1d",
                ))
                .consumer(
                    Consumer::new("labubu")
                        .key(KEY_LABUBU)
                        .quota(consumer_quota("labubu-tpm", "total_tokens", 100_000, "1m"))
                        .quota(consumer_quota("labubu-rpm", "requests", 2, "1m")),
                )
                .consumer(
                    Consumer::new("bob")
                        .key(KEY_BOB)
                        .quota(consumer_quota("bob-rpm", "requests", 5, "1h")),
                ),
        )
        .tenant(
            Tenant::new("globex").consumer(
                Consumer::new("wile")
                    .key(KEY_WILE)
                    .quota(consumer_quota("wile-rpm", "requests", 5, "1m")),
            ),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let req = body("gpt-4o", "hello", Some(100));
    let per_request = usage_of("hello");

    for i in 0..2 {
        let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
        assert_eq!(r.status, 200, "labubu {i}: {}", r.text());
    }
    let r = chat(&c, &gw, Some(KEY_WILE), &req, &[]).await;
    assert_eq!(r.status, 200, "wile: {}", r.text());
    let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
    assert_limited(&r, "requests", true, "labubu's 3rd (labubu-rpm limit 2)");

    // the refused request's route reservation is given back: 3, not 4
    wait_used(&c, &gw, "", "chat-rpm", "chat", 3, Duration::from_secs(3)).await;
    wait_used(
        &c,
        &gw,
        "",
        "labubu-tpm",
        "acme/labubu",
        2 * per_request,
        Duration::from_secs(3),
    )
    .await;

    let all = usage(&c, &gw, "").await;
    assert_eq!(
        pairs(&all),
        set(&[
            ("chat-rpm", "chat"),
            ("acme-daily", "acme"),
            ("labubu-tpm", "acme/labubu"),
            ("labubu-rpm", "acme/labubu"),
            ("bob-rpm", "acme/bob"),
            ("wile-rpm", "globex/wile"),
        ]),
        "{all:#?}"
    );
    let now = unix_now();
    // (quota, key, owner, by, strategy, limit, window, used)
    let expected = [
        (
            "chat-rpm", "chat", "r:chat", "route", "requests", 100, "1m", 3,
        ),
        (
            "acme-daily",
            "acme",
            "t:acme",
            "tenant",
            "total_tokens",
            1_000_000,
            "1d",
            2 * per_request,
        ),
        (
            "labubu-tpm",
            "acme/labubu",
            "c:acme/labubu",
            "consumer",
            "total_tokens",
            100_000,
            "1m",
            2 * per_request,
        ),
        (
            "labubu-rpm",
            "acme/labubu",
            "c:acme/labubu",
            "consumer",
            "requests",
            2,
            "1m",
            2,
        ),
        (
            "bob-rpm",
            "acme/bob",
            "c:acme/bob",
            "consumer",
            "requests",
            5,
            "1h",
            0,
        ),
        (
            "wile-rpm",
            "globex/wile",
            "c:globex/wile",
            "consumer",
            "requests",
            5,
            "1m",
            1,
        ),
    ];
    for (quota, key, owner, by, strategy, limit, window, used_want) in expected {
        let e = entry(&all, quota, key).expect("listed");
        let what = format!("{quota}/{key}: {e}");
        assert_eq!(e["owner"], owner, "{what}");
        assert_eq!(e["by"], by, "{what}");
        assert_eq!(e["strategy"], strategy, "{what}");
        assert_eq!(e["limit"], limit, "{what}");
        assert_eq!(e["window"], window, "{what}");
        assert_eq!(e["used"], used_want, "{what}");
        assert_eq!(e["remaining"], limit - used_want, "{what}");
        let reset_at = e["reset_at"].as_str().unwrap_or_default();
        let at = humantime::parse_rfc3339(reset_at)
            .unwrap_or_else(|err| panic!("reset_at {reset_at:?} ({err}): {what}"))
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let window_s = match window {
            "1m" => 60,
            "1h" => 3600,
            _ => 86_400,
        };
        if used_want > 0 {
            assert!(
                at > now && at <= now + window_s + window_s / 60 + 2,
                "reset_at {reset_at} (now {now}): {what}"
            );
        } else {
            assert!(
                at + 2 >= now && at <= now + 2,
                "reset_at {reset_at} of an unused window: {what}"
            );
        }
    }

    // filters
    for (query, want) in [
        (
            "?tenant=acme",
            set(&[
                ("acme-daily", "acme"),
                ("labubu-tpm", "acme/labubu"),
                ("labubu-rpm", "acme/labubu"),
                ("bob-rpm", "acme/bob"),
            ]),
        ),
        (
            "?tenant=acme&consumer=labubu",
            set(&[
                ("acme-daily", "acme"),
                ("labubu-tpm", "acme/labubu"),
                ("labubu-rpm", "acme/labubu"),
            ]),
        ),
        ("?tenant=globex", set(&[("wile-rpm", "globex/wile")])),
        (
            "?tenant=globex&consumer=wile",
            set(&[("wile-rpm", "globex/wile")]),
        ),
        ("?tenant=nobody", set(&[])),
        ("?route=chat", set(&[("chat-rpm", "chat")])),
        ("?route=other", set(&[])),
    ] {
        let list = usage(&c, &gw, query).await;
        assert_eq!(pairs(&list), want, "GET /admin/usage{query}: {list:#?}");
    }
    for query in [
        "?bogus=1",
        "?consumer=labubu",
        "?tenant=acme&page=5",
        "?limit=0",
    ] {
        let r = admin(&c, &gw, Method::GET, &format!("/admin/usage{query}"), None).await;
        r.assert_openai_error(400, "invalid_query");
    }

    // reset one window: labubu is admitted again, the other windows keep theirs
    let r = reset(
        &c,
        &gw,
        &json!({"quota": "labubu-rpm", "key": "acme/labubu"}),
    )
    .await;
    assert_eq!(r.status, 204, "reset: {}", r.text());
    assert!(r.body.is_empty(), "{}", r.text());
    let list = usage(&c, &gw, "?tenant=acme&consumer=labubu").await;
    let e = entry(&list, "labubu-rpm", "acme/labubu").expect("labubu-rpm listed after reset");
    assert_eq!(e["used"], 0, "{e}");
    assert_eq!(e["remaining"], 2, "{e}");
    assert_eq!(
        entry(&list, "labubu-tpm", "acme/labubu").map(|e| e["used"].clone()),
        Some(json!(2 * per_request)),
        "{list:#?}"
    );
    let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
    assert_eq!(r.status, 200, "labubu after the reset: {}", r.text());
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("1"));

    // a reset without key: every window of the quota
    let r = reset(&c, &gw, &json!({"quota": "chat-rpm"})).await;
    assert_eq!(r.status, 204, "reset chat-rpm: {}", r.text());
    wait_used(&c, &gw, "", "chat-rpm", "chat", 0, Duration::from_secs(3)).await;

    // errors
    let r = reset(
        &c,
        &gw,
        &json!({"quota": "no-such-quota", "key": "acme/labubu"}),
    )
    .await;
    r.assert_openai_error(404, "not_found");
    let r = reset(&c, &gw, &json!({"key": "acme/labubu"})).await;
    assert_eq!(r.status, 400, "reset without quota: {}", r.text());
    for (method, path, body) in [
        (Method::GET, "/admin/usage", String::new()),
        (
            Method::POST,
            "/admin/usage/reset",
            json!({"quota": "labubu-rpm"}).to_string(),
        ),
    ] {
        let url = format!("{}{path}", gw.admin_url());
        let r = c
            .request(
                method.clone(),
                &url,
                &[("content-type", "application/json")],
                body.clone(),
            )
            .await;
        r.assert_openai_error(401, "unauthorized");
        let r = c
            .request(
                method.clone(),
                &url,
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer wrong-token"),
                ],
                body,
            )
            .await;
        r.assert_openai_error(401, "unauthorized");
    }
    // and nothing was reset by the refused call
    let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
    assert_eq!(r.status, 200, "labubu's 2nd after the reset: {}", r.text());
    let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
    assert_limited(&r, "requests", true, "labubu's 3rd after the reset");
}

/// 7. The default memory backend, same consumer quotas: the rate headers, a
///    request that can never fit (429 without `Retry-After`, nothing reserved),
///    the limit reached (429 with `Retry-After`, logged `RL`/`limited`), and a
///    reset that admits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_same_semantics() {
    let mock = MockUpstream::start_default();
    let yaml = base()
        .provider(provider("up1", &mock))
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .tenant(
            Tenant::new("acme").consumer(
                Consumer::new("labubu")
                    .key(KEY_LABUBU)
                    .quota(consumer_quota("labubu-tpm", "total_tokens", 1000, "1m"))
                    .quota(consumer_quota("labubu-rpm", "requests", 3, "1m")),
            ),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let req = body("gpt-4o", "hello", Some(50));
    let reservation = text_tokens("hello".len()) + 50;

    // never fits: prompt + 5000 > 1000; refused without Retry-After, nothing held
    let r = chat(
        &c,
        &gw,
        Some(KEY_LABUBU),
        &body("gpt-4o", "hello", Some(5000)),
        &[],
    )
    .await;
    let v = assert_limited(&r, "tokens", false, "max_tokens over the limit");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("max_tokens"), "{msg}");

    for i in 0..3u64 {
        let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining-requests"),
            Some((2 - i).to_string().as_str()),
            "request {i}"
        );
        assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("1000"));
        if i == 0 {
            assert_eq!(
                r.header("x-ratelimit-remaining-tokens"),
                Some((1000 - reservation).to_string().as_str())
            );
        }
        for h in ["x-ratelimit-reset-tokens", "x-ratelimit-reset-requests"] {
            assert!(
                r.header(h).is_some_and(|v| !v.is_empty()),
                "{h} on request {i}"
            );
        }
    }
    let (r, line) = chat_logged(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
    let v = assert_limited(&r, "requests", true, "4th request");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("labubu-rpm")),
        "{v}"
    );
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert!(line.response_flags.contains("RL"), "{line:?}");
    assert_eq!(line.ai_log.quota_status.as_deref(), Some("limited"));
    assert_eq!(line.ai_log.quota.as_deref(), Some("labubu-rpm"));
    assert_eq!(mock.hits(), 3, "refused requests never reach the upstream");

    let q = "?tenant=acme&consumer=labubu";
    wait_used(
        &c,
        &gw,
        q,
        "labubu-rpm",
        "acme/labubu",
        3,
        Duration::from_secs(3),
    )
    .await;
    wait_used(
        &c,
        &gw,
        q,
        "labubu-tpm",
        "acme/labubu",
        3 * usage_of("hello"),
        Duration::from_secs(3),
    )
    .await;
    let r = reset(
        &c,
        &gw,
        &json!({"quota": "labubu-rpm", "key": "acme/labubu"}),
    )
    .await;
    assert_eq!(r.status, 204, "reset: {}", r.text());
    wait_used(
        &c,
        &gw,
        q,
        "labubu-rpm",
        "acme/labubu",
        0,
        Duration::from_secs(3),
    )
    .await;
    let r = chat(&c, &gw, Some(KEY_LABUBU), &req, &[]).await;
    assert_eq!(r.status, 200, "after the reset: {}", r.text());
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("2"));
    let r = reset(&c, &gw, &json!({"quota": "nope"})).await;
    r.assert_openai_error(404, "not_found");
}

/// The name a header value is counted by (`sha256:` + 32 hex digits; the
/// tests run without a pepper).
fn team_digest(v: &str) -> String {
    gateway::keys::KeyHasher::new(None).subject_digest(v.as_bytes())
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address is local
/// on Linux).
fn client_from(ip: &str) -> TestClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_local_address(Some(ip.parse().expect("an IP address")));
    TestClient::from_client(Client::builder(TokioExecutor::new()).build(conn))
}

/// 8. Route quotas `by: header:x-team` and `by: ip` (2 requests each): every
///    header value has its own window, counted (and named in refusals and
///    `/admin/usage`) by its digest, requests without the header share `-`;
///    every client address has its own window, and `X-Forwarded-For` does not
///    change it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_quota_by_header_and_ip() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:"))
        .provider(provider("up1", &mock))
        .route(
            Route::new("by-ip", "/v1")
                .model("ip-*")
                .upstream("up1")
                .quota(quota("per-ip", "ip", "requests", 2, "1m")),
        )
        .route(Route::new("by-team", "/v1").upstream("up1").quota(quota(
            "per-team",
            "header:x-team",
            "requests",
            2,
            "1m",
        )))
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let team_req = body("gpt-4o", "hello", None);
    let long = "x".repeat(200);

    let teams: [(&str, Option<&str>); 4] = [
        ("red", Some("red")),
        // a colon in the value (its digest holds one too)
        ("team:blue", Some("team:blue")),
        ("no header", None),
        ("long", Some(long.as_str())),
    ];
    for (name, team) in teams {
        let headers: Vec<(&str, &str)> = team.map(|t| vec![("x-team", t)]).unwrap_or_default();
        for i in 0..2 {
            let r = chat(&c, &gw, None, &team_req, &headers).await;
            assert_eq!(r.status, 200, "team {name}, request {i}: {}", r.text());
            assert_eq!(
                r.header("x-ratelimit-remaining-requests"),
                Some(if i == 0 { "1" } else { "0" }),
                "team {name}, request {i}"
            );
        }
        let r = chat(&c, &gw, None, &team_req, &headers).await;
        let v = assert_limited(&r, "requests", true, &format!("team {name}, 3rd request"));
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("per-team"), "{v}");
        let subject = team.map_or("-".to_string(), team_digest);
        assert!(
            msg.contains(&format!("{subject:?}")),
            "the refusal names {subject:?}: {msg}"
        );
    }
    let list = usage(&c, &gw, "?route=by-team").await;
    let keys: BTreeSet<String> = list
        .iter()
        .filter(|e| e["quota"] == "per-team")
        .map(|e| e["key"].as_str().unwrap_or_default().to_string())
        .collect();
    let want: BTreeSet<String> = ["red", "team:blue", long.as_str()]
        .into_iter()
        .map(team_digest)
        .chain(["-".to_string()])
        .collect();
    assert_eq!(keys, want, "{list:#?}");
    for e in list.iter().filter(|e| e["quota"] == "per-team") {
        assert_eq!(e["used"], 2, "{e}");
        assert_eq!(e["by"], "header:x-team", "{e}");
    }

    // by ip: 127.0.0.1 and 127.0.0.2 count separately
    let ip_req = body("ip-model", "hello", None);
    let other = client_from("127.0.0.2");
    for (addr, client) in [("127.0.0.1", &c), ("127.0.0.2", &other)] {
        for i in 0..2 {
            let (r, line) = chat_logged(client, &gw, None, &ip_req, &[]).await;
            assert_eq!(r.status, 200, "{addr}, request {i}: {}", r.text());
            assert!(
                line.downstream_remote_address
                    .starts_with(&format!("{addr}:")),
                "{line:?}"
            );
            assert_eq!(line.route_name.as_deref(), Some("by-ip"));
        }
        let r = chat(client, &gw, None, &ip_req, &[]).await;
        assert_limited(&r, "requests", true, &format!("{addr}, 3rd request"));
        // the socket's address counts, not what the client claims
        let r = chat(
            client,
            &gw,
            None,
            &ip_req,
            &[("x-forwarded-for", "10.9.8.7")],
        )
        .await;
        assert_limited(
            &r,
            "requests",
            true,
            &format!("{addr} with X-Forwarded-For"),
        );
    }
    let list = usage(&c, &gw, "?route=by-ip").await;
    assert_eq!(
        pairs(&list),
        set(&[("per-ip", "127.0.0.1"), ("per-ip", "127.0.0.2")]),
        "{list:#?}"
    );
    for e in &list {
        assert_eq!(e["used"], 2, "{e}");
        assert_eq!(e["owner"], "r:by-ip", "{e}");
    }
}

/// 9. Redis hangs (`CLIENT PAUSE ... ALL`) instead of going away: the first
///    request waits at most about `state.redis.timeout_ms` for it, later ones not
///    at all (the gateway knows it is down), all are served (`fail_open`), and
///    their usage is charged when Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_times_out_fail_open() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:").on_redis_error("fail_open"))
        .provider(provider("up1", &mock))
        .route(
            Route::new("chat", "/v1")
                .upstream("up1")
                .quota(quota("chat-tpm", "route", "total_tokens", 100_000, "1m"))
                .quota(quota("chat-rpm", "route", "requests", 1000, "1m")),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let q = "?route=chat";
    let r = chat(&c, &gw, None, &body("gpt-4o", "warm up", None), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    wait_used(&c, &gw, q, "chat-rpm", "chat", 1, Duration::from_secs(3)).await;

    let pause_ms = 3000u64;
    assert_eq!(
        redis.cli(&["CLIENT", "PAUSE", &pause_ms.to_string(), "ALL"]),
        "OK"
    );
    let t_pause = Instant::now();
    let contents = ["hung one", "hung number two", "three while hung"];
    let mut took = Vec::new();
    for content in contents {
        let t = Instant::now();
        let r = chat(&c, &gw, None, &body("gpt-4o", content, None), &[]).await;
        took.push(t.elapsed());
        assert_eq!(r.status, 200, "while Redis hangs: {}", r.text());
        let line = gw
            .wait_for_log_line(&request_id(&r), Duration::from_secs(5))
            .await;
        assert_eq!(
            line.ai_log.quota_status.as_deref(),
            Some("bypassed"),
            "{line:?}"
        );
    }
    eprintln!("hung Redis: requests took {took:?}");
    assert!(
        t_pause.elapsed() < Duration::from_millis(pause_ms),
        "{took:?}: Redis answered again meanwhile"
    );
    assert!(
        took[0] < Duration::from_millis(1500),
        "first request while Redis hangs took {:?}",
        took[0]
    );
    for t in &took[1..] {
        assert!(
            *t < Duration::from_millis(500),
            "later requests must not wait for Redis: {took:?}"
        );
    }
    // Redis answers again once the pause is over
    wait_degraded(&gw, 0.0).await;
    let want_tokens: u64 = usage_of("warm up") + contents.iter().map(|s| usage_of(s)).sum::<u64>();
    wait_used(
        &c,
        &gw,
        q,
        "chat-rpm",
        "chat",
        1 + contents.len() as u64,
        Duration::from_secs(8),
    )
    .await;
    wait_used(
        &c,
        &gw,
        q,
        "chat-tpm",
        "chat",
        want_tokens,
        Duration::from_secs(8),
    )
    .await;
}

/// 10. The quota counters of `/metrics` count requests (by their final quota
///     status), not store calls: with a `by: upstream` quota and the
///     `rate_limiting` fallback, a request refused on p1 and served by p2 is
///     `admitted` once; and its x-ratelimit headers are p2's, which served it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_counters_count_requests() {
    let redis = start_redis().await;
    let c = TestClient::new();
    let (m1, m2) = (MockUpstream::start_default(), MockUpstream::start_default());
    let yaml = base()
        .state(redis_state(&redis, "gw:").on_redis_error("fail_open"))
        .provider(provider("p1", &m1))
        .provider(provider("p2", &m2))
        .route(
            Route::new("chat", "/v1")
                .upstream_priority("p1", 0)
                .upstream_priority("p2", 1)
                .fallback(Fallback::on(&["rate_limiting"], 3))
                .quota(quota("per-upstream", "upstream", "requests", 2, "1m"))
                .quota(quota("chat-rpm", "route", "requests", 1000, "1m")),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let req = body("gpt-4o", "hello", None);
    let mut remaining = Vec::new();
    for i in 1..=5 {
        let r = chat(&c, &gw, None, &req, &[]).await;
        assert_eq!(
            r.status,
            if i < 5 { 200 } else { 429 },
            "request {i}: {}",
            r.text()
        );
        remaining.push(
            r.header("x-ratelimit-remaining-requests")
                .unwrap_or_default()
                .to_string(),
        );
    }
    let counters = async |gw: &Gateway| {
        let mut out = Vec::new();
        for n in ["admitted", "limited", "bypassed"] {
            out.push(metric(gw, &format!("gateway_quota_{n}_total")).await);
        }
        out
    };
    let after_five = counters(&gw).await;

    let redis = stop_redis(redis).await;
    wait_degraded(&gw, 1.0).await;
    let r = chat(&c, &gw, None, &req, &[]).await;
    assert_eq!(r.status, 200, "fail_open: {}", r.text());
    let after_outage = counters(&gw).await;
    drop(redis);

    eprintln!(
        "remaining-requests of requests 1-5: {remaining:?}; admitted/limited/bypassed after 4 served and 1 refused: \
         {after_five:?}; after 1 more admitted unchecked: {after_outage:?}"
    );
    assert_eq!(
        remaining[2], "1",
        "request 3, served by p2 which has 1 left: {remaining:?}"
    );
    assert_eq!(
        after_five[..2],
        [4.0, 1.0],
        "admitted, limited after 4 served and 1 refused"
    );
    assert_eq!(
        after_outage[2], 1.0,
        "bypassed after one request admitted unchecked"
    );
}

/// 11. SIGTERM with two streams in flight (each reserving prompt + 50,000 of a
///     1,000,000 tokens/1h consumer quota, `shutdown_grace_s: 3`): labubu's
///     stream (150 ms between events) completes within the grace; bob's (1 s
///     between events) is still running when the grace ends and is cut (a final
///     `gateway_shutdown` error event, flag SD). After
///     the process exited, both lines are in its access log, and a second
///     gateway on the same Redis shows each window holding what the request
///     used (the real usage, resp. the estimate of the cut stream), not its
///     reservation, and no lease left in Redis: both settlements reached Redis
///     before exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_settles_in_flight_requests() {
    let redis = start_redis().await;
    let fast = MockUpstream::start_default();
    fast.set_chunk_delay(150);
    let slow = MockUpstream::start_default();
    slow.set_chunk_delay(1000);
    let grace = Duration::from_secs(3);
    let yaml = base()
        .with_server(|s| s.shutdown_grace_s(grace.as_secs()))
        .state(redis_state(&redis, "gw:"))
        .provider(provider("fast", &fast))
        .provider(provider("slow", &slow))
        .route(
            Route::new("fast", "/v1")
                .model("fast-*")
                .keyed()
                .upstream("fast"),
        )
        .route(Route::new("slow", "/v1").keyed().upstream("slow"))
        .tenant(
            Tenant::new("acme")
                .consumer(
                    Consumer::new("labubu")
                        .key(KEY_LABUBU)
                        .quota(consumer_quota(
                            "labubu-tpm",
                            "total_tokens",
                            1_000_000,
                            "1h",
                        )),
                )
                .consumer(Consumer::new("bob").key(KEY_BOB).quota(consumer_quota(
                    "bob-tpm",
                    "total_tokens",
                    1_000_000,
                    "1h",
                ))),
        )
        .yaml();
    let mut a = start_gw(&yaml).await;
    let c = TestClient::new();
    let max_tokens = 50_000u64;
    let fast_content = "finish me within the grace";
    let slow_content = "i am slower than the grace";
    let fast_reservation = text_tokens(fast_content.len()) + max_tokens;
    let slow_reservation = text_tokens(slow_content.len()) + max_tokens;
    let stream_body = |model: &str, content: &str| {
        let mut b = body(model, content, Some(max_tokens));
        b["stream"] = json!(true);
        b
    };
    let labubu = format!("Bearer {KEY_LABUBU}");
    let bob = format!("Bearer {KEY_BOB}");

    // both streams running, their reservations held
    let url = chat_url(&a);
    let (fast_body, slow_body) = (
        stream_body("fast-model", fast_content),
        stream_body("gpt-4o", slow_content),
    );
    let (fast_auth, slow_auth) = (
        [("authorization", labubu.as_str())],
        [("authorization", bob.as_str())],
    );
    let (mut fs, mut ss) = tokio::join!(
        c.open_sse(&url, &fast_body, &fast_auth),
        c.open_sse(&url, &slow_body, &slow_auth),
    );
    for (name, s, reservation) in [
        ("fast", &fs, fast_reservation),
        ("slow", &ss, slow_reservation),
    ] {
        assert_eq!(s.status, 200, "{name} stream");
        assert_eq!(
            s.headers
                .get("x-ratelimit-remaining-tokens")
                .and_then(|v| v.to_str().ok()),
            Some((1_000_000 - reservation).to_string().as_str()),
            "{name} stream's reservation as the headers tell it"
        );
    }
    let rid = |s: &gateway_tests::client::SseStream| {
        s.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (fast_id, slow_id) = (rid(&fs), rid(&ss));
    assert!(!fast_id.is_empty() && !slow_id.is_empty(), "x-request-id");
    let (f1, s1) = tokio::join!(fs.next_event(), ss.next_event());
    let (f1, s1) = (
        f1.expect("first event of the fast stream"),
        s1.expect("first event of the slow stream"),
    );
    let q = "?tenant=acme";
    let held = usage(&c, &a, q).await;
    for (quota, key, reservation) in [
        ("labubu-tpm", "acme/labubu", fast_reservation),
        ("bob-tpm", "acme/bob", slow_reservation),
    ] {
        assert_eq!(
            entry(&held, quota, key).and_then(|e| e["used"].as_u64()),
            Some(reservation),
            "{quota} while its stream runs: {held:#?}"
        );
    }
    let leases_in_flight = lease_counts(&redis);
    assert_eq!(
        leases_in_flight.iter().map(|(_, n)| n).sum::<u64>(),
        2,
        "one lease per stream in flight: {leases_in_flight:?}"
    );

    // SIGTERM while both stream
    let pid = a.pid();
    a.sigterm();
    let t_term = Instant::now();
    let fast_read = async {
        let r = fs.collect_with(vec![f1]).await;
        (r, t_term.elapsed())
    };
    let slow_read = async {
        let r = ss.collect_with(vec![s1]).await;
        (r, t_term.elapsed())
    };
    let ((fr, fast_end), (sr, slow_end)) = tokio::join!(fast_read, slow_read);
    let exited_at = loop {
        if !a.is_running() {
            break t_term.elapsed();
        }
        assert!(
            t_term.elapsed() < Duration::from_secs(20),
            "gateway (pid {pid}) still runs {:?} after SIGTERM; stderr:\n{}",
            t_term.elapsed(),
            a.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr_a = a.stderr();
    let content = |r: &gateway_tests::client::SseResponse| {
        r.json_events()
            .iter()
            .filter(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            })
            .count()
    };
    let (fast_chunks, slow_chunks) = (content(&fr), content(&sr));
    eprintln!(
        "SIGTERM (grace {grace:?}): fast stream ended {fast_end:?} after it (done {}, {fast_chunks} content chunks), \
         slow stream ended {slow_end:?} after it (done {}, {slow_chunks} content chunks, error {:?}); \
         process exited {exited_at:?} after SIGTERM",
        fr.done, sr.done, sr.error
    );

    // the fast stream completed within the grace, the slow one was cut at its end
    assert!(
        fr.done && fr.clean_end,
        "fast stream must complete within the grace: {fr:?}\nstderr:\n{stderr_a}"
    );
    assert_eq!(fast_chunks, DEFAULT_STREAM_CHUNKS, "{}", fr.raw);
    assert!(
        fast_end < grace,
        "fast stream ended {fast_end:?} after SIGTERM"
    );
    assert!(
        !sr.done,
        "the slow stream (~11 s) cannot complete in the grace: {sr:?}"
    );
    assert!(
        slow_chunks < DEFAULT_STREAM_CHUNKS,
        "slow stream content chunks {slow_chunks}"
    );
    let last = sr.json_events().last().cloned().unwrap_or_default();
    assert_eq!(
        last["error"]["code"], "gateway_shutdown",
        "the cut stream ends with the shutdown error event: {}",
        sr.raw
    );
    assert!(
        slow_end >= grace - Duration::from_millis(300) && slow_end < grace + Duration::from_secs(3),
        "slow stream cut {slow_end:?} after SIGTERM, expected at the end of the {grace:?} grace"
    );
    assert!(
        exited_at < grace + Duration::from_secs(8),
        "exit {exited_at:?} after SIGTERM"
    );

    // A's access log, read after it exited: both lines are there (flushed)
    let lines = a.access_log_lines();
    let line = |id: &str| {
        lines
            .iter()
            .find(|l| l.request_id == id)
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no access-log line {id:?} after exit:\n{}\nstderr:\n{stderr_a}",
                    a.access_log_text()
                )
            })
    };
    let (fl, sl) = (line(&fast_id), line(&slow_id));
    eprintln!(
        "access log: fast {} flags {:?} total {} estimated {}; slow {} flags {:?} total {} estimated {}",
        fl.response_code,
        fl.response_flags,
        fl.ai_log.total_token,
        fl.ai_log.usage_estimated,
        sl.response_code,
        sl.response_flags,
        sl.ai_log.total_token,
        sl.ai_log.usage_estimated
    );
    let fast_used = usage_of(fast_content);
    assert_eq!(fl.response_code, 200, "{fl:?}");
    assert_eq!(fl.response_flags, "", "{fl:?}");
    assert_eq!(fl.ai_log.total_token, fast_used, "{fl:?}");
    assert!(!fl.ai_log.usage_estimated, "{fl:?}");
    assert_eq!(sl.response_code, 200, "{sl:?}");
    assert_eq!(sl.response_flags, "SD", "cut by the shutdown: {sl:?}");
    assert_eq!(
        sl.ai_log.error.as_deref(),
        Some("gateway_shutdown"),
        "{sl:?}"
    );
    assert!(sl.ai_log.usage_estimated, "{sl:?}");
    let slow_prompt = text_tokens(slow_content.len());
    let slow_used = sl.ai_log.total_token;
    // at least the prompt and what the client received, at most the whole answer
    let received = text_tokens(sr.content().len());
    assert!(
        slow_used >= slow_prompt + received
            && slow_used <= slow_prompt + text_tokens(CHUNK_TEXT.len() * DEFAULT_STREAM_CHUNKS),
        "the cut stream's estimate {slow_used} (prompt {slow_prompt}, received {received}): {sl:?}"
    );

    // a second gateway on the same Redis: what was used, not what was reserved
    let b = start_gw(&yaml).await;
    let after = usage(&c, &b, q).await;
    let got = |quota: &str, key: &str| entry(&after, quota, key).and_then(|e| e["used"].as_u64());
    eprintln!(
        "after the restart: labubu-tpm used {:?} (reserved {fast_reservation}), bob-tpm used {:?} \
         (reserved {slow_reservation}); leases {:?}",
        got("labubu-tpm", "acme/labubu"),
        got("bob-tpm", "acme/bob"),
        lease_counts(&redis)
    );
    assert_eq!(
        got("labubu-tpm", "acme/labubu"),
        Some(fast_used),
        "the completed stream settled to its real usage: {after:#?}\nA's stderr:\n{stderr_a}"
    );
    let bob_used = got("bob-tpm", "acme/bob");
    assert_eq!(
        bob_used,
        Some(slow_used),
        "the stream cut at the grace's end settled to its estimate: {after:#?}\nA's stderr:\n{stderr_a}"
    );
    assert!(
        bob_used.is_some_and(|u| u > 0 && u < slow_reservation),
        "{bob_used:?}"
    );
    let left = lease_counts(&redis);
    assert!(
        left.iter().all(|(_, n)| *n == 0),
        "reservations left in Redis after a clean shutdown: {left:?}"
    );
    assert_eq!((fast.hits(), slow.hits()), (1, 1));
}

/// Consumer `bob` of tenant `acme` with `quota`.
fn bob_tenant(quota: Quota) -> Tenant {
    Tenant::new("acme").consumer(Consumer::new("bob").key(KEY_BOB).quota(quota))
}

/// One route `chat` on `up1` with `auth`.
fn chat_route() -> Route {
    Route::new("chat", "/v1").keyed().upstream("up1")
}

/// 12. A `max_tokens` far beyond 2^53 under `fail_closed`: a 429 that can never
///     fit (no `Retry-After`), not a script error taken for an outage: Redis is
///     not marked down, nothing counts as unavailable, the next request is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_max_tokens_is_a_429_not_an_outage() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:").on_redis_error("fail_closed"))
        .provider(provider("up1", &mock))
        .route(chat_route())
        .tenant(bob_tenant(consumer_quota(
            "bob-tpm",
            "total_tokens",
            100_000,
            "1m",
        )))
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();

    let r = chat(
        &c,
        &gw,
        Some(KEY_BOB),
        &body("gpt-4o", "hello", Some(100_000_000_000_000_000)),
        &[],
    )
    .await;
    let v = assert_limited(&r, "tokens", false, "max_tokens 1e17");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("bob-tpm") && msg.contains("can never") && msg.contains("lower max_tokens"),
        "{msg}"
    );
    assert_eq!(
        metric(&gw, "gateway_state_degraded").await,
        0.0,
        "Redis marked down by a refused script call; stderr:\n{}",
        gw.stderr()
    );
    assert_eq!(metric(&gw, "gateway_quota_unavailable_total").await, 0.0);
    let r = chat(&c, &gw, Some(KEY_BOB), &body("gpt-4o", "hello", None), &[]).await;
    assert_eq!(r.status, 200, "the next request: {}", r.text());
    assert_eq!(mock.hits(), 1, "the refused request never went upstream");
}

/// 13. `POST /admin/usage/reset` naming a consumer without its tenant is a 400
///     `invalid_body`, and resets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_with_consumer_needs_tenant() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:"))
        .provider(provider("up1", &mock))
        .route(chat_route())
        .tenant(bob_tenant(consumer_quota("bob-rpm", "requests", 10, "1h")))
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let q = "?tenant=acme&consumer=bob";
    for i in 0..2 {
        let r = chat(&c, &gw, Some(KEY_BOB), &body("gpt-4o", "hello", None), &[]).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    wait_used(&c, &gw, q, "bob-rpm", "acme/bob", 2, Duration::from_secs(3)).await;

    let r = reset(&c, &gw, &json!({"quota": "bob-rpm", "consumer": "bob"})).await;
    let v = r.assert_openai_error(400, "invalid_body");
    eprintln!("reset with consumer, no tenant: {v}");
    assert_eq!(used(&c, &gw, q, "bob-rpm", "acme/bob").await, Some(2));
    // with its tenant it works
    let r = reset(
        &c,
        &gw,
        &json!({"quota": "bob-rpm", "tenant": "acme", "consumer": "bob"}),
    )
    .await;
    assert_eq!(r.status, 204, "reset with tenant: {}", r.text());
    wait_used(&c, &gw, q, "bob-rpm", "acme/bob", 0, Duration::from_secs(3)).await;
}

/// 14. Requests the quotas refused cost nothing: with a route requests quota
///     and a `by: upstream` quota of 1 (no `rate_limiting` fallback), the 2nd
///     and 3rd requests are refused by the upstream quota, and the route quota
///     counts the one served request only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_refused_requests_cost_nothing() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(redis_state(&redis, "gw:"))
        .provider(provider("up1", &mock))
        .route(
            Route::new("chat", "/v1")
                .upstream("up1")
                .quota(quota("chat-rph", "route", "requests", 10, "1h"))
                .quota(quota("per-upstream", "upstream", "requests", 1, "1h")),
        )
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let req = body("gpt-4o", "hello", None);
    let r = chat(&c, &gw, None, &req, &[]).await;
    assert_eq!(r.status, 200, "1st: {}", r.text());
    for i in 2..=3 {
        let r = chat(&c, &gw, None, &req, &[]).await;
        let v = assert_limited(&r, "requests", true, &format!("request {i}"));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("per-upstream")),
            "{v}"
        );
    }
    let q = "?route=chat";
    wait_used(&c, &gw, q, "per-upstream", "up1", 1, Duration::from_secs(3)).await;
    wait_used(&c, &gw, q, "chat-rph", "chat", 1, Duration::from_secs(3)).await;
    assert_eq!(mock.hits(), 1);
}

/// 15. `local` with `expected_replicas: 4` and Redis down: a request over this
///     replica's share (1000 / 4) but within the limit is refused with
///     `Retry-After`, and not told to lower `max_tokens` (it fits once Redis is
///     back or the window has moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_refusal_says_when() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let yaml = base()
        .state(
            redis_state(&redis, "gw:")
                .on_redis_error("local")
                .expected_replicas(4),
        )
        .provider(provider("up1", &mock))
        .route(chat_route())
        .tenant(bob_tenant(consumer_quota(
            "bob-tpm",
            "total_tokens",
            1000,
            "1m",
        )))
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let r = chat(
        &c,
        &gw,
        Some(KEY_BOB),
        &body("gpt-4o", "hello", Some(10)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "before the outage: {}", r.text());

    let _redis = stop_redis(redis).await;
    wait_degraded(&gw, 1.0).await;
    // a small one fits the local share
    let r = chat(
        &c,
        &gw,
        Some(KEY_BOB),
        &body("gpt-4o", "hello", Some(10)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "within the local share: {}", r.text());
    // ~410 tokens: over 250, under 1000
    let r = chat(
        &c,
        &gw,
        Some(KEY_BOB),
        &body("gpt-4o", "hello", Some(390)),
        &[],
    )
    .await;
    let v = assert_limited(&r, "tokens", true, "over the local share");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    eprintln!(
        "local refusal: Retry-After {:?}: {msg}",
        r.header("retry-after")
    );
    assert!(msg.contains("bob-tpm"), "{msg}");
    assert!(
        !msg.contains("lower max_tokens") && !msg.contains("never"),
        "a request within the fleet's limit is not told to lower max_tokens: {msg}"
    );
}

/// 16. A stream that outlives its reservation's bucket (window 2 s, stream ~3 s)
///     and uses more than it reserved (no `max_tokens`, `quota_max_tokens: 5`,
///     40 completion tokens): the excess is charged in the current window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_stream_beyond_its_reservation_is_charged() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let chunks = 40usize;
    mock.set_stream_chunks(chunks);
    mock.set_chunk_delay(75);
    let yaml = base()
        .state(redis_state(&redis, "gw:").quota_max_tokens(5))
        .provider(provider("up1", &mock))
        .route(chat_route())
        .tenant(bob_tenant(consumer_quota(
            "bob-tpm",
            "total_tokens",
            10_000,
            "2s",
        )))
        .yaml();
    let gw = start_gw(&yaml).await;
    let c = TestClient::new();
    let mut req = body("gpt-4o", "hello", None);
    req["stream"] = json!(true);
    let bearer = format!("Bearer {KEY_BOB}");
    let t = Instant::now();
    let s = c
        .open_sse(&chat_url(&gw), &req, &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(s.status, 200, "stream");
    let remaining: u64 = s
        .headers
        .get("x-ratelimit-remaining-tokens")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("x-ratelimit-remaining-tokens");
    let reserved = 10_000 - remaining;
    let out = s.collect().await;
    let took = t.elapsed();
    assert!(out.done, "{out:?}");
    let actual = text_tokens("hello".len()) + chunks as u64;
    assert!(
        took > Duration::from_millis(2200),
        "the stream took {took:?}, not past its 2 s window"
    );
    assert!(actual > reserved, "actual {actual}, reserved {reserved}");
    // the reservation's bucket has left the window: only the excess is there
    let excess = actual - reserved;
    let waited = wait_used(
        &c,
        &gw,
        "?tenant=acme&consumer=bob",
        "bob-tpm",
        "acme/bob",
        excess,
        Duration::from_millis(1500),
    )
    .await;
    eprintln!(
        "stream took {took:?}: reserved {reserved}, used {actual}; {excess} charged in the current window \
         ({waited:?} after its end)"
    );
}
