//! The Grafana dashboard checked by a real Prometheus. Two gateway replicas
//! share one real Redis; Debian's `prometheus` scrapes each replica's admin
//! `/metrics` (no token needed) every second. Traffic then gives every panel
//! something to show, in two rounds to each replica with a scrape between
//! them (so the second moves series Prometheus already has, as in a fleet
//! that has been running): priced JSON and streamed chats of a keyed
//! consumer (tokens, TTFT, spend, a budget alert), a model without a price
//! and a cut stream (unpriced and estimated costs), a wrong key (401), a
//! provider that refuses connections (502, then panic routing), a consumer
//! over its request quota (429); then a provider failing with 500
//! (fallbacks, a passive ejection, failed probes) that recovers (a probe
//! ends the ejection).
//!
//! `promtool check metrics` must find nothing on either replica's page but
//! the Higress counters' names. Every PromQL expression of the dashboard
//! (each Prometheus panel target, each template variable's `label_values`),
//! with Grafana's variables at "All", run through Prometheus's HTTP API,
//! must return data; each metric selector in it must match a series (an
//! `... or vector(0)` hides nothing); and it must show something other than
//! 0 unless it reads only counters of events this traffic does not cause
//! ([`AT_REST`]). The failure names every panel and expression that did not.

use gateway_tests::client::{chat_body, chat_stream_body, HttpResponse, TestClient};
use gateway_tests::config::{
    Config, Consumer, Fallback, Price, Pricing, Provider, Quota, Route, Server, Tenant, Timeouts,
};
use gateway_tests::dashboard::{
    label_values_promql, metric_names, selectors, substitute, Dashboard,
};
use gateway_tests::harness::{closed_port_url, health_row, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::prometheus::{check_metrics, prometheus_bin, promtool_bin, Prometheus};
use gateway_tests::redis::SharedRedis;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

const REPLICAS: usize = 2;
/// Prometheus's `scrape_interval`.
const SCRAPE: Duration = Duration::from_secs(1);
/// How long the expressions may take to return data once the traffic is over
/// (a `rate()` needs two scrapes of a series).
const SETTLE: Duration = Duration::from_secs(20);
/// How long a probe (every second) may take to fail or succeed.
const PROBE_WAIT: Duration = Duration::from_secs(8);

const BOB: &str = "sk-prom-bob-0123456789";
const EVE: &str = "sk-prom-eve-0123456789";
/// The model with a price; any other is unpriced.
const PRICED: &str = "mock-small";
const UNPRICED: &str = "mock-unpriced";

/// Providers `flaky` and `main` on their mocks, `dead` where nothing
/// listens. Routes, the first matching: `direct` (header `x-route: direct`)
/// to `main`, open; `broken` (`x-route: broken`) to `dead`; `chat` keyed,
/// `flaky` first and `main` as its fallback on 5xx and ejection. Tenant
/// `acme` with a daily budget alerting at 1% and 90%; its consumers `bob`
/// and `eve`, eve with one request a minute. [`PRICED`] at 0.001 a token.
fn config(flaky: &MockUpstream, main: &MockUpstream) -> Config {
    let timeouts = Timeouts::all(500, 2000, 2000, 10_000);
    let probes = json!({ "active": {
        "http_path": "/models",
        "interval_s": 1,
        "timeout_ms": 500,
        "healthy": { "successes": 1, "http_statuses": [200] },
        "unhealthy": { "failures": 10, "http_statuses": [500, 502, 503, 504] },
    }});
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::openai("flaky", &flaky.base_url())
                .token("sk-prom-flaky")
                .model(PRICED)
                .timeouts(timeouts.clone())
                .passive(2, 10, 60)
                .checks(probes),
        )
        .provider(
            Provider::openai("main", &main.base_url())
                .token("sk-prom-main")
                .model(PRICED)
                .model(UNPRICED)
                .timeouts(timeouts.clone()),
        )
        .provider(
            Provider::openai("dead", &closed_port_url())
                .token("sk-prom-dead")
                .timeouts(timeouts)
                .passive(1, 10, 60),
        )
        .route(
            Route::new("direct", "/v1")
                .header("x-route", &["direct"])
                .upstream("main"),
        )
        .route(
            Route::new("broken", "/v1")
                .header("x-route", &["broken"])
                .upstream("dead"),
        )
        .route(
            Route::new("chat", "/v1")
                .keyed()
                .upstream_priority("flaky", 0)
                .upstream_priority("main", 1)
                .fallback(Fallback::on(&["http_5xx", "unhealthy"], 1)),
        )
        .tenant(
            Tenant::new("acme")
                .quota(Quota::budget("acme-budget", "tenant", "1", "day").alerts(&[1, 90]))
                .consumer(Consumer::new("bob").key(BOB))
                .consumer(Consumer::new("eve").key(EVE).quota(Quota::new(
                    "eve-requests",
                    "consumer",
                    "requests",
                    1,
                    "1m",
                ))),
        )
        .pricing(Pricing::only().price(Price::new(PRICED, "1000", "1000")))
        .access_log()
}

/// The replicas and a client.
struct Fleet {
    gws: Vec<Gateway>,
    c: TestClient,
}

impl Fleet {
    /// A chat `body` with `headers`, to replica `i`.
    async fn chat(&self, i: usize, body: &Value, headers: &[(&str, &str)]) -> HttpResponse {
        let url = format!("{}/v1/chat/completions", self.gws[i].url());
        self.c.post_json_with(&url, body, headers).await
    }

    /// A streamed chat of `model` with `headers`, to replica `i`: the text
    /// it received.
    async fn stream(&self, i: usize, model: &str, headers: &[(&str, &str)]) -> String {
        let url = format!("{}/v1/chat/completions", self.gws[i].url());
        let mut body = chat_stream_body(model, "stream for the dashboard");
        body["max_tokens"] = json!(16);
        self.c.post_sse(&url, &body, headers).await.content()
    }

    /// Waits until `provider`'s health row says `healthy` on every replica.
    async fn wait_health(&self, provider: &str, healthy: bool, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for g in &self.gws {
            loop {
                let row = health_row(&self.c, g, provider).await;
                if row["healthy"] == healthy {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{provider} not healthy={healthy} after {timeout:?}: {row}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until the replicas' `name` counters add up to at least `n`.
    async fn wait_counted(&self, name: &str, n: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut sum = 0.0;
            for g in &self.gws {
                sum += Scrape::of(g).await.get(name, &[]);
            }
            if sum >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {sum} after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A chat of `model` saying `text`, asking for at most 16 tokens (what a
/// budget reserves for it).
fn chat(model: &str, text: &str) -> Value {
    let mut body = chat_body(model, text);
    body["max_tokens"] = json!(16);
    body
}

/// One round of the traffic of the module doc, sent to each replica;
/// `first`: the first round, in which eve's one request of the minute is
/// admitted.
async fn round(fleet: &Fleet, main: &MockUpstream, first: bool) {
    let (bob, eve) = (bearer(BOB), bearer(EVE));
    let bob = [("authorization", bob.as_str())];
    let eve = [("authorization", eve.as_str())];
    let direct = [("x-route", "direct")];
    for i in 0..REPLICAS {
        // priced JSON and a stream of a keyed consumer (the first takes the
        // budget past 1%: an alert)
        let r = fleet.chat(i, &chat(PRICED, "hello dashboard"), &bob).await;
        assert_eq!(r.status, 200, "bob's chat: {}", r.text());
        let text = fleet.stream(i, PRICED, &bob).await;
        assert!(!text.is_empty(), "bob's stream");
        // an open route: a model without a price, and a priced one, whose
        // stream the upstream cuts after the first round (costed from the
        // gateway's estimate: its count is there, at 0, since the first)
        let r = fleet.chat(i, &chat(UNPRICED, "no price"), &direct).await;
        assert_eq!(r.status, 200, "unpriced chat: {}", r.text());
        if first {
            let r = fleet.chat(i, &chat(PRICED, "priced"), &direct).await;
            assert_eq!(r.status, 200, "priced chat: {}", r.text());
        } else {
            main.cut_stream_after(2);
            let _ = fleet.stream(i, PRICED, &direct).await;
            main.set_normal();
        }
        // 401: a wrong key
        let wrong = [("authorization", "Bearer sk-prom-nobody-0123456789")];
        let r = fleet.chat(i, &chat(PRICED, "wrong key"), &wrong).await;
        assert_eq!(r.status, 401, "wrong key: {}", r.text());
        // 502: a provider that refuses connections; its first failure
        // ejects it, and as the route's only instance it is tried anyway
        // (panic routing)
        let broken = [("x-route", "broken")];
        let r = fleet.chat(i, &chat(PRICED, "to nowhere"), &broken).await;
        assert!(
            r.status >= 500,
            "refused upstream: {} {}",
            r.status,
            r.text()
        );
        // a quota: eve has one request a minute
        if first && i == 0 {
            let r = fleet.chat(i, &chat(PRICED, "eve's one"), &eve).await;
            assert_eq!(r.status, 200, "eve's first: {}", r.text());
        }
        let r = fleet.chat(i, &chat(PRICED, "eve's next"), &eve).await;
        assert_eq!(r.status, 429, "eve's next: {}", r.text());
    }
}

/// `flaky` fails: bob's requests fall back to `main`, two failures eject it
/// (passive, 60 s), its probes fail; it recovers and a good probe ends the
/// ejection.
async fn eject_and_recover(fleet: &Fleet, flaky: &MockUpstream) {
    let bob = bearer(BOB);
    let bob = [("authorization", bob.as_str())];
    flaky.fail_with(500);
    for i in 0..REPLICAS {
        let r = fleet.chat(i, &chat(PRICED, "falls back"), &bob).await;
        assert_eq!(r.status, 200, "fallback to main: {}", r.text());
    }
    fleet
        .wait_health("flaky", false, Duration::from_secs(5))
        .await;
    fleet
        .wait_counted("gateway_health_probe_failures_total", 1.0, PROBE_WAIT)
        .await;
    flaky.set_normal();
    fleet.wait_health("flaky", true, PROBE_WAIT).await;
    for i in 0..REPLICAS {
        let r = fleet.chat(i, &chat(PRICED, "recovered"), &bob).await;
        assert_eq!(r.status, 200, "after the recovery: {}", r.text());
    }
}

/// Metrics of events this traffic does not cause (a Redis outage, lost
/// settlements or health reports, a full access-log queue, requests in
/// flight when Prometheus looks): an expression reading only these may show
/// 0; every other one must show something else.
const AT_REST: [&str; 11] = [
    "gateway_quota_unavailable_total",
    "gateway_quota_bypassed_total",
    "gateway_quota_local_total",
    "gateway_quota_settle_retries_total",
    "gateway_quota_settle_dropped_total",
    "gateway_quota_settle_queue",
    "gateway_health_reports_dropped_total",
    "gateway_health_reports_failed_total",
    "gateway_access_log_dropped_total",
    "gateway_state_degraded",
    "gateway_upstream_in_flight",
];

/// Higress's ai-statistics counters keep Higress's names (so its dashboards
/// work): counters without `_total`, one ending in `_count`. promtool's lint
/// says so about them, and only that is let through.
fn higress_naming(problem: &str) -> bool {
    const HIGRESS: [&str; 5] = [
        "input_token",
        "output_token",
        "llm_service_duration",
        "llm_first_token_duration",
        "llm_duration_count",
    ];
    let Some((metric, text)) = problem.split_once(' ') else {
        return false;
    };
    let named = metric
        .strip_prefix("route_upstream_model_consumer_metric_")
        .is_some_and(|m| HIGRESS.contains(&m));
    named
        && [
            r#"counter metrics should have "_total" suffix"#,
            r#"non-histogram and non-summary metrics should not have "_count" suffix"#,
        ]
        .contains(&text)
}

/// One expression the dashboard runs, named for the failure message.
struct Check {
    what: String,
    expr: String,
    /// it reads a metric the traffic moves (not only [`AT_REST`] ones)
    moves: bool,
}

impl Check {
    fn new(what: String, expr: String) -> Check {
        let moves = !metric_names(&expr)
            .iter()
            .all(|m| AT_REST.contains(&m.as_str()));
        Check { what, expr, moves }
    }
}

/// Every Prometheus expression of `dash` with the variables at "All": each
/// panel target's, each query variable's `label_values` as PromQL; and the
/// queries of other data sources, which Prometheus cannot run (named).
fn checks(dash: &Dashboard) -> (Vec<Check>, Vec<String>) {
    let values = dash.all_values();
    let sub = |what: &str, text: &str| {
        substitute(text, &values).unwrap_or_else(|e| panic!("{what}: {e}"))
    };
    let mut out = Vec::new();
    let mut other = Vec::new();
    for q in dash.queries() {
        let what = format!("panel {:?} target {}", q.panel, q.ref_id);
        if q.datasource != "prometheus" {
            other.push(format!("{what} ({})", q.datasource));
            continue;
        }
        assert!(!q.expr.trim().is_empty(), "{what}: no expr");
        out.push(Check::new(what.clone(), sub(&what, &q.expr)));
    }
    for v in dash.variables() {
        if v["type"] != "query" {
            continue;
        }
        let what = format!("variable ${}", v["name"].as_str().unwrap_or("?"));
        let definition = v["definition"].as_str().unwrap_or("");
        let promql = label_values_promql(definition)
            .unwrap_or_else(|| panic!("{what}: not a label_values query: {definition:?}"));
        out.push(Check::new(what.clone(), sub(&what, &promql)));
    }
    (out, other)
}

/// What is wrong with one check now: the expression returned nothing, or
/// only 0 and NaN when it reads a metric the traffic moves, or a selector in
/// it matches no series (None: nothing).
async fn problem(prom: &Prometheus, check: &Check) -> Option<String> {
    let mut wrong = Vec::new();
    match prom.query(&check.expr).await {
        Ok(r) if r.is_empty() => wrong.push("no data".to_string()),
        Ok(r) if check.moves && !r.iter().any(|s| value(s).is_some_and(|v| v != 0.0)) => {
            wrong.push(format!("only 0 or NaN ({})", shown(&r)))
        }
        Ok(_) => {}
        Err(e) => wrong.push(format!("refused: {e}")),
    }
    for s in selectors(&check.expr) {
        match prom.query(&format!("count({s})")).await {
            Ok(r) if r.is_empty() => wrong.push(format!("{s} matches no series")),
            Ok(_) => {}
            Err(e) => wrong.push(format!("{s} refused: {e}")),
        }
    }
    (!wrong.is_empty()).then(|| format!("{}: {}\n    {}", check.what, wrong.join("; "), check.expr))
}

/// The value of one element of a query's result (a series' `value`, or a
/// scalar), when it is a finite number.
fn value(element: &Value) -> Option<f64> {
    let v = if element["value"].is_array() {
        &element["value"][1]
    } else {
        &element[1]
    };
    v.as_str()
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// A short view of a query's result (for the log).
fn shown(result: &[Value]) -> String {
    let values: Vec<String> = result
        .iter()
        .take(4)
        .map(|s| {
            let labels: Vec<String> = s["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            let v = value(s).map_or("NaN".to_string(), |v| v.to_string());
            format!("{{{}}} {v}", labels.join(","))
        })
        .collect();
    format!("{} series: {}", result.len(), values.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_expression_returns_data_from_prometheus() {
    // (a missing binary fails here, naming the package to install)
    let _ = (prometheus_bin(), promtool_bin());
    let dash = Dashboard::load();
    let (checks, other) = checks(&dash);
    assert!(
        checks.len() > 20,
        "only {} Prometheus queries",
        checks.len()
    );

    let redis = SharedRedis::standalone().await;
    let flaky = MockUpstream::start_default();
    let main = MockUpstream::start_default();
    let yaml = config(&flaky, &main)
        .state(redis.state("prom:", 2000).cache_ttl_ms(200))
        .yaml();
    let start = || Gateway::builder(&yaml).start();
    let (a, b) = tokio::join!(start(), start());
    let fleet = Fleet {
        gws: vec![a, b],
        c: TestClient::new(),
    };
    let targets: Vec<String> = fleet
        .gws
        .iter()
        .map(|g| g.admin_addr().to_string())
        .collect();
    let t = Instant::now();
    let prom = Prometheus::start(&targets, SCRAPE).await;
    prom.wait_targets_up(REPLICAS, Duration::from_secs(10))
        .await;
    eprintln!("prometheus up, both targets scraped, in {:?}", t.elapsed());

    // two rounds, Prometheus scraping between them: the series the first
    // one makes exist before the second moves them, as in a running fleet
    let t = Instant::now();
    round(&fleet, &main, true).await;
    prom.wait_scraped_since(SystemTime::now(), Duration::from_secs(10))
        .await;
    round(&fleet, &main, false).await;
    eject_and_recover(&fleet, &flaky).await;
    eprintln!("traffic sent in {:?}", t.elapsed());

    for (i, g) in fleet.gws.iter().enumerate() {
        let page = Scrape::of(g).await;
        let problems: Vec<String> = check_metrics(page.text())
            .into_iter()
            .filter(|p| !higress_naming(p))
            .collect();
        assert!(
            problems.is_empty(),
            "promtool check metrics on replica {i}'s /metrics:\n  {}\n{}",
            problems.join("\n  "),
            page.text()
        );
    }

    // (a check that passed is not run again: a window holds the traffic
    // for a minute)
    let deadline = Instant::now() + SETTLE;
    let mut pending: Vec<&Check> = checks.iter().collect();
    let problems = loop {
        let mut problems = Vec::new();
        let mut still = Vec::new();
        for c in pending {
            if let Some(p) = problem(&prom, c).await {
                problems.push(p);
                still.push(c);
            }
        }
        if problems.is_empty() || Instant::now() > deadline {
            break problems;
        }
        pending = still;
        tokio::time::sleep(SCRAPE).await;
    };
    eprintln!("traffic sent and expressions checked in {:?}", t.elapsed());
    for c in &checks {
        let r = prom.query(&c.expr).await.unwrap_or_default();
        eprintln!("{}: {}", c.what, shown(&r));
    }
    eprintln!("not Prometheus, not run: {other:?}");
    assert!(
        problems.is_empty(),
        "{} of {} dashboard expressions fail after the traffic:\n  {}",
        problems.len(),
        checks.len(),
        problems.join("\n  ")
    );
}
