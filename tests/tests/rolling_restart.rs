//! A rolling restart under load, on loopback: a real `redis-server`, three gateway
//! replicas sharing it (quotas counted in Redis), mock upstreams whose streams
//! take ~350 ms and ~3 s (some are still running when a replica stops
//! accepting), a real OTLP collector for the log records, and the
//! test's TCP balancer (`gateway_tests::balancer`, endpoints following
//! `/readyz`) in front.
//!
//! Continuous load through the balancer (several tasks, JSON and streaming, each
//! on its own keep-alive client that reconnects when an answer says `Connection:
//! close`), every answer checked (200, the whole body or a stream ending in
//! `[DONE]` with its usage). Meanwhile each replica in turn gets SIGTERM and must
//! exit 0 within its grace; a replacement on new ports is started, added to the
//! balancer and waited for (ready) before the next one. Then:
//!
//! * no request failed (every request is shorter than the grace);
//! * every request was settled exactly once: the consumer's usage in Redis
//!   (through `/admin/usage` of a live replica) equals the usage the clients
//!   received (= the mock's), no quota reservation is left, the mock got each
//!   request once;
//! * the access logs of all replicas, old and new, hold exactly one line per
//!   request;
//! * no telemetry was dropped: the collector got exactly one log record per
//!   request.

use gateway_tests::balancer::Balancer;
use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::collector::Collector;
use gateway_tests::config::{
    Config, Consumer, Provider, Quota, Route, Server, State, Telemetry, Tenant, Timeouts,
};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{
    chat_usage, MockOptions, MockUpstream, CHUNK_TEXT, DEFAULT_STREAM_CHUNKS,
};
use gateway_tests::redis::lease::lease_counts;
use gateway_tests::redis::{start_redis, RedisServer};
use http::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "sk-rolling-loader-0123456789abcdef";
const REPLICAS: usize = 3;
/// Concurrent client tasks of the load.
const CLIENTS: usize = 8;
/// Client tasks that send only streams of the slow upstream (the others send JSON
/// and streams of the fast one in turn).
const LONG_CLIENTS: usize = 3;
/// Replicas stopped one after another: two whole rollouts of the three.
const ROUNDS: usize = 2 * REPLICAS;
const GRACE: Duration = Duration::from_secs(6);
const ACCEPT_DELAY_MS: u64 = 1000;
/// Between mock stream events (a chat stream has 12): streams take ~350 ms.
const CHUNK_DELAY_MS: u64 = 25;
/// The same for the slow upstream: its streams take ~3 s, so some are still
/// running when a replica stops accepting (after its 1 s delay) and drain; one
/// accepted at the very end of the delay ends ~4 s after SIGTERM, within the grace.
const LONG_CHUNK_DELAY_MS: u64 = 250;
/// Model of the requests routed to the slow upstream.
const LONG_MODEL: &str = "long-stream";
/// Before every mock answer (JSON ones included).
const HEADER_DELAY_MS: u64 = 40;
const QUOTA: &str = "loader-tpm";

/// Three replicas' config: a keyed route `long` (models `long-*`) to `slow`,
/// `chat` to `main`, one consumer with a large token quota, Redis `fail_closed`,
/// log records to the OTLP collector at `otlp` too.
fn config(redis: &RedisServer, main: &str, slow: &str, otlp: &str) -> String {
    let provider = |id: &str, url: &str, token: &str| {
        Provider::openai(id, url)
            .token(token)
            .timeouts(Timeouts::all(1000, 10_000, 10_000, 30_000))
    };
    Config::new()
        .server(
            Server::new()
                .admin_token(ADMIN_TOKEN)
                .shutdown_grace_s(GRACE.as_secs())
                .shutdown_delay_ms(ACCEPT_DELAY_MS)
                .config_poll_ms(0),
        )
        .state(
            State::redis(&redis.url())
                .redis_key("key_prefix", "roll:")
                .redis_key("timeout_ms", 2000)
                .on_redis_error("fail_closed")
                .expected_replicas(3),
        )
        .provider(provider("up1", main, "sk-upstream-secret-1"))
        .provider(provider("slow", slow, "sk-upstream-secret-2"))
        .route(
            Route::new("long", "/v1")
                .model("long-*")
                .keyed()
                .upstream("slow"),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .tenant(
            Tenant::new("acme").consumer(Consumer::new("loader").key(KEY).quota(Quota::new(
                QUOTA,
                "consumer",
                "total_tokens",
                1_000_000_000,
                "1h",
            ))),
        )
        .telemetry(Telemetry::new().access_log("{{access_log}}").otlp(json!({
            "endpoint": otlp, "protocol": "grpc", "traces": false, "logs": true
        })))
        .yaml()
}

async fn start_replica(yaml: &str) -> Gateway {
    // every replica must digest keys the same way, whatever the environment says
    Gateway::builder(yaml)
        .env("GATEWAY_KEY_PEPPER", "")
        .start()
        .await
}

/// A request that was answered as it should be.
struct Served {
    id: String,
    /// client task and its request number
    client: usize,
    seq: usize,
    stream: bool,
    /// a stream of the slow upstream
    long: bool,
    /// `usage.total_tokens` the client received
    usage: u64,
    /// the answer said `Connection: close` (served by a replica shutting down)
    closed: bool,
    /// when its answer was complete, since the load started
    end: Duration,
}

/// A request that was not.
struct Failed {
    id: String,
    client: usize,
    seq: usize,
    stream: bool,
    /// since the load started
    at: Duration,
    what: String,
}

/// Checks a JSON answer; the usage it carries, or what is wrong.
fn check_json(r: &gateway_tests::client::HttpResponse, want: u64) -> Result<u64, String> {
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str);
    if content != Some(CHUNK_TEXT.repeat(DEFAULT_STREAM_CHUNKS).as_str()) {
        return Err(format!("content {content:?}: {v}"));
    }
    match v.pointer("/usage/total_tokens").and_then(Value::as_u64) {
        Some(u) if u == want => Ok(u),
        other => Err(format!(
            "usage.total_tokens {other:?}, the mock charges {want}: {v}"
        )),
    }
}

/// Checks a whole SSE answer; the usage of its usage chunk, or what is wrong.
fn check_stream(r: &gateway_tests::client::SseResponse, want: u64) -> Result<u64, String> {
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.raw));
    }
    if !r.done || !r.clean_end {
        return Err(format!(
            "stream incomplete (done {}, error {:?}): {}",
            r.done, r.error, r.raw
        ));
    }
    if r.content() != CHUNK_TEXT.repeat(DEFAULT_STREAM_CHUNKS) {
        return Err(format!("content {:?}: {}", r.content(), r.raw));
    }
    let usage = r.usage_chunks();
    match usage
        .as_slice()
        .first()
        .and_then(|u| u.pointer("/usage/total_tokens"))
        .and_then(Value::as_u64)
    {
        Some(u) if u == want && usage.len() == 1 => Ok(u),
        _ => Err(format!(
            "usage chunks {usage:?}, the mock charges {want}: {}",
            r.raw
        )),
    }
}

/// One client task: requests one after another (JSON and streams in turn) on its
/// own keep-alive client until `stop`.
async fn load(
    n: usize,
    url: String,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> (Vec<Served>, Vec<Failed>) {
    let c = TestClient::new();
    let bearer = format!("Bearer {KEY}");
    let (mut served, mut failed) = (Vec::new(), Vec::new());
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("roll-{n}-{i}");
        let stream = n < LONG_CLIENTS || (n + i).is_multiple_of(2);
        let model = if n < LONG_CLIENTS {
            LONG_MODEL
        } else {
            "gpt-4o-mini"
        };
        // prompts of different lengths: different usage per request
        let content = format!("rolling restart {}", "x".repeat((n * 7 + i) % 40));
        let headers = [
            ("authorization", bearer.as_str()),
            ("x-request-id", id.as_str()),
        ];
        let result = if stream {
            let mut body = chat_stream_body(model, &content);
            body["stream_options"] = json!({"include_usage": true});
            let want = chat_usage(&body, DEFAULT_STREAM_CHUNKS).total_tokens;
            match c.try_open_sse(&url, &body, &headers).await {
                Err(e) => Err(e),
                Ok(s) => {
                    let r = s.collect().await;
                    let closed = r.header("connection") == Some("close");
                    check_stream(&r, want).map(|u| (u, closed))
                }
            }
        } else {
            let body = chat_body(model, &content);
            let want = chat_usage(&body, DEFAULT_STREAM_CHUNKS).total_tokens;
            let mut h = headers.to_vec();
            h.push(("content-type", "application/json"));
            match c
                .try_request(Method::POST, &url, &h, body.to_string())
                .await
            {
                Err(e) => Err(e),
                Ok(r) => {
                    let closed = r.header("connection") == Some("close");
                    check_json(&r, want).map(|u| (u, closed))
                }
            }
        };
        match result {
            Ok((usage, closed)) => served.push(Served {
                id,
                client: n,
                seq: i,
                stream,
                long: model == LONG_MODEL,
                usage,
                closed,
                end: t0.elapsed(),
            }),
            Err(what) => failed.push(Failed {
                id,
                client: n,
                seq: i,
                stream,
                at: t0.elapsed(),
                what,
            }),
        }
        i += 1;
    }
    (served, failed)
}

/// `used` of the consumer's quota window, through `gw`'s `/admin/usage`.
async fn used(c: &TestClient, gw: &Gateway) -> u64 {
    let r = admin(
        c,
        gw,
        Method::GET,
        "/admin/usage?tenant=acme&consumer=loader",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "/admin/usage: {}", r.text());
    let list = r.json();
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["quota"] == QUOTA))
        .and_then(|e| e["used"].as_u64())
        .unwrap_or_else(|| panic!("no window of {QUOTA} in /admin/usage: {list}"))
}

fn leases(redis: &RedisServer) -> Vec<(String, u64)> {
    tokio::task::block_in_place(|| lease_counts(redis))
}

fn stderr_of(gws: &[&Gateway]) -> String {
    gws.iter()
        .enumerate()
        .map(|(i, g)| {
            format!(
                "--- stderr of replica {i} ({}):\n{}\n",
                g.listen_addr(),
                g.stderr()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load() {
    let test_start = Instant::now();
    let redis = start_redis().await;
    let collector = Collector::start().await;
    let mock = MockUpstream::start(MockOptions {
        chunk_delay_ms: CHUNK_DELAY_MS,
        record_requests: false,
        ..MockOptions::default()
    });
    mock.delay_headers(HEADER_DELAY_MS);
    let slow = MockUpstream::start(MockOptions {
        chunk_delay_ms: LONG_CHUNK_DELAY_MS,
        record_requests: false,
        ..MockOptions::default()
    });
    let yaml = config(
        &redis,
        &mock.base_url(),
        &slow.base_url(),
        &collector.grpc_endpoint(),
    );

    let (a, b, c) = tokio::join!(
        start_replica(&yaml),
        start_replica(&yaml),
        start_replica(&yaml)
    );
    let mut live: Vec<Gateway> = vec![a, b, c];
    let mut retired: Vec<Gateway> = Vec::new();
    let balancer = Balancer::start().await;
    for g in &live {
        balancer.add(g.listen_addr(), g.admin_addr());
    }
    for g in &live {
        assert!(
            balancer
                .wait_ready(g.listen_addr(), Duration::from_secs(5))
                .await,
            "replica {} not ready at the balancer",
            g.listen_addr()
        );
    }
    let setup = test_start.elapsed();

    // the load
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/v1/chat/completions", balancer.url());
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(load(n, url.clone(), stop.clone(), t0)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // the rolling restart: one replica after the other, the oldest first
    let mut restarts = Vec::new();
    // (data address, SIGTERM since the load started) of each stopped replica
    let mut terms: Vec<(String, Duration)> = Vec::new();
    for round in 0..ROUNDS {
        let mut old = live.remove(0);
        old.sigterm();
        let term_at = Instant::now();
        terms.push((old.listen_addr().to_string(), t0.elapsed()));
        // the replacement starts while the old one drains; the old one's exit time is
        // taken when it exits, not after the new one's start-up
        let exit = async {
            let status = old.wait_exit(GRACE + Duration::from_secs(5)).await;
            (status, term_at.elapsed())
        };
        let (new, (status, exited)) = tokio::join!(start_replica(&yaml), exit);
        balancer.add(new.listen_addr(), new.admin_addr());
        balancer.remove(old.listen_addr());
        let status = status.unwrap_or_else(|| {
            panic!(
                "round {round}: replica {} still runs {exited:?} after SIGTERM (grace {GRACE:?}); stderr:\n{}",
                old.listen_addr(),
                old.stderr()
            )
        });
        assert!(
            status.success(),
            "round {round}: replica {} exited with {status}; stderr:\n{}",
            old.listen_addr(),
            old.stderr()
        );
        assert!(
            exited < GRACE,
            "round {round}: replica {} exited {exited:?} after SIGTERM, beyond its {GRACE:?} grace",
            old.listen_addr()
        );
        assert!(
            balancer
                .wait_ready(new.listen_addr(), Duration::from_secs(5))
                .await,
            "round {round}: the replacement {} is not ready at the balancer",
            new.listen_addr()
        );
        let ready = term_at.elapsed();
        restarts.push(format!(
            "round {round}: {} SIGTERM -> exit 0 after {exited:?}; replacement {} ready at the balancer after {ready:?}",
            old.listen_addr(),
            new.listen_addr()
        ));
        retired.push(old);
        live.push(new);
        // the new replica takes some of the load before the next one goes
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut served = Vec::new();
    let mut failed = Vec::new();
    for t in tasks {
        let (s, f) = t.await.expect("load task");
        served.extend(s);
        failed.extend(f);
    }
    let load_time = t0.elapsed();
    let requests = served.len() + failed.len();
    let streams = served.iter().filter(|s| s.stream).count();
    let long = served.iter().filter(|s| s.long).count();
    let closed = served.iter().filter(|s| s.closed).count();
    let usage: u64 = served.iter().map(|s| s.usage).sum();
    for r in &restarts {
        eprintln!("{r}");
    }
    eprintln!(
        "load: {requests} requests in {load_time:?} ({streams} streams of which {long} long, {} JSON) by {CLIENTS} \
         clients, {} failed, {closed} answers with Connection: close; usage received {usage}; \
         balancer: {} connections accepted, {} unrouted, per backend {:?}",
        served.len() - streams,
        failed.len(),
        balancer.accepted(),
        balancer.unrouted(),
        balancer
            .stats()
            .iter()
            .map(|s| (s.data.clone(), s.connections))
            .collect::<Vec<_>>()
    );
    let all: Vec<&Gateway> = retired.iter().chain(live.iter()).collect();
    // what each failed request followed on its client's connection: the previous
    // request of the same client, the replica that answered it and when
    let replica_of_id = |id: &str| {
        all.iter()
            .find(|g| g.access_log_lines().iter().any(|l| l.request_id == id))
            .map(|g| g.listen_addr().to_string())
    };
    let first_failures: Vec<String> = failed
        .iter()
        .take(5)
        .map(|f| {
            let kind = |stream: bool| if stream { "stream" } else { "JSON" };
            let prev = served
                .iter()
                .find(|s| s.client == f.client && f.seq > 0 && s.seq == f.seq - 1);
            let prev = match prev {
                None => "no previous request".to_string(),
                Some(p) => {
                    let replica = replica_of_id(&p.id).unwrap_or_default();
                    let term = terms.iter().find(|(a, _)| *a == replica).map(|(_, t)| *t);
                    format!(
                        "previous request of this client {} ({}) answered by {replica} \
                         (SIGTERM {term:?} into the load, stopped accepting {ACCEPT_DELAY_MS} ms \
                         later), complete {:?} into the load, Connection: close {}",
                        p.id,
                        kind(p.stream),
                        p.end,
                        p.closed
                    )
                }
            };
            format!(
                "{} ({}, {:?} into the load): {}\n    {prev}",
                f.id,
                kind(f.stream),
                f.at,
                f.what
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {requests} requests failed during the rolling restart; first ones:\n{}\n{}",
        failed.len(),
        first_failures.join("\n"),
        stderr_of(&all)
    );
    assert!(
        requests > 50,
        "too little load to mean anything: {requests}"
    );
    assert!(
        closed > 0,
        "no answer said Connection: close: no request met a draining replica"
    );

    // settled exactly once: Redis holds what the clients were told they used
    let c = TestClient::new();
    let settle_start = Instant::now();
    let mut in_redis = used(&c, &live[0]).await;
    while in_redis != usage && settle_start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        in_redis = used(
            &c,
            &live[settle_start.elapsed().as_millis() as usize % REPLICAS],
        )
        .await;
    }
    let mut left = leases(&redis);
    while left.iter().any(|(_, n)| *n > 0) && settle_start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = leases(&redis);
    }
    eprintln!(
        "quota {QUOTA} in Redis: {in_redis} (clients received {usage}), settled {:?} after the \
         load; leases {left:?}; upstream hits {}",
        settle_start.elapsed(),
        mock.hits() + slow.hits()
    );
    assert_eq!(
        in_redis,
        usage,
        "the consumer's usage in Redis must equal the usage the clients received\n{}",
        stderr_of(&all)
    );
    assert!(
        left.iter().all(|(_, n)| *n == 0),
        "quota reservations left in Redis: {left:?}"
    );
    assert_eq!(
        mock.hits() + slow.hits(),
        requests as u64,
        "every request reached the upstream exactly once"
    );

    // the replicas still running stop cleanly too (and flush their logs)
    for g in &live {
        g.sigterm();
    }
    let stop_at = Instant::now();
    for g in &mut live {
        let st = g.wait_exit(GRACE + Duration::from_secs(5)).await;
        assert!(
            st.is_some_and(|s| s.success()),
            "replica {} at the end: {st:?}; stderr:\n{}",
            g.listen_addr(),
            g.stderr()
        );
    }
    let stopped = stop_at.elapsed();

    // the access logs: one line per request over all replicas
    let mut per_replica = Vec::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut replica_of: BTreeMap<String, String> = BTreeMap::new();
    for g in retired.iter().chain(live.iter()) {
        let lines = g.access_log_lines();
        per_replica.push((g.listen_addr().to_string(), lines.len()));
        for l in lines {
            replica_of.insert(l.request_id.clone(), g.listen_addr().to_string());
            assert_eq!(
                (l.response_code, l.response_flags.as_str()),
                (200, ""),
                "{l:?}"
            );
            *ids.entry(l.request_id).or_default() += 1;
        }
    }
    let logged: usize = per_replica.iter().map(|(_, n)| n).sum();
    // per stopped replica: requests it answered during its accept delay
    // (`Connection: close`), and requests still running when it stopped
    // accepting that it finished while draining
    let mut drained_total = 0;
    for (addr, term) in &terms {
        let mine: Vec<&Served> = served
            .iter()
            .filter(|s| replica_of.get(&s.id) == Some(addr))
            .collect();
        let in_delay = mine.iter().filter(|s| s.closed).count();
        let stop_accepting = *term + Duration::from_millis(ACCEPT_DELAY_MS + 100);
        let drained = mine.iter().filter(|s| s.end > stop_accepting).count();
        drained_total += drained;
        eprintln!(
            "replica {addr}: {} requests, {in_delay} answered during its accept delay \
             (Connection: close), {drained} finished while it drained",
            mine.len()
        );
    }
    eprintln!(
        "access-log lines per replica (in the order they were started): {per_replica:?}, {logged} in all; \
         the live replicas stopped {stopped:?} after SIGTERM"
    );
    assert_eq!(
        logged, requests,
        "access-log lines of all replicas vs requests sent"
    );
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "request ids logged more than once: {twice:?}"
    );
    for s in &served {
        assert!(
            ids.contains_key(&s.id),
            "request {} is in no access log",
            s.id
        );
    }
    assert!(
        drained_total > 0,
        "no request was in flight when a replica stopped accepting: the drain was not exercised"
    );

    // telemetry: one log record per request at the collector
    let records = collector
        .wait_logs(Duration::from_secs(10), |l| {
            l.iter()
                .filter(|r| {
                    r.attr("request_id")
                        .is_some_and(|id| id.starts_with("roll-"))
                })
                .count()
                >= requests
        })
        .await;
    let mut at_collector: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        if let Some(id) = r.attr("request_id").filter(|id| id.starts_with("roll-")) {
            *at_collector.entry(id.to_string()).or_default() += 1;
        }
    }
    let received: usize = at_collector.values().sum();
    eprintln!(
        "collector: {received} log records for {requests} requests ({} distinct); whole test {:?} \
         (setup {setup:?})",
        at_collector.len(),
        test_start.elapsed()
    );
    assert_eq!(
        received, requests,
        "one OTLP log record per request (none dropped, none twice)"
    );
    assert_eq!(at_collector.len(), requests);
}
