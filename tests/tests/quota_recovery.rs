//! Quotas across a Redis outage and its end, with real processes: three gateway
//! replicas on one `redis-server` (no persistence) under `on_redis_error:
//! local`, 24 clients spending one consumer's 3,000 tokens per hour. Redis is
//! killed, each replica admits its own share while it is away, and it comes
//! back empty. The usage served during the outage is charged to Redis when it
//! returns; no replica may admit against the new window before that usage is
//! in it, so the window ends within max(limit, outage usage) + one request.

use gateway_tests::client::TestClient;
use gateway_tests::config::{
    Config, Consumer, Provider, Quota, Route, Server, State, Tenant, Timeouts,
};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::wait_metric;
use gateway_tests::mock_upstream::{text_tokens, MockUpstream, DEFAULT_STREAM_CHUNKS};
use gateway_tests::redis::{restart_redis, start_redis, stop_redis, RedisServer};
use gateway_tests::report::used_in;
use http::Method;
use serde_json::json;
use shared::ai_log::AccessLogLine;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "sk-recovery-app-0123456789abcdef";
const REPLICAS: usize = 3;
const CLIENTS_PER_REPLICA: usize = 8;
/// The consumer's tokens per hour.
const LIMIT: u64 = 3000;
/// Every request's prompt: 368 bytes, 92 tokens (+ 8 completion tokens).
const PROMPT: &str = "Count the words of this sentence and then count them again please. ";

fn yaml(redis: &RedisServer, mock: &MockUpstream) -> String {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(
            State::redis(&redis.url())
                .redis_key("key_prefix", "gw:")
                .redis_key("timeout_ms", 300)
                .on_redis_error("local")
                .expected_replicas(REPLICAS as u32),
        )
        .key_headers(&["Authorization"])
        .provider(
            Provider::openai("up1", &mock.base_url())
                .token("sk-upstream-secret")
                .timeouts(Timeouts::all(500, 5000, 5000, 10_000)),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .tenant(
            Tenant::new("acme").consumer(Consumer::new("app").key(KEY).quota(Quota::new(
                "tph",
                "consumer",
                "total_tokens",
                LIMIT,
                "1h",
            ))),
        )
        .access_log()
        .yaml()
}

fn prompt() -> String {
    PROMPT.repeat(368 / PROMPT.len() + 1)[..368].to_string()
}

/// What one request costs (the mock's usage of it).
fn cost() -> u64 {
    text_tokens(prompt().len()) + DEFAULT_STREAM_CHUNKS as u64
}

/// Sends requests to `url` one after the other until `stop`; answers the
/// request ids of those that were served.
async fn client(url: String, stop: Arc<AtomicBool>, served: Arc<Mutex<Vec<String>>>) {
    let c = TestClient::new();
    let body = json!({"model": "gpt-4o", "max_tokens": DEFAULT_STREAM_CHUNKS,
        "messages": [{"role": "user", "content": prompt()}]});
    let auth = format!("Bearer {KEY}");
    while !stop.load(Ordering::Relaxed) {
        let r = c
            .post_json_with(&url, &body, &[("authorization", auth.as_str())])
            .await;
        // refusals cost nothing: 429 from the quota, 503 while Redis, back
        // empty, has no tenants seed yet (never 401: a lookup that finds no
        // record reads it again once it sees the seed marker)
        match r.status {
            200 => {
                let id = r.header("x-request-id").unwrap_or_default().to_string();
                served.lock().unwrap().push(id);
            }
            429 => {}
            503 if r.error_code().as_deref() == Some("state_unavailable") => {}
            s => panic!("unexpected answer {s}: {}", r.text()),
        }
    }
}

async fn wait_gauge(gw: &Gateway, name: &str, want: f64) {
    let what = want.to_string();
    wait_metric(gw, name, &[], |v| v == want, &what, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_charges_the_outage_before_admitting() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    let config = yaml(&redis, &mock);
    let mut gws = Vec::new();
    for _ in 0..REPLICAS {
        gws.push(
            Gateway::builder(&config)
                .env("GATEWAY_KEY_PEPPER", "")
                .start()
                .await,
        );
    }
    let c = TestClient::new();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for gw in &gws {
        for _ in 0..CLIENTS_PER_REPLICA {
            tasks.push(tokio::spawn(client(
                format!("{}/v1/chat/completions", gw.url()),
                stop.clone(),
                served.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // the outage: each replica admits its share of the limit on its own
    let redis = stop_redis(redis).await;
    for gw in &gws {
        wait_gauge(gw, "gateway_state_degraded", 1.0).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Redis is back, empty: a new window
    let _redis = restart_redis(redis).await;
    let back = Instant::now();
    for gw in &gws {
        wait_gauge(gw, "gateway_state_degraded", 0.0).await;
    }
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(back.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    for gw in &gws {
        wait_gauge(gw, "gateway_quota_settle_queue", 0.0).await;
    }

    // what each served request cost and how it was admitted
    let served: Vec<String> = served.lock().unwrap().clone();
    let t = Instant::now();
    let lines = loop {
        let lines: Vec<AccessLogLine> = gws.iter().flat_map(|g| g.access_log_lines()).collect();
        let logged: HashSet<&str> = lines.iter().map(|l| l.request_id.as_str()).collect();
        if served.iter().all(|id| logged.contains(id.as_str())) {
            break lines;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "access-log lines missing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let tokens = |status: &str| -> u64 {
        lines
            .iter()
            .filter(|l| l.response_code == 200 && l.ai_log.quota_status.as_deref() == Some(status))
            .map(|l| l.ai_log.total_token)
            .sum()
    };
    let outage = tokens("local");
    let allowed = tokens("allowed");
    let r = admin(
        &c,
        &gws[0],
        Method::GET,
        "/admin/usage?tenant=acme&consumer=app",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let used = used_in(&r.json(), "tph").unwrap_or_else(|| panic!("no tph window: {}", r.text()));
    let bound = LIMIT.max(outage) + cost();
    eprintln!(
        "served during the outage (local): {outage} tokens; admitted by Redis (before and after): {allowed}; \
         the window after recovery holds {used} (limit {LIMIT}, bound {bound})"
    );
    assert!(outage > 0, "nothing was served during the outage");
    assert!(
        used <= bound,
        "the first window after recovery holds {used} tokens: more than max(limit {LIMIT}, outage usage {outage}) + one request ({})",
        cost()
    );
}
