//! Budgets across a fleet, the usage ledger and bills: three gateway replicas
//! share one real Redis (a standalone `redis-server`, or a 3-node Redis
//! Cluster) in front of a mock OpenAI upstream whose usage is deterministic;
//! 60 concurrent clients over three models with different prices, 54 of them
//! on tenant `acme` (consumers `labubu` and `zimomo`) with a budget of 8 cents
//! per hour, 6 on tenant `globex` without one. After the load:
//!
//! * spend served (the costs the access logs record for the 200 answers, exact
//!   decimals) <= budget + one request's worst case, and the budget reached
//!   within one request: the last request, refused (429 type `budget`) once
//!   every settlement landed, would not have fitted; the budget's window
//!   (`/admin/usage`) holds exactly the spend served;
//! * the usage ledger (`GET /admin/usage/report`, JSON and CSV, grouped by
//!   tenant, consumer and model) equals the sum of the three replicas' access
//!   logs to the token and to the nano-unit, the ledger-only entries of the
//!   tenant without a budget included;
//! * `gateway bill` over those three logs (one gzipped, one with foreign lines)
//!   at the prices of the gateway's config file prints the report's CSV byte
//!   for byte and counts the foreign lines it skipped.
//!
//! The tests take a file-wide lock and run one after another, as in
//! `quota_fleet.rs`: each starts three gateways and drives 60 clients.

use flate2::{write::GzEncoder, Compression};
use gateway_tests::client::{HttpResponse, TestClient};
use gateway_tests::config::{keyed_fleet, Consumer, Price, Pricing, Quota, Tenant};
use gateway_tests::harness::{run_gateway, start_replicas, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{chat_usage, MockUpstream, DEFAULT_STREAM_CHUNKS};
use gateway_tests::redis::SharedRedis;
use gateway_tests::report::{amount, Report};
use serde_json::{json, Value};
use shared::ai_log::AccessLogLine;
use shared::money::{cost_of, format_nanos, Nanos};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
/// Concurrent clients: the first [`BUDGETED`] on tenant acme, the rest on globex.
const CLIENTS: usize = 60;
const BUDGETED: usize = 54;
/// Requests each globex client sends.
const GLOBEX_REQUESTS: usize = 8;

const BUDGET_NAME: &str = "acme-budget";
/// Per hour, by tenant: a few hundred requests of the mix below.
const BUDGET: &str = "0.08";

/// Consumers and their keys: (tenant, consumer, key).
const LABUBU: (&str, &str, &str) = ("acme", "labubu", "sk-budget-labubu-0123456789abcdef");
const ZIMOMO: (&str, &str, &str) = ("acme", "zimomo", "sk-budget-zimomo-0123456789abcdef");
const BOB: (&str, &str, &str) = ("globex", "bob", "sk-budget-globex-bob-0123456789ab");

/// A bounded wait for what is settled asynchronously (windows, ledger, logs).
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// One sequence at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ------------------------------------------------------------------ prices

/// One model's prices per million tokens, as the config writes them.
struct ModelPrice {
    model: &'static str,
    input: &'static str,
    output: &'static str,
    cached_input: &'static str,
    /// None: reasoning tokens at `output`
    reasoning: Option<&'static str>,
}

/// Three models, prices far apart, some with nine decimals so that costs round.
const MODELS: [ModelPrice; 3] = [
    ModelPrice {
        model: "m-small",
        input: "0.15",
        output: "0.6",
        cached_input: "0.075",
        reasoning: None,
    },
    ModelPrice {
        model: "m-mid",
        input: "2.345678901",
        output: "9.87654321",
        cached_input: "1.2345",
        reasoning: None,
    },
    ModelPrice {
        model: "m-large",
        input: "10",
        output: "30",
        cached_input: "5",
        reasoning: Some("20"),
    },
];

/// `pricing:` with the three models only (`defaults: false`).
fn pricing() -> Pricing {
    MODELS.iter().fold(Pricing::only(), |p, m| {
        let mut price = Price::new(m.model, m.input, m.output).cached_input(m.cached_input);
        if let Some(r) = m.reasoning {
            price = price.reasoning(r);
        }
        p.price(price)
    })
}

impl ModelPrice {
    fn reasoning(&self) -> Nanos {
        amount(self.reasoning.unwrap_or(self.output))
    }

    /// What the mock's answer to `body` costs: prompt tokens not cached at
    /// `input`, cached ones at `cached_input`, completion tokens but reasoning
    /// at `output`, reasoning at `reasoning`, rounded once.
    fn cost(&self, body: &Value) -> Nanos {
        let u = chat_usage(body, DEFAULT_STREAM_CHUNKS);
        cost_of(&[
            (u.prompt_tokens - u.cached_tokens, amount(self.input)),
            (u.cached_tokens, amount(self.cached_input)),
            (
                u.completion_tokens - u.reasoning_tokens,
                amount(self.output),
            ),
            (u.reasoning_tokens, self.reasoning()),
        ])
    }

    /// What a budget reserves for a request of `prompt_bytes` and
    /// `max_tokens`: the prompt estimate (bytes / 4, rounded up) at the dearest
    /// input price (no cache-write price: `input`), `max_tokens` at the
    /// dearest output price (`output` or `reasoning`).
    fn worst_case(&self, prompt_bytes: usize, max_tokens: u64) -> Nanos {
        cost_of(&[
            ((prompt_bytes as u64).div_ceil(4), amount(self.input)),
            (max_tokens, amount(self.output).max(self.reasoning())),
        ])
    }
}

// ------------------------------------------------------------------ requests

/// Request `j` of client `i`: the model, prompt bytes (40..256) and
/// `max_tokens` (8..56, never below the mock's 8 completion tokens).
struct Shape {
    model: &'static ModelPrice,
    prompt_bytes: usize,
    max_tokens: u64,
}

impl Shape {
    fn of(i: usize, j: usize) -> Shape {
        Shape {
            model: &MODELS[(i + j) % MODELS.len()],
            prompt_bytes: 40 + 36 * ((i + 2 * j) % 7),
            max_tokens: 8 + 12 * ((i + j / 3) % 5) as u64,
        }
    }

    fn body(&self) -> Value {
        json!({
            "model": self.model.model,
            "messages": [{"role": "user", "content": "q".repeat(self.prompt_bytes)}],
            "max_tokens": self.max_tokens,
        })
    }

    fn worst_case(&self) -> Nanos {
        self.model.worst_case(self.prompt_bytes, self.max_tokens)
    }
}

/// The consumer client `i` speaks for.
fn consumer_of(i: usize) -> (&'static str, &'static str, &'static str) {
    match i {
        i if i >= BUDGETED => BOB,
        i if i % 2 == 0 => LABUBU,
        _ => ZIMOMO,
    }
}

/// What a group of clients saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// the expected cost of the 200 answers (nano-units)
    spend: Nanos,
    limited: u64,
    /// requests sent to each replica (each has an access-log line)
    sent: [u64; REPLICAS],
    /// the largest worst case among the requests sent
    max_worst: Nanos,
    /// anything that is not a 200 with the mock's usage or a budget 429
    unexpected: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.ok += o.ok;
        self.spend += o.spend;
        self.limited += o.limited;
        for (s, o) in self.sent.iter_mut().zip(o.sent) {
            *s += o;
        }
        self.max_worst = self.max_worst.max(o.max_worst);
        self.unexpected.extend(o.unexpected.iter().cloned());
    }

    /// Counts the answer `r` of replica `replica` to `shape`.
    fn record(&mut self, replica: usize, shape: &Shape, r: &HttpResponse) {
        self.sent[replica] += 1;
        self.max_worst = self.max_worst.max(shape.worst_case());
        match r.status {
            200 => {
                let body = shape.body();
                let total = r.json()["usage"]["total_tokens"].as_u64();
                let want = chat_usage(&body, DEFAULT_STREAM_CHUNKS).total_tokens;
                if total != Some(want) {
                    self.unexpected
                        .push(format!("usage.total_tokens {total:?}, the mock's {want}"));
                }
                self.ok += 1;
                self.spend += shape.model.cost(&body);
            }
            429 => {
                self.limited += 1;
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                let msg = v["error"]["message"].as_str().unwrap_or_default();
                if v["error"]["code"] != "rate_limit_exceeded"
                    || v["error"]["type"] != "budget"
                    || !msg.contains(&format!("budget \"{BUDGET_NAME}\""))
                    || r.header("retry-after").is_none()
                {
                    self.unexpected.push(format!("429: {}", r.text()));
                }
            }
            other => self.unexpected.push(format!("{other}: {}", r.text())),
        }
    }

    fn assert_expected(&self, label: &str, what: &str, fleet: &Fleet) {
        assert!(
            self.unexpected.is_empty(),
            "{label}: unexpected answers {what} ({}), first ones: {:#?}\n{}",
            self.unexpected.len(),
            &self.unexpected[..self.unexpected.len().min(5)],
            fleet.stderr()
        );
    }
}

// ------------------------------------------------------------------ fleet

/// Three replicas on one Redis, one mock upstream.
struct Fleet {
    gws: Vec<Gateway>,
    /// data-plane chat URL of each replica
    urls: Arc<Vec<String>>,
    client: TestClient,
    label: &'static str,
    // dropped after the gateways
    _mock: MockUpstream,
    _redis: SharedRedis,
}

impl Fleet {
    async fn start(redis: SharedRedis) -> Fleet {
        let mock = MockUpstream::start_default();
        let consumer = |(_, name, key): (&str, &str, &str)| {
            Consumer::new(name).key(key).allowed_models(&["*"])
        };
        let yaml = keyed_fleet(redis.state("budget:", 3000), &mock.base_url())
            .tenant(
                Tenant::new("acme")
                    .allowed_models(&["*"])
                    .quota(Quota::budget(BUDGET_NAME, "tenant", BUDGET, "1h"))
                    .consumer(consumer(LABUBU))
                    .consumer(consumer(ZIMOMO)),
            )
            .tenant(
                Tenant::new("globex")
                    .allowed_models(&["*"])
                    .consumer(consumer(BOB)),
            )
            .pricing(pricing())
            .access_log()
            .yaml();
        let gws = start_replicas(&yaml, 3).await;
        let urls = gws
            .iter()
            .map(|g| format!("{}/v1/chat/completions", g.url()))
            .collect();
        Fleet {
            gws,
            urls: Arc::new(urls),
            client: TestClient::new(),
            label: redis.label(),
            _mock: mock,
            _redis: redis,
        }
    }

    fn stderr(&self) -> String {
        self.gws
            .iter()
            .enumerate()
            .map(|(i, g)| format!("--- stderr of replica {i}:\n{}\n", g.stderr()))
            .collect()
    }

    /// `GET {path}` on the admin API of replica `i % 3`, answered 200.
    async fn admin_get(&self, i: usize, path: &str) -> HttpResponse {
        let url = format!("{}{path}", self.gws[i % REPLICAS].admin_url());
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let r = self
            .client
            .get_with(&url, &[("authorization", auth.as_str())])
            .await;
        assert_eq!(r.status, 200, "GET {url}: {}", r.text());
        r
    }

    /// Every replica's access-log lines, once replica `i` wrote `sent[i]`
    /// (lines are written asynchronously), one per request sent.
    async fn access_logs(&self, sent: &[u64; REPLICAS]) -> Vec<AccessLogLine> {
        let mut lines = Vec::new();
        for (g, &n) in self.gws.iter().zip(sent) {
            let got = g.wait_for_log_lines(n as usize, SETTLE_WAIT).await;
            assert_eq!(got.len() as u64, n, "{}: one line per request", self.label);
            lines.extend(got);
        }
        lines
    }

    /// What the budget's window holds, as `/admin/usage` on replica `i % 3` says.
    async fn budget_used(&self, i: usize) -> Nanos {
        let list = self.admin_get(i, "/admin/usage?tenant=acme").await.json();
        let entry = list
            .as_array()
            .and_then(|l| l.iter().find(|e| e["quota"] == BUDGET_NAME))
            .unwrap_or_else(|| panic!("no window of {BUDGET_NAME} in /admin/usage: {list}"));
        assert_eq!(
            (&entry["key"], &entry["limit"], &entry["currency"]),
            (&json!("acme"), &json!(BUDGET), &json!("USD")),
            "{entry}"
        );
        amount(entry["used"].as_str().unwrap_or_default())
    }

    /// Polls `/admin/usage` (over the replicas) until the budget's window holds `want`.
    async fn wait_used(&self, want: Nanos) {
        let start = Instant::now();
        for i in 0.. {
            let got = self.budget_used(i).await;
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < SETTLE_WAIT,
                "{}: the budget's window holds {}, the spend served is {} (still, {SETTLE_WAIT:?} on)\n{}",
                self.label,
                format_nanos(got),
                format_nanos(want),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn post_chat(client: &TestClient, url: &str, key: &str, body: &Value) -> HttpResponse {
    let bearer = format!("Bearer {key}");
    client
        .post_json_with(url, body, &[("authorization", bearer.as_str())])
        .await
}

// ------------------------------------------------------------------ load

/// The 60 clients, client `i` sending its `j`-th request to replica
/// `(i + j) % 3`: acme's until 4 s passed or their 5th refusal, globex's
/// [`GLOBEX_REQUESTS`] each. (acme's tally, globex's tally)
async fn burst(f: &Fleet) -> (Tally, Tally) {
    let until = Instant::now() + Duration::from_secs(4);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (urls, client) = (f.urls.clone(), f.client.clone());
            tokio::spawn(async move {
                let mut t = Tally::default();
                let (_, _, key) = consumer_of(i);
                for j in 0.. {
                    let more = if i < BUDGETED {
                        Instant::now() < until && t.limited < 5
                    } else {
                        j < GLOBEX_REQUESTS
                    };
                    if !more {
                        break;
                    }
                    let (shape, replica) = (Shape::of(i, j), (i + j) % REPLICAS);
                    let r = post_chat(&client, &urls[replica], key, &shape.body()).await;
                    t.record(replica, &shape, &r);
                }
                (i < BUDGETED, t)
            })
        })
        .collect();
    let (mut acme, mut globex) = (Tally::default(), Tally::default());
    for task in tasks {
        let (budgeted, t) = task.await.expect("client task");
        if budgeted { &mut acme } else { &mut globex }.add(&t);
    }
    (acme, globex)
}

/// One acme request at a time until one is refused twice, the second time
/// after every settlement landed: the refused request's worst case and the
/// refusal's message.
async fn fill_up(f: &Fleet, t: &mut Tally) -> (Nanos, String) {
    for j in 0..3000 {
        let shape = Shape::of(j, j / 3);
        let (replica, key) = (j % REPLICAS, consumer_of(j % BUDGETED).2);
        let r = post_chat(&f.client, &f.urls[replica], key, &shape.body()).await;
        t.record(replica, &shape, &r);
        if r.status == 429 {
            f.wait_used(t.spend).await;
            let replica = (j + 1) % REPLICAS;
            let r = post_chat(&f.client, &f.urls[replica], key, &shape.body()).await;
            t.record(replica, &shape, &r);
            if r.status == 429 {
                let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
                return (shape.worst_case(), msg);
            }
        }
        t.assert_expected(f.label, "one at a time", f);
    }
    panic!("{}: 3000 requests one at a time and no refusal", f.label)
}

// ------------------------------------------------------------------ bill

/// The three logs as `gateway bill` gets them, in `dir`: replica 0's as it is,
/// replica 1's gzipped, replica 2's with [`FOREIGN`] lines among its own.
fn bill_inputs(f: &Fleet, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let plain = dir.join("replica-0.log");
    std::fs::write(&plain, f.gws[0].access_log_text()).unwrap();
    let gz = dir.join("replica-1.log.1.gz");
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(f.gws[1].access_log_text().as_bytes()).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let own = f.gws[2].access_log_text();
    let own: Vec<&str> = own.lines().collect();
    let half = own.len() / 2;
    let mixed = [FOREIGN[0]]
        .iter()
        .chain(&own[..half])
        .chain(&[FOREIGN[1]])
        .chain(&own[half..])
        .chain(&[FOREIGN[2]])
        .fold(String::new(), |s, l| s + l + "\n");
    let mixed_path = dir.join("replica-2.log");
    std::fs::write(&mixed_path, mixed).unwrap();
    vec![plain, gz, mixed_path]
}

/// Lines that are not the gateway's: another server's access log, a JSON log
/// line without `ai_log`, a plain log line.
const FOREIGN: [&str; 3] = [
    r#"127.0.0.1 - - [02/Mar/2026:08:00:01 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0""#,
    r#"{"level":"info","ts":"2026-03-02T08:00:01Z","msg":"config reloaded"}"#,
    "2026-03-02T08:00:02Z INFO gateway: listening on 127.0.0.1:8080",
];

/// `gateway bill` over the fleet's three logs ([`bill_inputs`]) at the prices
/// of replica 0's config file, for the report's days and columns: its CSV is
/// `csv` byte for byte, and it says what it skipped (`lines`: the gateway's
/// lines, `billed` of them answered by an upstream).
fn bill_matches(f: &Fleet, csv: &str, from: &str, to: &str, lines: u64, billed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let prices = f.gws[0].config_path().display().to_string();
    let group_by = GROUP_BY.join(",");
    let mut args: Vec<std::ffi::OsString> = [
        "bill",
        "--prices",
        &prices,
        "--group-by",
        &group_by,
        "--from",
        from,
        "--to",
        to,
        "--format",
        "csv",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.extend(bill_inputs(f, dir.path()).into_iter().map(Into::into));
    let (code, out, err) = tokio::task::block_in_place(|| run_gateway(&args));
    let label = f.label;
    assert_eq!(code, 0, "{label}: gateway bill: {err}");
    assert_eq!(
        out, csv,
        "{label}: gateway bill's CSV differs from GET /admin/usage/report's"
    );
    assert_eq!(
        err.trim_end(),
        format!(
            "gateway bill: {} line(s) in 3 file(s): {billed} request(s) billed; {} not billed \
             (no upstream answered); {} skipped: not the gateway's access-log lines",
            lines + FOREIGN.len() as u64,
            lines - billed,
            FOREIGN.len()
        ),
        "{label}"
    );
}

// ------------------------------------------------------------------ scenario

/// The scenario of the module doc on `redis`.
async fn budget_and_ledger_hold(redis: SharedRedis) {
    let f = Fleet::start(redis).await;
    let label = f.label;
    let budget = amount(BUDGET);

    let started = Instant::now();
    let (mut acme, globex) = burst(&f).await;
    let burst_time = started.elapsed();
    acme.assert_expected(label, "during the burst", &f);
    globex.assert_expected(label, "to the tenant without a budget", &f);
    assert_eq!(globex.ok, ((CLIENTS - BUDGETED) * GLOBEX_REQUESTS) as u64);
    assert!(acme.limited > 0, "{label}: the burst was never refused");
    let (burst_ok, burst_limited) = (acme.ok, acme.limited);
    let (need, msg) = fill_up(&f, &mut acme).await;

    // every request has its line, a cost exactly on the 200 answers (the 429s
    // reached no upstream), the mock's usage at the model's price
    let mut all = Tally::default();
    all.add(&acme);
    all.add(&globex);
    let lines = f.access_logs(&all.sent).await;
    let answered: Vec<&AccessLogLine> = lines.iter().filter(|l| l.response_code == 200).collect();
    assert_eq!(answered.len() as u64, all.ok, "{label}");
    for l in &lines {
        assert_eq!(
            l.response_code == 200,
            l.ai_log.cost.is_some(),
            "{label}: {l:?}"
        );
    }
    let spend_of = |tenant: &str| -> Nanos {
        let of_tenant = answered
            .iter()
            .filter(|l| l.ai_log.tenant.as_deref() == Some(tenant));
        of_tenant
            .map(|l| amount(l.ai_log.cost.as_deref().unwrap_or_default()))
            .sum()
    };
    assert_eq!(
        (spend_of("acme"), spend_of("globex")),
        (acme.spend, globex.spend),
        "{label}: the access logs' costs against the mock's usage at the models' prices"
    );

    // ------------------------------------------------ the budget holds
    let served = spend_of("acme");
    let one = acme.max_worst;
    assert!(
        served <= budget + one,
        "{label}: spend served {} over the budget {BUDGET} + one request's worst case {}",
        format_nanos(served),
        format_nanos(one)
    );
    assert!(
        msg.contains(&format!(
            "{} used, this request needs up to {}",
            format_nanos(served),
            format_nanos(need)
        )),
        "{label}: the refusal should state the spend {} and the request's worst case {}: {msg}",
        format_nanos(served),
        format_nanos(need)
    );
    assert!(
        served + need > budget && served + one >= budget,
        "{label}: refused a request of worst case {} while {} of {BUDGET} were spent: it fitted",
        format_nanos(need),
        format_nanos(served)
    );
    // the window holds exactly the spend served
    f.wait_used(served).await;

    // ------------------------------------------------ the ledger, the bill
    let days = lines.iter().map(|l| &l.start_time[..10]);
    let (from, to) = (days.clone().min().unwrap(), days.max().unwrap());
    let want = Report::of_log_lines(&lines, &GROUP_BY);
    assert_eq!(want.rows.len(), 3 * MODELS.len(), "{label}: {want:?}");
    let (ledger_wait, csv) = ledger_matches(&f, &want, from, to).await;
    bill_matches(&f, &csv, from, to, lines.len() as u64, want.totals.requests);

    println!(
        "[{label}] budget {BUDGET}/h on acme, {CLIENTS} clients ({BUDGETED} on acme) over \
         {REPLICAS} replicas for {burst_time:?}: {burst_ok} answers 200, {burst_limited} answers 429; \
         then one at a time until a refusal: {} answers 200; spend served {} ({} short of the \
         budget; the refused request's worst case {}, the dearest {}); the ledger's report equal to \
         the access logs after {ledger_wait:?} of polling ({} requests, {} in {} rows); gateway \
         bill equal byte for byte",
        acme.ok - burst_ok,
        format_nanos(served),
        format_nanos(budget.saturating_sub(served)),
        format_nanos(need),
        format_nanos(one),
        want.totals.requests,
        format_nanos(want.totals.cost),
        want.rows.len()
    );
}

/// The report's columns here.
const GROUP_BY: [&str; 3] = ["tenant", "consumer", "model"];

/// Polls the JSON report (over the replicas) until it equals `want` (the
/// settle queue is asynchronous), then checks the CSV report: how long it
/// took, and the CSV.
async fn ledger_matches(f: &Fleet, want: &Report, from: &str, to: &str) -> (Duration, String) {
    let query = format!(
        "/admin/usage/report?from={from}&to={to}&group_by={}",
        GROUP_BY.join(",")
    );
    let start = Instant::now();
    for i in 0.. {
        let v = f.admin_get(i, &format!("{query}&format=json")).await.json();
        let got = Report::from_json(&v);
        if got == *want {
            assert_eq!(v["currency"], "USD", "{v}");
            break;
        }
        assert!(
            start.elapsed() < SETTLE_WAIT,
            "{}: the ledger's report differs from the access logs (still, {SETTLE_WAIT:?} on):\n{}",
            f.label,
            got.diff(want)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    let r = f.admin_get(1, &format!("{query}&format=csv")).await;
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let csv = r.text();
    let got = Report::from_csv(&csv);
    assert!(
        got == *want,
        "{}: the CSV report:\n{}",
        f.label,
        got.diff(want)
    );
    (took, csv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_budget_holds_and_the_ledger_and_bill_match_the_logs_standalone() {
    let _serial = SERIAL.lock().await;
    budget_and_ledger_hold(SharedRedis::standalone().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_budget_holds_and_the_ledger_and_bill_match_the_logs_cluster() {
    let _serial = SERIAL.lock().await;
    budget_and_ledger_hold(SharedRedis::cluster().await).await;
}
