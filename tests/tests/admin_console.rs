//! The admin endpoints the console reads besides the admin API's others:
//! `GET /admin/requests` (the last requests a replica finished, as their
//! access-log records, newest first, filtered by tenant, consumer, model and
//! status; the query bounded and checked), `GET /admin/config` (the running
//! config with its secrets masked, its version) and `GET /admin/stats` (the
//! last hour in 10-second buckets).

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{Config, Provider, Route, Server};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use http::Method;
use serde_json::Value;

async fn requests(gw: &Gateway, query: &str) -> (u16, Value) {
    let r = admin(
        &TestClient::new(),
        gw,
        Method::GET,
        &format!("/admin/requests{query}"),
        None,
    )
    .await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_requests_are_listed_newest_first_and_filtered() {
    let gw = Gateway::start(
        &Config::new()
            .server(Server::new().admin_token(ADMIN_TOKEN))
            .provider(Provider::mock("m"))
            .route(Route::new("chat", "/v1").model("mock-*").upstream("m"))
            .yaml(),
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    for model in ["mock-a", "mock-b", "mock-a", "unrouted-model"] {
        TestClient::new()
            .post_json(&url, &chat_body(model, "hi"))
            .await;
    }
    // (records are kept when the request ends: the last answer may still be closing)
    let mut all = Value::Null;
    for _ in 0..50 {
        let (status, v) = requests(&gw, "").await;
        assert_eq!(status, 200, "{v}");
        if v["records"].as_array().map_or(0, Vec::len) == 4 {
            all = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let records = all["records"].as_array().expect("four records");
    assert_eq!(all["replica"], "this");
    assert_eq!(records[0]["ai_log"]["request_model"], "unrouted-model");
    assert_eq!(records[0]["response_code"], 404);
    assert_eq!(records[3]["ai_log"]["request_model"], "mock-a");
    let (_, a) = requests(&gw, "?model=mock-a").await;
    assert_eq!(a["records"].as_array().map(Vec::len), Some(2), "{a}");
    let (_, nf) = requests(&gw, "?status=404&limit=10").await;
    assert_eq!(nf["records"].as_array().map(Vec::len), Some(1), "{nf}");
    let (_, one) = requests(&gw, "?limit=1").await;
    assert_eq!(one["records"].as_array().map(Vec::len), Some(1));
    let (status, bad) = requests(&gw, "?limit=0").await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = requests(&gw, "?tenant_id=x").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_config_is_shown_with_its_secrets_masked() {
    let yaml = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::new("o", "openai-compatible")
                .base_url("http://127.0.0.1:9/v1")
                .token("sk-upstream-literal-secret"),
        )
        .route(Route::new("chat", "/v1").upstream("o"))
        .yaml();
    let gw = Gateway::start(&yaml).await;
    let r = admin(&TestClient::new(), &gw, Method::GET, "/admin/config", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(!text.contains("sk-upstream-literal-secret"), "{text}");
    assert!(!text.contains(ADMIN_TOKEN), "{text}");
    let v = r.json();
    assert_eq!(v["version"], 1);
    assert_eq!(v["config"]["providers"][0]["api_tokens"][0], "********");
    assert_eq!(
        v["config"]["providers"][0]["base_url"],
        "http://127.0.0.1:9/v1"
    );
    assert_eq!(v["config"]["routes"][0]["name"], "chat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_hour_counts_requests_errors_tokens_and_latency() {
    let gw = Gateway::start(
        &Config::new()
            .server(Server::new().admin_token(ADMIN_TOKEN))
            .provider(Provider::mock("m"))
            .provider(Provider::openai(
                "down",
                &gateway_tests::harness::closed_port_url(),
            ))
            .route(Route::new("chat", "/v1").model("mock-*").upstream("m"))
            .route(Route::new("broken", "/v1").model("down-*").upstream("down"))
            .yaml(),
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    for model in ["mock-a", "mock-b", "mock-c", "down-x"] {
        TestClient::new()
            .post_json(&url, &chat_body(model, "hello there"))
            .await;
    }
    let mut v = Value::Null;
    for _ in 0..50 {
        let r = admin(
            &TestClient::new(),
            &gw,
            Method::GET,
            "/admin/stats?window=5m",
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        v = r.json();
        if v["totals"]["requests"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let t = &v["totals"];
    assert_eq!(t["requests"], 4, "{v}");
    assert_eq!(t["errors"], 1, "the unreachable upstream's 502: {v}");
    assert_eq!(t["error_rate"], 0.25);
    assert!(t["output_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(t["latency_ms"]["p50"].as_u64().is_some(), "{v}");
    assert!(t["ttft_ms"]["p50"].as_u64().is_some(), "{v}");
    assert_eq!(v["window_s"], 300);
    assert_eq!(v["series"].as_array().map(Vec::len), Some(30));
    let r = admin(
        &TestClient::new(),
        &gw,
        Method::GET,
        "/admin/stats?window=3h",
        None,
    )
    .await;
    assert_eq!(r.status, 400);
}
