//! The files under `deploy/`: the Grafana dashboard parses, has its uid, title
//! and unique panel ids, and every metric its PromQL uses is one the gateway
//! really exposes on `/metrics` after a JSON and a streamed chat request.
//! (Each expression run by a real Prometheus: `prometheus_dashboard.rs`; the
//! bundled Redis of the deploy files: `deploy_redis.rs`.)

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, Provider, Quota, Route};
use gateway_tests::dashboard::{metric_names, Dashboard};
use gateway_tests::harness::Gateway;
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::MockUpstream;
use std::collections::{BTreeSet, HashSet};

/// Whether the scrape declares `name` (`# TYPE name ...`) or has a sample of it.
fn exposed(scrape: &str, name: &str) -> bool {
    scrape.lines().any(|l| {
        l.strip_prefix("# TYPE ")
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.starts_with(' '))
            || l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
    })
}

/// `name` as the scrape declares it: a histogram's `_bucket`, `_sum` or `_count`
/// series is its base (when the base is a histogram), anything else itself.
fn base_name(scrape: &str, name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if scrape
                .lines()
                .any(|l| l == format!("# TYPE {base} histogram"))
            {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

#[test]
fn dashboard_shape() {
    let dashboard = Dashboard::load();
    let dash = dashboard.json();
    assert_eq!(dash["uid"], "ai-gateway");
    assert_eq!(dash["title"], "AI gateway");
    assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let all = dashboard.panels();
    assert!(!all.is_empty(), "no panels");
    let mut ids = HashSet::new();
    for p in &all {
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel without id: {}", p["title"]));
        assert!(ids.insert(id), "panel id {id} used twice");
        assert!(p["gridPos"].is_object(), "panel {id} without gridPos");
    }
    let vars: HashSet<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in [
        "datasource",
        "tempo",
        "route",
        "provider",
        "consumer",
        "model",
    ] {
        assert!(vars.contains(v), "no ${v} variable");
    }
    // every Prometheus query goes through $datasource
    for p in &all {
        for t in p["targets"].as_array().into_iter().flatten() {
            if t.get("expr").is_some() {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "panel {}: {t}",
                    p["title"]
                );
            }
        }
    }
    assert!(dashboard.exprs().len() > 20);
}

fn config(upstream: &str) -> String {
    Config::new()
        .provider(Provider::openai("mock", upstream).token("sk-deploy-files"))
        .route(
            Route::new("chat", "/v1")
                .upstream("mock")
                // (the budget gauges show once a budget reserved)
                .quota(Quota::budget("chat-budget", "route", "1000", "month")),
        )
        .no_access_log()
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_metrics_are_exposed() {
    let dashboard = Dashboard::load();
    let mut used = BTreeSet::new();
    for e in dashboard.exprs() {
        used.extend(metric_names(&e));
    }
    // the variables' label_values queries too
    for v in dashboard.variables() {
        if let Some(q) = v["definition"].as_str() {
            used.extend(metric_names(q));
        }
    }
    assert!(used.len() > 20, "{used:?}");

    let upstream = MockUpstream::start_default();
    let gw = Gateway::start(&config(&upstream.base_url())).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let c = TestClient::new();
    let r = c
        .post_json(&url, &chat_body("gpt-4o", "hello dashboard"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // a model without a price (the unpriced counter)
    let r = c
        .post_json(&url, &chat_body("mock-without-a-price", "hello dashboard"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sse = c
        .post_sse(&url, &chat_stream_body("gpt-4o", "stream dashboard"), &[])
        .await;
    assert!(!sse.content().is_empty());
    // a stream the upstream cuts: priced from estimated usage
    upstream.cut_stream_after(2);
    let _ = c
        .post_sse(&url, &chat_stream_body("gpt-4o", "cut dashboard"), &[])
        .await;
    // (the request is recorded when its stream has ended)
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let scrape = Scrape::of(&gw).await.text().to_string();

    let missing: Vec<String> = used
        .iter()
        .filter(|n| !exposed(&scrape, &base_name(&scrape, n)))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics /metrics does not expose: {missing:?}\n{scrape}"
    );
}
