//! Checks of the mock upstream and the client helpers themselves (no gateway), so
//! that a failure elsewhere can be blamed on the gateway with confidence. The
//! OpenAI side is checked here, the Anthropic side in `anthropic.rs` and
//! `anthropic_checks.rs`, Gemini in `gemini.rs`, Vertex AI in `vertex.rs`, Bedrock
//! in `bedrock.rs`, `bedrock_stream.rs` and `bedrock_checks.rs`.

mod anthropic;
mod anthropic_checks;
mod bedrock;
mod bedrock_checks;
mod bedrock_stream;
mod gemini;
mod vertex;

use gateway_tests::client::{chat_body, chat_stream_body, raw_tcp_exchange, TestClient};
use gateway_tests::mock_upstream::{
    chat_usage, embeddings_usage, responses_usage, MockOptions, MockUpstream, MOCK_ERROR_BODY,
};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_non_stream_shape_and_usage() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let body = chat_body("some-model", "hello world, this is 33 bytes....");
    let r = c
        .post_json_with(
            &format!("{}/chat/completions", mock.base_url()),
            &body,
            &[("authorization", "Bearer abc")],
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["model"], "some-model");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let u = chat_usage(&body, 8);
    assert_eq!(u.prompt_tokens, 9); // 33 bytes -> ceil(33/4)
    assert_eq!(v["usage"]["prompt_tokens"], u.prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["total_tokens"], u.prompt_tokens + 8);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "word word word word word word word word "
    );
    let rec = mock.last_request().unwrap();
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.path_and_query, "/v1/chat/completions");
    assert_eq!(rec.header("Authorization"), Some("Bearer abc"));
    assert_eq!(rec.body, body);
    assert_eq!(mock.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_shape_with_and_without_usage() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 5,
        ..Default::default()
    });
    let c = TestClient::new();
    let url = format!("{}/chat/completions", mock.base_url());
    let s = c.post_sse(&url, &chat_stream_body("m", "hi"), &[]).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert!(s.done && s.clean_end, "{s:?}");
    assert_eq!(s.events.len(), 1 + 5 + 1);
    assert!(s.usage_chunks().is_empty());
    assert_eq!(s.content(), "word ".repeat(5));

    let mut body = chat_stream_body("m", "hi");
    body["stream_options"] = json!({"include_usage": true});
    let s = c.post_sse(&url, &body, &[]).await;
    assert!(s.done && s.clean_end);
    assert_eq!(s.events.len(), 1 + 5 + 1 + 1);
    let usage = s.usage_chunks();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 5);
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cut_ends_with_transport_error() {
    let mock = MockUpstream::start_default();
    mock.cut_stream_after(4);
    let s = TestClient::new()
        .post_sse(
            &format!("{}/chat/completions", mock.base_url()),
            &chat_stream_body("m", "hi"),
            &[],
        )
        .await;
    assert_eq!(s.events.len(), 4, "{s:?}");
    assert!(!s.done);
    assert!(!s.clean_end, "a cut stream must not end cleanly: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_delay_spaces_events() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 4,
        chunk_delay_ms: 60,
        ..Default::default()
    });
    let s = TestClient::new()
        .post_sse(
            &format!("{}/chat/completions", mock.base_url()),
            &chat_stream_body("m", "hi"),
            &[],
        )
        .await;
    assert!(s.done);
    let first = s.events.first().unwrap().at;
    let last = s.events.last().unwrap().at;
    assert!(first < Duration::from_millis(200), "{first:?}");
    assert!(
        last - first >= Duration::from_millis(250),
        "{first:?} {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_and_header_delay_switch_at_run_time() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let url = format!("{}/chat/completions", mock.base_url());
    mock.fail_with(429);
    let r = c.post_json(&url, &chat_body("m", "x")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), MOCK_ERROR_BODY);
    mock.set_normal();
    mock.delay_headers(300);
    let t = Instant::now();
    let r = c.post_json(&url, &chat_body("m", "x")).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    mock.set_normal();
    let r = c.post_json(&url, &chat_body("m", "x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.hits(), 3);
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_endpoints() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let emb = json!({"model": "e", "input": ["abcd", "abcdefgh", "a"]});
    let r = c
        .post_json(&format!("{}/embeddings", mock.base_url()), &emb)
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(embeddings_usage(&emb).total_tokens, 4);

    let resp = json!({"model": "r", "input": "twelve bytes"});
    let r = c
        .post_json(&format!("{}/responses", mock.base_url()), &resp)
        .await;
    let v = r.json();
    assert_eq!(v["usage"]["input_tokens"], 3);
    assert_eq!(v["usage"]["output_tokens"], 8);
    assert_eq!(responses_usage(&resp, 8).total_tokens, 11);

    let r = c.get(&format!("{}/models", mock.base_url())).await;
    assert_eq!(r.json()["data"][1]["id"], "mock-large");

    let azure = format!(
        "{}/openai/deployments/dep-1/chat/completions?api-version=2024-10-21",
        mock.root_url()
    );
    let r = c.post_json(&azure, &json!({"messages": []})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "dep-1");
    let r = c
        .post_json(
            &format!(
                "{}/openai/deployments/dep-1/chat/completions",
                mock.root_url()
            ),
            &json!({"messages": []}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code().as_deref(), Some("missing_api_version"));
    let r = c
        .post_json(&format!("{}/nope", mock.base_url()), &json!({}))
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_tcp_helper_reads_response() {
    let mock = MockUpstream::start_default();
    let out = raw_tcp_exchange(
        &mock.addr().to_string(),
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn mock_binary_prints_listening_line() {
    use std::io::BufRead;
    let bin = env!("CARGO_BIN_EXE_mock-upstream");
    let mut child = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--stream-chunks", "3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let addr = line.trim().strip_prefix("LISTENING 127.0.0.1:").unwrap();
    assert!(addr.parse::<u16>().unwrap() > 0, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directives_change_one_request_only() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let url = format!("{}/chat/completions", mock.base_url());
    let cut = c
        .post_sse(
            &url,
            &chat_stream_body("m", "hi"),
            &[("x-mock-cut-after", "3")],
        )
        .await;
    assert_eq!(cut.events.len(), 3, "{cut:?}");
    assert!(!cut.done && !cut.clean_end, "{cut:?}");
    let spaced = c
        .post_sse(
            &url,
            &chat_stream_body("m", "hi"),
            &[("x-mock-chunk-delay-ms", "40")],
        )
        .await;
    assert!(spaced.done && spaced.clean_end, "{spaced:?}");
    let (first, last) = (
        spaced.events[0].at,
        spaced.events[spaced.events.len() - 1].at,
    );
    assert!(
        last - first >= Duration::from_millis(40 * 8),
        "{first:?} {last:?}"
    );
    let r = c
        .post_json_with(&url, &chat_body("m", "x"), &[("x-mock-status", "503")])
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), MOCK_ERROR_BODY);
    let t = Instant::now();
    let r = c
        .post_json_with(&url, &chat_body("m", "x"), &[("x-mock-delay-ms", "300")])
        .await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // a status out of range is ignored, and the next request is normal again
    let r = c
        .post_json_with(&url, &chat_body("m", "x"), &[("x-mock-status", "200")])
        .await;
    assert_eq!(r.status, 200);
    let whole = c.post_sse(&url, &chat_stream_body("m", "hi"), &[]).await;
    assert!(whole.done && whole.clean_end, "{whole:?}");
}
