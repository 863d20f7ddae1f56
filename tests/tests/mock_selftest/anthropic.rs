//! The mock's Anthropic side: `/v1/messages` JSON and SSE, usage figures, thinking,
//! tool use, `max_tokens`, the stream switches (errors, header checks,
//! `count_tokens`, models and the binary in `anthropic_checks.rs`).

use gateway_tests::client::{HttpResponse, SseResponse, TestClient};
use gateway_tests::mock_upstream::{
    chat_usage, count_tokens_input, messages_body, messages_usage, MessagesAnswer, MockOptions,
    MockUpstream, ANTHROPIC_HEADERS, MOCK_TOOL_INPUT, SIGNATURE,
};
use serde_json::{json, Value};

pub(crate) fn messages_url(mock: &MockUpstream) -> String {
    format!("{}/messages", mock.base_url())
}

pub(crate) async fn create(mock: &MockUpstream, body: &Value) -> HttpResponse {
    TestClient::new()
        .post_json_with(&messages_url(mock), body, &ANTHROPIC_HEADERS)
        .await
}

async fn stream(mock: &MockUpstream, body: &Value) -> SseResponse {
    let mut body = body.clone();
    body["stream"] = json!(true);
    TestClient::new()
        .post_sse(&messages_url(mock), &body, &ANTHROPIC_HEADERS)
        .await
}

/// `(event name, data)` of every event; each `data.type` must equal its name.
fn events(s: &SseResponse) -> Vec<(String, Value)> {
    s.events
        .iter()
        .map(|e| {
            let name = e.event.clone().expect("every Anthropic event is named");
            let data = e.json();
            assert_eq!(data["type"], name.as_str(), "{data}");
            (name, data)
        })
        .collect()
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

/// Concatenation of the deltas of `field` (`text`, `thinking`, `partial_json`).
fn deltas(evs: &[(String, Value)], index: u64, field: &str) -> String {
    evs.iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == index)
        .filter_map(|(_, d)| d["delta"][field].as_str().map(str::to_string))
        .collect()
}

/// Asserts an Anthropic error: status, `type: error`, `error.type`, a message, the
/// `request_id`; returns the body.
pub(crate) fn assert_anthropic_error(r: &HttpResponse, status: u16, kind: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(v["request_id"].as_str().unwrap().starts_with("req_mock"));
    assert_eq!(r.header("request-id"), v["request_id"].as_str());
    v
}

/// System blocks (16 + 48 bytes up to the `cache_control` block, then 4) and
/// messages (40 + 20 + 12 bytes of text and tool result, an image counting 0):
/// B = 140 bytes = 35 tokens, C = 64 bytes = 16 cached tokens.
pub(crate) fn cached_request() -> Value {
    json!({
        "model": "claude-mock",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "s".repeat(16)},
            {"type": "text", "text": "c".repeat(48), "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "tail"},
        ],
        "messages": [
            {"role": "user", "content": "u".repeat(40)},
            {"role": "assistant", "content": [{"type": "text", "text": "a".repeat(20)}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r".repeat(12)},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]},
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_answer_shape_usage_and_recorded_request() {
    let mock = MockUpstream::start_default();
    let body = cached_request();
    let r = TestClient::new()
        .post_json_with(
            &format!("{}?beta=true", messages_url(&mock)),
            &body,
            &[
                ANTHROPIC_HEADERS[0],
                ANTHROPIC_HEADERS[1],
                ("anthropic-beta", "prompt-caching-2024-07-31"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("request-id"), Some("req_mock1"));
    let v = r.json();
    assert_eq!(v["id"], "msg_mock1");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-mock");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "word ".repeat(8)}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    let expected = json!({
        "input_tokens": 19,
        "cache_read_input_tokens": 8,
        "cache_creation_input_tokens": 8,
        "cache_creation": {"ephemeral_5m_input_tokens": 8, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 8,
        "service_tier": "standard",
    });
    assert_eq!(v["usage"], expected);
    let u = messages_usage(&body, 8);
    assert_eq!(v["usage"]["input_tokens"], u.input_tokens);
    assert_eq!(
        v["usage"]["cache_read_input_tokens"],
        u.cache_read_input_tokens
    );
    assert_eq!(
        v["usage"]["cache_creation_input_tokens"],
        u.cache_creation_input_tokens
    );
    assert_eq!(u.prompt_total(), 35);

    let rec = mock.last_request().unwrap();
    assert_eq!(rec.path_and_query, "/v1/messages?beta=true");
    assert_eq!(rec.header("x-api-key"), Some("sk-ant-mock"));
    assert_eq!(rec.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        rec.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(rec.body, body);

    // a one-hour cache entry is reported as such
    let mut long = body.clone();
    long["system"][1]["cache_control"]["ttl"] = json!("1h");
    let v = create(&mock, &long).await.json();
    assert_eq!(
        v["usage"]["cache_creation"],
        json!({"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 8})
    );
}

#[test]
fn usage_rule_counts_text_and_splits_the_cached_prefix() {
    // no cache_control: nothing cached; a string system counts its bytes
    let plain = json!({"model": "m", "max_tokens": 9, "system": "12345678",
        "messages": [{"role": "user", "content": "abcd"}]});
    let u = messages_usage(&plain, 5);
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens
        ),
        (3, 0, 0)
    );
    assert_eq!(u.output_tokens, 5);
    // an odd cached prefix: the write gets the extra token
    let odd = json!({"model": "m", "max_tokens": 9,
        "system": [{"type": "text", "text": "x".repeat(12), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "abcd"}]});
    let u = messages_usage(&odd, 1);
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens
        ),
        (1, 1, 2)
    );
    // the same text as an OpenAI chat: the same prompt total
    let chat = json!({"model": "m", "messages": [
        {"role": "system", "content": "x".repeat(12)},
        {"role": "user", "content": "abcd"}]});
    assert_eq!(u.prompt_total(), chat_usage(&chat, 1).prompt_tokens);
    assert!(!u.cache_ttl_1h);
    let mut long = odd.clone();
    long["system"][0]["cache_control"]["ttl"] = json!("1h");
    assert!(messages_usage(&long, 1).cache_ttl_1h);
    assert_eq!(count_tokens_input(&odd), 4);
    assert_eq!(count_tokens_input(&cached_request()), 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_event_order_indexes_and_usage() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 3,
        ..Default::default()
    });
    let s = stream(&mock, &cached_request()).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert_eq!(s.header("request-id"), Some("req_mock1"));
    assert!(s.clean_end, "{s:?}");
    let evs = events(&s);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = &evs[0].1["message"];
    assert_eq!(start["id"], "msg_mock1");
    assert_eq!(start["model"], "claude-mock");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 19, "cache_read_input_tokens": 8,
               "cache_creation_input_tokens": 8, "output_tokens": 1,
               "cache_creation": {"ephemeral_5m_input_tokens": 8, "ephemeral_1h_input_tokens": 0},
               "service_tier": "standard"})
    );
    assert_eq!(
        evs[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    for (name, d) in &evs[1..7] {
        if name != "ping" {
            assert_eq!(d["index"], 0, "{d}");
        }
    }
    assert_eq!(evs[3].1["delta"]["type"], "text_delta");
    assert_eq!(deltas(&evs, 0, "text"), "word ".repeat(3));
    let delta = &evs[7].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    assert_eq!(delta["usage"], json!({"output_tokens": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_block_before_the_text_json_and_stream() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 2,
        ..Default::default()
    });
    let mut body = messages_body("claude-mock", "think about it");
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let v = create(&mock, &body).await.json();
    assert_eq!(
        v["content"],
        json!([
            {"type": "thinking", "thinking": "think think ", "signature": SIGNATURE},
            {"type": "text", "text": "word word "},
        ])
    );
    assert_eq!(v["usage"]["output_tokens"], 4);
    assert_eq!(
        v["usage"]["output_tokens_details"],
        json!({"thinking_tokens": 2})
    );

    let evs = events(&stream(&mock, &body).await);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(evs[1].1["index"], 0);
    assert_eq!(evs[1].1["content_block"]["type"], "thinking");
    assert_eq!(evs[3].1["delta"]["type"], "thinking_delta");
    assert_eq!(
        evs[5].1["delta"],
        json!({"type": "signature_delta", "signature": SIGNATURE})
    );
    assert_eq!(deltas(&evs, 0, "thinking"), "think think ");
    assert_eq!(evs[6].1["index"], 0);
    assert_eq!(evs[7].1["index"], 1);
    assert_eq!(evs[7].1["content_block"]["type"], "text");
    assert_eq!(deltas(&evs, 1, "text"), "word word ");
    assert_eq!(evs[10].1["index"], 1);
    assert_eq!(
        evs[11].1["usage"],
        json!({"output_tokens": 4, "output_tokens_details": {"thinking_tokens": 2}})
    );
    assert_eq!(
        evs[0].1["message"]["usage"]["output_tokens_details"],
        Value::Null
    );

    // thinking disabled: no thinking block
    body["thinking"] = json!({"type": "disabled"});
    let v = create(&mock, &body).await.json();
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
    assert_eq!(v["usage"]["output_tokens_details"], Value::Null);
}

fn tools_request(choice: Option<Value>) -> Value {
    let mut body = messages_body("claude-mock", "weather?");
    body["tools"] = json!([
        {"name": "get_weather", "description": "d", "input_schema": {"type": "object"}},
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]);
    if let Some(c) = choice {
        body["tool_choice"] = c;
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_use_json_and_stream() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 2,
        ..Default::default()
    });
    let body = tools_request(Some(json!({"type": "any"})));
    let v = create(&mock, &body).await.json();
    assert_eq!(v["stop_reason"], "tool_use");
    let content = v["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{v}");
    assert_eq!(content[0]["type"], "text");
    let tool = &content[1];
    assert_eq!(tool["type"], "tool_use");
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(tool["name"], "get_weather");
    let input: Value = serde_json::from_str(MOCK_TOOL_INPUT).unwrap();
    assert_eq!(tool["input"], input);
    assert_eq!(v["usage"]["output_tokens"], 2 + 3);

    let evs = events(&stream(&mock, &body).await);
    let starts: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(starts[1]["content_block"]["type"], "tool_use");
    assert_eq!(starts[1]["content_block"]["name"], "get_weather");
    assert_eq!(starts[1]["content_block"]["input"], json!({}));
    let partial = deltas(&evs, 1, "partial_json");
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), input);
    let (last, stop) = (&evs[evs.len() - 2].1, &evs[evs.len() - 3].1);
    assert_eq!(stop["type"], "content_block_stop");
    assert_eq!(stop["index"], 1);
    assert_eq!(last["delta"]["stop_reason"], "tool_use");
    assert_eq!(last["usage"]["output_tokens"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_choice_decides_the_tool() {
    let mock = MockUpstream::start_default();
    let tool_of = |v: &Value| {
        v["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| b["name"].as_str().unwrap().to_string())
    };
    let named = tools_request(Some(json!({"type": "tool", "name": "get_time"})));
    let v = create(&mock, &named).await.json();
    assert_eq!(tool_of(&v).as_deref(), Some("get_time"));
    let auto = tools_request(None);
    let v = create(&mock, &auto).await.json();
    assert_eq!(tool_of(&v), None);
    assert_eq!(v["stop_reason"], "end_turn");
    mock.set_tool_use_on_auto(true);
    let v = create(&mock, &auto).await.json();
    assert_eq!(tool_of(&v).as_deref(), Some("get_weather"));
    assert_eq!(
        MessagesAnswer::plan(&auto, 8, true).usage.output_tokens,
        v["usage"]["output_tokens"].as_u64().unwrap()
    );
    let none = tools_request(Some(json!({"type": "none"})));
    let v = create(&mock, &none).await.json();
    assert_eq!(tool_of(&v), None);
    // no tools: no tool_use whatever tool_choice says
    let mut bare = messages_body("m", "x");
    bare["tool_choice"] = json!({"type": "any"});
    assert_eq!(tool_of(&create(&mock, &bare).await.json()), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_cuts_the_answer() {
    let mock = MockUpstream::start_default();
    let mut body = tools_request(Some(json!({"type": "any"})));
    body["max_tokens"] = json!(3);
    let v = create(&mock, &body).await.json();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "word word word "}])
    );
    assert_eq!(v["usage"]["output_tokens"], 3);
    let evs = events(&stream(&mock, &body).await);
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_switches_chunks_and_cut() {
    let mock = MockUpstream::start_default();
    let body = messages_body("m", "hi");
    mock.set_stream_chunks(5);
    let evs = events(&stream(&mock, &body).await);
    assert_eq!(evs.len(), 5 + 6);
    assert_eq!(deltas(&evs, 0, "text"), "word ".repeat(5));
    mock.cut_stream_after(4);
    let s = stream(&mock, &body).await;
    assert_eq!(s.events.len(), 4, "{s:?}");
    assert!(!s.clean_end, "a cut stream must not end cleanly: {s:?}");
    assert!(!names(&events(&s)).contains(&"message_stop"));
    mock.set_normal();

    // an error event after the 200: the body ends cleanly, without message_stop
    mock.error_stream_after(3);
    let s = stream(&mock, &body).await;
    assert!(s.clean_end, "{s:?}");
    let evs = events(&s);
    assert_eq!(
        names(&evs),
        ["message_start", "content_block_start", "ping", "error"]
    );
    assert_eq!(evs[3].1["error"]["type"], "overloaded_error");
    assert_eq!(evs[3].1["request_id"], "req_mock3");
    mock.set_normal();
    assert_eq!(events(&stream(&mock, &body).await).len(), 5 + 6);
}
