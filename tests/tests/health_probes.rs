//! Upstream health shared through Redis, with real processes: a `redis-server`,
//! several gateway replicas and mock OpenAI upstreams.
//!
//! * the probe lease: three replicas probe a provider about once per interval
//!   between them (not once each), and the probing moves to another replica
//!   when the one holding the lease is SIGKILLed;
//! * active checks eject a provider that keeps failing its probes (`source:
//!   active`, on every replica, and its traffic goes to the other provider),
//!   and bring it back once the probes succeed again;
//! * probes end a passive ejection (60 s) after `healthy.successes` good probes;
//! * with Redis stopped, a replica's own outlier detection steers traffic away
//!   from a failing provider and `/admin/health` answers with its local view.
//!
//! Every test has its own Redis, mock upstreams and gateways. The tests count
//! probes per second, so they take a file-wide lock and run one after another.

use gateway_tests::client::{chat_body, HttpResponse, TestClient};
use gateway_tests::config::{Config, Fallback, Provider, Route, Server, State, Timeouts};
use gateway_tests::harness::{health_row, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::{counter, metric};
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::redis::{start_redis, stop_redis, RedisServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

/// One test at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Probe interval of every test (`checks.active.interval_s`).
const INTERVAL: Duration = Duration::from_secs(1);

/// `state:` on `redis`; mirrors refreshed every 200 ms.
fn redis_state(redis: &RedisServer) -> State {
    State::redis(&redis.url())
        .redis_key("key_prefix", "hp:")
        .redis_key("timeout_ms", 300)
        .cache_ttl_ms(200)
}

/// Provider `id` at `mock` (token `sk-<id>`).
fn provider(id: &str, mock: &MockUpstream) -> Provider {
    Provider::openai(id, &mock.base_url())
        .token(&format!("sk-{id}"))
        .timeouts(Timeouts::all(500, 2000, 2000, 10_000))
}

/// `checks.active` every [`INTERVAL`] on `/models`, 200 healthy, 5xx unhealthy.
fn active(successes: u32, failures: u32) -> Value {
    json!({ "active": {
        "http_path": "/models",
        "interval_s": INTERVAL.as_secs(),
        "timeout_ms": 500,
        "healthy": { "successes": successes, "http_statuses": [200] },
        "unhealthy": { "failures": failures, "http_statuses": [500, 502, 503, 504] },
    }})
}

/// Route `chat` on `/v1` to `upstreams`: (provider, priority); steering by
/// health needs `unhealthy` in `fallback.on`.
fn config(state: State, providers: Vec<Provider>, upstreams: &[(&str, Option<i32>)]) -> String {
    let mut route = Route::new("chat", "/v1").fallback(Fallback::on(
        &["unhealthy", "http_5xx", "connect_error", "timeout"],
        1,
    ));
    for (p, priority) in upstreams {
        route = match priority {
            Some(n) => route.upstream_priority(p, *n),
            None => route.upstream(p),
        };
    }
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(state)
        .route(route)
        .access_log();
    for p in providers {
        config = config.provider(p);
    }
    config.yaml()
}

/// `n` replicas of `yaml`, started concurrently.
async fn fleet(yaml: &str, n: usize) -> Vec<Gateway> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(Gateway::builder(yaml).start());
    }
    let mut gws = Vec::with_capacity(n);
    while let Some(g) = set.join_next().await {
        gws.push(g.expect("gateway start task"));
    }
    gws
}

/// stderr of every replica, labelled (for failure messages).
fn stderr_of(gws: &[Gateway]) -> String {
    gws.iter()
        .enumerate()
        .map(|(i, g)| format!("--- stderr of replica {i}:\n{}\n", g.stderr()))
        .collect()
}

// ------------------------------------------------------------------ observing

/// Requests at `mock` other than probes (`GET /v1/models`).
fn data_hits(mock: &MockUpstream) -> u64 {
    mock.hits() - mock.model_hits()
}

/// `gateway_health_probes_total` of each replica.
async fn probes_by_replica(gws: &[Gateway]) -> Vec<u64> {
    let mut out = Vec::with_capacity(gws.len());
    for g in gws {
        out.push(counter(g, "gateway_health_probes_total").await);
    }
    out
}

/// The counter `name` summed over the replicas (each must have it).
async fn metric_sum(gws: &[Gateway], name: &str) -> u64 {
    let mut sum = 0;
    for g in gws {
        sum += counter(g, name).await;
    }
    sum
}

/// Polls `/admin/health` of every replica until `ok` holds for the provider's
/// row on all of them; returns how long that took (from `since`). Panics with
/// the rows after `within`.
async fn wait_rows(
    c: &TestClient,
    gws: &[Gateway],
    provider: &str,
    since: Instant,
    within: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Duration {
    loop {
        let mut rows = Vec::with_capacity(gws.len());
        for g in gws {
            rows.push(health_row(c, g, provider).await);
        }
        if rows.iter().all(&ok) {
            return since.elapsed();
        }
        if since.elapsed() > within {
            let rows: Vec<String> = rows.iter().map(Value::to_string).collect();
            panic!(
                "{what}: not so on every replica within {within:?}; rows:\n{}\n{}",
                rows.join("\n"),
                stderr_of(gws)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seconds from now until the RFC 3339 time `v` (negative: past).
fn secs_until(v: &Value) -> f64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"));
    let t = humantime::parse_rfc3339_weak(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

async fn chat(c: &TestClient, gw: &Gateway) -> HttpResponse {
    c.post_json(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("gpt-4o", "are you healthy?"),
    )
    .await
}

/// Sends `n` chats through `gw`; every one must answer 200.
async fn chats_ok(c: &TestClient, gw: &Gateway, n: usize, what: &str) {
    for i in 0..n {
        let r = chat(c, gw).await;
        assert_eq!(r.status, 200, "{what}: request {i}: {}", r.text());
    }
}

/// `model_hits` of `mock` after `span`, minus before.
async fn probes_during(mock: &MockUpstream, span: Duration) -> u64 {
    let before = mock.model_hits();
    tokio::time::sleep(span).await;
    mock.model_hits() - before
}

// ------------------------------------------------------------------ tests

/// Three replicas share one lease per provider: the upstream sees about one
/// probe per interval, not three, and the replicas' probe counters add up to
/// what the upstream saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_probes_per_interval() {
    let _serial = SERIAL.lock().await;
    let redis = start_redis().await;
    let up = MockUpstream::start_default();
    let yaml = config(
        redis_state(&redis),
        vec![provider("p1", &up).checks(active(2, 3))],
        &[("p1", None)],
    );
    let started = Instant::now();
    let gws = fleet(&yaml, 3).await;
    // probes begin with the replicas, not an interval later
    while up.model_hits() == 0 {
        assert!(
            started.elapsed() < INTERVAL * 2,
            "no probe {:?} after the replicas started\n{}",
            started.elapsed(),
            stderr_of(&gws)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "first probe {:?} after starting the replicas",
        started.elapsed()
    );
    // every replica has been up for a while
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let span = Duration::from_secs(5);
    let before = probes_by_replica(&gws).await;
    let probes = probes_during(&up, span).await;
    let after = probes_by_replica(&gws).await;
    let by_replica: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!(
        "probes in {span:?}: {probes} at the upstream; by replica (counters): {by_replica:?}"
    );
    let n = span.as_secs();
    assert!(
        (n - 1..=n + 2).contains(&probes),
        "{probes} probes in {span:?} with a {INTERVAL:?} interval on 3 replicas (expected about {n}; \
         unsynchronised replicas would send {}); by replica {by_replica:?}\n{}",
        3 * n,
        stderr_of(&gws)
    );

    // the counters add up to what the upstream saw (a probe is counted just
    // before it is sent)
    let seen_before = up.model_hits();
    let sum: u64 = probes_by_replica(&gws).await.iter().sum();
    let seen_after = up.model_hits();
    eprintln!(
        "since start: {seen_before}..{seen_after} probes at the upstream, counters sum {sum}"
    );
    assert!(
        seen_before <= sum && sum <= seen_after + 1,
        "sum of gateway_health_probes_total {sum}, upstream saw {seen_before}..{seen_after}"
    );
    assert_eq!(
        metric_sum(&gws, "gateway_health_probe_failures_total").await,
        0,
        "every probe answered 200"
    );
    assert_eq!(data_hits(&up), 0, "only probes reached the upstream");

    // without Redis nobody can hold the lease: each replica probes on its own
    let _redis = stop_redis(redis).await;
    tokio::time::sleep(INTERVAL + Duration::from_millis(500)).await;
    let span = Duration::from_secs(3);
    let before = probes_by_replica(&gws).await;
    let probes = probes_during(&up, span).await;
    let after = probes_by_replica(&gws).await;
    let by_replica: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("Redis down: {probes} probes in {span:?}; by replica {by_replica:?}");
    let n = span.as_secs();
    assert!(
        by_replica.iter().all(|&k| (n - 1..=n + 1).contains(&k)),
        "Redis down: every replica should probe about {n} times in {span:?}: {by_replica:?}"
    );
    assert!(
        (3 * n - 2..=3 * n + 3).contains(&probes),
        "Redis down: {probes} probes in {span:?} from 3 replicas; by replica {by_replica:?}"
    );
}

/// The replica holding the lease dies (SIGKILL, lease not released): after at
/// most an interval another replica takes it, and probing goes on at about
/// one per interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_moves_when_the_prober_dies() {
    let _serial = SERIAL.lock().await;
    let redis = start_redis().await;
    let up = MockUpstream::start_default();
    let yaml = config(
        redis_state(&redis),
        vec![provider("p1", &up).checks(active(2, 3))],
        &[("p1", None)],
    );
    let mut gws = fleet(&yaml, 3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // who probes? the replica whose counter moved with the upstream's count;
    // caught right after its probe, it holds the lease for almost an interval
    let lease_key = "hp:{h:p1}:probe";
    let mut tries = 0;
    let (prober, probed_at, holder) = loop {
        tries += 1;
        assert!(
            tries <= 10,
            "could not tell which replica probes\n{}",
            stderr_of(&gws)
        );
        let before = probes_by_replica(&gws).await;
        let seen = up.model_hits();
        let t = Instant::now();
        while up.model_hits() == seen {
            assert!(
                t.elapsed() < INTERVAL * 3,
                "no probe for {:?}\n{}",
                t.elapsed(),
                stderr_of(&gws)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let probed_at = Instant::now();
        let after = probes_by_replica(&gws).await;
        let grew: Vec<usize> = (0..gws.len()).filter(|&i| after[i] > before[i]).collect();
        let holder = tokio::task::block_in_place(|| redis.cli(&["GET", lease_key]));
        if grew.len() == 1 && after[grew[0]] - before[grew[0]] == 1 && !holder.is_empty() {
            break (grew[0], probed_at, holder);
        }
    };
    eprintln!("replica {prober} probes (lease held by {holder:?}); killing it");

    // SIGKILL: its lease stays in Redis until it expires
    let last = up.model_hits();
    gws[prober].kill();
    let killed_after = probed_at.elapsed();
    let dead = gws.remove(prober);
    loop {
        if up.model_hits() > last {
            break;
        }
        assert!(
            probed_at.elapsed() < INTERVAL * 4,
            "no probe within {:?} of the dead replica's last one\n{}",
            INTERVAL * 4,
            stderr_of(&gws)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gap = probed_at.elapsed();
    let new_holder = tokio::task::block_in_place(|| redis.cli(&["GET", lease_key]));
    eprintln!(
        "killed {killed_after:?} after its probe; next probe {gap:?} after that one, lease now held by {new_holder:?}"
    );
    assert!(
        gap >= INTERVAL - Duration::from_millis(100),
        "a probe {gap:?} after the last one: the dead replica's lease did not hold"
    );
    assert!(
        gap < INTERVAL * 2,
        "the lease took {gap:?} to move (interval {INTERVAL:?})"
    );
    assert!(
        !new_holder.is_empty() && new_holder != holder,
        "lease holder {holder:?} -> {new_holder:?}"
    );

    // probing goes on at about one per interval, by the survivors (counted
    // from mid-interval, not right after a probe)
    tokio::time::sleep(INTERVAL / 2).await;
    let span = Duration::from_secs(5);
    let before = probes_by_replica(&gws).await;
    let probes = probes_during(&up, span).await;
    let after = probes_by_replica(&gws).await;
    let by_replica: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("after the kill: {probes} probes in {span:?}; by surviving replica {by_replica:?}");
    let n = span.as_secs();
    assert!(
        (n - 1..=n + 2).contains(&probes),
        "{probes} probes in {span:?} after the prober died (expected about {n}); by replica {by_replica:?}\n{}",
        stderr_of(&gws)
    );
    let counted: u64 = by_replica.iter().sum();
    assert!(
        counted.abs_diff(probes) <= 1,
        "survivors counted {counted} probes, the upstream saw {probes}"
    );
    drop(dead);
}

/// Failing probes eject a provider for the whole fleet (`source: active`), its
/// traffic goes to the other provider of the route on every replica, and good
/// probes bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_ejection_and_recovery() {
    let _serial = SERIAL.lock().await;
    let redis = start_redis().await;
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    let yaml = config(
        redis_state(&redis),
        vec![provider("p1", &a).checks(active(2, 2)), provider("p2", &b)],
        &[("p1", None), ("p2", None)],
    );
    let gws = fleet(&yaml, 3).await;
    let c = TestClient::new();

    // healthy: round-robin over both
    for g in &gws {
        let (a0, b0) = (data_hits(&a), data_hits(&b));
        chats_ok(&c, g, 4, "both healthy").await;
        assert_eq!(
            (data_hits(&a) - a0, data_hits(&b) - b0),
            (2, 2),
            "round-robin over two healthy providers"
        );
    }
    wait_rows(
        &c,
        &gws,
        "p1",
        Instant::now(),
        Duration::from_secs(3),
        "p1 healthy at first",
        |r| r["healthy"] == true,
    )
    .await;

    // failing probes: out after `unhealthy.failures` (2) of them
    a.fail_with(500);
    let t = Instant::now();
    let took = wait_rows(
        &c,
        &gws,
        "p1",
        t,
        INTERVAL * 5,
        "p1 ejected by probes",
        |r| r["healthy"] == false && r["source"] == "active",
    )
    .await;
    eprintln!("ejected (source active) on every replica {took:?} after the upstream began to fail");
    assert!(
        took <= INTERVAL * 3 + Duration::from_millis(500),
        "ejection took {took:?}"
    );
    let row = health_row(&c, &gws[0], "p1").await;
    assert!(row["consecutive_failures"].as_u64() >= Some(2), "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{row}"
    );
    assert_eq!(row["active"], true, "{row}");
    assert_eq!(row["view"], "fleet", "{row}");
    // held for 3 intervals, renewed by each failed probe
    let left = secs_until(&row["ejected_until"]);
    assert!(
        left > 0.0 && left <= 3.5,
        "ejected_until in {left} s: {row}"
    );
    let failed = metric_sum(&gws, "gateway_health_probe_failures_total").await;
    assert!(failed >= 2, "{failed} failed probes counted");
    let first_until = row["ejected_until"].clone();

    // every replica's mirror knows: traffic only to p2
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a0 = data_hits(&a);
    for (i, g) in gws.iter().enumerate() {
        let b0 = data_hits(&b);
        chats_ok(&c, g, 6, "p1 ejected").await;
        assert_eq!(data_hits(&b) - b0, 6, "replica {i}: all to p2");
        assert_eq!(
            data_hits(&a),
            a0,
            "replica {i} sent traffic to the ejected p1"
        );
    }
    // still out past the first hold (3 intervals): each failing probe renews it
    let since_ejection = t.elapsed() - took;
    tokio::time::sleep((INTERVAL * 3 + Duration::from_millis(500)).saturating_sub(since_ejection))
        .await;
    let row = health_row(&c, &gws[1], "p1").await;
    assert_eq!(row["healthy"], false, "{row}");
    assert_eq!(row["source"], "active", "{row}");
    let renewed = secs_until(&row["ejected_until"]) - secs_until(&first_until);
    eprintln!("hold renewed by {renewed:.2} s while the probes kept failing");
    assert!(
        renewed >= 2.0,
        "ejected_until moved {renewed} s ({first_until} -> {}) in more than 3 intervals of failing probes",
        row["ejected_until"]
    );

    // good probes again: back after `healthy.successes` (2) of them
    a.set_normal();
    let t = Instant::now();
    let took = wait_rows(
        &c,
        &gws,
        "p1",
        t,
        INTERVAL * 5,
        "p1 back after good probes",
        |r| r["healthy"] == true && r["ejected_until"].is_null(),
    )
    .await;
    eprintln!("healthy again on every replica {took:?} after the upstream recovered");
    assert!(
        took <= INTERVAL * 3 + Duration::from_millis(500),
        "recovery took {took:?}"
    );

    // and gets traffic again from every replica
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, g) in gws.iter().enumerate() {
        let (a0, b0) = (data_hits(&a), data_hits(&b));
        chats_ok(&c, g, 4, "p1 back").await;
        assert_eq!(
            (data_hits(&a) - a0, data_hits(&b) - b0),
            (2, 2),
            "replica {i}: round-robin over both again"
        );
    }
    // one ejection (renewing the hold is not another) and one recovery, each
    // counted by the one replica whose report made it: the fleet's counters
    // add up to exactly one each (read after the traffic above, so the
    // reporter's count is in)
    let ejections = metric_sum(&gws, "gateway_upstream_ejections_total").await;
    let recoveries = metric_sum(&gws, "gateway_upstream_recoveries_total").await;
    assert_eq!(
        (ejections, recoveries),
        (1, 1),
        "fleet counters (ejections, recoveries)"
    );
}

/// A passive ejection (60 s) ends as soon as `healthy.successes` probes in a
/// row succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_end_a_passive_ejection() {
    let _serial = SERIAL.lock().await;
    let redis = start_redis().await;
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    // probes alone would need 10 failures to eject: the ejection is passive
    let p1 = provider("p1", &a).passive(2, 10, 60).checks(active(2, 10));
    let yaml = config(
        redis_state(&redis),
        vec![p1, provider("p2", &b)],
        &[("p1", Some(0)), ("p2", Some(1))],
    );
    let gws = fleet(&yaml, 2).await;
    let c = TestClient::new();
    chats_ok(&c, &gws[0], 2, "healthy").await;
    assert_eq!(data_hits(&a), 2, "p1 is first while healthy");

    // two failing requests (each answered by p2) eject p1 for 60 s
    a.fail_with(500);
    let a0 = data_hits(&a);
    chats_ok(&c, &gws[0], 2, "p1 failing").await;
    assert_eq!(data_hits(&a) - a0, 2, "both tried p1 first");
    let t = Instant::now();
    wait_rows(
        &c,
        &gws,
        "p1",
        t,
        Duration::from_secs(3),
        "p1 ejected by two failures",
        |r| r["healthy"] == false && r["source"] == "passive",
    )
    .await;
    let row = health_row(&c, &gws[1], "p1").await;
    let left = secs_until(&row["ejected_until"]);
    assert!(left > 55.0 && left <= 60.5, "ejected for {left} s: {row}");
    assert_eq!(row["ejections_in_a_row"], 1, "{row}");
    // mirrors updated: no traffic to p1 from either replica
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a0 = data_hits(&a);
    for g in &gws {
        chats_ok(&c, g, 3, "p1 ejected").await;
    }
    assert_eq!(data_hits(&a), a0, "traffic went to the ejected p1");

    // the upstream recovers: two good probes and it is back, long before 60 s
    a.set_normal();
    let t = Instant::now();
    let took = wait_rows(
        &c,
        &gws,
        "p1",
        t,
        Duration::from_secs(8),
        "p1 back after good probes",
        |r| r["healthy"] == true,
    )
    .await;
    eprintln!("passive ejection (60 s) ended by probes {took:?} after the upstream recovered");
    assert!(took <= Duration::from_secs(4), "took {took:?}");

    // traffic again, on both replicas
    loop {
        let a0 = data_hits(&a);
        let mut all = true;
        for g in &gws {
            let before = data_hits(&a);
            chats_ok(&c, g, 1, "p1 back").await;
            all &= data_hits(&a) > before;
        }
        if all {
            eprintln!(
                "p1 took traffic on both replicas {:?} after the upstream recovered",
                t.elapsed()
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "p1 healthy but not taking traffic on every replica ({} of the last requests)\n{}",
            data_hits(&a) - a0,
            stderr_of(&gws)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis down: each replica's own outlier detection takes over. Replica A sees
/// p1 fail three times, stops sending to it, and says so in `/admin/health`
/// (`view: replica`, `local_ejected_until`); replica B saw nothing and still
/// counts p1 healthy. Clients get 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_outlier_detection_while_redis_is_down() {
    let _serial = SERIAL.lock().await;
    let redis = start_redis().await;
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    let yaml = config(
        redis_state(&redis),
        vec![provider("p1", &a).passive(3, 30, 30), provider("p2", &b)],
        &[("p1", None), ("p2", None)],
    );
    let gws = fleet(&yaml, 2).await;
    let (ga, gb) = (&gws[0], &gws[1]);
    let c = TestClient::new();
    chats_ok(&c, ga, 2, "Redis up").await;
    assert_eq!((data_hits(&a), data_hits(&b)), (1, 1), "round-robin");
    assert_eq!(metric(ga, "gateway_state_degraded").await, 0.0);

    let _redis = stop_redis(redis).await;
    // the monitor notices within about half a second
    let t = Instant::now();
    while metric(ga, "gateway_state_degraded").await != 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "replica A not degraded 5 s after Redis stopped\n{}",
            stderr_of(&gws)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("replica A degraded {:?} after Redis stopped", t.elapsed());

    a.fail_with(503);
    let a0 = a.hits();
    let mut sent = 0;
    while a.hits() - a0 < 3 {
        let r = chat(&c, ga).await;
        assert_eq!(r.status, 200, "p2 answers when p1 fails: {}", r.text());
        sent += 1;
        assert!(
            sent <= 10,
            "p1 tried {} times in {sent} requests",
            a.hits() - a0
        );
    }
    eprintln!("p1 failed 3 times within {sent} requests through replica A");
    let seen = a.hits();
    let b0 = data_hits(&b);
    for i in 0..20 {
        let r = chat(&c, ga).await;
        assert_eq!(
            r.status,
            200,
            "request {i} after the local ejection: {}",
            r.text()
        );
    }
    assert_eq!(
        a.hits(),
        seen,
        "replica A kept sending to p1 after 3 failures (passive.failures: 3) with Redis down"
    );
    assert_eq!(data_hits(&b) - b0, 20, "p2 took every request");

    let row = health_row(&c, ga, "p1").await;
    assert_eq!(row["view"], "replica", "{row}");
    assert_eq!(row["healthy"], false, "{row}");
    assert_eq!(row["source"], "passive", "{row}");
    assert_eq!(row["consecutive_failures"], 3, "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{row}"
    );
    // set; its value is checked by `replica_view_times_are_in_the_future`
    assert!(row["local_ejected_until"].is_string(), "{row}");
    assert!(row["ejected_until"].is_string(), "{row}");
    let p2 = health_row(&c, ga, "p2").await;
    assert_eq!(p2["healthy"], true, "{p2}");
    assert!(p2["local_ejected_until"].is_null(), "{p2}");

    // replica B saw no failure: p1 is healthy as far as it knows
    let row = health_row(&c, gb, "p1").await;
    assert_eq!(row["view"], "replica", "{row}");
    assert_eq!(row["healthy"], true, "{row}");
    assert!(row["local_ejected_until"].is_null(), "{row}");
    assert_eq!(metric(ga, "gateway_state_degraded").await, 1.0);
}

/// `/admin/health` turns this replica's clock into wall-clock time for
/// `local_ejected_until` (any view) and `ejected_until` (view `replica`): a
/// 30 s ejection must show as about 30 s from now. The fleet's own
/// `ejected_until` (Redis's clock) is the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_view_times_are_in_the_future() {
    let _serial = SERIAL.lock().await;
    let redis = start_redis().await;
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    let yaml = config(
        redis_state(&redis),
        vec![provider("p1", &a).passive(1, 30, 30), provider("p2", &b)],
        &[("p1", Some(0)), ("p2", Some(1))],
    );
    let gws = fleet(&yaml, 1).await;
    let gw = &gws[0];
    let c = TestClient::new();
    a.fail_with(503);
    chats_ok(&c, gw, 1, "p1 fails once, p2 answers").await;
    wait_rows(
        &c,
        &gws,
        "p1",
        Instant::now(),
        Duration::from_secs(3),
        "p1 ejected",
        |r| r["healthy"] == false && r["local_ejected_until"].is_string(),
    )
    .await;

    // Redis up: the fleet's time is right, this replica's own must agree
    let row = health_row(&c, gw, "p1").await;
    assert_eq!(row["view"], "fleet", "{row}");
    let fleet = secs_until(&row["ejected_until"]);
    assert!(fleet > 25.0 && fleet <= 30.5, "fleet: {fleet} s: {row}");
    let local = secs_until(&row["local_ejected_until"]);
    assert!(
        (local - fleet).abs() < 2.0,
        "local_ejected_until in {local} s, the fleet's ejected_until in {fleet} s: {row}"
    );

    // Redis down: the replica's view
    let _redis = stop_redis(redis).await;
    let row = health_row(&c, gw, "p1").await;
    assert_eq!(row["view"], "replica", "{row}");
    for field in ["ejected_until", "local_ejected_until"] {
        let left = secs_until(&row[field]);
        assert!(left > 20.0 && left <= 30.5, "{field} in {left} s: {row}");
    }
}
