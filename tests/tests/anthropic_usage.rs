//! Usage across the seam: what a provider reports reaches the client converted
//! to the client's API (Anthropic's `input_tokens` excludes cache reads and
//! writes, OpenAI's `prompt_tokens` includes them) and reaches `ai_log` (and so
//! the metrics, OTLP and quota settlement) in the normalised form, for JSON
//! answers and streams.

use gateway_tests::client::{post_json_with, post_sse};
use gateway_tests::config::{Config, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{chat_usage, messages_usage, MockUpstream};
use serde_json::{json, Value};
use std::time::Duration;

const CHUNKS: usize = 8;

/// A Messages request whose system prompt is cached (its last block carries
/// `cache_control`).
fn cached_messages(stream: bool) -> Value {
    json!({
        "model": "claude-test",
        "max_tokens": 512,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are a careful assistant who answers in one line. ".repeat(8)},
            {"type": "text", "text": "Project context: the gateway. ".repeat(8),
             "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "What is a gateway?"}]
    })
}

const ANTHROPIC_HEADERS: [(&str, &str); 1] = [("anthropic-version", "2023-06-01")];

async fn gateway_to(provider: Provider, id: &str) -> Gateway {
    let config = Config::new()
        .provider(provider)
        .route(Route::new("r", "/v1").upstream(id))
        .access_log()
        .yaml();
    Gateway::start(&config).await
}

/// The last access-log line (one request was sent).
async fn only_line(gw: &Gateway) -> shared::ai_log::AccessLogLine {
    let mut lines = gw.wait_for_log_lines(1, Duration::from_secs(10)).await;
    lines.pop().expect("one access-log line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_cache_figures_pass_through_and_are_normalised_in_ai_log() {
    for stream in [false, true] {
        let mock = MockUpstream::start_default();
        let provider = Provider::new("claude", "anthropic")
            .base_url(&mock.base_url())
            .token("sk-ant");
        let gw = gateway_to(provider, "claude").await;
        let url = format!("{}/v1/messages", gw.url());
        let body = cached_messages(stream);
        let want = messages_usage(&body, CHUNKS);
        assert!(want.cache_read_input_tokens > 0 && want.cache_creation_input_tokens > 0);
        let usage = if stream {
            let r = post_sse(&url, &body, &ANTHROPIC_HEADERS).await;
            let events = r.json_events();
            // input and cache figures come in message_start, output in message_delta
            let start = &events[0]["message"]["usage"];
            let delta = events
                .iter()
                .find(|e| e["type"] == "message_delta")
                .expect("a message_delta");
            let mut u = start.clone();
            u["output_tokens"] = delta["usage"]["output_tokens"].clone();
            u
        } else {
            let r = post_json_with(&url, &body, &ANTHROPIC_HEADERS).await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["usage"].clone()
        };
        assert_eq!(usage["input_tokens"], want.input_tokens, "stream {stream}");
        assert_eq!(
            usage["cache_read_input_tokens"],
            want.cache_read_input_tokens
        );
        assert_eq!(
            usage["cache_creation_input_tokens"],
            want.cache_creation_input_tokens
        );
        assert_eq!(usage["output_tokens"], want.output_tokens);
        let ai = only_line(&gw).await.ai_log;
        let prompt =
            want.input_tokens + want.cache_read_input_tokens + want.cache_creation_input_tokens;
        assert_eq!(
            ai.input_token, prompt,
            "stream {stream}: prompt = input + read + write"
        );
        assert_eq!(ai.cached_tokens, want.cache_read_input_tokens);
        assert_eq!(ai.cache_creation_tokens, want.cache_creation_input_tokens);
        assert_eq!(ai.output_token, want.output_tokens);
        assert_eq!(ai.total_token, prompt + want.output_tokens);
        assert!(!ai.usage_estimated);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_client_gets_anthropic_usage_in_openai_terms() {
    for stream in [false, true] {
        let mock = MockUpstream::start_default();
        let provider = Provider::new("claude", "anthropic")
            .base_url(&mock.base_url())
            .token("sk-ant");
        let gw = gateway_to(provider, "claude").await;
        let url = format!("{}/v1/chat/completions", gw.url());
        let body = json!({
            "model": "gpt-4o",
            "stream": stream,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "You answer in one line."},
                {"role": "user", "content": "What is a gateway?"}
            ]
        });
        let usage = if stream {
            let r = post_sse(&url, &body, &[]).await;
            let chunks = r.usage_chunks();
            assert_eq!(chunks.len(), 1, "one usage chunk: {chunks:?}");
            chunks[0]["usage"].clone()
        } else {
            let r = post_json_with(&url, &body, &[]).await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["usage"].clone()
        };
        // what the mock counted, for the Messages request it was sent
        let sent = mock.requests();
        let want = messages_usage(&sent[0].body, CHUNKS);
        let prompt =
            want.input_tokens + want.cache_read_input_tokens + want.cache_creation_input_tokens;
        assert_eq!(usage["prompt_tokens"], prompt, "stream {stream}: {usage}");
        assert_eq!(usage["completion_tokens"], want.output_tokens);
        assert_eq!(usage["total_tokens"], prompt + want.output_tokens);
        let ai = only_line(&gw).await.ai_log;
        assert_eq!(
            (ai.input_token, ai.output_token),
            (prompt, want.output_tokens)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_client_gets_openai_usage_in_anthropic_terms() {
    for stream in [false, true] {
        let mock = MockUpstream::start_default();
        let gw = gateway_to(Provider::openai("vllm", &mock.base_url()), "vllm").await;
        let url = format!("{}/v1/messages", gw.url());
        let body = json!({
            "model": "claude-test", "max_tokens": 256, "stream": stream,
            "system": "You answer in one line.",
            "messages": [{"role": "user", "content": "What is a gateway?"}]
        });
        let (input, read, output) = if stream {
            let r = post_sse(&url, &body, &ANTHROPIC_HEADERS).await;
            let events = r.json_events();
            let delta = events
                .iter()
                .find(|e| e["type"] == "message_delta")
                .expect("a message_delta");
            let u = &delta["usage"];
            (
                u["input_tokens"].as_u64(),
                u["cache_read_input_tokens"].as_u64(),
                u["output_tokens"].as_u64(),
            )
        } else {
            let r = post_json_with(&url, &body, &ANTHROPIC_HEADERS).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let u = r.json()["usage"].clone();
            (
                u["input_tokens"].as_u64(),
                u["cache_read_input_tokens"].as_u64(),
                u["output_tokens"].as_u64(),
            )
        };
        // the OpenAI mock reports half the prompt as cached
        let sent = mock.requests();
        let want = chat_usage(&sent[0].body, CHUNKS);
        assert!(want.cached_tokens > 0);
        assert_eq!(
            input,
            Some(want.prompt_tokens - want.cached_tokens),
            "stream {stream}"
        );
        assert_eq!(read, Some(want.cached_tokens));
        assert_eq!(output, Some(want.completion_tokens));
        let ai = only_line(&gw).await.ai_log;
        assert_eq!(ai.input_token, want.prompt_tokens);
        assert_eq!(ai.cached_tokens, want.cached_tokens);
    }
}

/// Fallback crosses APIs: an Anthropic client whose first instance (an
/// anthropic provider) fails gets the next one's answer (an OpenAI-compatible
/// provider, translated), and an OpenAI client gets the Anthropic upstream's
/// error in OpenAI's shape when nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_crosses_apis_and_errors_come_in_the_clients_shape() {
    use gateway_tests::config::Fallback;
    let (claude, vllm) = (MockUpstream::start_default(), MockUpstream::start_default());
    claude.fail_with(500);
    let config = Config::new()
        .provider(
            Provider::new("claude", "anthropic")
                .base_url(&claude.base_url())
                .token("k"),
        )
        .provider(Provider::openai("vllm", &vllm.base_url()))
        .route(
            Route::new("messages", "/v1")
                .path_exact("/v1/messages")
                .upstream_priority("claude", 0)
                .upstream_priority("vllm", 1)
                .fallback(Fallback::on(&["http_5xx"], 1)),
        )
        .route(Route::new("chat", "/v1").upstream("claude"))
        .access_log()
        .yaml();
    let gw = Gateway::start(&config).await;
    let body = json!({"model": "claude-test", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "Hello"}]});
    let url = format!("{}/v1/messages", gw.url());
    let r = post_json_with(&url, &body, &ANTHROPIC_HEADERS).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["stop_reason"], "end_turn", "{v}");
    assert_eq!(
        claude.requests().len(),
        1,
        "the Anthropic instance was tried first"
    );
    assert_eq!(vllm.requests()[0].path(), "/v1/chat/completions");

    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]});
    let r = post_json_with(&format!("{}/v1/chat/completions", gw.url()), &chat, &[]).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let e = r.json();
    assert!(
        e["error"]["message"].is_string(),
        "not OpenAI's error shape: {e}"
    );
    assert!(
        e.get("type").is_none(),
        "Anthropic's error shape reached an OpenAI client: {e}"
    );

    let lines = gw.wait_for_log_lines(2, Duration::from_secs(10)).await;
    let attempts: Vec<_> = lines[0]
        .ai_log
        .attempts
        .iter()
        .map(|a| a.provider.clone())
        .collect();
    assert_eq!(attempts, ["claude", "vllm"]);
}

/// An Anthropic stream cut before its final usage: the prompt figures of its
/// first event are kept, the completion is at least what was streamed, and the
/// record says it is an estimate (`UC`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_anthropic_stream_is_estimated_and_flagged() {
    let mock = MockUpstream::start_default();
    mock.cut_stream_after(6);
    let provider = Provider::new("claude", "anthropic")
        .base_url(&mock.base_url())
        .token("sk-ant");
    let gw = gateway_to(provider, "claude").await;
    let body = cached_messages(true);
    let want = messages_usage(&body, CHUNKS);
    let _ = post_sse(
        &format!("{}/v1/messages", gw.url()),
        &body,
        &ANTHROPIC_HEADERS,
    )
    .await;
    let line = only_line(&gw).await;
    assert!(line.response_flags.contains("UC"), "{line:?}");
    let ai = line.ai_log;
    assert!(ai.usage_estimated, "{ai:?}");
    let prompt =
        want.input_tokens + want.cache_read_input_tokens + want.cache_creation_input_tokens;
    assert_eq!(ai.input_token, prompt);
    assert!(
        ai.output_token >= 1 && ai.output_token < want.output_tokens,
        "{ai:?}"
    );
}
