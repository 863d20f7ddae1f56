//! Fallback between upstreams (priority order) on 5xx, 429, refused connections and
//! first-byte timeouts; `max_retries`; the error when all fail; weighted
//! round-robin within a priority.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, Fallback, Provider, Route, Timeouts};
use gateway_tests::harness::{closed_port_url, Gateway};
use gateway_tests::mock_upstream::{MockUpstream, MOCK_ERROR_BODY};
use serde_json::Value;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(5);

/// Providers `a` (priority 0) and `b` (priority 1) at `a_url`, `b_url`, first
/// byte within 400 ms; fallback on 5xx, 429, connect errors and timeouts.
fn two_config(a_url: &str, b_url: &str) -> String {
    let provider = |id: &str, url: &str, token: &str| {
        Provider::openai(id, url)
            .token(token)
            .timeouts(Timeouts::all(500, 400, 1000, 10_000))
    };
    Config::new()
        .provider(provider("a", a_url, "tok-a"))
        .provider(provider("b", b_url, "tok-b"))
        .route(
            Route::new("chat", "/v1")
                .upstream_priority("a", 0)
                .upstream_priority("b", 1)
                .fallback(Fallback::on(
                    &["http_5xx", "http_429", "connect_error", "timeout"],
                    2,
                )),
        )
        .access_log()
        .yaml()
}

async fn two(a: &str, b: &str) -> Gateway {
    Gateway::start(&two_config(a, b)).await
}

fn chat_url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

async fn assert_served_by_b(fail_status: u16) {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.fail_with(fail_status);
    let gw = two(&a.base_url(), &b.base_url()).await;
    let rid = format!("fallback-{fail_status}");
    let r = TestClient::new()
        .post_json_with(
            &chat_url(&gw),
            &chat_body("gpt-4o", "fallback please"),
            &[("x-request-id", &rid)],
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "b should answer after a's {fail_status}: {}",
        r.text()
    );
    assert_eq!(a.hits(), 1, "a tried once");
    assert_eq!(b.hits(), 1, "b answered");
    assert_eq!(
        b.last_request().unwrap().header("authorization"),
        Some("Bearer tok-b")
    );
    let line = gw.wait_for_log_line(&rid, LOG_WAIT).await;
    assert_eq!(line.ai_log.provider.as_deref(), Some("b"), "{line:?}");
    assert_eq!(line.ai_log.attempts.len(), 2, "{line:?}");
    assert_eq!(line.ai_log.status, 200, "{line:?}");
    assert_eq!(line.response_code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_on_500() {
    assert_served_by_b(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_on_503() {
    assert_served_by_b(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_on_429() {
    assert_served_by_b(429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_on_connection_refused() {
    let b = MockUpstream::start_default();
    let gw = two(&closed_port_url(), &b.base_url()).await;
    let t = Instant::now();
    let r = TestClient::new()
        .post_json_with(
            &chat_url(&gw),
            &chat_body("gpt-4o", "a is down"),
            &[("x-request-id", "fallback-refused")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.hits(), 1);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    let line = gw.wait_for_log_line("fallback-refused", LOG_WAIT).await;
    assert_eq!(line.ai_log.provider.as_deref(), Some("b"), "{line:?}");
    assert_eq!(line.ai_log.attempts.len(), 2, "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_on_first_byte_timeout() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.delay_headers(3000); // first_byte_ms is 400
    let gw = two(&a.base_url(), &b.base_url()).await;
    let t = Instant::now();
    let r = TestClient::new()
        .post_json_with(
            &chat_url(&gw),
            &chat_body("gpt-4o", "a is slow"),
            &[("x-request-id", "fallback-timeout")],
        )
        .await;
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(a.hits(), 1);
    assert_eq!(b.hits(), 1);
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(2500),
        "a's first_byte_ms (400) should decide, took {took:?}"
    );
    let line = gw.wait_for_log_line("fallback-timeout", LOG_WAIT).await;
    assert_eq!(line.ai_log.provider.as_deref(), Some("b"), "{line:?}");
    assert_eq!(line.ai_log.attempts.len(), 2, "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_falls_back_before_first_byte() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.fail_with(502);
    let gw = two(&a.base_url(), &b.base_url()).await;
    let s = TestClient::new()
        .post_sse(
            &chat_url(&gw),
            &chat_stream_body("gpt-4o", "stream fallback"),
            &[],
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.raw);
    assert!(s.done, "{}", s.raw);
    assert_eq!(s.content(), "word ".repeat(8));
    assert_eq!((a.hits(), b.hits()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fallback_on_400() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.fail_with(400);
    let gw = two(&a.base_url(), &b.base_url()).await;
    let r = TestClient::new()
        .post_json(&chat_url(&gw), &chat_body("gpt-4o", "bad request"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::from_str::<Value>(MOCK_ERROR_BODY).unwrap(),
        "the upstream's error body passes through"
    );
    assert_eq!(b.hits(), 0, "a 400 is not a reason to fall back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_failing_returns_last_upstream_error() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.fail_with(500);
    b.fail_with(503);
    let gw = two(&a.base_url(), &b.base_url()).await;
    let r = TestClient::new()
        .post_json_with(
            &chat_url(&gw),
            &chat_body("gpt-4o", "nobody home"),
            &[("x-request-id", "all-fail")],
        )
        .await;
    assert_eq!(r.status, 503, "the last upstream's status: {}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("mock_500"), "{}", r.text());
    assert_eq!((a.hits(), b.hits()), (1, 1));
    let line = gw.wait_for_log_line("all-fail", LOG_WAIT).await;
    assert_eq!(line.response_code, 503);
    assert_eq!(line.ai_log.attempts.len(), 2, "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_bounds_attempts() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    let c = MockUpstream::start_default();
    for m in [&a, &b, &c] {
        m.fail_with(500);
    }
    let mut config = Config::new().route(
        Route::new("chat", "/v1")
            .upstream_priority("a", 0)
            .upstream_priority("b", 1)
            .upstream_priority("c", 2)
            .fallback(Fallback::on(&["http_5xx"], 1)),
    );
    for (id, m) in [("a", &a), ("b", &b), ("c", &c)] {
        config = config.provider(Provider::openai(id, &m.base_url()).token("t"));
    }
    let gw = Gateway::start(&config.yaml()).await;
    let r = TestClient::new()
        .post_json(&chat_url(&gw), &chat_body("gpt-4o", "retry bound"))
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        (a.hits(), b.hits(), c.hits()),
        (1, 1, 0),
        "max_retries 1 = one further instance after the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_unreachable_is_502() {
    let gw = two(&closed_port_url(), &closed_port_url()).await;
    let r = TestClient::new()
        .post_json(&chat_url(&gw), &chat_body("gpt-4o", "x"))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("upstream_unreachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_timing_out_is_504() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.delay_headers(3000);
    b.delay_headers(3000);
    let gw = two(&a.base_url(), &b.base_url()).await;
    let t = Instant::now();
    let r = TestClient::new()
        .post_json(&chat_url(&gw), &chat_body("gpt-4o", "x"))
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("upstream_timeout"));
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_priority_unused_while_first_is_healthy() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    let gw = two(&a.base_url(), &b.base_url()).await;
    let c = TestClient::new();
    for i in 0..20 {
        let r = c
            .post_json(&chat_url(&gw), &chat_body("gpt-4o", &format!("{i}")))
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (20, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weighted_round_robin_three_to_one() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.set_recording(false);
    b.set_recording(false);
    let config = Config::new()
        .provider(Provider::openai("a", &a.base_url()).token("t"))
        .provider(Provider::openai("b", &b.base_url()).token("t"))
        .route(
            Route::new("chat", "/v1")
                .upstream_at("a", 0, 3)
                .upstream_at("b", 0, 1),
        )
        .yaml();
    let gw = Gateway::start(&config).await;
    let url = chat_url(&gw);
    let client = TestClient::new();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let r = client
                    .post_json(&url, &chat_body("gpt-4o", &format!("{w}-{i}")))
                    .await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (ha, hb) = (a.hits(), b.hits());
    assert_eq!(ha + hb, 400);
    assert!(
        (270..=330).contains(&ha) && (70..=130).contains(&hb),
        "weights 3:1 over 400 requests, got a={ha} b={hb}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_not_retried_after_first_byte() {
    let a = MockUpstream::start_default();
    let b = MockUpstream::start_default();
    a.cut_stream_after(3);
    let gw = two(&a.base_url(), &b.base_url()).await;
    let s = TestClient::new()
        .post_sse(
            &chat_url(&gw),
            &chat_stream_body("gpt-4o", "cut after the first bytes"),
            &[],
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.events.len(), 3, "{}", s.raw);
    assert!(!s.done, "{}", s.raw);
    assert_eq!(
        b.hits(),
        0,
        "a stream whose first byte reached the client is never retried"
    );
}
