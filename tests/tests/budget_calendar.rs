//! Budgets in calendar windows (`strategy: cost`, `window: day | week |
//! month` in a time zone), their boundaries placed a few seconds from now
//! through the debug-only test hook `GATEWAY_TEST_CLOCK_SHIFT_MS`
//! (`gateway_tests::calendar`): a month refuses until its boundary and admits
//! after it, on two replicas sharing Redis, and the old month's usage ledger
//! stays on its last day; the same in a time zone half an hour off UTC;
//! alerts at 50/80/100% posted once per period for the whole fleet, with the
//! log line and `gateway_budget_alerts_total` on the replica that sent them,
//! again in the next period; a webhook that never answers delays no request
//! and is given up after its retries; `/admin/usage` shows a budget in the
//! currency; a malformed test hook keeps the gateway from starting.

use gateway_tests::calendar::{Boundary, CLOCK_SHIFT_VAR};
use gateway_tests::client::{chat_body, HttpResponse, TestClient};
use gateway_tests::config::{
    Config, Consumer, Price, Pricing, Provider, Quota, Route, Server, Tenant,
};
use gateway_tests::harness::{admin, fresh_request_id, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::{wait_metric, Scrape};
use gateway_tests::mock_upstream::{chat_usage, MockUpstream};
use gateway_tests::redis::SharedRedis;
use gateway_tests::webhook::WebhookReceiver;
use http::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KEY: &str = "sk-gw-budget-bob";
const AUTH: (&str, &str) = ("authorization", "Bearer sk-gw-budget-bob");
/// 11 bytes: the mock answers 3 prompt and 8 completion tokens.
const HELLO: &str = "hello there";
/// What the mock's answer to [`HELLO`] costs at [`prices`]: 11 tokens at 0.001.
const COST: &str = "0.011";
const WAIT: Duration = Duration::from_secs(10);

/// mock-small (every model is asked of the upstream as mock-small) at 1000
/// per million tokens in and out: 0.001 a token.
fn prices() -> Pricing {
    Pricing::only().price(Price::new("mock-small", "1000", "1000"))
}

/// One provider on the mock, one keyed route `chat`, tenant `acme` with
/// consumer `bob` (key [`KEY`]) and `budget` on the tenant, [`prices`], an
/// access log.
fn budget_config(mock: &MockUpstream, budget: Quota) -> Config {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::openai("up1", &mock.base_url())
                .token("sk-upstream")
                .map("*", "mock-small"),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .tenant(
            Tenant::new("acme")
                .quota(budget)
                .consumer(Consumer::new("bob").key(KEY)),
        )
        .pricing(prices())
        .access_log()
}

/// [`HELLO`] asking for at most `max_tokens` completion tokens: its worst
/// case is the prompt estimate plus `max_tokens` at 0.001 a token.
fn hello(max_tokens: u64) -> Value {
    let mut body = chat_body("any-model", HELLO);
    body["max_tokens"] = json!(max_tokens);
    body
}

/// Bob's chat `body` through `gw`, with a fresh request id.
async fn chat(gw: &Gateway, body: &Value) -> HttpResponse {
    let rid = fresh_request_id();
    TestClient::new()
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            body,
            &[AUTH, ("x-request-id", rid.as_str())],
        )
        .await
}

/// Asserts a budget refusal: 429 `rate_limit_exceeded` of type `budget`;
/// returns its `Retry-After` (whole seconds).
fn refused_by_budget(r: &HttpResponse, what: &str) -> u64 {
    let v = r.assert_openai_error(429, "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "budget", "{what}: {v}");
    let ra = r.header("retry-after");
    ra.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: Retry-After {ra:?} is not whole seconds: {v}"))
}

/// Asserts that a refusal's `Retry-After` is the time left to `b`, rounded
/// up (give or take the second the request took).
fn retry_after_is_the_boundary(retry_after: u64, b: &Boundary, what: &str) {
    let left = b.left().as_secs_f64();
    assert!(
        retry_after >= 1 && (retry_after as f64 - left).abs() <= 1.5,
        "{what}: Retry-After {retry_after} s, the boundary is {left:.2} s away"
    );
}

/// `GET /admin/usage` of `gw`, as a list.
async fn usage(gw: &Gateway) -> Vec<Value> {
    let r = admin(&TestClient::new(), gw, Method::GET, "/admin/usage", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    match r.json() {
        Value::Array(v) => v,
        other => panic!("/admin/usage is not a list: {other}"),
    }
}

/// Waits until `/admin/usage` of `gw` shows `used` (decimal text) for
/// `quota` counting `key` (settlements reach Redis off the request path).
async fn wait_used(gw: &Gateway, quota: &str, key: &str, used: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = usage(gw).await;
        let entry = list.iter().find(|e| e["quota"] == quota && e["key"] == key);
        if entry.is_some_and(|e| e["used"] == used) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{quota} {key}: used never became {used}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /admin/usage/report?<query>` of `gw` as JSON, polled until its
/// `totals.requests` is `requests` (the ledger is written with the
/// settlements, off the request path).
async fn report_of(gw: &Gateway, query: &str, requests: u64) -> Value {
    let path = format!("/admin/usage/report?{query}");
    let deadline = Instant::now() + WAIT;
    loop {
        let r = admin(&TestClient::new(), gw, Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        let v = r.json();
        if v["totals"]["requests"] == requests {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path}: never {requests} requests: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `n` replicas of `yaml` at once, each with the clock shift of `b`.
async fn replicas(yaml: &str, b: &Boundary, n: usize) -> Vec<Gateway> {
    let starts: Vec<_> = (0..n)
        .map(|_| tokio::spawn(Gateway::builder(yaml).clock_shift_ms(b.shift_ms).start()))
        .collect();
    let mut out = Vec::new();
    for s in starts {
        out.push(s.await.expect("a replica started"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_month_budget_refuses_until_the_month_ends_and_admits_after_on_two_replicas() {
    let redis = SharedRedis::standalone().await;
    let mock = MockUpstream::start_default();
    // 0.015 a month: one request of 0.011 (worst case 0.011: 3 prompt
    // tokens estimated, 8 asked for), never two
    let yaml = budget_config(&mock, Quota::budget("monthly", "tenant", "0.015", "month"))
        .state(redis.state("cal", 2000).on_redis_error("fail_closed"))
        .yaml();
    let body = hello(8);
    let month_end = Boundary::after("month", "UTC", Duration::from_secs(3));
    let gws = replicas(&yaml, &month_end, 2).await;
    let (a, b) = (&gws[0], &gws[1]);

    let r = chat(a, &body).await;
    assert_eq!(
        r.status,
        200,
        "the month's first request fits: {}",
        r.text()
    );
    for (gw, which) in [(b, "B"), (a, "A")] {
        let r = chat(gw, &body).await;
        let retry_after = refused_by_budget(&r, which);
        retry_after_is_the_boundary(retry_after, &month_end, which);
    }
    assert!(
        !month_end.passed(),
        "the refusals must come before the month ends: the replicas started too slowly"
    );

    month_end.pass().await;
    let r = chat(b, &body).await;
    assert_eq!(r.status, 200, "a new month: {}", r.text());
    // the new month holds one request too, for the whole fleet
    let r = chat(a, &body).await;
    refused_by_budget(&r, "A in the new month");

    // the ledger keeps the old month's request on its last day and counts the
    // new one on the new month's first day (the ledger's days follow the
    // shifted clock too)
    let (last, first) = (month_end.utc_day_before(), month_end.utc_day_after());
    let query = format!("from={last}&to={first}&group_by=tenant,day");
    let report = report_of(a, &query, 2).await;
    let rows: Vec<(Value, Value, Value, Value)> = report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {report}"))
        .iter()
        .map(|r| {
            (
                r["tenant"].clone(),
                r["day"].clone(),
                r["requests"].clone(),
                r["cost"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("acme"), json!(last), json!(1), json!(COST)),
            (json!("acme"), json!(first), json!(1), json!(COST)),
        ],
        "{report}"
    );
    assert_eq!(report["totals"]["cost"], "0.022", "{report}");
    // both replicas read the same ledger
    assert_eq!(report_of(b, &query, 2).await, report);
    // and it says what the access logs say
    let mut logged = Vec::new();
    for gw in &gws {
        for l in gw.access_log_lines() {
            if l.response_code == 200 {
                logged.push(l.ai_log.cost.unwrap_or_default());
            }
        }
    }
    assert_eq!(logged, [COST, COST]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_in_a_half_hour_time_zone_ends_at_its_local_midnight() {
    let mock = MockUpstream::start_default();
    let budget = Quota::budget("monthly", "tenant", "0.015", "month").timezone("Asia/Kolkata");
    let yaml = budget_config(&mock, budget).yaml();
    let body = hello(8);
    // Kolkata is UTC+05:30: its months start at 18:30 UTC, when no UTC
    // period (day, week or month) ends
    let month_end = Boundary::after("month", "Asia/Kolkata", Duration::from_secs(3));
    let gw = replicas(&yaml, &month_end, 1).await.remove(0);

    let r = chat(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = chat(&gw, &body).await;
    let retry_after = refused_by_budget(&r, "the second request of the month");
    retry_after_is_the_boundary(retry_after, &month_end, "memory backend");
    assert!(!month_end.passed(), "the gateway started too slowly");

    month_end.pass().await;
    let r = chat(&gw, &body).await;
    assert_eq!(r.status, 200, "Kolkata's new month: {}", r.text());
    let entry = usage(&gw).await;
    let entry = entry
        .iter()
        .find(|e| e["quota"] == "monthly")
        .unwrap_or_else(|| panic!("{entry:?}"));
    assert_eq!(entry["used"], COST, "the new month counts its own: {entry}");
    assert_eq!(entry["timezone"], "Asia/Kolkata", "{entry}");
}

/// The webhook bodies' (percent, used), by percent.
fn percents(bodies: &[Value]) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = bodies
        .iter()
        .map(|b| {
            (
                b["percent"].as_u64().unwrap_or(0),
                b["used"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// `gateway_budget_alerts_total{quota, percent}` summed over `gws` (a
/// replica that never sent one has it at 0, or not yet).
async fn alerts_sent(gws: &[&Gateway], quota: &str, percent: u64) -> f64 {
    let p = percent.to_string();
    let mut sum = 0.0;
    for gw in gws {
        let s = Scrape::of(gw).await;
        sum += s
            .value(
                "gateway_budget_alerts_total",
                &[("quota", quota), ("percent", &p)],
            )
            .unwrap_or(0.0);
    }
    sum
}

/// Stderr lines of `gw` that announce a budget alert at `percent`.
fn alert_lines(gw: &Gateway, percent: u64) -> usize {
    let needle = format!("budget alert: {percent}% of the limit reached");
    gw.stderr().lines().filter(|l| l.contains(&needle)).count()
}

/// Bob's budget `alerted` of 0.11 per `window` with alerts at 50, 80 and
/// 100%.
fn alerted(window: &str) -> Quota {
    Quota::budget("alerted", "consumer", "0.11", window).alerts(&[50, 80, 100])
}

/// The alerts of [`alerted`] when [`spend_the_budget`] spends it: (percent,
/// used).
fn alerts_of_ten_requests() -> [(u64, String); 3] {
    [(50, spent(5)), (80, spent(8)), (100, spent(10))]
}

/// Ten requests of 0.011 (the 11th is refused), alternating between `first`
/// and `second`, each settled before the next: [`alerted`] reaches 50% with
/// the 5th, 80% with the 8th and 100% with the 10th, and stays over 50% and
/// 80% for requests sent through the other replica. Each request asks for 1
/// token: it fits while 0.004 is left, and costs the mock's 11 tokens.
async fn spend_the_budget(first: &Gateway, second: &Gateway) {
    let body = hello(1);
    assert_eq!(chat_usage(&body, 8).prompt_tokens + 8, 11);
    for k in 1..=10 {
        let gw = if k % 2 == 1 { first } else { second };
        let r = chat(gw, &body).await;
        assert_eq!(r.status, 200, "request {k}: {}", r.text());
        wait_used(gw, "alerted", "acme/bob", &spent(k)).await;
    }
    let r = chat(first, &body).await;
    refused_by_budget(&r, "the period's budget is spent");
}

/// What `k` requests of 0.011 cost, as the gateway writes amounts.
fn spent(k: u64) -> String {
    shared::money::format_nanos(k * 11_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_go_out_once_per_percentage_for_the_fleet_and_again_next_period() {
    let redis = SharedRedis::standalone().await;
    let mock = MockUpstream::start_default();
    let hook = WebhookReceiver::start().await;
    let yaml = budget_config(&mock, alerted("day"))
        .state(redis.state("alerts", 2000).on_redis_error("fail_closed"))
        .budget_alerts_webhook(&hook.url(), 2000, 2)
        .set(
            "budget_alerts.webhook.headers",
            json!({"authorization": "Bearer hook-token"}),
        )
        .yaml();
    assert_eq!(spent(1), COST);
    let day_end = Boundary::after("day", "UTC", Duration::from_secs(4));
    let gws = replicas(&yaml, &day_end, 2).await;
    let (a, b) = (&gws[0], &gws[1]);
    let expected = alerts_of_ten_requests();

    spend_the_budget(a, b).await;
    let got = hook.wait_for(3, WAIT).await;
    assert!(!day_end.passed(), "the replicas started too slowly");
    let bodies: Vec<Value> = got.iter().map(|r| r.json.clone()).collect();
    assert_eq!(percents(&bodies), expected, "{bodies:?}");
    for (r, body) in got.iter().zip(&bodies) {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/hooks/budget")
        );
        assert_eq!(r.headers["authorization"], "Bearer hook-token");
        assert_eq!(r.headers["content-type"], "application/json");
        for (field, want) in [
            ("quota", "alerted"),
            ("owner", "t:acme"),
            ("subject", "acme/bob"),
            ("window", "day"),
            ("limit", "0.11"),
            ("strategy", "cost"),
        ] {
            assert_eq!(body[field], want, "{field}: {body}");
        }
    }
    // the replica whose settlement crossed a percentage says so: A sent the
    // 5th request, B the 8th and the 10th
    for (percent, on_a) in [(50, 1), (80, 0), (100, 0)] {
        assert_eq!(alert_lines(a, percent), on_a, "{percent}% on A");
        assert_eq!(alert_lines(b, percent), 1 - on_a, "{percent}% on B");
        assert_eq!(alerts_sent(&[a, b], "alerted", percent).await, 1.0);
    }

    // a new day: the budget and its alerts start again
    day_end.pass().await;
    spend_the_budget(b, a).await;
    let got = hook.wait_for(6, WAIT).await;
    let bodies: Vec<Value> = got[3..].iter().map(|r| r.json.clone()).collect();
    assert_eq!(percents(&bodies), expected, "{bodies:?}");
    for percent in [50, 80, 100] {
        assert_eq!(alerts_sent(&[a, b], "alerted", percent).await, 2.0);
        assert_eq!(alert_lines(a, percent) + alert_lines(b, percent), 2);
    }
    // nothing more comes
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.received().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_backend_alerts_once_per_period_too() {
    let mock = MockUpstream::start_default();
    let hook = WebhookReceiver::start().await;
    // weeks from Monday in New York (a zone with daylight saving time)
    let budget = alerted("week").timezone("America/New_York");
    let yaml = budget_config(&mock, budget)
        .budget_alerts_webhook(&hook.url(), 2000, 2)
        .yaml();
    let week_end = Boundary::after("week", "America/New_York", Duration::from_secs(4));
    let gw = replicas(&yaml, &week_end, 1).await.remove(0);

    spend_the_budget(&gw, &gw).await;
    let got = hook.wait_for(3, WAIT).await;
    assert!(!week_end.passed(), "the gateway started too slowly");
    let bodies: Vec<Value> = got.iter().map(|r| r.json.clone()).collect();
    assert_eq!(percents(&bodies), alerts_of_ten_requests(), "{bodies:?}");
    assert!(bodies.iter().all(|b| b["window"] == "week"), "{bodies:?}");

    week_end.pass().await;
    spend_the_budget(&gw, &gw).await;
    let got = hook.wait_for(6, WAIT).await;
    let bodies: Vec<Value> = got[3..].iter().map(|r| r.json.clone()).collect();
    assert_eq!(percents(&bodies), alerts_of_ten_requests(), "{bodies:?}");
    for percent in [50, 80, 100] {
        assert_eq!(alerts_sent(&[&gw], "alerted", percent).await, 2.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_answers_delays_no_request_and_is_given_up() {
    let mock = MockUpstream::start_default();
    let hook = WebhookReceiver::hanging().await;
    // the first request (0.011) crosses 50% of 0.02; each post waits 1.2 s,
    // retried twice after 0.5 s and 1 s
    let budget = Quota::budget("monthly", "tenant", "0.02", "month").alerts(&[50]);
    let yaml = budget_config(&mock, budget)
        .budget_alerts_webhook(&hook.url(), 1200, 2)
        .yaml();
    let gw = Gateway::start(&yaml).await;
    let bound = Duration::from_secs(1);

    let rid = fresh_request_id();
    let t = Instant::now();
    let r = TestClient::new()
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &hello(1),
            &[AUTH, ("x-request-id", rid.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // the request and its record are done before the webhook's first timeout
    gw.wait_for_log_line(&rid, bound).await;
    let crossing = t.elapsed();
    hook.wait_for(1, WAIT).await;
    let t = Instant::now();
    let r = chat(&gw, &hello(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let next = t.elapsed();
    assert!(
        crossing < bound && next < bound,
        "requests held by the webhook: {crossing:?} and {next:?}"
    );
    let s = Scrape::of(&gw).await;
    assert_eq!(
        s.get(
            "gateway_budget_alerts_total",
            &[("quota", "monthly"), ("percent", "50")]
        ),
        1.0
    );

    // 1 + 2 retries, then counted as failed
    let failed = |v: f64| v == 1.0;
    let name = "gateway_budget_alert_post_failures_total";
    wait_metric(&gw, name, &[], failed, "1", WAIT).await;
    assert_eq!(hook.received().len(), 3, "one post and two retries");
    let s = Scrape::of(&gw).await;
    assert_eq!(s.get("gateway_budget_alert_posts_total", &[]), 0.0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hook.received().len(), 3, "no retry after the last");
    let stderr = gw.stderr();
    assert!(
        stderr.contains("not delivered after 3 attempts"),
        "the give-up is logged:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_usage_shows_a_budget_in_the_currency_with_its_calendar() {
    let mock = MockUpstream::start_default();
    let pricing = Pricing::only()
        .currency("EUR")
        .price(Price::new("mock-small", "1000", "1000"));
    let budget = Quota::budget("monthly", "tenant", "0.05", "month").timezone("Europe/Berlin");
    let yaml = budget_config(&mock, budget).pricing(pricing).yaml();
    let gw = Gateway::start(&yaml).await;
    let r = chat(&gw, &hello(8)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    wait_used(&gw, "monthly", "acme", COST).await;
    let list = usage(&gw).await;
    let e = list
        .iter()
        .find(|e| e["quota"] == "monthly")
        .unwrap_or_else(|| panic!("{list:?}"));
    for (field, want) in [
        ("owner", "t:acme"),
        ("strategy", "cost"),
        ("limit", "0.05"),
        ("used", COST),
        ("remaining", "0.039"),
        ("currency", "EUR"),
        ("window", "month"),
        ("timezone", "Europe/Berlin"),
    ] {
        assert_eq!(e[field], want, "{field}: {e}");
    }
    // it resets when the month ends in Berlin
    let next = Boundary::after("month", "Europe/Berlin", Duration::ZERO).shifted;
    assert_eq!(e["reset_at"], next.to_string(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_shift_that_is_not_a_number_keeps_the_gateway_from_starting() {
    let mock = MockUpstream::start_default();
    let yaml = budget_config(&mock, Quota::budget("monthly", "tenant", "1", "month")).yaml();
    let err = match Gateway::builder(&yaml)
        .env(CLOCK_SHIFT_VAR, "3s")
        .try_start()
        .await
    {
        Ok(_) => panic!("the gateway started with {CLOCK_SHIFT_VAR}=3s"),
        Err(e) => e,
    };
    assert!(
        err.contains("GATEWAY_TEST_CLOCK_SHIFT_MS is not a whole number of ms"),
        "{err}"
    );
}
