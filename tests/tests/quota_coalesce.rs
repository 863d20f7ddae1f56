//! Coalesced quota calls under load (the group commit of
//! `gateway/src/quota/coalesce.rs`): 200 concurrent clients over three
//! replicas sharing one Redis, on two consumers of one tenant — so every
//! reservation and settlement lives under the one hash tag `{t:acme}` and the
//! operations of both share calls. `tok` has a token quota, `req` a request
//! quota; each client sends until its quota refuses it twice.
//!
//! * tokens served to `tok` stay within the limit + one request's cost, and
//!   the window holds exactly what was served once every request ended;
//! * exactly `limit` requests of `req` are answered 200, the rest 429;
//! * Redis ran fewer script calls (`INFO commandstats`: `evalsha` and
//!   `eval`) than there were requests, each of which reserves and, when
//!   admitted, settles.

use gateway_tests::client::{HttpResponse, TestClient};
use gateway_tests::config::{keyed_fleet, Consumer, Quota, Tenant};
use gateway_tests::harness::{start_replicas, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{chat_usage, MockUpstream, DEFAULT_STREAM_CHUNKS};
use gateway_tests::redis::SharedRedis;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;
const TOK_KEY: &str = "sk-coalesce-tok-0123456789abcdef";
const REQ_KEY: &str = "sk-coalesce-req-0123456789abcdef";
const TOKEN_LIMIT: u64 = 25_000;
const REQUEST_LIMIT: u64 = 700;
/// a client stops after this many refusals
const REFUSALS: u64 = 2;
/// and sends nothing new after this long
const DEADLINE: Duration = Duration::from_secs(12);

/// Three replicas on one Redis (`keyed_fleet`: `fail_closed`, so a quota call
/// that fails shows as a 503, not as a request passed unchecked).
async fn fleet(redis: &SharedRedis, mock: &MockUpstream) -> Vec<Gateway> {
    let tok = Consumer::new("tok")
        .key(TOK_KEY)
        .allowed_models(&["*"])
        .quota(Quota::new(
            "tok-tph",
            "consumer",
            "total_tokens",
            TOKEN_LIMIT,
            "1h",
        ));
    let req = Consumer::new("req")
        .key(REQ_KEY)
        .allowed_models(&["*"])
        .quota(Quota::new(
            "req-rph",
            "consumer",
            "requests",
            REQUEST_LIMIT,
            "1h",
        ));
    let yaml = keyed_fleet(redis.state("coalesce:", 3000), &mock.base_url())
        .tenant(
            Tenant::new("acme")
                .allowed_models(&["*"])
                .consumer(tok)
                .consumer(req),
        )
        .yaml();
    start_replicas(&yaml, 3).await
}

/// A chat request of `bytes` bytes of prompt: the mock answers 8 completion
/// tokens, so `max_tokens: 8` makes the reservation an upper bound of the cost.
fn chat(bytes: usize) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "q".repeat(bytes)}],
        "max_tokens": 8,
    })
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    refused: u64,
    /// `usage.total_tokens` of the 200 answers
    tokens: u64,
    /// the dearest request this client sent (what the mock charges)
    max_cost: u64,
    unexpected: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.ok += o.ok;
        self.refused += o.refused;
        self.tokens += o.tokens;
        self.max_cost = self.max_cost.max(o.max_cost);
        self.unexpected.extend(o.unexpected);
    }

    fn record(&mut self, r: &HttpResponse, body: &Value, kind: &str) {
        match r.status {
            200 => {
                self.ok += 1;
                self.tokens += r.json()["usage"]["total_tokens"].as_u64().unwrap_or(0);
            }
            429 => {
                self.refused += 1;
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if v["error"]["type"] != kind || r.header("retry-after").is_none() {
                    self.unexpected.push(format!("429: {}", r.text()));
                }
            }
            other => self.unexpected.push(format!("{other}: {}", r.text())),
        }
        let cost = chat_usage(body, DEFAULT_STREAM_CHUNKS).total_tokens;
        self.max_cost = self.max_cost.max(cost);
    }
}

/// Client `i` sends to replica `(i + j) % 3` with `key` until its quota
/// (`kind`) refused it [`REFUSALS`] times; prompts of 40..400 bytes.
async fn client(i: usize, urls: Arc<Vec<String>>, key: &'static str, kind: &'static str) -> Tally {
    let http = TestClient::new();
    let bearer = format!("Bearer {key}");
    let until = Instant::now() + DEADLINE;
    let mut t = Tally::default();
    let mut j = 0;
    while t.refused < REFUSALS && Instant::now() < until {
        let body = chat(40 + 60 * ((i + j) % 7));
        let url = &urls[(i + j) % urls.len()];
        let r = http
            .post_json_with(url, &body, &[("authorization", bearer.as_str())])
            .await;
        t.record(&r, &body, kind);
        j += 1;
    }
    t
}

/// `calls` of `evalsha` and `eval` in `INFO commandstats`.
fn script_calls(redis: &SharedRedis) -> u64 {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// What `/admin/usage` says quota `name` of consumer `consumer` holds.
async fn used(gw: &Gateway, consumer: &str, name: &str) -> u64 {
    let url = format!(
        "{}/admin/usage?tenant=acme&consumer={consumer}",
        gw.admin_url()
    );
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = TestClient::new()
        .get_with(&url, &[("authorization", auth.as_str())])
        .await;
    assert_eq!(r.status, 200, "GET {url}: {}", r.text());
    let list = r.json();
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["quota"] == name))
        .and_then(|e| e["used"].as_u64())
        .unwrap_or_else(|| panic!("no window of quota {name}: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_share_few_script_calls_and_every_limit_holds() {
    let redis = SharedRedis::standalone().await;
    let mock = MockUpstream::start_default();
    let gws = fleet(&redis, &mock).await;
    let urls: Arc<Vec<String>> = Arc::new(
        gws.iter()
            .map(|g| format!("{}/v1/chat/completions", g.url()))
            .collect(),
    );
    redis.cli(&["CONFIG", "RESETSTAT"]);

    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (key, kind) = match i % 2 {
                0 => (TOK_KEY, "tokens"),
                _ => (REQ_KEY, "requests"),
            };
            (kind, tokio::spawn(client(i, urls.clone(), key, kind)))
        })
        .collect();
    let (mut tok, mut req) = (Tally::default(), Tally::default());
    for (kind, t) in tasks {
        let t = t.await.expect("client task");
        match kind {
            "tokens" => tok.add(t),
            _ => req.add(t),
        }
    }
    let stderr = || -> String { gws.iter().map(|g| g.stderr()).collect() };
    for (who, t) in [("tok", &tok), ("req", &req)] {
        assert!(
            t.unexpected.is_empty(),
            "{who}: unexpected answers ({}), first: {:#?}\n{}",
            t.unexpected.len(),
            &t.unexpected[..t.unexpected.len().min(5)],
            stderr()
        );
    }

    // tokens: within the limit + one request's cost
    assert!(tok.refused > 0, "the token quota never refused");
    assert!(
        tok.tokens <= TOKEN_LIMIT + tok.max_cost,
        "{} tokens served, limit {TOKEN_LIMIT} + one request's {}",
        tok.tokens,
        tok.max_cost
    );
    // requests: exactly the limit
    assert_eq!(req.ok, REQUEST_LIMIT, "requests answered 200");
    assert!(req.refused >= REFUSALS, "{} refused", req.refused);

    // once every settlement landed, the windows hold what was served
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (t, r) = (
            used(&gws[0], "tok", "tok-tph").await,
            used(&gws[1], "req", "req-rph").await,
        );
        if (t, r) == (tok.tokens, REQUEST_LIMIT) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the windows hold {t} tokens and {r} requests; served {} and {REQUEST_LIMIT}",
            tok.tokens
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // each request reserved (and, admitted, settled): far more operations
    // than the calls that carried them
    let requests = tok.ok + tok.refused + req.ok + req.refused;
    let calls = script_calls(&redis);
    assert!(
        calls < requests,
        "{calls} script calls for {requests} requests ({} admitted)",
        tok.ok + req.ok
    );
    eprintln!(
        "{requests} requests ({} admitted), {calls} script calls",
        tok.ok + req.ok
    );
}
