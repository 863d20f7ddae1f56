//! Fleet-wide quotas with real processes: three gateway replicas share one real
//! Redis (a standalone `redis-server`, or a 3-node Redis Cluster) in front of a
//! mock OpenAI upstream, and many concurrent clients spread over the replicas.
//!
//! * tokens: with `max_tokens` set, tokens served never exceed the limit (the
//!   reservation is an upper bound of the cost), and no request is refused while
//!   it would still fit once nothing is in flight; `/admin/usage` then holds
//!   exactly the tokens served (standalone and cluster);
//! * requests: exactly `limit` answers 200, the rest 429 with `Retry-After`;
//! * a 2 s window: refusal, sliding (no reset at a fixed boundary), roll-over;
//! * `SCRIPT FLUSH` under load is invisible, a storm of them too (`fail_closed`: a script that could
//!   not be run would answer 503);
//! * a stream the client drops is charged its estimated usage, not its reservation;
//! * `x-ratelimit-*` headers on 200 and 429 answers, and `ai_log.quota_status`;
//! * a 429 from a requests quota also carries the token headers
//!   (`refusal_carries_token_headers_too`).
//!
//! Every test has its own Redis, mock upstream and gateways. The tests take a
//! file-wide lock and run one after another: each starts three gateways and
//! drives tens of concurrent clients, and the timing of the window test must not
//! depend on what the other tests do to the CPU meanwhile.

use gateway_tests::client::{HttpResponse, TestClient};
use gateway_tests::config::{keyed_fleet, Consumer, Quota, Tenant};
use gateway_tests::harness::{start_replicas, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::counter;
use gateway_tests::mock_upstream::{
    chat_usage, text_tokens, MockOptions, MockUpstream, DEFAULT_STREAM_CHUNKS,
};
use gateway_tests::redis::SharedRedis;
use serde_json::{json, Value};
use shared::ai_log::AccessLogLine;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The seeded consumer `acme/labubu` has this key.
const KEY: &str = "sk-fleet-labubu-0123456789abcdef";
const REPLICAS: usize = 3;
/// Concurrent client tasks of the load tests.
const CLIENTS: usize = 60;

/// One test at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A consumer quota (`by: consumer`).
fn quota(name: &str, strategy: &str, limit: u64, window: &str) -> Quota {
    Quota::new(name, "consumer", strategy, limit, window)
}

// ------------------------------------------------------------------ redis

// a generous Redis timeout: a call that times out under load would be a 503
// here (`fail_closed`), not a quota decision
const REDIS_PREFIX: &str = "fleet:";
const REDIS_TIMEOUT_MS: u64 = 3000;

// ------------------------------------------------------------------ fleet

/// Three replicas on one Redis, one mock upstream.
struct Fleet {
    gws: Vec<Gateway>,
    /// data-plane chat URL of each replica
    urls: Arc<Vec<String>>,
    client: TestClient,
    // dropped after the gateways
    _mock: MockUpstream,
    redis: SharedRedis,
}

impl Fleet {
    async fn start(redis: SharedRedis, mock: MockUpstream, quotas: &[Quota]) -> Fleet {
        let mut labubu = Consumer::new("labubu").key(KEY).allowed_models(&["*"]);
        for q in quotas {
            labubu = labubu.quota(q.clone());
        }
        let state = redis.state(REDIS_PREFIX, REDIS_TIMEOUT_MS);
        let yaml = keyed_fleet(state, &mock.base_url())
            .tenant(Tenant::new("acme").allowed_models(&["*"]).consumer(labubu))
            .access_log()
            .yaml();
        let gws = start_replicas(&yaml, REPLICAS).await;
        let urls = Arc::new(
            gws.iter()
                .map(|g| format!("{}/v1/chat/completions", g.url()))
                .collect(),
        );
        Fleet {
            gws,
            urls,
            client: TestClient::new(),
            _mock: mock,
            redis,
        }
    }

    /// stderr of every replica, labelled (for failure messages).
    fn stderr(&self) -> String {
        self.gws
            .iter()
            .enumerate()
            .map(|(i, g)| format!("--- stderr of replica {i}:\n{}\n", g.stderr()))
            .collect()
    }

    /// A chat request to replica `i % 3`.
    async fn chat(&self, i: usize, body: &Value) -> HttpResponse {
        post_chat(&self.client, &self.urls[i % REPLICAS], body).await
    }

    /// `GET /admin/usage?tenant=acme&consumer=labubu` on replica `i % 3`: the
    /// `used` of quota `name`.
    async fn used(&self, i: usize, name: &str) -> u64 {
        let url = format!(
            "{}/admin/usage?tenant=acme&consumer=labubu",
            self.gws[i % REPLICAS].admin_url()
        );
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let r = self
            .client
            .get_with(&url, &[("authorization", auth.as_str())])
            .await;
        assert_eq!(r.status, 200, "GET {url}: {}", r.text());
        let list = r.json();
        let entry = list
            .as_array()
            .and_then(|l| l.iter().find(|e| e["quota"] == name))
            .unwrap_or_else(|| panic!("no window of quota {name} in GET {url}: {list}"));
        assert_eq!(entry["key"], "acme/labubu", "{entry}");
        entry["used"]
            .as_u64()
            .unwrap_or_else(|| panic!("used is not a number: {entry}"))
    }

    /// Polls `/admin/usage` (rotating over the replicas) until quota `name` holds
    /// `want`; panics with the last value after `within`.
    async fn wait_used(&self, name: &str, want: u64, within: Duration) -> Duration {
        let start = Instant::now();
        let mut i = 0;
        loop {
            let got = self.used(i, name).await;
            if got == want {
                return start.elapsed();
            }
            if start.elapsed() > within {
                panic!(
                    "{} /admin/usage: quota {name} holds {got}, expected {want} (still, {within:?} after the load)\n{}",
                    self.redis.label(),
                    self.stderr()
                );
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `gateway_quota_<name>_total` summed over the replicas.
    async fn metric(&self, name: &str) -> u64 {
        let mut sum = 0;
        for g in &self.gws {
            sum += counter(g, &format!("gateway_quota_{name}_total")).await;
        }
        sum
    }

    /// The access-log line of `request_id` on replica `i`, waiting up to 5 s
    /// (lines are written asynchronously).
    async fn log_line(&self, i: usize, request_id: &str) -> AccessLogLine {
        self.gws[i % REPLICAS]
            .wait_for_log_line(request_id, Duration::from_secs(5))
            .await
    }
}

async fn post_chat(client: &TestClient, url: &str, body: &Value) -> HttpResponse {
    let bearer = format!("Bearer {KEY}");
    client
        .post_json_with(url, body, &[("authorization", bearer.as_str())])
        .await
}

/// A chat request with `content_bytes` bytes of prompt and `max_tokens`.
fn chat_request(content_bytes: usize, max_tokens: u64) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "q".repeat(content_bytes)}],
        "max_tokens": max_tokens,
    })
}

/// What the gateway reserves for `body` on a `total_tokens` quota: the prompt
/// estimate (bytes / 4, rounded up) plus `max_tokens`.
fn reservation(content_bytes: usize, max_tokens: u64) -> u64 {
    (content_bytes as u64).div_ceil(4) + max_tokens
}

/// What the mock charges for `body` (prompt tokens + one token per chunk).
fn mock_cost(body: &Value) -> u64 {
    chat_usage(body, DEFAULT_STREAM_CHUNKS).total_tokens
}

/// Asserts a quota refusal: 429, OpenAI-shaped `rate_limit_exceeded` of `kind`
/// naming quota `name`, with `Retry-After` (whole seconds > 0). Returns the
/// Retry-After and the message.
fn assert_quota_429(r: &HttpResponse, kind: &str, name: &str) -> (u64, String) {
    let v = r.assert_openai_error(429, "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], kind, "{v}");
    let msg = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains(&format!("\"{name}\"")),
        "the message should name quota {name}: {msg}"
    );
    let retry = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {v}"));
    let retry: u64 = retry
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After {retry:?}: {e}"));
    assert!(retry >= 1, "Retry-After {retry}");
    (retry, msg)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ------------------------------------------------------------------ load

/// The body of request `j` of client `i`: (prompt bytes, max_tokens).
type Shape = fn(usize, usize) -> (usize, u64);

/// Prompts of 40..256 bytes and `max_tokens` 8..56: costs vary so that "one
/// request's cost" is about a real mix, and `max_tokens` is never below the
/// mock's 8 completion tokens, so every reservation is an upper bound of the cost.
fn mixed_shape(i: usize, j: usize) -> (usize, u64) {
    (40 + 36 * ((i + j) % 7), 8 + 12 * (i % 5) as u64)
}

/// What one client task saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// sum of `usage.total_tokens` of the 200 answers
    tokens: u64,
    limited: u64,
    /// largest reservation / mock cost among the requests this client sent
    max_reserve: u64,
    max_cost: u64,
    /// anything that is not 200 or a well-formed quota 429
    unexpected: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.ok += o.ok;
        self.tokens += o.tokens;
        self.limited += o.limited;
        self.max_reserve = self.max_reserve.max(o.max_reserve);
        self.max_cost = self.max_cost.max(o.max_cost);
        self.unexpected.extend(o.unexpected.iter().cloned());
    }

    /// Counts one answer to `body`. `quota`: the quota a 429 must name.
    fn record(&mut self, r: &HttpResponse, body: &Value, kind: &str, quota: &str) {
        match r.status {
            200 => {
                let v = r.json();
                let total = v["usage"]["total_tokens"].as_u64().unwrap_or(0);
                let want = mock_cost(body);
                if total != want {
                    self.unexpected.push(format!(
                        "usage.total_tokens {total}, the mock charges {want}"
                    ));
                }
                self.ok += 1;
                self.tokens += total;
                if r.header("x-ratelimit-remaining-tokens").is_none()
                    && r.header("x-ratelimit-remaining-requests").is_none()
                {
                    self.unexpected
                        .push("200 without x-ratelimit-remaining-*".to_string());
                }
            }
            429 => {
                self.limited += 1;
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                let msg = v["error"]["message"].as_str().unwrap_or_default();
                if v["error"]["code"] != "rate_limit_exceeded"
                    || v["error"]["type"] != kind
                    || !msg.contains(quota)
                    || r.header("retry-after").is_none()
                {
                    self.unexpected.push(format!(
                        "429 (retry-after {:?}): {}",
                        r.header("retry-after"),
                        r.text()
                    ));
                }
            }
            other => self.unexpected.push(format!("{other}: {}", r.text())),
        }
    }
}

/// How the clients of [`burst`] behave.
#[derive(Clone, Copy)]
struct Load {
    clients: usize,
    /// no new request after this long
    duration: Duration,
    /// a client stops after this many 429s
    stop_after_429: u64,
    shape: Shape,
    /// the kind and name a 429 must carry
    kind: &'static str,
    quota: &'static str,
}

/// `load.clients` tasks, client `i` sending its `j`-th request to replica
/// `(i + j) % 3`, each until its deadline or its `stop_after_429`-th refusal.
async fn burst(f: &Fleet, load: Load) -> Tally {
    let until = Instant::now() + load.duration;
    let tasks: Vec<_> = (0..load.clients)
        .map(|i| {
            let urls = f.urls.clone();
            let client = f.client.clone();
            tokio::spawn(async move {
                let mut t = Tally::default();
                let mut j = 0;
                while Instant::now() < until && t.limited < load.stop_after_429 {
                    let (bytes, max) = (load.shape)(i, j);
                    let body = chat_request(bytes, max);
                    t.max_reserve = t.max_reserve.max(reservation(bytes, max));
                    t.max_cost = t.max_cost.max(mock_cost(&body));
                    let r = post_chat(&client, &urls[(i + j) % urls.len()], &body).await;
                    t.record(&r, &body, load.kind, load.quota);
                    j += 1;
                }
                t
            })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        all.add(&task.await.expect("client task"));
    }
    all
}

// ------------------------------------------------------------------ tokens

/// 60 clients over 3 replicas against a 20,000-token consumer quota (1 h), then
/// single requests until one is refused; see the module doc for what is checked.
async fn tokens_stay_within_limit(redis: SharedRedis) {
    const LIMIT: u64 = 20_000;
    const NAME: &str = "labubu-tph";
    let label = redis.label();
    let f = Fleet::start(
        redis,
        MockUpstream::start_default(),
        &[quota(NAME, "total_tokens", LIMIT, "1h")],
    )
    .await;

    let started = Instant::now();
    let load = Load {
        clients: CLIENTS,
        duration: Duration::from_secs(4),
        stop_after_429: 5,
        shape: mixed_shape,
        kind: "tokens",
        quota: NAME,
    };
    let mut t = burst(&f, load).await;
    let burst_time = started.elapsed();
    assert!(
        t.unexpected.is_empty(),
        "{label}: unexpected answers during the burst ({}), first ones: {:#?}\n{}",
        t.unexpected.len(),
        &t.unexpected[..t.unexpected.len().min(5)],
        f.stderr()
    );
    let burst_served = t.tokens;
    let (burst_ok, burst_limited) = (t.ok, t.limited);
    assert!(
        burst_served <= LIMIT,
        "{label}: {burst_served} tokens served by the burst, over the limit {LIMIT}"
    );

    // every settlement lands: the window holds exactly what was served
    let settle_wait = f
        .wait_used(NAME, burst_served, Duration::from_secs(10))
        .await;

    // no under-admission: one request at a time until one does not fit any
    // more. A refusal is taken once every settlement has landed (the previous
    // request's may still be on its way) and the same request is refused again.
    let mut j = 0;
    let (r, need) = loop {
        assert!(j < 3000, "{label}: 3000 sequential requests and no refusal");
        let (bytes, max) = mixed_shape(j, j / 3);
        let body = chat_request(bytes, max);
        t.max_reserve = t.max_reserve.max(reservation(bytes, max));
        t.max_cost = t.max_cost.max(mock_cost(&body));
        let mut r = f.chat(j, &body).await;
        if r.status == 429 {
            f.wait_used(NAME, t.tokens, Duration::from_secs(5)).await;
            r = f.chat(j, &body).await;
            if r.status == 429 {
                break (r, reservation(bytes, max));
            }
        }
        t.record(&r, &body, "tokens", NAME);
        assert!(
            t.unexpected.is_empty(),
            "{label}: {:?}\n{}",
            t.unexpected,
            f.stderr()
        );
        j += 1;
    };
    let (retry, msg) = assert_quota_429(&r, "tokens", NAME);
    let served = t.tokens;
    assert!(
        msg.contains(&format!("{served} used")),
        "{label}: the refusal should report the {served} tokens the window holds: {msg}"
    );
    assert!(
        served + need > LIMIT,
        "{label}: refused a request of up to {need} tokens while {served} of {LIMIT} were used: \
         it would have fitted ({msg})"
    );
    assert!(
        served <= LIMIT,
        "{label}: served {served} tokens, over the limit {LIMIT}"
    );
    assert!(
        served <= LIMIT + t.max_cost && served + t.max_reserve >= LIMIT,
        "{label}: served {served} not within [{LIMIT} - {}, {LIMIT} + {}]",
        t.max_reserve,
        t.max_cost
    );
    f.wait_used(NAME, served, Duration::from_secs(10)).await;
    let bypassed = f.metric("bypassed").await;
    let unavailable = f.metric("unavailable").await;
    assert_eq!(
        (bypassed, unavailable),
        (0, 0),
        "{label}: bypassed, unavailable"
    );

    println!(
        "[{label}] limit {LIMIT}: burst of {CLIENTS} clients over {REPLICAS} replicas for {burst_time:?}: \
         {burst_ok} answers 200 ({burst_served} tokens), {burst_limited} answers 429; \
         /admin/usage settled to {burst_served} within {settle_wait:?}; \
         then {} more single requests until a refusal: served {served} tokens in {} answers \
         ({} under the limit; the refused request needed up to {need}; Retry-After {retry}s); \
         largest reservation {}, largest cost {}",
        t.ok - burst_ok,
        t.ok,
        LIMIT - served,
        t.max_reserve,
        t.max_cost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_stay_within_limit_standalone() {
    let _serial = SERIAL.lock().await;
    tokens_stay_within_limit(SharedRedis::standalone().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_stay_within_limit_cluster() {
    let _serial = SERIAL.lock().await;
    tokens_stay_within_limit(SharedRedis::cluster().await).await;
}

// ------------------------------------------------------------------ requests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_strategy_is_exact() {
    let _serial = SERIAL.lock().await;
    const LIMIT: u64 = 100;
    const NAME: &str = "labubu-rph";
    let f = Fleet::start(
        SharedRedis::standalone().await,
        MockUpstream::start_default(),
        &[quota(NAME, "requests", LIMIT, "1h")],
    )
    .await;
    let load = Load {
        clients: CLIENTS,
        duration: Duration::from_secs(4),
        stop_after_429: 3,
        shape: mixed_shape,
        kind: "requests",
        quota: NAME,
    };
    let started = Instant::now();
    let t = burst(&f, load).await;
    let took = started.elapsed();
    assert!(
        t.unexpected.is_empty(),
        "unexpected answers ({}), first ones: {:#?}\n{}",
        t.unexpected.len(),
        &t.unexpected[..t.unexpected.len().min(5)],
        f.stderr()
    );
    assert_eq!(
        t.ok, LIMIT,
        "answers 200 with a requests quota of {LIMIT} ({} answers 429)",
        t.limited
    );
    assert!(t.limited >= CLIENTS as u64, "every client ends on 429s");
    // one refusal in full
    let r = f.chat(1, &chat_request(40, 16)).await;
    let (retry, msg) = assert_quota_429(&r, "requests", NAME);
    assert!(msg.contains(&format!("{LIMIT} used")), "{msg}");
    f.wait_used(NAME, LIMIT, Duration::from_secs(10)).await;
    println!(
        "requests limit {LIMIT}: {CLIENTS} clients over {REPLICAS} replicas for {took:?}: \
         {} answers 200, {} answers 429; Retry-After {retry}s: {msg}",
        t.ok, t.limited
    );
}

// ------------------------------------------------------------------ window

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_rolls_over() {
    let _serial = SERIAL.lock().await;
    const NAME: &str = "labubu-burst";
    const WINDOW_MS: u64 = 2000;
    let f = Fleet::start(
        SharedRedis::standalone().await,
        MockUpstream::start_default(),
        &[quota(NAME, "requests", 5, "2s")],
    )
    .await;
    let body = chat_request(40, 16);
    // warm every replica's connections and key cache without touching the
    // quota: an unknown key is refused before quotas are looked at
    for i in 0..REPLICAS {
        let r = f
            .client
            .post_json_with(
                &f.urls[i],
                &body,
                &[("authorization", "Bearer sk-not-a-key-000000000000")],
            )
            .await;
        assert_eq!(r.status, 401, "{}", r.text());
    }

    // start the 5 charges 500-800 ms before a multiple of the window on the
    // wall clock (which Redis TIME and the scripts use), so that a window fixed
    // to those multiples would reset while all 5 are still less than 2 s old
    loop {
        let phase = wall_ms() % WINDOW_MS;
        if (1200..1500).contains(&phase) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_sent = Instant::now();
    let first_wall = wall_ms();
    for i in 0..5 {
        let r = f.chat(i, &body).await;
        assert_eq!(r.status, 200, "request {} of 5: {}", i + 1, r.text());
    }
    let charged_by = Instant::now();
    let r = f.chat(5, &body).await;
    let (retry, _) = assert_quota_429(&r, "requests", NAME);
    assert!(
        retry <= 3,
        "Retry-After {retry}s for a 2 s window that filled up just now"
    );

    // the sliding check: past the fixed boundary, the 5 still count
    let boundary = (first_wall / WINDOW_MS + 1) * WINDOW_MS;
    let wait = (boundary + 250).saturating_sub(wall_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let r = f.chat(6, &body).await;
    let checked = first_sent.elapsed();
    assert!(
        checked < Duration::from_millis(1900),
        "the machine is too slow for this check: the request past the boundary \
         ended {checked:?} after the first charge"
    );
    assert_eq!(
        r.status,
        429,
        "{checked:?} after the first of 5 charges (and 250 ms past a multiple of \
         the window) a request passed: the window was reset at a fixed boundary: {}",
        r.text()
    );

    // roll-over: the window passes and requests pass again
    let passed_at = loop {
        let r = f.chat(7, &body).await;
        match r.status {
            200 => break first_sent.elapsed(),
            429 => {}
            other => panic!("{other}: {}", r.text()),
        }
        assert!(
            first_sent.elapsed() < Duration::from_millis(WINDOW_MS + 1500),
            "still refused {:?} after the first charge\n{}",
            first_sent.elapsed(),
            f.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        passed_at >= Duration::from_millis(WINDOW_MS - 100),
        "a request passed {passed_at:?} after the first charge, before the 2 s window passed"
    );
    // once every old charge has left the window, 4 more pass (5 with the one
    // above) and the next is refused
    let all_out = charged_by + Duration::from_millis(WINDOW_MS + 200);
    tokio::time::sleep_until(all_out.into()).await;
    for i in 0..4 {
        let r = f.chat(i, &body).await;
        assert_eq!(
            r.status,
            200,
            "request {} of the new window: {}",
            i + 2,
            r.text()
        );
    }
    let r = f.chat(4, &body).await;
    assert_quota_429(&r, "requests", NAME);
    println!(
        "window 2s, 5 requests: 6th refused with Retry-After {retry}s; still refused \
         {checked:?} after the first charge (250 ms past a fixed boundary); \
         passed again {passed_at:?} after the first charge; 5 pass and the 6th is \
         refused in the new window"
    );
}

// ------------------------------------------------------------------ SCRIPT FLUSH

/// 12 clients on one 100M-token quota for `ms` while `flush` sends SCRIPT
/// FLUSH to the fleet's Redis (it answers how many): every answer a 200 or a
/// 429, some 200s, and `/admin/usage` ends at the tokens served (how long that
/// took is returned).
async fn load_while_flushing(
    ms: u64,
    flush: impl AsyncFnOnce(&Fleet) -> u64,
) -> (Fleet, Tally, u64, Duration) {
    const NAME: &str = "labubu-big";
    let f = Fleet::start(
        SharedRedis::standalone().await,
        MockUpstream::start_default(),
        &[quota(NAME, "total_tokens", 100_000_000, "1h")],
    )
    .await;
    let load = Load {
        clients: 12,
        duration: Duration::from_millis(ms),
        stop_after_429: u64::MAX,
        shape: mixed_shape,
        kind: "tokens",
        quota: NAME,
    };
    let (t, flushes) = tokio::join!(burst(&f, load), flush(&f));
    assert!(
        t.unexpected.is_empty(),
        "answers other than 200/429 with {flushes} SCRIPT FLUSH ({}), first ones: {:#?}\n{}",
        t.unexpected.len(),
        &t.unexpected[..t.unexpected.len().min(5)],
        f.stderr()
    );
    assert!(t.ok > 0);
    let took = f.wait_used(NAME, t.tokens, Duration::from_secs(10)).await;
    (f, t, flushes, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn script_flush_mid_load_is_invisible() {
    let _serial = SERIAL.lock().await;
    let (f, t, flushes, took) = load_while_flushing(3500, async |fleet: &Fleet| {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(fleet.redis.cli(&["SCRIPT", "FLUSH"]), "OK");
        }
        5
    })
    .await;
    let bypassed = f.metric("bypassed").await;
    let unavailable = f.metric("unavailable").await;
    let retries = f.metric("settle_retries").await;
    assert_eq!(
        (bypassed, unavailable),
        (0, 0),
        "bypassed, unavailable after SCRIPT FLUSH"
    );
    // the flushes did hit the load: Redis answered NOSCRIPT at least once after
    // each of them (the load went on after the last one)
    let errorstats = f.redis.cli(&["INFO", "errorstats"]);
    let noscript: u64 = errorstats
        .lines()
        .find_map(|l| l.trim().strip_prefix("errorstat_NOSCRIPT:count="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        noscript >= flushes,
        "{flushes} flushes under load but {noscript} NOSCRIPT answers:\n{errorstats}"
    );
    println!(
        "SCRIPT FLUSH x{flushes} under 12 clients: {} answers 200 ({} tokens), {} answers 429, \
         no other status; Redis answered NOSCRIPT {noscript} times, all retried invisibly; \
         /admin/usage equal to the tokens served {took:?} after the load; settle retries {retries}",
        t.ok, t.tokens, t.limited
    );
}

/// SCRIPT FLUSH as fast as `redis-cli` sends it (hundreds a second) under
/// load: a flush between a script's reload and its retry answers NOSCRIPT again,
/// and that must neither fail the call (the script is loaded and run again) nor
/// make the replica take Redis for unreachable (`fail_closed` would answer 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_script_flush_storm_is_invisible() {
    let _serial = SERIAL.lock().await;
    let (f, t, flushes, _) = load_while_flushing(2500, async |fleet: &Fleet| {
        let until = std::time::Instant::now() + Duration::from_millis(2500);
        let mut flushes = 0u64;
        while std::time::Instant::now() < until {
            assert_eq!(fleet.redis.cli(&["SCRIPT", "FLUSH"]), "OK");
            flushes += 1;
            tokio::task::yield_now().await;
        }
        flushes
    })
    .await;
    let unavailable = f.metric("unavailable").await;
    assert_eq!(unavailable, 0, "refused as unavailable in the flush storm");
    println!(
        "{flushes} SCRIPT FLUSH in 2.5 s under 12 clients: {} answers 200, {} answers 429, nothing else",
        t.ok, t.limited
    );
}

// ------------------------------------------------------------------ cut stream

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_stream_is_still_charged() {
    let _serial = SERIAL.lock().await;
    const NAME: &str = "labubu-tph";
    // 40 chunks 200 ms apart: the whole stream would take 8 s
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 40,
        chunk_delay_ms: 200,
        ..MockOptions::default()
    });
    let f = Fleet::start(
        SharedRedis::standalone().await,
        mock,
        &[quota(NAME, "total_tokens", 100_000, "1h")],
    )
    .await;
    const PROMPT_BYTES: usize = 40;
    const MAX_TOKENS: u64 = 2000;
    let reserved = reservation(PROMPT_BYTES, MAX_TOKENS);
    let prompt = (PROMPT_BYTES as u64).div_ceil(4);
    let mut body = chat_request(PROMPT_BYTES, MAX_TOKENS);
    body["stream"] = json!(true);
    let bearer = format!("Bearer {KEY}");
    let mut s = f
        .client
        .open_sse(&f.urls[0], &body, &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(s.status, 200);
    let request_id = s
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(s.headers.get("x-ratelimit-remaining-tokens").is_some());
    let mut received = String::new();
    for _ in 0..2 {
        let ev = s.next_event().await.expect("an event of the stream");
        assert!(ev.data.contains("chat.completion.chunk"), "{}", ev.data);
        received.push_str(
            ev.json()["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    assert!(!received.is_empty(), "the client received content");
    let received = text_tokens(received.len());
    // while it streams, the whole reservation is held, and every replica sees it
    assert_eq!(f.used(1, NAME).await, reserved, "held while streaming");
    let dropped = Instant::now();
    drop(s);

    let deadline = dropped + Duration::from_secs(4);
    let used = loop {
        let u = f.used(2, NAME).await;
        if u != reserved {
            break u;
        }
        assert!(
            Instant::now() < deadline,
            "the reservation of {reserved} is still held 4 s after the client left\n{}",
            f.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let settled_after = dropped.elapsed();
    // the whole stream has 40 one-token chunks
    assert!(
        used >= prompt + received && used <= prompt + 40,
        "a stream cut after 2 events was charged {used} (prompt {prompt}, received {received}, reserved {reserved})"
    );
    assert!(used > 0 && used < reserved);
    let line = f.log_line(0, &request_id).await;
    let ai = &line.ai_log;
    assert_eq!(ai.total_token, used, "{line:?}");
    assert!(ai.usage_estimated, "{line:?}");
    assert_eq!(ai.quota_status.as_deref(), Some("allowed"), "{line:?}");
    assert_eq!(line.response_flags, "DC", "{line:?}");
    // and it stays at that
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.used(0, NAME).await, used);
    println!(
        "stream reserved {reserved} (prompt {prompt} + max_tokens {MAX_TOKENS}); the client \
         left after 2 events; settled to {used} (estimated) {settled_after:?} later; \
         access log flags {}",
        line.response_flags
    );
}

// ------------------------------------------------------------------ headers

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headers_on_every_response() {
    let _serial = SERIAL.lock().await;
    const TPM: &str = "labubu-tokens";
    const RPM: &str = "labubu-requests";
    const TOKENS: u64 = 100_000;
    const REQUESTS: u64 = 6;
    let f = Fleet::start(
        SharedRedis::standalone().await,
        MockUpstream::start_default(),
        &[
            quota(TPM, "total_tokens", TOKENS, "1h"),
            quota(RPM, "requests", REQUESTS, "1h"),
        ],
    )
    .await;
    // max_tokens 8 = the mock's completion tokens: reservation == cost, so the
    // remaining figures are exact whether or not the last settle has landed
    let body = chat_request(44, 8);
    let cost = reservation(44, 8);
    assert_eq!(cost, mock_cost(&body));
    let mut ids = Vec::new();
    let mut seen = Vec::new();
    for n in 1..=REQUESTS {
        let i = (n - 1) as usize;
        let r = f.chat(i, &body).await;
        assert_eq!(r.status, 200, "request {n}: {}", r.text());
        let h = |name: &str| {
            r.header(name)
                .unwrap_or_else(|| panic!("request {n} (replica {}): no {name}", i % 3))
                .to_string()
        };
        assert_eq!(h("x-ratelimit-limit-tokens"), TOKENS.to_string());
        assert_eq!(
            h("x-ratelimit-remaining-tokens"),
            (TOKENS - cost * n).to_string(),
            "request {n} on replica {}",
            i % 3
        );
        assert_eq!(h("x-ratelimit-limit-requests"), REQUESTS.to_string());
        assert_eq!(
            h("x-ratelimit-remaining-requests"),
            (REQUESTS - n).to_string(),
            "request {n} on replica {}",
            i % 3
        );
        for reset in ["x-ratelimit-reset-tokens", "x-ratelimit-reset-requests"] {
            let v = h(reset);
            // a 1 h window holding something: `1h0m59s`-like
            assert!(v.starts_with("1h") && v.ends_with('s'), "{reset}: {v}");
        }
        seen.push(h("x-ratelimit-remaining-tokens"));
        ids.push((i, h("x-request-id"), "allowed"));
    }
    let i = REQUESTS as usize;
    let r = f.chat(i, &body).await;
    assert_quota_429(&r, "requests", RPM);
    let h = |name: &str| r.header(name).map(str::to_string);
    assert_eq!(
        h("x-ratelimit-limit-requests"),
        Some(REQUESTS.to_string()),
        "429"
    );
    assert_eq!(h("x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert!(h("x-ratelimit-reset-requests").is_some());
    let tokens_on_429 = (
        h("x-ratelimit-limit-tokens"),
        h("x-ratelimit-remaining-tokens"),
        h("x-ratelimit-reset-tokens"),
    );
    ids.push((i, h("x-request-id").expect("x-request-id"), "limited"));

    for (i, id, status) in &ids {
        let line = f.log_line(*i, id).await;
        assert_eq!(
            line.ai_log.quota_status.as_deref(),
            Some(*status),
            "{line:?}"
        );
        if *status == "limited" {
            assert_eq!(line.ai_log.quota.as_deref(), Some(RPM), "{line:?}");
            assert_eq!(line.response_code, 429, "{line:?}");
            assert!(line.response_flags.contains("RL"), "{line:?}");
        } else {
            assert_eq!(line.ai_log.quota, None, "{line:?}");
        }
    }
    println!(
        "remaining tokens over replicas 0,1,2,0,1,2: {seen:?}; the 429 carries the \
         requests headers, and tokens headers {tokens_on_429:?} (see \
         refusal_carries_token_headers_too)"
    );
}

/// README ("Answers"): "Every response of a route with quotas carries OpenAI's
/// headers for the tightest token quota and the tightest request quota", a 429
/// from a requests quota included: the reserve script reports every quota of
/// the hash tag when one refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusal_carries_token_headers_too() {
    let _serial = SERIAL.lock().await;
    const TOKENS: u64 = 100_000;
    let f = Fleet::start(
        SharedRedis::standalone().await,
        MockUpstream::start_default(),
        &[
            quota("labubu-tokens", "total_tokens", TOKENS, "1h"),
            quota("labubu-requests", "requests", 1, "1h"),
        ],
    )
    .await;
    let body = chat_request(44, 8);
    let cost = reservation(44, 8);
    let r = f.chat(0, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = f.chat(1, &body).await;
    assert_quota_429(&r, "requests", "labubu-requests");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(
        (
            r.header("x-ratelimit-limit-tokens"),
            r.header("x-ratelimit-remaining-tokens"),
        ),
        (
            Some(TOKENS.to_string().as_str()),
            Some((TOKENS - cost).to_string().as_str()),
        ),
        "a 429 of the requests quota should carry the token quota's headers too; headers: {:?}",
        r.headers
    );
}
