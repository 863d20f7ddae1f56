//! A `type: gemini` provider (Gemini's native API) behind real gateway
//! processes, against the Gemini mock: OpenAI chat and Anthropic Messages
//! clients, JSON and streams, a tool call round trip, embeddings, a blocked
//! prompt, error bodies, usage equal to the mock's figures, and the
//! OpenAI-compatibility route still selectable.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{gemini_usage, MockUpstream, GEMINI_API_KEY};
use serde_json::{json, Value};
use std::time::Duration;

/// The mock's content chunks (and output tokens) per answer.
const CHUNKS: usize = 8;

/// One gemini provider at the mock, `gpt-*` mapped to `gemini-2.5-flash`,
/// embeddings to `gemini-embedding-001`.
fn config(mock: &MockUpstream) -> String {
    Config::new()
        .provider(
            Provider::gemini("gem", &mock.gemini_base_url())
                .token(GEMINI_API_KEY)
                .map("text-embedding-*", "gemini-embedding-001")
                .map("*", "gemini-2.5-flash"),
        )
        .route(Route::new("gemini", "/v1").upstream("gem"))
        .access_log()
        .yaml()
}

/// The one generate request the mock got, and the usage it answered.
fn upstream_usage(mock: &MockUpstream) -> (Value, gateway_tests::mock_upstream::GeminiUsage) {
    let req = mock.last_request().expect("no upstream request");
    let usage = gemini_usage(&req.body, CHUNKS);
    (req.body, usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_reaches_generate_content_with_the_api_key() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let mut body = chat_body("gpt-4o", "Say hello");
    body["messages"] = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"}
    ]);
    body["max_tokens"] = json!(50);
    let r = TestClient::new()
        .post_json(&format!("{}/v1/chat/completions", gw.url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(up.header("x-goog-api-key"), Some(GEMINI_API_KEY));
    assert_eq!(up.header("authorization"), None);
    assert_eq!(
        up.body["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    assert_eq!(up.body["contents"][0]["role"], "user");
    assert_eq!(up.body["generationConfig"]["maxOutputTokens"], 50);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let (_, u) = upstream_usage(&mock);
    assert_eq!(v["usage"]["prompt_tokens"], u.prompt_token_count);
    assert_eq!(v["usage"]["completion_tokens"], u.candidates_token_count);
    assert_eq!(v["usage"]["total_tokens"], u.total_token_count);
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert_eq!(line.ai_log.input_token, u.prompt_token_count);
    assert_eq!(line.ai_log.output_token, u.candidates_token_count);
    assert!(!line.ai_log.usage_estimated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_stream_is_rebuilt_from_gemini_sse_with_usage() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let mut body = chat_stream_body("gpt-4o", "Stream please");
    body["stream_options"] = json!({"include_usage": true});
    let r = TestClient::new()
        .post_sse(&format!("{}/v1/chat/completions", gw.url()), &body, &[])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(r.content(), "word ".repeat(CHUNKS));
    let usage = r.usage_chunks();
    assert_eq!(usage.len(), 1, "one usage chunk: {usage:?}");
    let (_, u) = upstream_usage(&mock);
    assert_eq!(usage[0]["usage"]["prompt_tokens"], u.prompt_token_count);
    assert_eq!(
        usage[0]["usage"]["completion_tokens"],
        u.candidates_token_count
    );
    assert!(r.done, "no data: [DONE]");
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert_eq!(line.ai_log.output_token, u.candidates_token_count);
    assert_eq!(line.ai_log.response_type, "stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_round_trip_through_function_calls() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "description": "Looks a thing up", "parameters": {"type": "object",
        "properties": {"query": {"type": "string"}}}}}]);
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut body = chat_body("gpt-4o", "Find it");
    body["tools"] = tools.clone();
    body["tool_choice"] = json!("required");
    let r = TestClient::new().post_json(&url, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.body["toolConfig"]["functionCallingConfig"]["mode"], "ANY",
        "{}",
        up.body
    );
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "mock", "n": 1}));
    // the result goes back as a tool message, answered with text
    let mut follow = chat_body("gpt-4o", "Find it");
    follow["tools"] = tools;
    follow["messages"] = json!([
        {"role": "user", "content": "Find it"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "found it"}
    ]);
    let r = TestClient::new().post_json(&url, &follow).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    let parts = &up.body["contents"];
    assert_eq!(
        parts[1]["parts"][0]["functionCall"]["name"], "lookup",
        "{parts}"
    );
    assert_eq!(
        parts[2]["parts"][0]["functionResponse"]["name"], "lookup",
        "{parts}"
    );
    let v = r.json();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| t.starts_with("lookup returned.")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_reach_gemini_through_chat() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let body = json!({"model": "claude-x", "max_tokens": 64, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello there"}]});
    let r = TestClient::new()
        .post_json(&format!("{}/v1/messages", gw.url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        up.body["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "end_turn");
    let (_, u) = upstream_usage(&mock);
    assert_eq!(v["usage"]["input_tokens"], u.prompt_token_count);
    assert_eq!(v["usage"]["output_tokens"], u.candidates_token_count);
    // and streamed
    let mut body = body;
    body["stream"] = json!(true);
    let r = TestClient::new()
        .post_sse(&format!("{}/v1/messages", gw.url()), &body, &[])
        .await;
    assert_eq!(r.status, 200);
    let events = r.json_events();
    let kinds: Vec<_> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"message_stop"), "{kinds:?}");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["output_tokens"], u.candidates_token_count);
    let text: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "word ".repeat(CHUNKS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_go_to_batch_embed_contents() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let r = TestClient::new()
        .post_json(&format!("{}/v1/embeddings", gw.url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(8));
    // Gemini reports no usage for embeddings: the client gets the gateway's
    // estimate (2 bytes of input: 1 token), the same as the access log's
    assert_eq!(v["usage"]["prompt_tokens"], 1, "{v}");
    assert_eq!(v["usage"]["total_tokens"], 1, "{v}");
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert!(line.ai_log.usage_estimated);
    assert_eq!(line.ai_log.input_token, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_prompt_is_a_content_filter_finish() {
    let mock = MockUpstream::start_default();
    mock.gemini_block_prompt(true);
    let gw = Gateway::start(&config(&mock)).await;
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "something"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_errors_reach_openai_clients_in_openai_shape() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(
        &Config::new()
            .provider(Provider::gemini("gem", &mock.gemini_base_url()).token("wrong-key"))
            .route(Route::new("gemini", "/v1").upstream("gem"))
            .yaml(),
    )
    .await;
    mock.reject_token("wrong-key", 403);
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gemini-2.5-flash", "hi"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_compatibility_endpoint_stays_selectable() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(
        &Config::new()
            .provider(
                Provider::new("gem-oai", "gemini-openai")
                    .base_url(&mock.base_url())
                    .token("k"),
            )
            .route(Route::new("compat", "/v1").upstream("gem-oai"))
            .yaml(),
    )
    .await;
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gemini-2.5-flash", "hi"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(up.path(), "/v1/chat/completions");
    assert_eq!(up.header("authorization"), Some("Bearer k"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_is_estimated_from_what_passed() {
    let mock = MockUpstream::start_default();
    mock.cut_stream_after(3);
    let gw = Gateway::start(&config(&mock)).await;
    let r = TestClient::new()
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "hi"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content(), "word ".repeat(3), "{}", r.raw);
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert!(line.ai_log.usage_estimated, "{:?}", line.ai_log);
    assert_eq!(
        line.ai_log.output_token,
        "word word word ".len().div_ceil(4) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_api_key_is_taken_out_and_the_others_rotate() {
    let mock = MockUpstream::start_default();
    mock.reject_token("gm-revoked", 401);
    let gw = Gateway::start(
        &Config::new()
            .provider(
                Provider::gemini("gem", &mock.gemini_base_url())
                    .token("gm-revoked")
                    .token(GEMINI_API_KEY)
                    .passive(2, 30, 30),
            )
            .route(Route::new("gemini", "/v1").upstream("gem"))
            .yaml(),
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut refused = 0;
    for k in 0..6 {
        let r = TestClient::new()
            .post_json(&url, &chat_body("gemini-2.5-flash", &format!("try {k}")))
            .await;
        match r.status {
            200 => {}
            401 => refused += 1,
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(refused, 2, "the revoked key is out after two refusals");
    let mark = mock.requests().len();
    for k in 0..4 {
        let r = TestClient::new()
            .post_json(&url, &chat_body("gemini-2.5-flash", &format!("after {k}")))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(mock.requests()[mark..]
        .iter()
        .all(|r| r.header("x-goog-api-key") == Some(GEMINI_API_KEY)));
}
