//! The mock's Gemini side: `generateContent` JSON and SSE, the usage figures
//! (cached content, thoughts), function calling both ways, safety blocks,
//! `maxOutputTokens`, embeddings, models, the api key and the request checks.

use gateway_tests::client::{HttpResponse, SseResponse, TestClient};
use gateway_tests::mock_upstream::{
    gemini_body, gemini_usage, tool_result_text, GeminiAnswer, GeminiSwitches, MockOptions,
    MockUpstream, GEMINI_API_KEY, GEMINI_TOOL_CALL_TOKENS, MOCK_TOOL_INPUT, THINKING_TEXT,
};
use serde_json::{json, Value};

const KEY: [(&str, &str); 1] = [("x-goog-api-key", GEMINI_API_KEY)];

fn url(mock: &MockUpstream, model: &str, method: &str) -> String {
    format!("{}/models/{model}:{method}", mock.gemini_base_url())
}

async fn generate(mock: &MockUpstream, model: &str, body: &Value) -> HttpResponse {
    TestClient::new()
        .post_json_with(&url(mock, model, "generateContent"), body, &KEY)
        .await
}

async fn stream(mock: &MockUpstream, model: &str, body: &Value) -> SseResponse {
    let url = format!("{}?alt=sse", url(mock, model, "streamGenerateContent"));
    TestClient::new().post_sse(&url, body, &KEY).await
}

/// The text of the parts of `candidates[0]` that are not thoughts.
fn text(v: &Value) -> String {
    parts(v)
        .iter()
        .filter(|p| p.get("thought").is_none())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

fn parts(v: &Value) -> Vec<Value> {
    v["candidates"][0]["content"]["parts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Asserts a Google error: status, `error.code`, `error.status`, a message.
fn assert_google_error(r: &HttpResponse, status: u16, word: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], status, "{v}");
    assert_eq!(v["error"]["status"], word, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_content_shape_and_usage() {
    let mock = MockUpstream::start_default();
    // 10 + 23 bytes of text: P = ceil(33 / 4) = 9
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be terse."}, {"text": "x"}]},
        "contents": [{"role": "user", "parts": [{"text": "hello world, 23 bytes.."}]}],
        "generationConfig": {"temperature": 0.2},
    });
    let r = generate(&mock, "gemini-2.5-flash", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["index"], 0);
    assert_eq!(text(&v), "word ".repeat(8));
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert_eq!(v["responseId"], "mock-resp-1");
    let u = &v["usageMetadata"];
    assert_eq!(
        (
            &u["promptTokenCount"],
            &u["candidatesTokenCount"],
            &u["totalTokenCount"]
        ),
        (&json!(9), &json!(8), &json!(17))
    );
    // counts of 0 are left out, as proto JSON does
    assert!(u.get("cachedContentTokenCount").is_none(), "{u}");
    assert!(u.get("thoughtsTokenCount").is_none(), "{u}");
    let figures = gemini_usage(&body, 8);
    assert_eq!(figures.prompt_token_count, 9);
    assert_eq!(*u, figures.json());
    let rec = mock.last_request().unwrap();
    assert_eq!(
        rec.path(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(rec.header("x-goog-api-key"), Some(GEMINI_API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_carry_cumulative_usage_and_end_with_the_finish_reason() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 5,
        ..Default::default()
    });
    let body = gemini_body("12345678");
    let s = stream(&mock, "gemini-2.5-pro", &body).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert!(s.clean_end, "{s:?}");
    // Gemini frames its events with CRLF
    assert!(
        s.raw.starts_with("data: {") && s.raw.ends_with("}\r\n\r\n"),
        "{}",
        s.raw
    );
    let chunks = s.json_events();
    assert_eq!(chunks.len(), 5);
    for (i, c) in chunks.iter().enumerate() {
        let u = &c["usageMetadata"];
        assert_eq!(u["promptTokenCount"], 2);
        assert_eq!(u["candidatesTokenCount"], i + 1);
        assert_eq!(u["totalTokenCount"], 2 + i + 1);
        assert_eq!(c["modelVersion"], "gemini-2.5-pro");
        assert_eq!(c["responseId"], "mock-resp-1");
        assert_eq!(text(c), "word ");
        let finish = c["candidates"][0].get("finishReason");
        assert_eq!(finish.is_some(), i == 4, "{c}");
    }
    assert_eq!(chunks[4]["candidates"][0]["finishReason"], "STOP");
    // the switches of the other sides apply: cut after 2 chunks
    mock.cut_stream_after(2);
    let s = stream(&mock, "m", &body).await;
    assert_eq!(s.events.len(), 2);
    assert!(!s.clean_end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_content_and_thoughts_figures() {
    let mock = MockUpstream::start_default();
    let mut body = gemini_body(&"a".repeat(40)); // P = 10
    body["cachedContent"] = json!("cachedContents/abc");
    let u = &generate(&mock, "m", &body).await.json()["usageMetadata"];
    assert_eq!(u["cachedContentTokenCount"], 5);
    assert_eq!(u["promptTokenCount"], 10);
    assert_eq!(u["totalTokenCount"], 18);

    // thoughts asked for and shown
    let mut body = gemini_body(&"a".repeat(40));
    body["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
    let v = generate(&mock, "m", &body).await.json();
    let u = &v["usageMetadata"];
    assert_eq!(u["thoughtsTokenCount"], 8);
    assert_eq!(u["candidatesTokenCount"], 8);
    assert_eq!(u["totalTokenCount"], 10 + 8 + 8);
    let p = parts(&v);
    assert_eq!(
        p[0],
        json!({"text": THINKING_TEXT.repeat(8), "thought": true})
    );
    assert_eq!(text(&v), "word ".repeat(8));
    // streamed: 8 thought chunks, then 8 text chunks
    let chunks = stream(&mock, "m", &body).await.json_events();
    assert_eq!(chunks.len(), 16);
    assert_eq!(parts(&chunks[0])[0]["thought"], true);
    assert_eq!(chunks[7]["usageMetadata"]["thoughtsTokenCount"], 8);
    assert!(chunks[7]["usageMetadata"]
        .get("candidatesTokenCount")
        .is_none());
    assert_eq!(chunks[15]["usageMetadata"]["totalTokenCount"], 26);

    // a thinking budget counts thoughts without showing them
    let mut body = gemini_body(&"a".repeat(40));
    body["generation_config"] = json!({"thinking_config": {"thinking_budget": 128}});
    let v = generate(&mock, "m", &body).await.json();
    assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], 8);
    assert_eq!(parts(&v).len(), 1);

    // the switches report both whatever the request says
    mock.gemini_cached(true);
    mock.gemini_thoughts(true);
    let body = gemini_body(&"a".repeat(40));
    let u = &generate(&mock, "m", &body).await.json()["usageMetadata"];
    assert_eq!(u["cachedContentTokenCount"], 5);
    assert_eq!(u["thoughtsTokenCount"], 8);
    let sw = GeminiSwitches {
        cached: true,
        thoughts: true,
        ..Default::default()
    };
    assert_eq!(*u, GeminiAnswer::plan(&body, 8, sw).usage.json());
}

fn tools_body() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "weather in Paris?"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "parameters": {"type": "OBJECT"}},
            {"name": "get_time"},
        ]}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_call_round_trip() {
    let mock = MockUpstream::start_default();
    let body = tools_body();
    let v = generate(&mock, "m", &body).await.json();
    let call = &parts(&v)[0]["functionCall"];
    assert_eq!(call["name"], "get_weather");
    let args: Value = serde_json::from_str(MOCK_TOOL_INPUT).unwrap();
    assert_eq!(call["args"], args);
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        v["usageMetadata"]["candidatesTokenCount"],
        GEMINI_TOOL_CALL_TOKENS
    );
    // streamed: one chunk
    let chunks = stream(&mock, "m", &body).await.json_events();
    assert_eq!(chunks.len(), 1);
    assert_eq!(parts(&chunks[0])[0]["functionCall"]["name"], "get_weather");
    assert_eq!(chunks[0]["candidates"][0]["finishReason"], "STOP");

    // the answer of the function: a text naming it, its response counted
    let mut body = tools_body();
    body["contents"].as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}),
        json!({"role": "user", "parts": [{"functionResponse":
            {"name": "get_weather", "response": {"result": "sunny, 21C"}}}]}),
    ]);
    let v = generate(&mock, "m", &body).await.json();
    let expected = format!("{}{}", tool_result_text("get_weather"), "word ".repeat(8));
    assert_eq!(text(&v), expected);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 9);
    // "weather in Paris?" (17) + "sunny, 21C" (10) = 27 bytes
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 7);

    // the calling modes
    let mut body = tools_body();
    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    assert_eq!(
        text(&generate(&mock, "m", &body).await.json()),
        "word ".repeat(8)
    );
    body["toolConfig"] = json!({"functionCallingConfig":
        {"mode": "ANY", "allowedFunctionNames": ["get_time"]}});
    let v = generate(&mock, "m", &body).await.json();
    assert_eq!(parts(&v)[0]["functionCall"]["name"], "get_time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_blocks_and_max_output_tokens() {
    let mock = MockUpstream::start_default();
    let body = gemini_body("12345678");
    mock.gemini_block_prompt(true);
    let v = generate(&mock, "m", &body).await.json();
    assert!(v.get("candidates").is_none(), "{v}");
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 2);
    let chunks = stream(&mock, "m", &body).await.json_events();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["promptFeedback"]["blockReason"], "SAFETY");

    mock.gemini_block_prompt(false);
    mock.gemini_block_answer(true);
    let v = generate(&mock, "m", &body).await.json();
    assert_eq!(v["candidates"][0]["finishReason"], "SAFETY");
    assert_eq!(v["candidates"][0]["safetyRatings"][0]["blocked"], true);
    assert_eq!(text(&v), "word ".repeat(4));
    let chunks = stream(&mock, "m", &body).await.json_events();
    assert_eq!(chunks.len(), 5);
    let last = &chunks[4]["candidates"][0];
    assert_eq!(last["finishReason"], "SAFETY");
    assert!(last.get("content").is_none(), "{last}");
    mock.set_normal();

    let mut body = gemini_body("x");
    body["generationConfig"] = json!({"maxOutputTokens": 3});
    let v = generate(&mock, "m", &body).await.json();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(text(&v), "word ".repeat(3));
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_request_checks_and_error_shapes() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let u = url(&mock, "m", "generateContent");
    let r = c.post_json(&u, &gemini_body("x")).await;
    assert_google_error(&r, 403, "PERMISSION_DENIED");
    for (body, says) in [
        (json!({"contents": []}), "contents"),
        (
            json!({"model": "m", "contents": [{"parts": [{"text": "x"}]}]}),
            "\"model\"",
        ),
        (
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "role",
        ),
        (
            json!({"contents": [{"role": "user", "parts": []}]}),
            "parts",
        ),
    ] {
        let r = generate(&mock, "m", &body).await;
        let v = assert_google_error(&r, 400, "INVALID_ARGUMENT");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
    }
    let r = c.post_raw(&u, "{not json", &KEY).await;
    assert_google_error(&r, 400, "INVALID_ARGUMENT");
    // a stream without alt=sse, an unknown method or path
    let r = c
        .post_json_with(
            &url(&mock, "m", "streamGenerateContent"),
            &gemini_body("x"),
            &KEY,
        )
        .await;
    assert_google_error(&r, 400, "INVALID_ARGUMENT");
    let r = c
        .post_json_with(&url(&mock, "m", "nope"), &gemini_body("x"), &KEY)
        .await;
    assert_google_error(&r, 404, "NOT_FOUND");
    // the shared switches, in Google's shape
    mock.fail_with(429);
    let v = assert_google_error(
        &generate(&mock, "m", &gemini_body("x")).await,
        429,
        "RESOURCE_EXHAUSTED",
    );
    assert_eq!(v["error"]["details"][0]["retryDelay"], "1s");
    mock.fail_with(503);
    assert_google_error(
        &generate(&mock, "m", &gemini_body("x")).await,
        503,
        "UNAVAILABLE",
    );
    mock.set_normal();
    mock.reject_token(GEMINI_API_KEY, 400);
    assert_google_error(
        &generate(&mock, "m", &gemini_body("x")).await,
        400,
        "INVALID_ARGUMENT",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_models() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let body = json!({"content": {"parts": [{"text": "hello"}]}});
    let v = c
        .post_json_with(
            &url(&mock, "text-embedding-004", "embedContent"),
            &body,
            &KEY,
        )
        .await
        .json();
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 8);
    assert_eq!(v["embedding"]["values"][0], 0.0123);

    let batch = |model: &str| {
        json!({"requests": [
            {"model": model, "content": {"parts": [{"text": "a"}]}},
            {"model": model, "content": {"parts": [{"text": "b"}]}},
        ]})
    };
    let u = url(&mock, "text-embedding-004", "batchEmbedContents");
    let v = c
        .post_json_with(&u, &batch("models/text-embedding-004"), &KEY)
        .await
        .json();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    let r = c.post_json_with(&u, &batch("models/other"), &KEY).await;
    assert_google_error(&r, 400, "INVALID_ARGUMENT");

    let r = c
        .get_with(&format!("{}/models", mock.gemini_base_url()), &KEY)
        .await;
    assert_eq!(r.json()["models"][0]["name"], "models/mock-small");
    assert_eq!(mock.model_hits(), 1);
}
