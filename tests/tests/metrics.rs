//! Request metrics on `/metrics` after a known workload: the Higress
//! ai-statistics counters and the GenAI histograms add up to the usage the mock
//! reported, requests are counted by status, fallbacks by route, and no label
//! carries a request id or a key; `gateway_tokio_alive_tasks` follows the work
//! in flight.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{single_provider, Config, Fallback, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::metrics::{metric, wait_metric, Scrape};
use gateway_tests::mock_upstream::{chat_usage, MockOptions, MockUpstream};
use std::time::Duration;

/// How long the good upstream waits before its headers: every answer's first
/// token comes at least this late.
const HEADER_DELAY_MS: u64 = 20;

fn config(good: &str, bad: &str) -> String {
    Config::new()
        .provider(Provider::openai("bad", bad).token("sk-metrics-secret-1"))
        .provider(Provider::openai("good", good).token("sk-metrics-secret-2"))
        .route(
            Route::new("chat", "/v1")
                .upstream_priority("bad", 0)
                .upstream_priority("good", 1)
                .fallback(Fallback::on(&["http_5xx"], 1)),
        )
        .no_access_log()
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sums_equal_the_upstream_usage() {
    let good = MockUpstream::start_default();
    let bad = MockUpstream::start_default();
    bad.fail_with(503);
    good.delay_headers(HEADER_DELAY_MS);
    let gw = Gateway::start(&config(&good.base_url(), &bad.base_url())).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let c = TestClient::new();
    let (mut prompt, mut completion) = (0u64, 0u64);
    for i in 0..5 {
        let body = chat_body("gpt-4o", &format!("question number {i} with some words"));
        let r = c.post_json(&url, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let u = chat_usage(&body, 8);
        prompt += u.prompt_tokens;
        completion += u.completion_tokens;
    }
    for i in 0..3 {
        let body = chat_stream_body("gpt-4o", &format!("stream {i}"));
        let sse = c
            .post_sse(&url, &body, &[("x-request-id", "req-id-not-a-label")])
            .await;
        assert!(!sse.content().is_empty());
        let u = chat_usage(&body, good.stream_chunks());
        prompt += u.prompt_tokens;
        completion += u.completion_tokens;
    }
    let m = Scrape::of(&gw).await;
    let text = m.text();
    let p = "route_upstream_model_consumer_metric_";
    let labels = [
        ("ai_route", "chat"),
        ("ai_cluster", "good"),
        ("ai_consumer", "none"),
    ];
    assert_eq!(
        m.total(&format!("{p}input_token"), &labels),
        prompt as f64,
        "{text}"
    );
    assert_eq!(
        m.total(&format!("{p}output_token"), &labels),
        completion as f64
    );
    assert_eq!(m.total(&format!("{p}llm_duration_count"), &labels), 8.0);
    assert!(m.total(&format!("{p}llm_service_duration"), &labels) > 0.0);
    // the time to the first token of each of the 3 streams (ms), each at least
    // the upstream's header delay
    let first_token = m.total(&format!("{p}llm_first_token_duration"), &labels);
    assert!(
        first_token >= (3 * HEADER_DELAY_MS) as f64,
        "llm_first_token_duration {first_token} ms for 3 streams of >= {HEADER_DELAY_MS} ms"
    );
    let g = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "good"),
    ];
    assert_eq!(
        m.total(
            "gen_ai_client_token_usage_sum",
            &[g[0], g[1], ("gen_ai_token_type", "input")]
        ),
        prompt as f64
    );
    assert_eq!(
        m.total(
            "gen_ai_client_token_usage_sum",
            &[g[0], g[1], ("gen_ai_token_type", "output")]
        ),
        completion as f64
    );
    assert_eq!(
        m.total("gen_ai_client_operation_duration_seconds_count", &g),
        8.0
    );
    assert_eq!(
        m.total(
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &g
        ),
        3.0
    );
    assert_eq!(
        m.total(
            "gateway_requests_total",
            &[("route", "chat"), ("status", "200")]
        ),
        8.0
    );
    // every request first tried the failing instance, then fell back
    assert_eq!(
        m.total("gateway_fallbacks_total", &[("route", "chat")]),
        8.0
    );
    for secret in ["req-id-not-a-label", "sk-metrics-secret"] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
    // the 404 of an unknown route is counted too, without route
    let r = c.get(&format!("{}/nope", gw.url())).await;
    assert_eq!(r.status, 404);
    let m = Scrape::of(&gw).await;
    assert_eq!(
        m.total("gateway_requests_total", &[("status", "404")]),
        1.0,
        "{}",
        m.text()
    );
}

/// Streams held open at once by the alive-tasks test.
const OPEN_STREAMS: usize = 10;

/// `gateway_tokio_alive_tasks` counts the tasks of the gateway's runtime: each
/// stream in flight holds at least two (its client connection and its upstream
/// connection); once the streams end and the client closes its connections,
/// what stays is the upstream connections kept in the pool (one per stream,
/// idle for up to 90 s) and the pool's reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alive_tasks_follow_the_streams_in_flight() {
    // 8 chunks 200 ms apart: every stream is still open when it is counted
    let mock = MockUpstream::start(MockOptions {
        chunk_delay_ms: 200,
        ..MockOptions::default()
    });
    let gw = Gateway::start(&single_provider(&mock.base_url()).no_access_log().yaml()).await;
    let idle = metric(&gw, "gateway_tokio_alive_tasks").await;
    assert!(idle >= 1.0, "gateway_tokio_alive_tasks at rest is {idle}");
    let url = format!("{}/v1/chat/completions", gw.url());
    let c = TestClient::new();
    let mut streams = Vec::new();
    for i in 0..OPEN_STREAMS {
        let mut s = c
            .open_sse(
                &url,
                &chat_stream_body("gpt-4o-mini", &format!("s{i}")),
                &[],
            )
            .await;
        assert_eq!(s.status, 200);
        assert!(s.next_event().await.is_some(), "stream {i} sent no event");
        streams.push(s);
    }
    let n = OPEN_STREAMS as f64;
    let busy = metric(&gw, "gateway_tokio_alive_tasks").await;
    assert!(
        busy >= idle + 2.0 * n,
        "{n} streams in flight, but gateway_tokio_alive_tasks went from {idle} to {busy}"
    );
    for s in streams {
        assert!(s.collect().await.done, "a stream did not end with [DONE]");
    }
    drop(c);
    let after = wait_metric(
        &gw,
        "gateway_tokio_alive_tasks",
        &[],
        |v| v <= idle + n + 1.0,
        &format!("at most {idle} + {n} pooled upstream connections + 1 once the streams ended"),
        Duration::from_secs(10),
    )
    .await;
    eprintln!("alive tasks: idle {idle}, {n} streams {busy}, after {after}");
}
