//! Balancing algorithms with real parts: gateway processes, mock upstreams and
//! (where the fleet matters) a real `redis-server`.
//!
//! * `chash` on `header:x-user`: every user stays on one instance, both replicas of
//!   a fleet agree, the users spread over all instances, and a request without the
//!   header hashes on the client address;
//! * `chash` when an instance leaves (removed from the route by a reload, or ejected
//!   by passive health): only the keys of that instance move, and they move to the
//!   same place both ways (the rendezvous runner-up); after the instance comes back
//!   every key is where it was;
//! * `chash` on `consumer` (authenticated callers from the `tenants:` seed): each
//!   consumer sticks to one instance whatever key, header or address it uses;
//!   on `cookie:session`: each session sticks, wherever the cookie sits in the
//!   header, and a request without it hashes the client address;
//! * `least_busy`: in-flight requests held through replica A steer replica B
//!   (counts exchanged through Redis every 200 ms); within one replica concurrent
//!   streams spread evenly; the counts of a replica that died stop counting once
//!   stale (2 s);
//! * a stream that broke after its first byte is never retried (every algorithm),
//!   one that broke before it is;
//! * priority groups with passive ejection: the lower priority only serves while the
//!   first is ejected, the client never sees the failures, and traffic returns once
//!   the ejection is over (one replica on the memory backend, and a fleet of two on
//!   Redis, where an ejection caused through one replica steers the other).
//!
//! Every test has its own mocks, gateways and Redis.

use gateway_tests::client::{chat_body, chat_stream_body, HttpResponse, SseResponse, TestClient};
use gateway_tests::config::{
    Config, Consumer, Fallback, Provider, Route, Server, State, Tenant, Timeouts,
};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{MockOptions, MockUpstream};
use gateway_tests::redis::{start_redis, RedisServer};
use http::Method;
use shared::ai_log::AccessLogLine;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

fn chat_url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

/// A chat request with `x-request-id: rid` and `headers`; must answer 200.
async fn chat_ok(c: &TestClient, gw: &Gateway, rid: &str, headers: &[(&str, &str)]) {
    let r = chat(c, gw, rid, headers).await;
    assert_eq!(
        r.status,
        200,
        "request {rid}: {}\nstderr:\n{}",
        r.text(),
        gw.stderr()
    );
}

async fn chat(c: &TestClient, gw: &Gateway, rid: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut h: Vec<(&str, &str)> = vec![("x-request-id", rid)];
    h.extend_from_slice(headers);
    c.post_json_with(&chat_url(gw), &chat_body("gpt-4o", "balance me"), &h)
        .await
}

/// The access-log lines of `rids` in `gw`'s log, by request id.
async fn log_lines(gw: &Gateway, rids: &[String]) -> HashMap<String, AccessLogLine> {
    gw.wait_for_log_lines_of(rids, LOG_WAIT).await
}

/// The provider that answered, from the access-log line.
fn provider(l: &AccessLogLine) -> String {
    match l.ai_log.provider.as_deref() {
        Some(p) => p.to_string(),
        None => panic!("access-log line without ai_log.provider: {l:?}"),
    }
}

/// Providers of the attempts of a request, in order.
fn attempt_providers(l: &AccessLogLine) -> Vec<String> {
    l.ai_log
        .attempts
        .iter()
        .map(|a| a.provider.clone())
        .collect()
}

// ------------------------------------------------------------------ chash

/// Route `sticky`: `upstreams` of p1..p3 (at the `{{p1}}`.. placeholders) by
/// `chash` on the `x-user` header, falling back on every failure; with
/// `passive` ejection (2 failures) when `passive`; on Redis at `redis_url` when
/// given.
fn chash(redis_url: Option<&str>, passive: bool, upstreams: &[&str]) -> Config {
    let mut route = Route::new("sticky", "/v1")
        .chash("header:x-user")
        .fallback(Fallback::on(
            &["http_5xx", "unhealthy", "connect_error", "timeout"],
            2,
        ));
    for p in upstreams {
        route = route.upstream(p);
    }
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN).config_poll_ms(0))
        .route(route)
        .access_log();
    for (id, token) in [("p1", "t1"), ("p2", "t2"), ("p3", "t3")] {
        let p = Provider::openai(id, &format!("{{{{{id}}}}}")).token(token);
        config = config.provider(if passive { p.passive(2, 30, 30) } else { p });
    }
    if let Some(u) = redis_url {
        config = config.state(State::redis(u).redis_key("key_prefix", "bal:"));
    }
    config
}

fn chash_config(redis_url: Option<&str>, passive: bool, upstreams: &[&str]) -> String {
    chash(redis_url, passive, upstreams).yaml()
}

async fn start_chash(yaml: &str, mocks: &[MockUpstream; 3]) -> Gateway {
    Gateway::builder(yaml)
        .var("p1", mocks[0].base_url())
        .var("p2", mocks[1].base_url())
        .var("p3", mocks[2].base_url())
        .start()
        .await
}

fn three_mocks() -> [MockUpstream; 3] {
    [
        MockUpstream::start_default(),
        MockUpstream::start_default(),
        MockUpstream::start_default(),
    ]
}

/// One request per user (`x-user: user-<u>`) through `gw`; user -> provider.
async fn map_users(
    c: &TestClient,
    gw: &Gateway,
    users: std::ops::Range<usize>,
    tag: &str,
) -> BTreeMap<usize, String> {
    let mut rids = Vec::new();
    for u in users.clone() {
        let rid = format!("{tag}-u{u}");
        let user = format!("user-{u}");
        chat_ok(c, gw, &rid, &[("x-user", &user)]).await;
        rids.push(rid);
    }
    let lines = log_lines(gw, &rids).await;
    users
        .map(|u| (u, provider(&lines[&format!("{tag}-u{u}")])))
        .collect()
}

fn spread(map: &BTreeMap<usize, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in map.values() {
        *out.entry(p.clone()).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chash_keeps_each_user_on_one_instance_across_replicas() {
    let redis = start_redis().await;
    let mocks = three_mocks();
    let yaml = chash_config(Some(&redis.url()), false, &["p1", "p2", "p3"]);
    let (a, b) = tokio::join!(start_chash(&yaml, &mocks), start_chash(&yaml, &mocks));
    let gws = [&a, &b];
    let c = TestClient::new();

    const USERS: usize = 30;
    const REPEAT: usize = 5;
    let mut rids: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for u in 0..USERS {
        let user = format!("user-{u}");
        for k in 0..REPEAT {
            // alternate replicas: every user goes through both
            let r = (u + k) % 2;
            let rid = format!("sticky-u{u}-{k}");
            chat_ok(&c, gws[r], &rid, &[("x-user", &user)]).await;
            rids[r].push(rid);
        }
    }
    let mut lines = log_lines(&a, &rids[0]).await;
    lines.extend(log_lines(&b, &rids[1]).await);

    // user -> (replica -> providers seen)
    let mut seen: BTreeMap<usize, BTreeMap<usize, BTreeSet<String>>> = BTreeMap::new();
    for u in 0..USERS {
        for k in 0..REPEAT {
            let l = &lines[&format!("sticky-u{u}-{k}")];
            assert_eq!(l.ai_log.attempts.len(), 1, "{l:?}");
            seen.entry(u)
                .or_default()
                .entry((u + k) % 2)
                .or_default()
                .insert(provider(l));
        }
    }
    let mut home: BTreeMap<usize, String> = BTreeMap::new();
    for (u, per_replica) in &seen {
        let all: BTreeSet<&String> = per_replica.values().flatten().collect();
        assert_eq!(
            all.len(),
            1,
            "user-{u} was served by several providers: {per_replica:?}"
        );
        assert_eq!(per_replica.len(), 2, "user-{u} went through both replicas");
        home.insert(*u, all.into_iter().next().unwrap().clone());
    }
    let shares = spread(&home);
    eprintln!("chash header:x-user, {USERS} users x {REPEAT} requests over 2 replicas: {shares:?}");
    assert_eq!(
        shares.len(),
        3,
        "the users spread over all 3 providers: {shares:?}"
    );
    for (i, m) in mocks.iter().enumerate() {
        let p = format!("p{}", i + 1);
        let want = shares.get(&p).copied().unwrap_or(0) * REPEAT;
        assert_eq!(m.hits(), want as u64, "{p}'s hits match the access logs");
        // the header goes upstream untouched; every request p_i got is of its users
        for req in m.requests() {
            let user = req.header("x-user").unwrap_or("");
            let u: usize = user.trim_start_matches("user-").parse().unwrap();
            assert_eq!(home[&u], p, "{user} reached {p}");
        }
    }

    // without the header: the client address is the key (all of ours are 127.0.0.1)
    let mut no_header = Vec::new();
    for k in 0..6 {
        let rid = format!("no-header-{k}");
        chat_ok(&c, gws[k % 2], &rid, &[]).await;
        no_header.push((k % 2, rid));
    }
    let ip_providers: BTreeSet<String> = {
        let mut out = BTreeSet::new();
        for (r, rid) in &no_header {
            let l = gws[*r].wait_for_log_line(rid, LOG_WAIT).await;
            out.insert(provider(&l));
        }
        out
    };
    assert_eq!(
        ip_providers.len(),
        1,
        "requests without x-user hash on the client address: {ip_providers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chash_moves_only_the_keys_of_an_instance_that_leaves() {
    const USERS: usize = 60;
    let c = TestClient::new();

    // --- removal from the route by a reload
    let m = three_mocks();
    let full = chash_config(None, true, &["p1", "p2", "p3"]);
    let gw = start_chash(&full, &m).await;
    let before = map_users(&c, &gw, 0..USERS, "before").await;
    let shares = spread(&before);
    assert_eq!(shares.len(), 3, "{shares:?}");
    let on_p2: Vec<usize> = before
        .iter()
        .filter(|(_, p)| *p == "p2")
        .map(|(u, _)| *u)
        .collect();
    assert!(!on_p2.is_empty());

    gw.write_config(&chash_config(None, true, &["p1", "p3"]));
    let r = admin(&c, &gw, Method::POST, "/admin/config/reload", None).await;
    assert_eq!(r.status, 200, "reload: {}", r.text());
    let p2_hits = m[1].hits();
    let removed = map_users(&c, &gw, 0..USERS, "removed").await;
    assert_eq!(m[1].hits(), p2_hits, "p2 is out of the route");
    let mut moved: BTreeMap<String, usize> = BTreeMap::new();
    for u in 0..USERS {
        if before[&u] == "p2" {
            assert!(
                removed[&u] == "p1" || removed[&u] == "p3",
                "user-{u} of p2 went to {}",
                removed[&u]
            );
            *moved.entry(removed[&u].clone()).or_insert(0) += 1;
        } else {
            assert_eq!(
                removed[&u], before[&u],
                "user-{u} was on {} (not the removed p2) and moved",
                before[&u]
            );
        }
    }
    eprintln!(
        "chash reload: {USERS} users before {shares:?}; the {} users of p2 moved to {moved:?}, \
         nobody else moved",
        on_p2.len()
    );

    // p2 back in the route: every user is home again
    gw.write_config(&full);
    let r = admin(&c, &gw, Method::POST, "/admin/config/reload", None).await;
    assert_eq!(r.status, 200, "reload: {}", r.text());
    let back = map_users(&c, &gw, 0..USERS, "back").await;
    assert_eq!(back, before, "with p2 back every key is where it was");
    drop(gw);

    // --- ejection by passive health (a fresh gateway and mocks)
    let n = three_mocks();
    let gw = start_chash(&full, &n).await;
    let fresh = map_users(&c, &gw, 0..USERS, "fresh").await;
    assert_eq!(fresh, before, "another process hashes the same way");
    n[1].fail_with(503);
    let hits_before = n[1].hits();
    let ejected = map_users(&c, &gw, 0..USERS, "ejected").await;
    assert_eq!(
        ejected, removed,
        "an ejected instance's keys go where a removal sends them, the others stay"
    );
    // memory backend: the second failure ejects p2 at once, nothing more reaches it
    assert_eq!(
        n[1].hits() - hits_before,
        2,
        "failures: 2 -> p2 is tried twice, then ejected"
    );
    let rids: Vec<String> = (0..USERS).map(|u| format!("ejected-u{u}")).collect();
    let lines = log_lines(&gw, &rids).await;
    let mut failed_over = 0;
    for u in &on_p2 {
        let l = &lines[&format!("ejected-u{u}")];
        let tried = attempt_providers(l);
        if tried.len() == 2 {
            assert_eq!(tried[0], "p2", "{l:?}");
            assert_eq!(l.ai_log.attempts[0].status, Some(503), "{l:?}");
            failed_over += 1;
        } else {
            assert_eq!(tried, vec![removed[u].clone()], "{l:?}");
        }
    }
    assert_eq!(
        failed_over, 2,
        "the first two users of p2 fell back after its 503, the rest skipped it"
    );
}

/// `chash` on `consumer`: consumers of two tenants, one of them with two keys.
fn consumers_config() -> String {
    let mut route = Route::new("per-consumer", "/v1")
        .keyed_for(&["*"], &["*"])
        .chash("consumer");
    let mut config = Config::new().server(Server::new().admin_token(ADMIN_TOKEN));
    for (id, token) in [("p1", "t1"), ("p2", "t2"), ("p3", "t3")] {
        route = route.upstream(id);
        config = config.provider(Provider::openai(id, &format!("{{{{{id}}}}}")).token(token));
    }
    config
        .route(route)
        .tenant(
            Tenant::new("acme")
                .allowed_models(&["*"])
                .consumer(
                    Consumer::new("alice")
                        .key("sk-balance-alice-key-0001")
                        .key("sk-balance-alice-key-0002"),
                )
                .consumer(Consumer::new("bob").key("sk-balance-bob-key-00001")),
        )
        .tenant(
            Tenant::new("globex")
                .allowed_models(&["*"])
                .consumer(Consumer::new("carol").key("sk-balance-carol-key-0001"))
                .consumer(Consumer::new("dave").key("sk-balance-dave-key-00001")),
        )
        .access_log()
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chash_on_consumer_keeps_each_consumer_on_one_instance() {
    let m = three_mocks();
    let gw = start_chash(&consumers_config(), &m).await;
    let c = TestClient::new();
    let callers = [
        ("acme/alice", "sk-balance-alice-key-0001"),
        ("acme/alice", "sk-balance-alice-key-0002"),
        ("acme/bob", "sk-balance-bob-key-00001"),
        ("globex/carol", "sk-balance-carol-key-0001"),
        ("globex/dave", "sk-balance-dave-key-00001"),
    ];
    let mut rids = Vec::new();
    for k in 0..6 {
        for (i, (_, key)) in callers.iter().enumerate() {
            let rid = format!("consumer-{i}-{k}");
            let auth = format!("Bearer {key}");
            // headers a header/ip hash would look at change on every request
            let user = format!("user-{k}");
            let xff = format!("10.0.0.{k}");
            chat_ok(
                &c,
                &gw,
                &rid,
                &[
                    ("authorization", &auth),
                    ("x-user", &user),
                    ("x-forwarded-for", &xff),
                ],
            )
            .await;
            rids.push(rid);
        }
    }
    let lines = log_lines(&gw, &rids).await;
    let mut by_consumer: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for k in 0..6 {
        for (i, (who, _)) in callers.iter().enumerate() {
            let l = &lines[&format!("consumer-{i}-{k}")];
            let logged = format!(
                "{}/{}",
                l.ai_log.tenant.as_deref().unwrap_or("?"),
                l.ai_log.consumer.as_deref().unwrap_or("?")
            );
            assert_eq!(logged, *who, "{l:?}");
            by_consumer.entry(who).or_default().insert(provider(l));
        }
    }
    eprintln!("chash consumer: {by_consumer:?}");
    for (who, ps) in &by_consumer {
        assert_eq!(ps.len(), 1, "{who} was served by {ps:?}");
    }
    let used: BTreeSet<&String> = by_consumer.values().flatten().collect();
    assert!(
        used.len() >= 2,
        "4 consumers from one client address all on {used:?}: the key is not the consumer"
    );
    assert_eq!(m.iter().map(MockUpstream::hits).sum::<u64>(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chash_on_a_cookie_sticks_to_the_session() {
    let m = three_mocks();
    let yaml = chash(None, false, &["p1", "p2", "p3"])
        .with_route("sticky", |r| r.chash("cookie:session"))
        .yaml();
    let gw = start_chash(&yaml, &m).await;
    let c = TestClient::new();
    const SESSIONS: usize = 20;
    let mut rids = Vec::new();
    for k in 0..3 {
        for s in 0..SESSIONS {
            let rid = format!("cookie-s{s}-{k}");
            // the session cookie among others, in a different place each time
            let cookie = match k {
                0 => format!("session=s-{s}"),
                1 => format!("theme=dark; session=s-{s}"),
                _ => format!("a=1; session=s-{s}; lang=en-{k}"),
            };
            chat_ok(&c, &gw, &rid, &[("cookie", &cookie), ("x-user", &rid)]).await;
            rids.push(rid);
        }
    }
    for k in 0..4 {
        let rid = format!("cookie-none-{k}");
        let other = format!("other=s-{k}");
        chat_ok(&c, &gw, &rid, &[("cookie", &other)]).await;
        rids.push(rid);
    }
    let lines = log_lines(&gw, &rids).await;
    let mut home: BTreeMap<usize, String> = BTreeMap::new();
    for s in 0..SESSIONS {
        let ps: BTreeSet<String> = (0..3)
            .map(|k| provider(&lines[&format!("cookie-s{s}-{k}")]))
            .collect();
        assert_eq!(ps.len(), 1, "session s-{s} was served by {ps:?}");
        home.insert(s, ps.into_iter().next().unwrap());
    }
    let shares = spread(&home);
    eprintln!("chash cookie:session, {SESSIONS} sessions x 3: {shares:?}");
    assert_eq!(shares.len(), 3, "{shares:?}");
    let none: BTreeSet<String> = (0..4)
        .map(|k| provider(&lines[&format!("cookie-none-{k}")]))
        .collect();
    assert_eq!(
        none.len(),
        1,
        "without the session cookie the client address is the key: {none:?}"
    );
}

// ------------------------------------------------------------------ least_busy

/// `r1` (header `x-pool: one`) only knows `u1`; `r2` balances `u1`/`u2` by
/// `least_busy`. Two replicas share the in-flight counts through Redis.
fn least_busy_config(redis_url: &str) -> String {
    let provider = |id: &str, token: &str| {
        Provider::openai(id, &format!("{{{{{id}}}}}"))
            .token(token)
            .timeouts(Timeouts::all(1000, 5000, 5000, 20_000))
    };
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(State::redis(redis_url).redis_key("key_prefix", "lb:"))
        .provider(provider("u1", "t1"))
        .provider(provider("u2", "t2"))
        .route(
            Route::new("r1", "/v1")
                .header("x-pool", &["one"])
                .upstream("u1"),
        )
        .route(
            Route::new("r2", "/v1")
                .upstream("u1")
                .upstream("u2")
                .balancer("least_busy"),
        )
        .access_log()
        .yaml()
}

/// Sum of the in-flight counts the fleet wrote for `provider` into Redis.
fn fleet_busy(redis: &RedisServer, provider: &str) -> i64 {
    let out = tokio::task::block_in_place(|| redis.cli(&["HGETALL", "lb:{busy}:inflight"]));
    let items: Vec<&str> = out.lines().map(str::trim).collect();
    items
        .chunks(2)
        .filter(|kv| kv.len() == 2 && kv[0].ends_with(&format!("|{provider}")))
        .map(|kv| kv[1].parse::<i64>().unwrap_or(0))
        .sum()
}

async fn wait_fleet_busy(redis: &RedisServer, provider: &str, want: i64) -> Duration {
    let t = Instant::now();
    loop {
        let got = fleet_busy(redis, provider);
        if got == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the fleet's in-flight count of {provider} in Redis stays {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_busy_counts_in_flight_requests_across_the_fleet() {
    let redis = start_redis().await;
    // streams of 10 events 300 ms apart: ~2.7 s each
    let slow = || {
        MockUpstream::start(MockOptions {
            chunk_delay_ms: 300,
            ..Default::default()
        })
    };
    let (u1, u2) = (slow(), slow());
    let start = || {
        Gateway::builder(&least_busy_config(&redis.url()))
            .var("u1", u1.base_url())
            .var("u2", u2.base_url())
            .start()
    };
    let (a, b) = tokio::join!(start(), start());
    let c = TestClient::new();

    // 1. three long streams through replica A on r1: u1 has 3 in flight
    let mut held = Vec::new();
    for i in 0..3 {
        let rid = format!("hold-{i}");
        let mut s = c
            .open_sse(
                &chat_url(&a),
                &chat_stream_body("gpt-4o", "keep u1 busy"),
                &[("x-pool", "one"), ("x-request-id", &rid)],
            )
            .await;
        assert_eq!(s.status, 200);
        let first = s.next_event().await.expect("first event of a held stream");
        held.push((s, first));
    }
    assert_eq!((u1.hits(), u2.hits()), (3, 0));
    let seen_in = wait_fleet_busy(&redis, "u1", 3).await;
    // B reads the others' counts on its next exchange (every 200 ms)
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. short requests through replica B on r2 avoid u1
    let mut rids = Vec::new();
    for i in 0..3 {
        let rid = format!("short-{i}");
        chat_ok(&c, &b, &rid, &[]).await;
        rids.push(rid);
    }
    let lines = log_lines(&b, &rids).await;
    let picked: Vec<String> = rids.iter().map(|r| provider(&lines[r])).collect();
    eprintln!(
        "least_busy: A's 3 streams on u1 in Redis after {seen_in:?}; B's short requests went to {picked:?}"
    );
    assert_eq!(
        picked,
        vec!["u2"; 3],
        "u1 has 3 in flight through replica A: B must send everything to u2"
    );
    assert_eq!((u1.hits(), u2.hits()), (3, 3));
    for l in lines.values() {
        assert_eq!(l.ai_log.route.as_deref(), Some("r2"), "{l:?}");
    }

    // the held streams finish normally; then the fleet is idle again
    for (s, first) in held {
        let s: SseResponse = s.collect_with(vec![first]).await;
        assert!(s.done && s.clean_end, "{}", s.raw);
    }
    wait_fleet_busy(&redis, "u1", 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. within one replica: 4 concurrent streams spread 2 / 2
    let mut open = Vec::new();
    let mut rids = Vec::new();
    for i in 0..4 {
        let rid = format!("spread-{i}");
        let mut s = c
            .open_sse(
                &chat_url(&b),
                &chat_stream_body("gpt-4o", "spread me"),
                &[("x-request-id", &rid)],
            )
            .await;
        assert_eq!(s.status, 200);
        let first = s.next_event().await.expect("first event");
        open.push((s, first));
        rids.push(rid);
    }
    let during = (u1.hits() - 3, u2.hits() - 3);
    for (s, first) in open {
        let s = s.collect_with(vec![first]).await;
        assert!(s.done && s.clean_end, "{}", s.raw);
    }
    let lines = log_lines(&b, &rids).await;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rids {
        *count.entry(provider(&lines[r])).or_insert(0) += 1;
    }
    eprintln!("least_busy: 4 concurrent streams through one replica: {count:?}");
    assert_eq!(during, (2, 2), "4 concurrent streams: 2 on u1, 2 on u2");
    assert_eq!(
        count,
        BTreeMap::from([("u1".to_string(), 2), ("u2".to_string(), 2)])
    );
}

// ------------------------------------------------------------------ streams

/// `prio`: p1 (priority 0) before p2 (priority 1). `rr`, `ch`, `lb`: q1 and q2 on
/// one priority, by each algorithm. Fallback on every reason.
fn cut_config() -> String {
    let all = [
        "http_429",
        "http_5xx",
        "http_401",
        "http_402",
        "http_403",
        "rate_limiting",
        "unhealthy",
        "connect_error",
        "timeout",
    ];
    let algo = |name: &str| {
        Route::new(name, "/v1")
            .header("x-algo", &[name])
            .fallback(Fallback::on(&all, 3))
    };
    let mut config = Config::new();
    for id in ["p1", "p2", "q1", "q2"] {
        config = config.provider(Provider::openai(id, &format!("{{{{{id}}}}}")).token("t"));
    }
    config
        .route(
            algo("prio")
                .upstream_priority("p1", 0)
                .upstream_priority("p2", 1),
        )
        .route(algo("rr").upstream("q1").upstream("q2"))
        .route(
            algo("ch")
                .upstream("q1")
                .upstream("q2")
                .chash("header:x-user"),
        )
        .route(
            algo("lb")
                .upstream("q1")
                .upstream("q2")
                .balancer("least_busy"),
        )
        .access_log()
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_never_retried_after_its_first_byte() {
    let [p1, p2, q1, q2] = [
        MockUpstream::start_default(),
        MockUpstream::start_default(),
        MockUpstream::start_default(),
        MockUpstream::start_default(),
    ];
    p1.cut_stream_after(2);
    q1.cut_stream_after(2);
    q2.cut_stream_after(2);
    let gw = Gateway::builder(&cut_config())
        .var("p1", p1.base_url())
        .var("p2", p2.base_url())
        .var("q1", q1.base_url())
        .var("q2", q2.base_url())
        .start()
        .await;
    let c = TestClient::new();
    let mut n = 0;
    for algo in ["prio", "prio", "rr", "rr", "ch", "ch", "lb", "lb"] {
        n += 1;
        let rid = format!("cut-{algo}-{n}");
        let user = format!("user-{n}");
        let total_before: u64 = [&p1, &p2, &q1, &q2].iter().map(|m| m.hits()).sum();
        let s = c
            .post_sse(
                &chat_url(&gw),
                &chat_stream_body("gpt-4o", "cut me"),
                &[("x-algo", algo), ("x-user", &user), ("x-request-id", &rid)],
            )
            .await;
        assert_eq!(s.status, 200, "{algo}: {}", s.raw);
        assert_eq!(
            s.events.len(),
            2,
            "{algo}: the two events before the cut, and no second stream: {}",
            s.raw
        );
        assert_eq!(
            s.events[0].json()["choices"][0]["delta"]["role"],
            "assistant",
            "{algo}: {}",
            s.raw
        );
        assert!(!s.done, "{algo}: {}", s.raw);
        assert!(
            s.error.is_some(),
            "{algo}: the client sees the cut as a broken body: {}",
            s.raw
        );
        let total_after: u64 = [&p1, &p2, &q1, &q2].iter().map(|m| m.hits()).sum();
        assert_eq!(
            total_after - total_before,
            1,
            "{algo}: one upstream request for a stream cut after its first byte"
        );
        let l = gw.wait_for_log_line(&rid, LOG_WAIT).await;
        assert_eq!(l.ai_log.attempts.len(), 1, "{algo}: {l:?}");
        assert_eq!(l.ai_log.attempts[0].status, Some(200), "{algo}: {l:?}");
        assert_eq!(l.ai_log.route.as_deref(), Some(algo), "{l:?}");
        if algo == "prio" {
            assert_eq!(provider(&l), "p1", "{l:?}");
        }
    }
    assert_eq!((p1.hits(), p2.hits()), (2, 0), "p2 never saw a request");
    assert_eq!(q1.hits() + q2.hits(), 6);

    // the other side of the rule: a stream that breaks before its first event
    // reached the client goes to the next instance, and the client sees one clean
    // stream
    p1.cut_stream_after(0);
    let s = c
        .post_sse(
            &chat_url(&gw),
            &chat_stream_body("gpt-4o", "cut before the first byte"),
            &[
                ("x-algo", "prio"),
                ("x-request-id", "cut-before-first-byte"),
            ],
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.raw);
    assert!(s.done && s.clean_end, "{}", s.raw);
    assert_eq!(s.content(), "word ".repeat(8), "{}", s.raw);
    assert_eq!((p1.hits(), p2.hits()), (3, 1));
    let l = gw
        .wait_for_log_line("cut-before-first-byte", LOG_WAIT)
        .await;
    assert_eq!(attempt_providers(&l), vec!["p1", "p2"], "{l:?}");
    assert_eq!(provider(&l), "p2", "{l:?}");
}

// ------------------------------------------------------------------ priority

/// p1 (priority 0, passive ejection after 2 failures for EJECT_S) and p2
/// (priority 1).
fn priority_config(state: Option<State>, eject_s: u64) -> String {
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::openai("p1", "{{p1}}")
                .token("t1")
                .passive(2, 30, eject_s),
        )
        .provider(Provider::openai("p2", "{{p2}}").token("t2"))
        .route(
            Route::new("prio", "/v1")
                .upstream_priority("p1", 0)
                .upstream_priority("p2", 1)
                .fallback(Fallback::on(
                    &["http_5xx", "unhealthy", "connect_error", "timeout"],
                    1,
                )),
        )
        .access_log();
    if let Some(state) = state {
        config = config.state(state);
    }
    config.yaml()
}

/// Sends `n` requests through `gw` tagged `tag-<i>` and returns their log lines
/// in order (every one must answer 200).
async fn burst(c: &TestClient, gw: &Gateway, tag: &str, n: usize) -> Vec<AccessLogLine> {
    let mut rids = Vec::new();
    for i in 0..n {
        let rid = format!("{tag}-{i}");
        chat_ok(c, gw, &rid, &[]).await;
        rids.push(rid);
    }
    let lines = log_lines(gw, &rids).await;
    rids.iter().map(|r| lines[r].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_priority_serves_only_while_the_first_is_ejected() {
    const EJECT: Duration = Duration::from_secs(2);
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    let gw = Gateway::builder(&priority_config(None, EJECT.as_secs()))
        .var("p1", p1.base_url())
        .var("p2", p2.base_url())
        .start()
        .await;
    let c = TestClient::new();

    // healthy: everything on p1
    let lines = burst(&c, &gw, "healthy", 10).await;
    assert!(lines.iter().all(|l| provider(l) == "p1"), "{lines:?}");
    assert_eq!((p1.hits(), p2.hits()), (10, 0));

    // p1 fails: two requests fall back (client sees 200), then p1 is ejected
    p1.fail_with(503);
    let mut lines = burst(&c, &gw, "failing", 2).await;
    let ejected_at = Instant::now();
    lines.extend(burst(&c, &gw, "ejected", 8).await);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(provider(l), "p2", "{l:?}");
        assert_eq!(l.response_code, 200, "{l:?}");
        let want: Vec<&str> = if i < 2 { vec!["p1", "p2"] } else { vec!["p2"] };
        assert_eq!(attempt_providers(l), want, "request {i}: {l:?}");
        if i < 2 {
            assert_eq!(l.ai_log.attempts[0].status, Some(503), "{l:?}");
            assert_eq!(
                l.ai_log.attempts[0].reason.as_deref(),
                Some("http_5xx"),
                "{l:?}"
            );
        }
    }
    assert_eq!((p1.hits(), p2.hits()), (12, 10), "failures: 2 then ejected");

    // p1 is fine again, but still ejected: p2 keeps serving
    p1.set_normal();
    let lines = burst(&c, &gw, "still-out", 5).await;
    assert!(
        ejected_at.elapsed() < EJECT - Duration::from_millis(300),
        "too slow to observe the ejection ({:?})",
        ejected_at.elapsed()
    );
    assert!(lines.iter().all(|l| provider(l) == "p2"), "{lines:?}");
    assert_eq!(p1.hits(), 12, "an ejected p1 gets no traffic");

    // once ejection_s is over, p1 takes the traffic back
    let mut i = 0;
    let back_after = loop {
        let rid = format!("return-{i}");
        i += 1;
        chat_ok(&c, &gw, &rid, &[]).await;
        let l = gw.wait_for_log_line(&rid, LOG_WAIT).await;
        if provider(&l) == "p1" {
            break ejected_at.elapsed();
        }
        assert!(
            ejected_at.elapsed() < EJECT + Duration::from_secs(2),
            "p1 not back {:?} after its ejection of {EJECT:?}",
            ejected_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("priority: p1 ejected after 2 failures, back after {back_after:?} (ejection_s 2)");
    assert!(
        back_after >= EJECT - Duration::from_millis(200),
        "p1 back too early: {back_after:?}"
    );
    let p2_hits = p2.hits();
    let lines = burst(&c, &gw, "recovered", 10).await;
    assert!(lines.iter().all(|l| provider(l) == "p1"), "{lines:?}");
    assert_eq!(p2.hits(), p2_hits, "p2 idle again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejection_through_one_replica_steers_the_fleet() {
    const EJECT: Duration = Duration::from_secs(3);
    let redis = start_redis().await;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    let state = State::redis(&redis.url())
        .redis_key("key_prefix", "prio:")
        .cache_ttl_ms(500);
    let yaml = priority_config(Some(state), EJECT.as_secs());
    let start = || {
        Gateway::builder(&yaml)
            .var("p1", p1.base_url())
            .var("p2", p2.base_url())
            .start()
    };
    let (a, b) = tokio::join!(start(), start());
    let c = TestClient::new();

    let lines = burst(&c, &a, "a-healthy", 5).await;
    assert!(lines.iter().all(|l| provider(l) == "p1"), "{lines:?}");
    let lines = burst(&c, &b, "b-healthy", 5).await;
    assert!(lines.iter().all(|l| provider(l) == "p1"), "{lines:?}");

    // two failures through A eject p1 for the fleet
    p1.fail_with(503);
    burst(&c, &a, "a-failing", 2).await;
    let failed_at = Instant::now();
    assert_eq!(p1.hits(), 12);

    // B (which never saw p1 fail) stops sending to p1 without a failure of its own
    let mut i = 0;
    let b_steered = loop {
        let rid = format!("b-probe-{i}");
        i += 1;
        chat_ok(&c, &b, &rid, &[]).await;
        let l = b.wait_for_log_line(&rid, LOG_WAIT).await;
        assert_eq!(provider(&l), "p2", "{l:?}");
        if attempt_providers(&l) == vec!["p2"] {
            break failed_at.elapsed();
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(2),
            "replica B still tries p1 {:?} after A ejected it",
            failed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let p1_hits = p1.hits();
    for (gw, tag) in [(&a, "a-out"), (&b, "b-out")] {
        let lines = burst(&c, gw, tag, 5).await;
        for l in &lines {
            assert_eq!(attempt_providers(l), vec!["p2"], "{l:?}");
        }
    }
    assert_eq!(p1.hits(), p1_hits, "no replica sends to an ejected p1");
    eprintln!(
        "fleet ejection: B avoided p1 {b_steered:?} after A's second failure \
         ({} of B's requests still tried p1)",
        p1_hits - 12
    );

    // p1 recovers: after the ejection both replicas use it again
    p1.set_normal();
    for (gw, tag) in [(&a, "a-back"), (&b, "b-back")] {
        let mut i = 0;
        loop {
            let rid = format!("{tag}-{i}");
            i += 1;
            chat_ok(&c, gw, &rid, &[]).await;
            if provider(&gw.wait_for_log_line(&rid, LOG_WAIT).await) == "p1" {
                break;
            }
            assert!(
                failed_at.elapsed() < EJECT + Duration::from_secs(3),
                "{tag}: p1 not back {:?} after the ejection",
                failed_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "fleet ejection: p1 back on both replicas {:?} after the failures (ejection_s {})",
        failed_at.elapsed(),
        EJECT.as_secs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_busy_forgets_a_replica_that_died() {
    let redis = start_redis().await;
    let slow = || {
        MockUpstream::start(MockOptions {
            chunk_delay_ms: 1000,
            ..Default::default()
        })
    };
    let (u1, u2) = (slow(), slow());
    let start = || {
        Gateway::builder(&least_busy_config(&redis.url()))
            .var("u1", u1.base_url())
            .var("u2", u2.base_url())
            .start()
    };
    let (mut a, b) = tokio::join!(start(), start());
    let c = TestClient::new();
    let mut held = Vec::new();
    for i in 0..3 {
        let rid = format!("hold-{i}");
        let mut s = c
            .open_sse(
                &chat_url(&a),
                &chat_stream_body("gpt-4o", "keep u1 busy"),
                &[("x-pool", "one"), ("x-request-id", &rid)],
            )
            .await;
        assert_eq!(s.status, 200);
        let first = s.next_event().await.expect("first event of a held stream");
        held.push((s, first));
    }
    wait_fleet_busy(&redis, "u1", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    let killed = Instant::now();
    drop(held);
    // B keeps avoiding u1 until A's counts are stale (2 s), then u1 is used again
    let mut i = 0;
    let back = loop {
        let rid = format!("after-kill-{i}");
        i += 1;
        chat_ok(&c, &b, &rid, &[]).await;
        let l = b.wait_for_log_line(&rid, LOG_WAIT).await;
        if provider(&l) == "u1" {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(6),
            "u1 still avoided {:?} after the replica holding its requests died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("least_busy: a dead replica's counts stopped counting after {back:?}");
    assert!(back >= Duration::from_millis(1500), "{back:?}");
}
