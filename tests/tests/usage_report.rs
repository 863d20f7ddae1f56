//! The usage report: `GET /admin/usage/report` (behind the admin token, its
//! query checked) and `gateway bill`, the same report from access-log files
//! (plain and gzipped, foreign lines skipped and counted, re-priced from
//! `--prices`), run as the real binary.

use flate2::{write::GzEncoder, Compression};
use gateway_tests::client::TestClient;
use gateway_tests::config::{Config, Provider, Route, Server};
use gateway_tests::harness::{admin, run_gateway, Gateway};
use http::Method;
use shared::ai_log::{AccessLogLine, AiLog};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prices per million tokens: m-small 1 in / 2 out.
const PRICES: &str =
    "currency: USD\ndefaults: false\nmodels:\n  - {model: m-small, input: 1, output: 2}\n";

/// The access-log line of a request `tenant/consumer` sent to `model` at
/// provider `up1`; `cost` is what the gateway wrote (None: no upstream answered).
fn line(
    tenant: &str,
    consumer: &str,
    model: &str,
    start: &str,
    tokens: (u64, u64),
    cost: Option<&str>,
) -> String {
    let l = AccessLogLine {
        start_time: start.into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        response_code: if cost.is_some() { 200 } else { 502 },
        ai_log: AiLog {
            input_token: tokens.0,
            output_token: tokens.1,
            total_token: tokens.0 + tokens.1,
            tenant: Some(tenant.into()),
            consumer: Some(consumer.into()),
            provider: Some("up1".into()),
            status: 200,
            cost: cost.map(str::to_string),
            cost_currency: cost.map(|_| "USD".into()),
            cost_model: cost.map(|_| model.into()),
            ..AiLog::default()
        },
        ..AccessLogLine::default()
    };
    serde_json::to_string(&l).unwrap() + "\n"
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn bill_prints_the_report_of_the_logs_and_counts_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let prices = write(dir.path(), "prices.yaml", PRICES.as_bytes());
    // the cost the gateway logged (9.99) is not the bill's: it prices again
    let current = line(
        "acme",
        "alice",
        "m-small",
        "2026-03-02T08:00:00.000Z",
        (1000, 500),
        Some("9.99"),
    ) + "not a gateway line\n"
        + &line(
            "acme",
            "alice",
            "m-small",
            "2026-03-02T09:00:00.000Z",
            (7, 7),
            None,
        );
    let rotated = line(
        "acme",
        "bob",
        "m-small",
        "2026-03-01T23:59:59.999Z",
        (2000, 0),
        Some("9.99"),
    ) + &line(
        "acme",
        "bob",
        "m-other",
        "2026-03-01T10:00:00.000Z",
        (5, 5),
        Some("0.00"),
    );
    let files = [
        write(dir.path(), "access.log", current.as_bytes()),
        write(dir.path(), "access.log.1.gz", &gzip(&rotated)),
    ];
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["bill".as_ref(), "--prices".as_ref(), prices.as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let (code, out, err) = run_gateway(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "tenant,consumer,model,provider,day,requests,input_tokens,output_tokens,cached_tokens,cache_write_tokens,reasoning_tokens,cost,unpriced_requests,estimated_requests\n\
         acme,alice,m-small,up1,2026-03-02,1,1000,500,0,0,0,0.002,0,0\n\
         acme,bob,m-other,up1,2026-03-01,1,5,5,0,0,0,0.00,1,0\n\
         acme,bob,m-small,up1,2026-03-01,1,2000,0,0,0,0,0.002,0,0\n\
         total,,,,,3,3005,505,0,0,0,0.004,1,0\n"
    );
    assert_eq!(
        err.trim_end(),
        "gateway bill: 5 line(s) in 2 file(s): 3 request(s) billed; 1 not billed (no upstream answered); \
         1 skipped: not the gateway's access-log lines"
    );
    // the same as JSON, grouped by tenant, for one day
    let mut json_args = args.clone();
    json_args.splice(
        1..1,
        [
            "--format",
            "json",
            "--group-by",
            "tenant",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-02",
        ]
        .map(std::ffi::OsStr::new),
    );
    let (code, out, err) = run_gateway(&json_args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["rows"],
        serde_json::json!([{"tenant": "acme", "requests": 1, "input_tokens": 1000,
        "output_tokens": 500, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
        "cost": "0.002", "unpriced_requests": 0, "estimated_requests": 0}])
    );
    assert_eq!(
        (v["from"].as_str(), v["to"].as_str()),
        (Some("2026-03-02"), Some("2026-03-02"))
    );
}

#[test]
fn bill_refuses_bad_prices_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let log = write(dir.path(), "access.log", b"");
    let prices = write(
        dir.path(),
        "prices.yaml",
        b"currency: USD\nmodels:\n  - {model: m, input: lots, output: 1}\n",
    );
    let (code, out, err) = run_gateway(&[
        "bill".as_ref(),
        "--prices".as_ref(),
        prices.as_os_str(),
        log.as_os_str(),
    ]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("prices.yaml: models[0].input") && err.contains("line 3"),
        "{err}"
    );
    assert!(!err.contains("lots"), "the value is not quoted: {err}");
    let (code, _, err) = run_gateway(&[
        "bill",
        "--prices",
        "p.yaml",
        "--from",
        "2026-02-30",
        "a.log",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--from") && err.contains("is not a date YYYY-MM-DD"),
        "{err}"
    );
}

fn config() -> String {
    Config::new()
        .server(Server::new().admin_token(gateway_tests::harness::ADMIN_TOKEN))
        .provider(Provider::mock("m").model("m-small"))
        .route(Route::new("chat", "/v1").upstream("m"))
        .yaml()
}

#[tokio::test]
async fn the_report_endpoint_needs_the_admin_token_and_a_valid_query() {
    let gw = Gateway::start(&config()).await;
    let c = TestClient::new();
    let r = c
        .get(&format!("{}/admin/usage/report", gw.admin_url()))
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    for (query, says) in [
        ("from=2026-02-30", "from is not a date YYYY-MM-DD"),
        ("from=2026-03-02&to=2026-03-01", "from is after to"),
        ("from=2024-01-01&to=2026-01-01", "at most 400"),
        ("group_by=tenant,team", "unknown column \"team\""),
        ("tenant=a%20b", "tenant: a tenant id is"),
        ("format=xlsx", "json or csv"),
        ("limit=5", "unknown parameter \"limit\""),
    ] {
        let r = admin(
            &c,
            &gw,
            Method::GET,
            &format!("/admin/usage/report?{query}"),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "invalid_query", "{query}");
        assert!(
            e["message"].as_str().unwrap().contains(says),
            "{query}: {e}"
        );
    }
}

#[tokio::test]
async fn a_ledger_without_requests_reports_zero_totals_in_either_format() {
    let gw = Gateway::start(&config()).await;
    let c = TestClient::new();
    let q = "/admin/usage/report?from=2026-03-01&to=2026-03-31&group_by=tenant,model";
    let r = admin(&c, &gw, Method::GET, q, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let zero = serde_json::json!({"requests": 0, "input_tokens": 0, "output_tokens": 0,
        "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "cost": "0.00",
        "unpriced_requests": 0, "estimated_requests": 0});
    assert_eq!(
        r.json(),
        serde_json::json!({"currency": "USD", "from": "2026-03-01", "to": "2026-03-31",
            "tenant": null, "group_by": ["tenant", "model"], "rows": [], "totals": zero})
    );
    let r = admin(
        &c,
        &gw,
        Method::GET,
        &format!("{q}&format=csv&tenant=acme"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.text(),
        "tenant,model,requests,input_tokens,output_tokens,cached_tokens,cache_write_tokens,reasoning_tokens,cost,unpriced_requests,estimated_requests\n\
         total,,0,0,0,0,0,0,0.00,0,0\n"
    );
}

/// `ledger.enabled: false`: requests are served and logged with their cost,
/// no ledger is kept, and the report says so (404) instead of showing zeros.
#[tokio::test]
async fn a_disabled_ledger_keeps_nothing_and_the_report_says_so() {
    let on = Gateway::start(&config()).await;
    let off = Gateway::start(
        &Config::new()
            .server(Server::new().admin_token(gateway_tests::harness::ADMIN_TOKEN))
            .provider(Provider::mock("m").model("m-small"))
            .route(Route::new("chat", "/v1").upstream("m"))
            .no_ledger()
            .yaml(),
    )
    .await;
    let c = TestClient::new();
    let body =
        serde_json::json!({"model": "m-small", "messages": [{"role": "user", "content": "hi"}]});
    for gw in [&on, &off] {
        let r = c
            .post_json(&format!("{}/v1/chat/completions", gw.url()), &body)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let q = "/admin/usage/report?group_by=model";
    let r = admin(&c, &on, Method::GET, q, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["totals"]["requests"], 1, "{}", r.text());
    let r = admin(&c, &off, Method::GET, q, None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ledger.enabled is false"),
        "{}",
        r.text()
    );
}
