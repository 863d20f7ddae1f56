//! Quota windows counted by values the client chooses (`by: header:<name>`,
//! `by: ip`), with real gateway processes, a real `redis-server` and the
//! built-in mock provider:
//!
//! * header values are stored and shown as digests, never as sent, and
//!   `POST /admin/usage/reset` takes the value as sent or its digest;
//! * `GET /admin/usage` pages through many subjects with `limit` and `cursor`;
//! * 2,000 subjects leave Redis with keys that all carry a TTL, and nothing of
//!   the quota's hash tag once its windows ended;
//! * the memory backend holds 2,000 windows, then none once they ended
//!   (`gateway_quota_windows`).

use gateway::keys::KeyHasher;
use gateway_tests::client::{chat_body, HttpResponse, TestClient};
use gateway_tests::config::{Config, Provider, Quota, Route, Server, State};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::counter;
use gateway_tests::redis::{start_redis, RedisServer};
use http::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Redis keys of the route's hash tag.
const TAG_KEYS: &str = "gw:{r:hdr}*";

/// The Redis backend at `redis`, reservations held 2 s.
fn redis_state(redis: &RedisServer) -> Option<State> {
    Some(
        State::redis(&redis.url())
            .redis_key("key_prefix", "gw:")
            .redis_key("timeout_ms", 500)
            .quota_lease_s(2),
    )
}

/// A gateway whose route `hdr` counts requests by the `x-user` header: 2 per
/// `window`, on the memory backend or `state`.
async fn start_gw(state: Option<State>, window: &str) -> Gateway {
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(Provider::mock("m").model("gpt-4o"))
        .route(Route::new("hdr", "/v1").upstream("m").quota(Quota::new(
            "per-user",
            "header:x-user",
            "requests",
            2,
            window,
        )));
    if let Some(state) = state {
        config = config.state(state);
    }
    // no pepper: subject digests are plain SHA-256, as `digest` computes them
    Gateway::builder(&config.yaml())
        .env("GATEWAY_KEY_PEPPER", "")
        .start()
        .await
}

/// The digest a header value is counted by (no pepper).
fn digest(value: &str) -> String {
    KeyHasher::new(None).subject_digest(value.as_bytes())
}

/// A header value that looks like what it often is: a credential.
fn secret(i: usize) -> String {
    format!("sk-user-secret-{i:05}-Zq8rT3vW")
}

async fn chat(c: &TestClient, gw: &Gateway, user: &str) -> HttpResponse {
    c.post_json_with(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("gpt-4o", "hello"),
        &[("x-user", user)],
    )
    .await
}

/// One request per subject `0..n`, 16 at a time; each must be admitted.
async fn one_request_each(gw: &Gateway, n: usize) {
    let url = format!("{}/v1/chat/completions", gw.url());
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (c, url) = (TestClient::new(), url.clone());
            tokio::spawn(async move {
                for i in (w..n).step_by(16) {
                    let user = secret(i);
                    let r = c
                        .post_json_with(&url, &chat_body("gpt-4o", "hi"), &[("x-user", &user)])
                        .await;
                    assert_eq!(r.status, 200, "subject {i}: {}", r.text());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

/// `GET /admin/usage<query>`.
async fn usage(c: &TestClient, gw: &Gateway, query: &str) -> HttpResponse {
    let r = admin(c, gw, Method::GET, &format!("/admin/usage{query}"), None).await;
    assert_eq!(r.status, 200, "GET /admin/usage{query}: {}", r.text());
    r
}

/// The keys of the route's tag in Redis with their PTTL (-1: none, -2: gone
/// meanwhile), in two round trips.
fn tag_ttls(redis: &RedisServer) -> Vec<(String, i64)> {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(TAG_KEYS).query(&mut con).unwrap();
    if keys.is_empty() {
        return Vec::new();
    }
    let mut p = redis::pipe();
    for k in &keys {
        p.cmd("PTTL").arg(k);
    }
    let ttls: Vec<i64> = p.query(&mut con).unwrap();
    keys.into_iter().zip(ttls).collect()
}

/// Whether the lease zset `key` holds only `S` tombstones (what the ledger's
/// ledger-only settlements leave behind).
fn only_ledger_tombstones(redis: &RedisServer, key: &str) -> bool {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    members.iter().all(|m| m.starts_with("S\n"))
}

/// The keys of the route's tag in Redis.
fn tag_keys(redis: &RedisServer) -> Vec<String> {
    tag_ttls(redis).into_iter().map(|(k, _)| k).collect()
}

/// Every key of the route's tag with its type and value.
fn tag_dump(redis: &RedisServer) -> String {
    let mut out = String::new();
    for k in tag_keys(redis) {
        let value = match redis.cli(&["TYPE", &k]).as_str() {
            "hash" => redis.cli(&["HGETALL", &k]),
            "zset" => redis.cli(&["ZRANGE", &k, "0", "-1", "WITHSCORES"]),
            "set" => redis.cli(&["SMEMBERS", &k]),
            other => panic!("{k} is a {other}"),
        };
        out.push_str(&format!("{k}\n{value}\n"));
    }
    out
}

/// 1. The value of a `by: header:x-user` quota is counted by its digest: it
///    appears in no Redis key or value, no `/admin/usage` answer and no
///    refusal; `POST /admin/usage/reset` empties its window given the value as
///    sent or the digest shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_quota_stores_digests_not_values() {
    let redis = start_redis().await;
    let gw = start_gw(redis_state(&redis), "1m").await;
    let c = TestClient::new();
    let (alice, bob) = (secret(1), secret(2));
    for user in [&alice, &alice, &bob] {
        let r = chat(&c, &gw, user).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let refused = chat(&c, &gw, &alice).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    let msg = refused.text();
    assert!(
        msg.contains(&digest(&alice)),
        "the refusal names the digest: {msg}"
    );

    let dump = tag_dump(&redis);
    let listed = usage(&c, &gw, "").await.text();
    for (what, text) in [
        ("Redis", &dump),
        ("/admin/usage", &listed),
        ("the 429", &msg),
    ] {
        for v in [&alice, &bob] {
            assert!(!text.contains(v.as_str()), "{v} appears in {what}:\n{text}");
        }
    }
    assert!(dump.contains(&digest(&alice)), "{dump}");
    let keys: BTreeSet<String> = serde_json::from_str::<Vec<Value>>(&listed)
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, BTreeSet::from([digest(&alice), digest(&bob)]));

    // reset by the value as sent, then by the digest shown
    for (user, key) in [(&alice, alice.clone()), (&bob, digest(&bob))] {
        let body = json!({"quota": "per-user", "key": key});
        let r = admin(&c, &gw, Method::POST, "/admin/usage/reset", Some(&body)).await;
        assert_eq!(r.status, 204, "{}", r.text());
        let left = usage(&c, &gw, "").await.text();
        assert!(!left.contains(&digest(user)), "{user} not reset: {left}");
    }
    let r = chat(&c, &gw, &alice).await;
    assert_eq!(r.status, 200, "after the reset: {}", r.text());
}

/// 2. `GET /admin/usage` pages: 120 subjects with `limit=50` come as 50, 50
///    and 20, each once, chained by `next_cursor` (also in `x-next-cursor`)
///    until it is null; without `limit` and `cursor` the answer is the list
///    itself; a bad `limit` or a forged cursor is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_usage_pages_through_client_subjects() {
    let redis = start_redis().await;
    let gw = start_gw(redis_state(&redis), "1m").await;
    let c = TestClient::new();
    one_request_each(&gw, 120).await;

    let mut seen = BTreeSet::new();
    let mut sizes = Vec::new();
    let mut query = "?limit=50".to_string();
    loop {
        let r = usage(&c, &gw, &query).await;
        let v = r.json();
        let data = v["data"].as_array().expect("data").clone();
        sizes.push(data.len());
        for e in &data {
            assert_eq!(
                (&e["quota"], &e["used"]),
                (&json!("per-user"), &json!(1)),
                "{e}"
            );
            assert!(
                seen.insert(e["key"].as_str().unwrap().to_string()),
                "twice: {e}"
            );
        }
        assert_eq!(r.header("x-next-cursor"), v["next_cursor"].as_str());
        match v["next_cursor"].as_str() {
            Some(next) => query = format!("?limit=50&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 20]);
    let want: BTreeSet<String> = (0..120).map(|i| digest(&secret(i))).collect();
    assert_eq!(seen, want);

    let r = usage(&c, &gw, "").await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(120));
    assert_eq!(r.header("x-next-cursor"), None);
    for bad in ["?limit=0", "?limit=1001", "?cursor=zz", "?cursor=00ff"] {
        let r = admin(&c, &gw, Method::GET, &format!("/admin/usage{bad}"), None).await;
        r.assert_openai_error(400, "invalid_query");
    }
}

/// 3. 2,000 subjects of a one-second quota (lease 2 s): every key of the
///    quota's hash tag carries a TTL, and none is left once the windows ended
///    (two windows and a bucket after their last charge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subject_windows_expire_in_redis() {
    let redis = start_redis().await;
    let gw = start_gw(redis_state(&redis), "1s").await;
    one_request_each(&gw, 2000).await;
    let sent = Instant::now();

    // the usage ledger's day hash lives under the same tag, on purpose for
    // `ledger.retention_days` (400 by default): checked, then left out
    let (ledger, keys): (Vec<_>, Vec<_>) = tag_ttls(&redis)
        .into_iter()
        .partition(|(k, _)| k.contains("}:ledger:"));
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    let days = ledger[0].1 / 86_400_000;
    assert!((399..=400).contains(&days), "{ledger:?}");
    assert!(keys.len() > 2, "{keys:?}");
    for (k, pttl) in &keys {
        assert!(*pttl != -1, "{k} has no TTL");
    }
    loop {
        // (so does the lease zset once it holds only the tombstones of the
        // ledger's own settlements, which end after 10 minutes)
        let left: Vec<_> = tag_ttls(&redis)
            .into_iter()
            .filter(|(k, _)| !k.contains("}:ledger:"))
            .filter(|(k, _)| !(k.ends_with("}:qlease") && only_ledger_tombstones(&redis, k)))
            .collect();
        if left.is_empty() {
            eprintln!(
                "{} keys of the tag after 2,000 subjects, none {:?} after the last request",
                keys.len(),
                sent.elapsed()
            );
            break;
        }
        let within = Duration::from_secs(5);
        assert!(
            sent.elapsed() < within,
            "{} keys of the tag left {within:?} after the last request, e.g. {:?}",
            left.len(),
            &left[..left.len().min(3)],
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 4. The memory backend: 2,000 subjects of a three-second quota make 2,000
///    windows (`gateway_quota_windows`), and the sweep takes them all out once
///    they ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_sweeps_client_subject_windows() {
    let gw = start_gw(None, "3s").await;
    let started = Instant::now();
    one_request_each(&gw, 2000).await;
    let held = counter(&gw, "gateway_quota_windows").await;
    // a window ends 6 s + a bucket after its charge: all are still held
    // unless sending took that long (on a very slow machine)
    if started.elapsed() < Duration::from_secs(6) {
        assert_eq!(held, 2000);
    } else {
        assert!(held > 0, "{held}");
    }
    let t = Instant::now();
    loop {
        let n = counter(&gw, "gateway_quota_windows").await;
        if n == 0 {
            eprintln!(
                "gateway_quota_windows {held} after 2,000 subjects, 0 {:?} after the last request",
                t.elapsed()
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "gateway_quota_windows is {n} 10 s after the last request"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
