//! The gateway's connections to Redis across short stalls (`CLIENT PAUSE`
//! under load, as a busy machine makes them): the calls that fail together
//! take one connection between them to go on with, not one each, so the
//! stalls leave no idle connections behind (found by the soak bench, where
//! each stall left a replica with more open connections for good).

use gateway_tests::client::TestClient;
use gateway_tests::config::{Config, Provider, Quota, Route, Server, State};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::redis::{start_redis, RedisServer};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients sending requests at once while Redis stalls.
const CLIENTS: usize = 24;
/// Stalls, each this long, one every `STALL_EVERY`.
const STALLS: usize = 10;
const STALL_MS: u64 = 80;
const STALL_EVERY: Duration = Duration::from_millis(150);

/// The connections Redis has from others than the `redis-cli` asking.
fn gateway_connections(redis: &RedisServer) -> usize {
    redis
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_leave_no_idle_connections_behind() {
    let redis = start_redis().await;
    let mock = MockUpstream::start_default();
    // the default call budget (timeout_ms 50): calls in flight when a stall
    // starts fail, and the next ones need a connection
    let yaml = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(State::redis(&redis.url()))
        .provider(Provider::openai("up1", &mock.base_url()).token("sk-upstream"))
        .route(
            Route::new("chat", "/v1")
                .upstream("up1")
                .quota(Quota::new("rpm", "route", "requests", 1_000_000, "1m")),
        )
        .no_access_log()
        .yaml();
    let gw = Gateway::start(&yaml).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let c = TestClient::new();
    for _ in 0..5 {
        assert_eq!(c.post_json(&url, &body).await.status, 200);
    }
    let before = gateway_connections(&redis);

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (url, body, stop) = (url.clone(), body.clone(), stop.clone());
        clients.spawn(async move {
            let c = TestClient::new();
            while !stop.load(Ordering::Relaxed) {
                // served either way (on_redis_error: fail_open)
                assert_eq!(c.post_json(&url, &body).await.status, 200);
            }
        });
    }
    for _ in 0..STALLS {
        let t = Instant::now();
        // (redis-cli answers at once; the pause holds the others)
        assert_eq!(
            redis.cli(&["CLIENT", "PAUSE", &STALL_MS.to_string(), "ALL"]),
            "OK"
        );
        tokio::time::sleep(STALL_EVERY.saturating_sub(t.elapsed())).await;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = clients.join_next().await {
        r.expect("a client failed");
    }
    // the gateway finds Redis again (its monitor pings every 100 ms while it
    // is out) and serves on
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.post_json(&url, &body).await.status, 200);
    let after = gateway_connections(&redis);
    assert!(
        after <= before + 1,
        "{STALLS} stalls under {CLIENTS} clients left the gateway with {after} connections to Redis, {before} before"
    );
}
