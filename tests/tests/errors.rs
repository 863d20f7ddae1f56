//! Error answers: shape `{"error":{"message","type","code"}}` and status for
//! malformed JSON, missing model, no route, body too large, slow headers,
//! unreachable / timing-out upstream, and upstream errors passed through.

use gateway_tests::client::{chat_body, raw_tcp_exchange, HttpResponse, TestClient};
use gateway_tests::config::{single_provider, Config, Provider, Route, Server};
use gateway_tests::harness::{closed_port_url, Gateway};
use gateway_tests::mock_upstream::{MockUpstream, MOCK_ERROR_BODY};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `server.max_body_bytes` of [`config`].
const MAX_BODY: usize = 1024;

/// A chat route for `gpt-*` models and an embeddings route, both to the mock;
/// bodies up to [`MAX_BODY`], request heads within 1 s.
fn config(mock_url: &str) -> String {
    Config::new()
        .server(
            Server::new()
                .max_body_bytes(MAX_BODY as u64)
                .header_read_timeout_ms(1000),
        )
        .provider(Provider::openai("up1", mock_url).token("sk-upstream-secret-1"))
        .route(
            Route::new("chat", "/v1/chat")
                .model("gpt-*")
                .upstream("up1"),
        )
        .route(Route::new("embeddings", "/v1/embeddings").upstream("up1"))
        .access_log()
        .yaml()
}

/// A chat request of exactly `len` bytes (its message padded).
fn chat_of_len(len: usize) -> String {
    let with = |content: &str| {
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}).to_string()
    };
    let pad = len - with("").len();
    let body = with(&"a".repeat(pad));
    assert_eq!(body.len(), len);
    body
}

async fn start(mock: &MockUpstream) -> Gateway {
    Gateway::start(&config(&mock.base_url())).await
}

/// Status, JSON content type, the error shape, the code and an x-request-id.
fn assert_error(r: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "content-type: {:?}",
        r.header("content-type")
    );
    let v = r.assert_openai_error(status, code);
    assert!(
        r.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "x-request-id on an error: {:?}",
        r.headers
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_invalid_json() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock).await;
    let c = TestClient::new();
    for path in ["/v1/chat/completions", "/v1/embeddings"] {
        let r = c
            .post_raw(
                &format!("{}{path}", gw.url()),
                r#"{"model": "gpt-4o", "messages": [ "#,
                &[],
            )
            .await;
        assert_error(&r, 400, "invalid_json");
    }
    assert_eq!(mock.hits(), 0, "nothing reaches the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_model_is_400_missing_model() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock).await;
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/embeddings", gw.url()),
            &json!({"input": "no model here"}),
        )
        .await;
    assert_error(&r, 400, "missing_model");
    assert_eq!(mock.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_404_naming_what_did_not_match() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock).await;
    let c = TestClient::new();
    // A served endpoint that no route matches (routes cover /v1/chat and /v1/embeddings).
    let r = c
        .post_json(
            &format!("{}/v1/completions", gw.url()),
            &json!({"model": "gpt-4o", "prompt": "x"}),
        )
        .await;
    let v = assert_error(&r, 404, "no_route");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/completions"),
        "the message names the path: {v}"
    );

    // A path that is no endpoint at all: 404 in the error shape naming the path
    // (the code may say so more precisely than no_route).
    let r = c
        .post_json(
            &format!("{}/v2/unknown/path", gw.url()),
            &chat_body("gpt-4o", "x"),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let v = r.json();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/v2/unknown/path")),
        "the message names the path: {v}"
    );
    assert!(v["error"]["code"].is_string(), "{v}");

    let r = c
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("llama-3-70b", "x"),
        )
        .await;
    let v = assert_error(&r, 404, "no_route");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("llama-3-70b"),
        "the message names the model: {v}"
    );
    assert_eq!(mock.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_is_413() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock).await;
    let big = chat_body("gpt-4o", &"x".repeat(4096));
    let r = TestClient::new()
        .post_json(&format!("{}/v1/chat/completions", gw.url()), &big)
        .await;
    assert_error(&r, 413, "body_too_large");

    // chunked upload without content-length: cut off as well
    let chunk = "y".repeat(1500);
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    let out = raw_tcp_exchange(gw.listen_addr(), raw.as_bytes(), Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "got: {out}");
    assert_eq!(
        mock.hits(),
        0,
        "an oversized body never reaches the upstream"
    );

    // at the limit is fine, one byte more is not
    let url = format!("{}/v1/chat/completions", gw.url());
    let c = TestClient::new();
    let r = c.post_raw(&url, chat_of_len(MAX_BODY), &[]).await;
    assert_eq!(r.status, 200, "a body of max_body_bytes: {}", r.text());
    let r = c.post_raw(&url, chat_of_len(MAX_BODY + 1), &[]).await;
    assert_error(&r, 413, "body_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_headers_get_408() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock).await;
    let t = Instant::now();
    let out = raw_tcp_exchange(
        gw.listen_addr(),
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(4),
    )
    .await;
    let took = t.elapsed();
    assert!(
        out.starts_with("HTTP/1.1 408"),
        "got after {took:?}: {out:?}"
    );
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(3000),
        "header_read_timeout_ms is 1000, answered after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502() {
    let gw = Gateway::start(&single_provider(&closed_port_url()).yaml()).await;
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "x"),
        )
        .await;
    assert_error(&r, 502, "upstream_unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_timeout_is_504() {
    let mock = MockUpstream::start_default();
    mock.delay_headers(4000); // first_byte_ms is 2000 in single_provider
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let t = Instant::now();
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "x"),
        )
        .await;
    assert_error(&r, 504, "upstream_timeout");
    assert!(
        t.elapsed() < Duration::from_millis(3900),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_body_passes_through_with_status() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::new();
    let expected: Value = serde_json::from_str(MOCK_ERROR_BODY).unwrap();
    for status in [400u16, 401, 404, 422, 500] {
        mock.fail_with(status);
        let r = c
            .post_json(
                &format!("{}/v1/chat/completions", gw.url()),
                &chat_body("gpt-4o", "x"),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.json(), expected, "upstream {status} body passes through");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock).await;
    let r = TestClient::new()
        .get(&format!("{}/v1/chat/completions", gw.url()))
        .await;
    let v = assert_error(&r, 405, "method_not_allowed");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("GET"),
        "{v}"
    );
    assert_eq!(mock.hits(), 0, "nothing reaches the upstream");
}
