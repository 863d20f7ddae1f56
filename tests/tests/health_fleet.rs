//! Upstream health shared by the fleet, with real processes: three gateway
//! replicas share one real Redis (a standalone `redis-server`, or a 3-node Redis
//! Cluster) in front of real mock upstreams.
//!
//! * an upstream failing as seen through replica A only is ejected for the whole
//!   fleet: B and C stop sending to it within `cache_ttl_ms` (standalone and
//!   cluster), and the change notification gets there before the periodic
//!   refresh; `GET /admin/health` shows why, and no secret;
//! * recovery: once `ejection_s` has passed, every replica sends to it again; a
//!   repeat ejection lasts twice as long;
//! * one refused api token out of three is taken out alone: requests rotate over
//!   the other two, the provider stays healthy;
//! * every instance ejected: they are tried anyway, least recently ejected first
//!   (`ai_log.panic_mode`, `gateway_upstream_panic_total`);
//! * `ai_log.attempts` records a fallback attempt by attempt;
//! * what counts: a success resets the count; timeouts and refused connections
//!   count like 5xx; without `passive` nothing is counted;
//! * a change that comes without its notification still reaches every replica
//!   within `cache_ttl_ms` (the periodic re-read).
//!
//! Every test has its own Redis, mock upstreams and gateways. The tests take a
//! file-wide lock and run one after another: their timings (`cache_ttl_ms`,
//! `ejection_s`) must not depend on what the other tests do to the CPU meanwhile.

use gateway_tests::client::{chat_body, HttpResponse, TestClient};
use gateway_tests::config::{Config, Fallback, Provider, Route, Server, Timeouts};
use gateway_tests::harness::{admin, closed_port_url, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::redis::SharedRedis;
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

const REPLICAS: usize = 3;
const LOG_WAIT: Duration = Duration::from_secs(5);

/// One test at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two providers `p1` and `p2` at `p1_url`, `p2_url` (one api token each)
/// behind one route, weighted round-robin, falling back on 5xx and unhealthy
/// instances; `passive` (failures, window_s, ejection_s) for both when given;
/// `p2` at `p2_priority` (0: the same as `p1`).
fn two_providers(
    p1_url: &str,
    p2_url: &str,
    passive: Option<(u32, u64, u64)>,
    p2_priority: i32,
) -> Config {
    let provider = |id: &str, url: &str, token: &str| {
        let p = Provider::openai(id, url)
            .token(token)
            .timeouts(Timeouts::all(1000, 5000, 5000, 10_000));
        match passive {
            Some((failures, window_s, ejection_s)) => p.passive(failures, window_s, ejection_s),
            None => p,
        }
    };
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(provider("p1", p1_url, P1_SECRET))
        .provider(provider("p2", p2_url, P2_SECRET))
        .route(
            Route::new("chat", "/v1")
                .upstream_at("p1", 0, 1)
                .upstream_at("p2", p2_priority, 1)
                .balancer("roundrobin")
                .fallback(Fallback::on(&["http_5xx", "unhealthy"], 1)),
        )
        .access_log()
}

/// One provider `up` at `url` with three api tokens (the middle one is the bad
/// one).
fn three_tokens(url: &str) -> Config {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::openai("up", url)
                .tokens(&[GOOD0, BAD1, GOOD2])
                .timeouts(Timeouts::all(1000, 5000, 5000, 10_000))
                .passive(2, 10, 30),
        )
        .route(
            Route::new("chat", "/v1")
                .upstream("up")
                .fallback(Fallback::on(&["unhealthy"], 0)),
        )
        .access_log()
}

const P1_SECRET: &str = "sk-hf-secret-p1-0123456789";
const P2_SECRET: &str = "sk-hf-secret-p2-0123456789";
const GOOD0: &str = "sk-hf-good-0-aaaaaaaa";
const BAD1: &str = "sk-hf-bad-1-bbbbbbbb";
const GOOD2: &str = "sk-hf-good-2-cccccccc";

// ------------------------------------------------------------------ redis

// a generous Redis timeout: a health read that times out on a busy test
// machine would mark the connection degraded and let local detection steer,
// which is not what these tests look at
const REDIS_PREFIX: &str = "hf:";
const REDIS_TIMEOUT_MS: u64 = 2000;

// ------------------------------------------------------------------ fleet

/// Three replicas on one Redis.
struct Fleet {
    gws: Vec<Gateway>,
    client: TestClient,
    // dropped after the gateways
    redis: SharedRedis,
}

impl Fleet {
    /// Starts three replicas of `config` on `redis`, mirrors refreshed every
    /// `cache_ttl_ms`.
    async fn start(redis: SharedRedis, config: Config, cache_ttl_ms: u64) -> Fleet {
        let yaml = config
            .state(
                redis
                    .state(REDIS_PREFIX, REDIS_TIMEOUT_MS)
                    .cache_ttl_ms(cache_ttl_ms),
            )
            .yaml();
        let start = || Gateway::builder(&yaml).start();
        let (a, b, c) = tokio::join!(start(), start(), start());
        Fleet {
            gws: vec![a, b, c],
            client: TestClient::new(),
            redis,
        }
    }

    fn gw(&self, i: usize) -> &Gateway {
        &self.gws[i % REPLICAS]
    }

    /// stderr of every replica, labelled (for failure messages).
    fn stderr(&self) -> String {
        self.gws
            .iter()
            .enumerate()
            .map(|(i, g)| format!("--- stderr of replica {i}:\n{}\n", g.stderr()))
            .collect()
    }

    /// A chat request with `x-request-id: rid` to replica `i % 3`.
    async fn chat(&self, i: usize, rid: &str) -> HttpResponse {
        let url = format!("{}/v1/chat/completions", self.gw(i).url());
        self.client
            .post_json_with(
                &url,
                &chat_body("gpt-4o-mini", "are you healthy?"),
                &[("x-request-id", rid)],
            )
            .await
    }

    /// `GET /admin/health` on replica `i`: the rows and the raw body.
    async fn health(&self, i: usize) -> (Vec<Value>, String) {
        let r = admin(
            &self.client,
            self.gw(i),
            http::Method::GET,
            "/admin/health",
            None,
        )
        .await;
        assert_eq!(r.status, 200, "GET /admin/health: {}", r.text());
        let rows = r
            .json()
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("GET /admin/health is not an array: {}", r.text()));
        (rows, r.text())
    }

    /// The row of `provider` (`token: None`) or of its api token `token`.
    async fn health_row(&self, i: usize, provider: &str, token: Option<u64>) -> Value {
        let (rows, body) = self.health(i).await;
        find_row(&rows, provider, token)
            .unwrap_or_else(|| {
                panic!("no /admin/health row for {provider} token {token:?}: {body}")
            })
            .clone()
    }

    /// `/metrics` of replica `i`: the value of `name` with `labels`.
    async fn metric(&self, i: usize, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        Scrape::of(self.gw(i)).await.value(name, labels).ok()
    }

    /// `gateway_upstream_healthy{provider=...}` on replica `i`: this replica's
    /// own view (its mirror), not Redis's.
    async fn sees_healthy(&self, i: usize, provider: &str) -> bool {
        let labels = [("provider", provider)];
        match self.metric(i, "gateway_upstream_healthy", &labels).await {
            Some(v) => v > 0.5,
            None => panic!("no gateway_upstream_healthy {labels:?} on /metrics of replica {i}"),
        }
    }
}

fn find_row<'a>(rows: &'a [Value], provider: &str, token: Option<u64>) -> Option<&'a Value> {
    rows.iter().find(|r| {
        r["provider"] == provider
            && match token {
                None => r["token_index"].is_null(),
                Some(t) => r["token_index"] == t,
            }
    })
}

/// `ejected_until` of a health row as a time (panics unless RFC 3339).
fn ejected_until(row: &Value) -> SystemTime {
    let s = row["ejected_until"]
        .as_str()
        .unwrap_or_else(|| panic!("ejected_until is not a string: {row}"));
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("ejected_until {s:?}: {e}"))
}

/// Polls `probe` every 20 ms until it answers `Some`; returns it and how long it
/// took. Panics naming `what` after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return (v, start.elapsed());
        }
        if start.elapsed() > within {
            panic!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `x-request-id`s of the requests `mock` received after the first `from`.
fn request_ids(mock: &MockUpstream, from: usize) -> Vec<String> {
    mock.requests()
        .iter()
        .skip(from)
        .filter_map(|r| r.header("x-request-id").map(str::to_string))
        .collect()
}

/// Sends chat requests through replica `i` (each must answer `want`) until `mock`
/// has received `hits` requests in all; at most `max` requests.
async fn drive_until_hits(
    f: &Fleet,
    i: usize,
    mock: &MockUpstream,
    hits: u64,
    want: u16,
    tag: &str,
) -> usize {
    let max = 20;
    let mut sent = 0;
    while mock.hits() < hits {
        assert!(
            sent < max,
            "{max} requests through replica {i} and the mock has {} hits, not {hits}\n{}",
            mock.hits(),
            f.stderr()
        );
        let r = f.chat(i, &format!("{tag}-{sent}")).await;
        assert_eq!(r.status, want, "request {tag}-{sent}: {}", r.text());
        sent += 1;
    }
    sent
}

// ------------------------------------------------------------------ 1. fleet-wide ejection

const FAILURES: u64 = 3;

/// p1 answers 503; only replica A (0) sees it. Once A has seen `FAILURES`
/// failures, every replica keeps off p1 within `cache_ttl_ms`, and B's
/// `/admin/health` tells why without leaking the api token.
async fn failing_upstream_is_avoided_by_the_fleet(redis: SharedRedis) {
    const CACHE_TTL_MS: u64 = 500;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    p1.fail_with(503);
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((3, 10, 30)), 0);
    let label = redis.label();
    let f = Fleet::start(redis, config, CACHE_TTL_MS).await;
    let f = &f;

    // through A only: each failure of p1 falls back to p2, the client gets 200
    drive_until_hits(f, 0, &p1, FAILURES, 200, "through-a").await;
    let threshold = Instant::now();
    assert_eq!(p1.hits(), FAILURES);

    // the others' own views (their mirrors, on /metrics) turn within cache_ttl_ms
    for i in 0..REPLICAS {
        let (_, took) = eventually(
            &format!("{label}: replica {i} sees p1 ejected"),
            Duration::from_millis(CACHE_TTL_MS + 3000),
            || async move { (!f.sees_healthy(i, "p1").await).then_some(()) },
        )
        .await;
        let since = threshold.elapsed();
        assert!(
            since <= Duration::from_millis(CACHE_TTL_MS + 300),
            "{label}: replica {i} saw p1 ejected {since:?} after A's threshold (poll took {took:?}), cache_ttl_ms is {CACHE_TTL_MS}"
        );
    }
    // what the brief promises at the latest: cache_ttl_ms after the threshold
    let at = threshold + Duration::from_millis(CACHE_TTL_MS + 100);
    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;

    let before = (p1.hits(), p2.hits());
    for i in [1, 2, 0] {
        for k in 0..20 {
            let r = f.chat(i, &format!("after-{i}-{k}")).await;
            assert_eq!(r.status, 200, "{label}: replica {i}: {}", r.text());
        }
    }
    assert_eq!(
        p1.hits(),
        before.0,
        "{label}: no replica may send to the ejected p1 any more: {:?}",
        request_ids(&p1, FAILURES as usize)
    );
    assert_eq!(p2.hits(), before.1 + 60, "{label}: p2 takes it all");

    // the access log of B agrees: one attempt, at p2
    let line = f.gw(1).wait_for_log_line("after-1-7", LOG_WAIT).await;
    assert_eq!(line.ai_log.attempts.len(), 1, "{line:?}");
    assert_eq!(line.ai_log.attempts[0].provider, "p2", "{line:?}");
    assert!(!line.ai_log.panic_mode, "{line:?}");

    // GET /admin/health on B, which never talked to p1
    let (rows, body) = f.health(1).await;
    let row = find_row(&rows, "p1", None).unwrap_or_else(|| panic!("no p1 row: {body}"));
    assert_eq!(row["healthy"], false, "{row}");
    assert_eq!(row["source"], "passive", "{row}");
    assert_eq!(row["view"], "fleet", "{row}");
    assert_eq!(row["passive"], true, "{row}");
    assert_eq!(row["active"], false, "{row}");
    assert_eq!(row["consecutive_failures"], FAILURES, "{row}");
    assert_eq!(row["ejections_in_a_row"], 1, "{row}");
    assert!(row["in_flight"].is_i64(), "{row}");
    assert!(
        row["local_ejected_until"].is_null(),
        "B's own detection saw nothing: {row}"
    );
    let err = row["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("503"), "last_error should name the 503: {row}");
    let left = ejected_until(row)
        .duration_since(SystemTime::now())
        .unwrap_or_else(|_| panic!("ejected_until is in the past: {row}"));
    assert!(
        left > Duration::from_secs(25) && left <= Duration::from_secs(31),
        "ejection_s is 30, {left:?} left: {row}"
    );
    let p2_row = find_row(&rows, "p2", None).unwrap_or_else(|| panic!("no p2 row: {body}"));
    assert_eq!(p2_row["healthy"], true, "{p2_row}");
    assert!(p2_row["ejected_until"].is_null(), "{p2_row}");
    assert_eq!(
        rows.len(),
        2,
        "one row per provider (one token each): {body}"
    );
    for secret in [P1_SECRET, P2_SECRET, "sk-hf-secret"] {
        assert!(
            !body.contains(secret),
            "/admin/health leaks an api token: {body}"
        );
    }

    // exactly one script call began the ejection (the script says so), so the
    // fleet's ejection counters add up to one
    let mut total = 0.0;
    for i in 0..REPLICAS {
        let n = f.metric(i, "gateway_upstream_ejections_total", &[]).await;
        total += n.unwrap_or_else(|| {
            panic!("{label}: no gateway_upstream_ejections_total on replica {i}")
        });
    }
    assert_eq!(total, 1.0, "{label}: ejections counted over the fleet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_upstream_is_avoided_by_the_fleet_standalone() {
    let _serial = SERIAL.lock().await;
    failing_upstream_is_avoided_by_the_fleet(SharedRedis::standalone().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_upstream_is_avoided_by_the_fleet_cluster() {
    let _serial = SERIAL.lock().await;
    failing_upstream_is_avoided_by_the_fleet(SharedRedis::cluster().await).await;
}

/// With a long `cache_ttl_ms`, only the change notification can tell B and C in
/// time: they see the ejection long before their next periodic read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ejection_is_pushed_before_the_periodic_refresh() {
    let _serial = SERIAL.lock().await;
    const CACHE_TTL_MS: u64 = 15_000;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    p1.fail_with(503);
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((3, 10, 30)), 0);
    let f = Fleet::start(SharedRedis::standalone().await, config, CACHE_TTL_MS).await;
    let f = &f;
    drive_until_hits(f, 0, &p1, FAILURES, 200, "through-a").await;
    for i in [1, 2] {
        let (_, took) = eventually(
            &format!("replica {i} hears of p1's ejection"),
            Duration::from_secs(3),
            || async move { (!f.sees_healthy(i, "p1").await).then_some(()) },
        )
        .await;
        assert!(took < Duration::from_secs(2), "replica {i}: {took:?}");
    }
    let before = p1.hits();
    for k in 0..10 {
        let r = f.chat(1 + k % 2, &format!("pushed-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(p1.hits(), before, "B and C keep off p1");
}

// ------------------------------------------------------------------ 2. recovery

/// After `ejection_s`, with the upstream fixed, every replica sends to it again;
/// the next ejection lasts twice as long.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovered_upstream_gets_traffic_again() {
    let _serial = SERIAL.lock().await;
    const CACHE_TTL_MS: u64 = 300;
    const EJECTION_S: u64 = 4;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    p1.fail_with(503);
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((3, 10, EJECTION_S)), 0);
    let f = Fleet::start(SharedRedis::standalone().await, config, CACHE_TTL_MS).await;
    let f = &f;
    drive_until_hits(f, 0, &p1, FAILURES, 200, "fail").await;
    let row = eventually(
        "p1 ejected in Redis",
        Duration::from_secs(3),
        || async move {
            let row = f.health_row(1, "p1", None).await;
            (row["healthy"] == false).then_some(row)
        },
    )
    .await
    .0;
    let until = ejected_until(&row);
    for i in 0..REPLICAS {
        eventually(
            &format!("replica {i} sees p1 ejected"),
            Duration::from_millis(CACHE_TTL_MS + 2000),
            || async move { (!f.sees_healthy(i, "p1").await).then_some(()) },
        )
        .await;
    }

    // fixed, but still ejected: no traffic until the ejection ends (no probes)
    p1.set_normal();
    let held = p1.hits();
    for k in 0..9 {
        let r = f.chat(k, &format!("held-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(p1.hits(), held, "p1 is still ejected");
    assert!(
        SystemTime::now() < until,
        "the ejection ended before the check: the test machine is too slow for ejection_s {EJECTION_S}"
    );

    // the ejection ends on every replica's own clock: no Redis read needed
    let wait =
        until.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    let mark = p1.requests().len();
    for i in 0..REPLICAS {
        for k in 0..4 {
            let r = f.chat(i, &format!("back-{i}-{k}")).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    let ids = request_ids(&p1, mark);
    for i in 0..REPLICAS {
        let n = ids
            .iter()
            .filter(|id| id.starts_with(&format!("back-{i}-")))
            .count();
        // round-robin over two: two of four requests each
        assert_eq!(
            n, 2,
            "replica {i} should send half its traffic to p1 again: {ids:?}"
        );
    }
    for i in 0..REPLICAS {
        assert!(f.sees_healthy(i, "p1").await, "replica {i}");
    }
    // the fleet state: healthy, and the successes reset the count
    let row = eventually("p1's count reset", Duration::from_secs(3), || async move {
        let row = f.health_row(2, "p1", None).await;
        (row["consecutive_failures"] == 0).then_some(row)
    })
    .await
    .0;
    assert_eq!(row["healthy"], true, "{row}");
    assert!(row["ejected_until"].is_null(), "{row}");

    // a repeat ejection doubles
    p1.fail_with(503);
    let h = p1.hits();
    drive_until_hits(f, 0, &p1, h + FAILURES, 200, "again").await;
    let row = eventually("p1 ejected again", Duration::from_secs(3), || async move {
        let row = f.health_row(2, "p1", None).await;
        (row["healthy"] == false).then_some(row)
    })
    .await
    .0;
    assert_eq!(row["ejections_in_a_row"], 2, "{row}");
    let left = ejected_until(&row)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        left > Duration::from_millis(2 * EJECTION_S * 1000 - 1500)
            && left <= Duration::from_millis(2 * EJECTION_S * 1000 + 500),
        "the second ejection should last 2 x {EJECTION_S} s, {left:?} left: {row}"
    );
}

// ------------------------------------------------------------------ 3. one bad token

/// One api token out of three is refused (401): after `failures` refusals it is
/// taken out for the fleet, requests rotate over the other two and all succeed;
/// the provider itself stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_api_token_is_taken_out_alone() {
    let _serial = SERIAL.lock().await;
    const CACHE_TTL_MS: u64 = 300;
    let up = MockUpstream::start_default();
    up.reject_token(BAD1, 401);
    let f = Fleet::start(
        SharedRedis::standalone().await,
        three_tokens(&up.base_url()),
        CACHE_TTL_MS,
    )
    .await;
    let f = &f;

    // through A: the tokens rotate, every third request meets the bad one and
    // (no fallback on http_401) the client gets its 401
    let mut refused = 0;
    let mut sent = 0;
    while refused < 2 {
        assert!(sent < 12, "{sent} requests and only {refused} 401s");
        let r = f.chat(0, &format!("rotate-{sent}")).await;
        match r.status {
            200 => {}
            401 => refused += 1,
            s => panic!("unexpected {s}: {}", r.text()),
        }
        sent += 1;
    }
    let bad_seen = up
        .requests()
        .iter()
        .filter(|r| r.header("authorization") == Some(&format!("Bearer {BAD1}")))
        .count();
    assert_eq!(bad_seen, 2, "the bad token was used exactly twice so far");

    let row = eventually(
        "token 1 ejected in Redis",
        Duration::from_secs(3),
        || async move {
            let row = f.health_row(1, "up", Some(1)).await;
            (row["healthy"] == false).then_some(row)
        },
    )
    .await
    .0;
    assert_eq!(row["source"], "passive", "{row}");
    // every replica's mirror has it within cache_ttl_ms
    tokio::time::sleep(Duration::from_millis(CACHE_TTL_MS + 200)).await;

    let mark = up.requests().len();
    for k in 0..30 {
        let r = f.chat(k, &format!("after-{k}")).await;
        assert_eq!(
            r.status,
            200,
            "request after-{k} on replica {}: {}",
            k % REPLICAS,
            r.text()
        );
    }
    let used: Vec<String> = up
        .requests()
        .iter()
        .skip(mark)
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(used.len(), 30, "{used:?}");
    assert!(
        !used.iter().any(|a| a.contains(BAD1)),
        "the ejected token was used again: {used:?}"
    );
    for good in [GOOD0, GOOD2] {
        assert!(
            used.contains(&format!("Bearer {good}")),
            "the good tokens still rotate: {good} unused in {used:?}"
        );
    }
    // the access log names the token of each attempt
    for k in [0usize, 1, 2, 27, 28, 29] {
        let line = f
            .gw(k)
            .wait_for_log_line(&format!("after-{k}"), LOG_WAIT)
            .await;
        assert_eq!(line.ai_log.attempts.len(), 1, "{line:?}");
        let t = line.ai_log.attempts[0].token_index;
        assert!(matches!(t, Some(0) | Some(2)), "{line:?}");
        assert!(!line.ai_log.panic_mode, "{line:?}");
    }

    // /admin/health: the token row is out, the provider and the others are in
    let (rows, body) = f.health(2).await;
    assert_eq!(rows.len(), 4, "a provider row and one per token: {body}");
    let prov = find_row(&rows, "up", None).unwrap_or_else(|| panic!("{body}"));
    assert_eq!(prov["healthy"], true, "{prov}");
    let bad = find_row(&rows, "up", Some(1)).unwrap_or_else(|| panic!("{body}"));
    assert_eq!(bad["healthy"], false, "{bad}");
    assert!(
        bad["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{bad}"
    );
    assert!(bad["consecutive_failures"].as_u64() >= Some(2), "{bad}");
    for t in [0, 2] {
        let good = find_row(&rows, "up", Some(t)).unwrap_or_else(|| panic!("{body}"));
        assert_eq!(good["healthy"], true, "{good}");
    }
    for secret in [GOOD0, BAD1, GOOD2, "sk-hf-"] {
        assert!(
            !body.contains(secret),
            "/admin/health leaks a token: {body}"
        );
    }
    for i in 0..REPLICAS {
        assert!(f.sees_healthy(i, "up").await, "replica {i}");
    }
}

// ------------------------------------------------------------------ 4. panic mode

/// Both providers ejected: requests still go out, to the least recently ejected
/// first, flagged `panic_mode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_instance_ejected_is_panic_mode() {
    let _serial = SERIAL.lock().await;
    const CACHE_TTL_MS: u64 = 300;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((2, 10, 30)), 0);
    let f = Fleet::start(SharedRedis::standalone().await, config, CACHE_TTL_MS).await;
    let f = &f;

    // p1 goes first (through A, p2 answers)
    p1.fail_with(503);
    drive_until_hits(f, 0, &p1, 2, 200, "p1-down").await;
    for i in 0..REPLICAS {
        eventually(
            &format!("replica {i} sees p1 ejected"),
            Duration::from_millis(CACHE_TTL_MS + 2000),
            || async move { (!f.sees_healthy(i, "p1").await).then_some(()) },
        )
        .await;
    }
    // then p2 (through A: p1 is out, so p2 is the only try and its 503 comes back)
    tokio::time::sleep(Duration::from_millis(50)).await;
    p2.fail_with(503);
    let h2 = p2.hits();
    drive_until_hits(f, 0, &p2, h2 + 2, 503, "p2-down").await;
    assert_eq!(p1.hits(), 2, "p1 was out while p2 failed");
    for i in 0..REPLICAS {
        eventually(
            &format!("replica {i} sees p2 ejected"),
            Duration::from_millis(CACHE_TTL_MS + 2000),
            || async move { (!f.sees_healthy(i, "p2").await).then_some(()) },
        )
        .await;
    }
    let (rows, body) = f.health(1).await;
    for p in ["p1", "p2"] {
        let row = find_row(&rows, p, None).unwrap_or_else(|| panic!("{body}"));
        assert_eq!(row["healthy"], false, "{row}");
    }

    // B, which never saw a failure itself: both are tried anyway, p1 (ejected
    // earlier) first
    let before = (p1.hits(), p2.hits());
    let r = f.chat(1, "panic-1").await;
    assert_eq!(r.status, 503, "both still fail: {}", r.text());
    assert_eq!(
        (p1.hits(), p2.hits()),
        (before.0 + 1, before.1 + 1),
        "panic mode still reaches the upstreams"
    );
    let line = f.gw(1).wait_for_log_line("panic-1", LOG_WAIT).await;
    assert!(line.ai_log.panic_mode, "{line:?}");
    let tried: Vec<(&str, Option<u16>, Option<&str>)> = line
        .ai_log
        .attempts
        .iter()
        .map(|a| (a.provider.as_str(), a.status, a.reason.as_deref()))
        .collect();
    assert_eq!(
        tried,
        vec![
            ("p1", Some(503), Some("http_5xx")),
            ("p2", Some(503), Some("http_5xx"))
        ],
        "least recently ejected first: {line:?}"
    );

    // p1 is back: in panic mode it answers (on C)
    p1.set_normal();
    let r = f.chat(2, "panic-2").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let line = f.gw(2).wait_for_log_line("panic-2", LOG_WAIT).await;
    assert!(line.ai_log.panic_mode, "{line:?}");
    assert_eq!(line.ai_log.attempts.len(), 1, "{line:?}");
    assert_eq!(line.ai_log.attempts[0].provider, "p1", "{line:?}");
    assert_eq!(line.ai_log.attempts[0].status, Some(200), "{line:?}");
    assert_eq!(line.ai_log.provider.as_deref(), Some("p1"), "{line:?}");

    for i in [1, 2] {
        let n = f
            .metric(i, "gateway_upstream_panic_total", &[])
            .await
            .unwrap_or_else(|| panic!("no gateway_upstream_panic_total on replica {i}"));
        assert!(n >= 1.0, "replica {i}: gateway_upstream_panic_total {n}");
    }
    // a request that was not in panic mode does not say so
    let line = f.gw(0).wait_for_log_line("p1-down-0", LOG_WAIT).await;
    assert!(!line.ai_log.panic_mode, "{line:?}");
}

// ------------------------------------------------------------------ 5. attempts

/// A request whose first instance answers 503 and second 200 logs both attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempts_record_the_fallback() {
    let _serial = SERIAL.lock().await;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    p1.fail_with(503);
    // p1 first by priority, so the order is known
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((3, 10, 30)), 1);
    let f = Fleet::start(SharedRedis::standalone().await, config, 300).await;
    let f = &f;
    let r = f.chat(1, "two-attempts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((p1.hits(), p2.hits()), (1, 1));
    let line = f.gw(1).wait_for_log_line("two-attempts", LOG_WAIT).await;
    assert_eq!(line.response_code, 200, "{line:?}");
    assert_eq!(line.ai_log.provider.as_deref(), Some("p2"), "{line:?}");
    assert!(!line.ai_log.panic_mode, "{line:?}");
    let a = &line.ai_log.attempts;
    assert_eq!(a.len(), 2, "{line:?}");
    assert_eq!(a[0].provider, "p1", "{line:?}");
    assert_eq!(a[0].status, Some(503), "{line:?}");
    assert_eq!(a[0].reason.as_deref(), Some("http_5xx"), "{line:?}");
    assert_eq!(a[1].provider, "p2", "{line:?}");
    assert_eq!(a[1].status, Some(200), "{line:?}");
    assert_eq!(
        a[1].reason, None,
        "the answering attempt has no reason: {line:?}"
    );
    for x in a {
        assert_eq!(x.token_index, None, "one token per provider: {line:?}");
        assert!(x.duration_ms <= line.duration + 1, "{line:?}");
    }
    // the raw line: `reason` is absent (not null) on the answering attempt
    let raw = f
        .gw(1)
        .access_log_json()
        .into_iter()
        .find(|l| l["request_id"] == "two-attempts")
        .unwrap_or_else(|| panic!("no raw line"));
    let attempts = &raw["ai_log"]["attempts"];
    assert!(attempts[1].get("reason").is_none(), "{attempts}");
    assert!(attempts[0]["duration_ms"].is_u64(), "{attempts}");
}

// ------------------------------------------------------------------ successes reset

/// A fleet where every request tries p1 first (p2 is the next priority), with
/// `passive: { failures: 3 }` and a long `cache_ttl_ms`.
async fn p1_first_fleet(p1: &MockUpstream, p2: &MockUpstream) -> Fleet {
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((3, 10, 30)), 1);
    Fleet::start(SharedRedis::standalone().await, config, 1000).await
}

/// Six rounds of: p1 fails a request through replica 0, then answers one
/// through `ok_on(k)`. Every failure is followed by a success, so p1 must stay
/// in (`failures: 3`).
async fn failures_and_successes_alternate(
    f: &Fleet,
    p1: &MockUpstream,
    ok_on: fn(usize) -> usize,
    pause: Duration,
) {
    for k in 0..6 {
        p1.fail_with(503);
        let r = f.chat(0, &format!("fail-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(pause).await;
        p1.set_normal();
        let i = ok_on(k);
        let r = f.chat(i, &format!("ok-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let line = f
            .gw(i)
            .wait_for_log_line(&format!("ok-{k}"), LOG_WAIT)
            .await;
        assert_eq!(
            line.ai_log.provider.as_deref(),
            Some("p1"),
            "round {k}: p1 was ejected although each of its failures was followed by a success (on replica {i}): {:?}\n{}",
            f.health_row(0, "p1", None).await,
            f.stderr()
        );
    }
    let row = f.health_row(0, "p1", None).await;
    assert_eq!(row["healthy"], true, "{row}");
    assert!(row["consecutive_failures"].as_u64() <= Some(1), "{row}");
}

/// A success resets the count: failure, success, failure, ... through one
/// replica never ejects. (The pause gives the failure's report time to come
/// back from Redis before the success; see the next test for why it matters.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_resets_the_count() {
    let _serial = SERIAL.lock().await;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    let f = p1_first_fleet(&p1, &p2).await;
    failures_and_successes_alternate(&f, &p1, |_| 0, Duration::from_millis(100)).await;
    assert_eq!(p1.hits(), 12);
}

/// "Consecutive" is the fleet's: a failure through A, then a success through B,
/// and so on, never ejects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_on_another_replica_resets_the_count() {
    let _serial = SERIAL.lock().await;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    let f = p1_first_fleet(&p1, &p2).await;
    failures_and_successes_alternate(&f, &p1, |k| 1 + k % 2, Duration::from_millis(100)).await;
}

// ------------------------------------------------------------------ what counts

/// Timeouts and refused connections count as failures too; the others steer
/// around both, and `/admin/health` says what went wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeouts_and_refused_connections_eject() {
    let _serial = SERIAL.lock().await;
    let slow = MockUpstream::start_default();
    let ok = MockUpstream::start_default();
    slow.delay_headers(2000);
    let provider = |id: &str, url: &str, first_byte_ms: u64| {
        Provider::openai(id, url)
            .token(&format!("sk-hf-secret-{id}"))
            .timeouts(Timeouts::all(500, first_byte_ms, 5000, 10_000))
            .passive(2, 10, 30)
    };
    let config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(provider("slow", &slow.base_url(), 300))
        .provider(provider("dead", &closed_port_url(), 300))
        .provider(provider("ok", &ok.base_url(), 3000))
        .route(
            Route::new("chat", "/v1")
                .upstream("slow")
                .upstream("dead")
                .upstream("ok")
                .balancer("roundrobin")
                .fallback(Fallback::on(
                    &["timeout", "connect_error", "http_5xx", "unhealthy"],
                    2,
                )),
        )
        .access_log();
    let f = Fleet::start(SharedRedis::standalone().await, config, 300).await;
    let f = &f;

    // through A until both are out for the fleet
    let mut sent = 0;
    loop {
        let (rows, body) = f.health(0).await;
        let out = |p: &str| find_row(&rows, p, None).is_some_and(|r| r["healthy"] == false);
        if out("slow") && out("dead") {
            break;
        }
        assert!(sent < 10, "{sent} requests and not both ejected: {body}");
        let r = f.chat(0, &format!("kinds-{sent}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        sent += 1;
        // the report reaches Redis asynchronously
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut reasons = std::collections::BTreeSet::new();
    for k in 0..sent {
        let line = f
            .gw(0)
            .wait_for_log_line(&format!("kinds-{k}"), LOG_WAIT)
            .await;
        for a in &line.ai_log.attempts {
            if let Some(r) = &a.reason {
                reasons.insert(format!("{}:{r}", a.provider));
            }
        }
    }
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        vec!["dead:connect_error".to_string(), "slow:timeout".to_string()]
    );

    let (rows, body) = f.health(1).await;
    let slow_row = find_row(&rows, "slow", None).unwrap_or_else(|| panic!("{body}"));
    assert!(
        slow_row["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("300 ms"),
        "the timeout should be named: {slow_row}"
    );
    let dead_row = find_row(&rows, "dead", None).unwrap_or_else(|| panic!("{body}"));
    assert!(
        dead_row["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable"),
        "the refused connection should be named: {dead_row}"
    );
    let ok_row = find_row(&rows, "ok", None).unwrap_or_else(|| panic!("{body}"));
    assert_eq!(ok_row["healthy"], true, "{ok_row}");
    assert!(!body.contains("sk-hf-secret"), "{body}");

    // B and C: straight to `ok`, no waiting for the slow one
    tokio::time::sleep(Duration::from_millis(500)).await;
    let slow_hits = slow.hits();
    let t = Instant::now();
    for k in 0..10 {
        let r = f.chat(1 + k % 2, &format!("steered-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(slow.hits(), slow_hits, "the slow one is out");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "10 requests took {:?}: some waited for the slow upstream",
        t.elapsed()
    );
    let line = f.gw(1).wait_for_log_line("steered-4", LOG_WAIT).await;
    let tried: Vec<&str> = line
        .ai_log
        .attempts
        .iter()
        .map(|a| a.provider.as_str())
        .collect();
    assert_eq!(tried, vec!["ok"], "{line:?}");
}

/// Without `passive`, failures are not counted and nothing is ejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_passive_nothing_is_counted() {
    let _serial = SERIAL.lock().await;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    p1.fail_with(503);
    let config = two_providers(&p1.base_url(), &p2.base_url(), None, 0);
    let yaml = config.yaml();
    assert!(!yaml.contains("passive"), "{yaml}");
    let f = Fleet::start(SharedRedis::standalone().await, config, 300).await;
    let f = &f;
    for k in 0..10 {
        let r = f.chat(0, &format!("np-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(p1.hits(), 5, "round-robin: every other request tries p1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for k in 0..6 {
        let r = f.chat(1 + k % 2, &format!("np-b-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(p1.hits(), 9, "B and C still try p1 (two of three each)");
    let row = f.health_row(1, "p1", None).await;
    assert_eq!(row["healthy"], true, "{row}");
    assert_eq!(row["passive"], false, "{row}");
    assert_eq!(row["consecutive_failures"], 0, "{row}");
    for i in 0..REPLICAS {
        assert!(f.sees_healthy(i, "p1").await, "replica {i}");
    }
}

// ------------------------------------------------------------------ missed notification

/// A change that comes without a notification (as for a replica whose
/// subscription was down when it was published) still reaches every replica
/// within `cache_ttl_ms`, through the periodic re-read. The ejection is written
/// straight into the provider's health hash (fields as documented in
/// `lua/health_report.v1.lua`), so no `PUBLISH` happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_catches_a_change_without_notification() {
    let _serial = SERIAL.lock().await;
    const CACHE_TTL_MS: u64 = 1000;
    let p1 = MockUpstream::start_default();
    let p2 = MockUpstream::start_default();
    let config = two_providers(&p1.base_url(), &p2.base_url(), Some((3, 10, 30)), 0);
    let f = Fleet::start(SharedRedis::standalone().await, config, CACHE_TTL_MS).await;
    let f = &f;
    for i in 0..REPLICAS {
        assert!(f.sees_healthy(i, "p1").await, "replica {i}");
    }
    let time = f.redis.cli(&["TIME"]);
    let mut parts = time.split_whitespace();
    let secs: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap();
    let micros: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap();
    let now = secs * 1000 + micros / 1000;
    let until = (now + 20_000).to_string();
    let since = now.to_string();
    let reply = f.redis.cli(&[
        "HSET",
        "hf:{h:p1}:health",
        "p:u",
        &until,
        "p:a",
        &since,
        "p:n",
        "1",
        "p:s",
        "passive",
        "p:f",
        "3",
        "p:e",
        "http 503",
    ]);
    assert_eq!(reply, "6", "HSET: {reply}");
    let written = Instant::now();
    for i in 0..REPLICAS {
        eventually(
            &format!("replica {i} reads p1's ejection"),
            Duration::from_millis(CACHE_TTL_MS + 2000),
            || async move { (!f.sees_healthy(i, "p1").await).then_some(()) },
        )
        .await;
        let took = written.elapsed();
        assert!(
            took <= Duration::from_millis(CACHE_TTL_MS + 400),
            "replica {i} read the change {took:?} after it was written; cache_ttl_ms is {CACHE_TTL_MS}"
        );
    }
    for k in 0..12 {
        let r = f.chat(k, &format!("quiet-{k}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(p1.hits(), 0, "nobody sends to p1");
    let row = f.health_row(2, "p1", None).await;
    assert_eq!(row["healthy"], false, "{row}");
}
