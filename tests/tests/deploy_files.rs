//! The files under `deploy/`: the Grafana dashboard parses, has its uid, title
//! and unique panel ids, and every metric its PromQL uses is one the gateway
//! really exposes on `/metrics` after a JSON and a streamed chat request.
//! (The bundled Redis of the deploy files: `deploy_redis.rs`.)

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, Provider, Quota, Route};
use gateway_tests::harness::{workspace_dir, Gateway};
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::MockUpstream;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

const DASHBOARD: &str = "deploy/grafana/gateway-dashboard.json";

/// The prefixes of the metric names the gateway exposes.
const PREFIXES: [&str; 3] = [
    "route_upstream_model_consumer_metric_",
    "gen_ai_",
    "gateway_",
];

fn dashboard() -> Value {
    let path = workspace_dir().join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(inner) = p.get("panels") {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// The PromQL expressions of the panels' targets.
fn exprs(dash: &Value) -> Vec<String> {
    panels(dash)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names in one PromQL expression: identifiers with one of
/// [`PREFIXES`], outside label matchers (`{...}`), range selectors (`[...]`),
/// strings and label lists (`by (...)`, `without (...)`, `on (...)`, ...).
fn metric_names(expr: &str) -> BTreeSet<String> {
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from;
        let mut quote = None;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(_) if c == '\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == close => return j + 1,
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None => {}
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_to(i + 1, '}'),
            '[' => i = skip_to(i + 1, ']'),
            '"' | '\'' | '`' => i = skip_to(i + 1, c),
            c if ident_char(c) => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if LABEL_LISTS.contains(&word.as_str()) {
                    let mut j = i;
                    while j < chars.len() && chars[j].is_whitespace() {
                        j += 1;
                    }
                    if chars.get(j) == Some(&'(') {
                        i = skip_to(j + 1, ')');
                    }
                } else if PREFIXES.iter().any(|p| word.starts_with(p)) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

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
fn metric_names_skip_labels_ranges_and_strings() {
    let got = metric_names(
        r#"histogram_quantile(0.95, sum by (le, gen_ai_provider_name) (rate(gen_ai_client_operation_duration_seconds_bucket{gen_ai_provider_name=~"$provider", x="gateway_nope"}[$__rate_interval]))) / on (route) group_left(gen_ai_token_type) gateway_requests_total"#,
    );
    let want: BTreeSet<String> = [
        "gen_ai_client_operation_duration_seconds_bucket",
        "gateway_requests_total",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
}

#[test]
fn dashboard_shape() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "ai-gateway");
    assert_eq!(dash["title"], "AI gateway");
    assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let all = panels(&dash);
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
    assert!(exprs(&dash).len() > 20);
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
    let dash = dashboard();
    let mut used = BTreeSet::new();
    for e in exprs(&dash) {
        used.extend(metric_names(&e));
    }
    // the variables' label_values queries too
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
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
