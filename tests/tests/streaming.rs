//! Streaming: SSE pass-through, `stream_options.include_usage` injection and
//! stripping, incremental delivery, cut-off upstream streams, idle timeout.

use gateway_tests::client::{chat_stream_body, TestClient};
use gateway_tests::config::single_provider;
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{chat_usage, completions_usage, MockOptions, MockUpstream};
use serde_json::json;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_passthrough_injects_and_strips_usage_chunk() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let body = chat_stream_body("gpt-4o", "Stream me eight words please");
    let s = TestClient::new()
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &body,
            &[("x-request-id", "stream-req-1")],
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.raw);
    assert!(
        s.header("content-type")
            .unwrap_or("")
            .starts_with("text/event-stream"),
        "{:?}",
        s.headers
    );
    assert_eq!(s.header("x-request-id"), Some("stream-req-1"));
    assert!(s.done, "client must receive data: [DONE]: {}", s.raw);
    assert!(s.clean_end, "stream should end cleanly: {:?}", s.error);
    assert!(
        s.usage_chunks().is_empty(),
        "the usage-only chunk must be removed when the client did not ask for it: {}",
        s.raw
    );
    assert_eq!(
        s.events.len(),
        1 + 8 + 1,
        "role + 8 content + finish chunks: {}",
        s.raw
    );
    assert_eq!(s.content(), "word ".repeat(8));
    let events = s.json_events();
    assert_eq!(events[9]["choices"][0]["finish_reason"], "stop");
    let chat_id = events[0]["id"].as_str().unwrap().to_string();
    assert!(chat_id.starts_with("chatcmpl-mock"), "{chat_id}");

    let up = mock.last_request().unwrap();
    assert_eq!(up.body["stream"], true);
    assert_eq!(
        up.body["stream_options"]["include_usage"], true,
        "the gateway must ask the upstream for usage: {}",
        up.body
    );
    assert_eq!(up.body["model"], "mock-large");

    let expected = chat_usage(&body, 8);
    let line = gw.wait_for_log_line("stream-req-1", LOG_WAIT).await;
    let ai = &line.ai_log;
    assert_eq!(ai.input_token, expected.prompt_tokens, "{line:?}");
    assert_eq!(ai.output_token, 8, "{line:?}");
    assert_eq!(ai.total_token, expected.total_tokens, "{line:?}");
    assert_eq!(ai.cached_tokens, expected.cached_tokens, "{line:?}");
    assert_eq!(ai.reasoning_tokens, expected.reasoning_tokens, "{line:?}");
    assert!(!ai.usage_estimated, "{line:?}");
    assert_eq!(ai.response_type, "stream");
    assert_eq!(ai.request_type, "ai_stream");
    assert_eq!(ai.chat_id.as_deref(), Some(chat_id.as_str()));
    assert_eq!(ai.model.as_deref(), Some("mock-large"));
    assert_eq!(ai.request_model.as_deref(), Some("gpt-4o"));
    assert!(ai.llm_first_token_duration.is_some(), "{line:?}");
    assert_eq!(line.response_code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_client_asking_for_usage_gets_usage_chunk() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let mut body = chat_stream_body("gpt-4o", "With usage, please");
    body["stream_options"] = json!({"include_usage": true});
    let s = TestClient::new()
        .post_sse(&format!("{}/v1/chat/completions", gw.url()), &body, &[])
        .await;
    assert_eq!(s.status, 200);
    assert!(s.done, "{}", s.raw);
    assert_eq!(s.events.len(), 1 + 8 + 1 + 1, "{}", s.raw);
    let usage = s.usage_chunks();
    assert_eq!(usage.len(), 1, "{}", s.raw);
    let expected = chat_usage(&body, 8);
    assert_eq!(usage[0]["usage"]["prompt_tokens"], expected.prompt_tokens);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 8);
    assert_eq!(usage[0]["usage"]["total_tokens"], expected.total_tokens);
    // the usage chunk comes last, after the finish chunk
    let events = s.json_events();
    assert!(events[10]["usage"].is_object());
    assert_eq!(events[9]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_frames_are_forwarded_as_they_come() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 6,
        chunk_delay_ms: 150,
        ..Default::default()
    });
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let s = TestClient::new()
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "slowly"),
            &[],
        )
        .await;
    assert!(s.done, "{}", s.raw);
    assert_eq!(s.events.len(), 8);
    let first = s.events[0].at;
    let last = s.events[7].at;
    // The upstream spends ~1050 ms; a buffering proxy would deliver all at the end.
    assert!(
        first < Duration::from_millis(500),
        "first event after {first:?}: not forwarded as it came"
    );
    assert!(
        last.saturating_sub(first) >= Duration::from_millis(600),
        "events bunched together: first {first:?}, last {last:?}"
    );
    // the content chunks arrive separately, roughly one per 150 ms (allow a
    // couple of them to be bunched by scheduling noise)
    let spaced = s
        .events
        .windows(2)
        .filter(|w| w[1].at.saturating_sub(w[0].at) >= Duration::from_millis(75))
        .count();
    assert!(
        spaced >= 5,
        "only {spaced} of 7 gaps between events were >= 75 ms: {:?}",
        s.events.iter().map(|e| e.at).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_upstream_stream_ends_without_done_and_usage_is_estimated() {
    let mock = MockUpstream::start_default();
    mock.cut_stream_after(4); // role + 3 content chunks, then the connection is aborted
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let body = chat_stream_body("gpt-4o", "this stream will be cut");
    let s = TestClient::new()
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &body,
            &[("x-request-id", "cut-stream-1")],
        )
        .await;
    assert_eq!(s.status, 200);
    assert!(!s.done, "a cut stream must not end with [DONE]: {}", s.raw);
    assert_eq!(
        s.events.len(),
        4,
        "the chunks sent before the cut reach the client: {}",
        s.raw
    );
    assert_eq!(s.content(), "word word word ");
    assert!(s.total < Duration::from_secs(5), "took {:?}", s.total);

    let line = gw.wait_for_log_line("cut-stream-1", LOG_WAIT).await;
    let ai = &line.ai_log;
    assert!(
        ai.usage_estimated,
        "usage must be marked estimated: {line:?}"
    );
    assert!(ai.output_token > 0, "{line:?}");
    assert!(
        ai.output_token < 8,
        "estimated from the 3 chunks received: {line:?}"
    );
    assert!(ai.input_token > 0, "{line:?}");
    assert_eq!(ai.response_type, "stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_stream_is_cut_after_idle_timeout() {
    // idle_ms is 1000 in the config; the upstream pauses 2500 ms between chunks.
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 8,
        chunk_delay_ms: 2500,
        ..Default::default()
    });
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let s = TestClient::new()
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "idle"),
            &[("x-request-id", "idle-stream-1")],
        )
        .await;
    assert!(!s.done, "{}", s.raw);
    assert!(s.events.len() <= 1, "{}", s.raw);
    assert!(
        s.total < Duration::from_millis(2400),
        "the gateway should give up after idle_ms (1000), took {:?}",
        s.total
    );
    assert!(s.total >= Duration::from_millis(900), "took {:?}", s.total);
    let line = gw.wait_for_log_line("idle-stream-1", LOG_WAIT).await;
    assert!(
        line.ai_log.usage_estimated || line.ai_log.error.is_some(),
        "{line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stream_also_strips_injected_usage() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 4,
        ..Default::default()
    });
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let body = json!({"model": "davinci", "prompt": "Count: one", "stream": true});
    let s = TestClient::new()
        .post_sse(
            &format!("{}/v1/completions", gw.url()),
            &body,
            &[("x-request-id", "cmpl-stream-1")],
        )
        .await;
    assert_eq!(s.status, 200);
    assert!(s.done, "{}", s.raw);
    assert!(s.usage_chunks().is_empty(), "{}", s.raw);
    assert_eq!(s.events.len(), 4 + 1, "{}", s.raw);
    assert_eq!(mock.last_request().unwrap().path(), "/v1/completions");
    let line = gw.wait_for_log_line("cmpl-stream-1", LOG_WAIT).await;
    let expected = completions_usage(&body, 4);
    assert_eq!(line.ai_log.input_token, expected.prompt_tokens, "{line:?}");
    assert_eq!(line.ai_log.output_token, 4, "{line:?}");
}
