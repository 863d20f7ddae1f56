//! The OpenAI side of the mock: chat, completions, embeddings, responses, models
//! and the Azure deployment paths (endpoints and switches in the parent module's
//! doc).
//!
//! # Deterministic usage figures
//!
//! Let `N` be the number of content chunks (`stream_chunks`, default 8) and
//! `tokens(b) = ceil(b / 4)` for a byte count `b` (see [`text_tokens`]).
//!
//! * chat: `prompt_tokens = tokens(B)` where `B` is the sum of the UTF-8 byte
//!   lengths of every `messages[].content` (a string, or for an array of parts the
//!   `text` of each part); `completion_tokens = N` (the answer is `"word "` N
//!   times, one token per word); `total_tokens = prompt + completion`;
//!   `prompt_tokens_details.cached_tokens = prompt / 2` (floor);
//!   `completion_tokens_details.reasoning_tokens = completion / 4` (floor).
//!   [`chat_usage`] computes these from a request body.
//! * completions: as chat with `B` = bytes of `prompt` (a string or an array of
//!   strings, summed).
//! * embeddings: `prompt_tokens = total_tokens = sum over inputs of tokens(bytes)`
//!   (an input given as a token array counts its length). [`embeddings_usage`].
//! * responses: `input_tokens = tokens(B)` with `B` = bytes of `input` (a string,
//!   or items whose `content` is a string or parts with `text`), `output_tokens =
//!   N`, `total_tokens` = sum; `input_tokens_details.cached_tokens = input / 2`,
//!   `output_tokens_details.reasoning_tokens = output / 4`.
//!
//! Ids: chat answers are `chatcmpl-mock<n>`, completions `cmpl-mock<n>`, responses
//! `resp_mock<n>`, where `<n>` counts requests from 1 per mock instance. `created`
//! is always [`CREATED`].
//!
//! # Chat stream shape
//!
//! Events, each written as its own body frame `data: <json>\n\n`:
//! 1. a role chunk (`delta: {"role":"assistant","content":""}`),
//! 2. `N` content chunks (`delta: {"content":"word "}`, `finish_reason: null`),
//! 3. a finish chunk (`delta: {}`, `finish_reason: "stop"`),
//! 4. only when the request had `stream_options.include_usage: true`: a usage chunk
//!    with `"choices": []` and `"usage": {...}` (figures as above),
//! 5. `data: [DONE]`.
//!
//! A chat request with `tools` whose `tool_choice` is `required` (the first
//! tool) or names a function is answered with a call of that tool
//! ([`forced_tool`]): arguments [`TOOL_ARGUMENTS`], `finish_reason`
//! `tool_calls`; streamed as a role chunk, a chunk naming the call, the
//! arguments in two pieces and the finish chunk.

use super::body::MockBody;
use super::{
    is_stream, json_response, json_str, sse_event, sse_response, text_tokens, MockState,
    CHUNK_TEXT, CREATED, MOCK_MODELS,
};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// Answers a request in the OpenAI dialect (after the shared switches).
pub(super) fn route(
    state: &MockState,
    parts: &http::request::Parts,
    json: Option<Value>,
    n: u64,
) -> Response<MockBody> {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");

    // Azure: /openai/deployments/{d}/{op}
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let Some((deployment, op)) = rest.split_once('/') else {
            return not_found(&parts.method, path, n);
        };
        if !query
            .split('&')
            .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
        {
            return error_response(
                StatusCode::NOT_FOUND,
                "api-version query parameter is required",
                "invalid_request_error",
                "missing_api_version",
                n,
            );
        }
        if parts.method != Method::POST {
            return not_found(&parts.method, path, n);
        }
        let Some(body) = json else {
            return invalid_json(n);
        };
        let model = deployment.to_string();
        return match op {
            "chat/completions" => chat(state, &body, &model, n),
            "completions" => completions(state, &body, &model, n),
            "embeddings" => embeddings(&body, &model, n),
            _ => not_found(&parts.method, path, n),
        };
    }

    if parts.method == Method::GET && path == "/v1/models" {
        return json_response(StatusCode::OK, models_body(), n);
    }
    if parts.method != Method::POST {
        return not_found(&parts.method, path, n);
    }
    let op = match path {
        "/v1/chat/completions" => 1,
        "/v1/completions" => 2,
        "/v1/embeddings" => 3,
        "/v1/responses" => 4,
        _ => return not_found(&parts.method, path, n),
    };
    let Some(body) = json else {
        return invalid_json(n);
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match op {
        1 => chat(state, &body, &model, n),
        2 => completions(state, &body, &model, n),
        3 => embeddings(&body, &model, n),
        _ => responses(state, &body, &model, n),
    }
}

/// Usage figures the mock reports (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MockUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl MockUsage {
    fn new(prompt: u64, completion: u64) -> Self {
        MockUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: prompt / 2,
            reasoning_tokens: completion / 4,
        }
    }

    /// The chat/completions `usage` object, as OpenAI writes it (the type the
    /// gateway reads it with).
    fn chat_json(&self) -> String {
        use shared::wire::openai::{CompletionDetails, PromptDetails, Usage};
        let usage = Usage {
            prompt_tokens: Some(self.prompt_tokens),
            completion_tokens: Some(self.completion_tokens),
            total_tokens: Some(self.total_tokens),
            prompt_tokens_details: Some(PromptDetails {
                cached_tokens: Some(self.cached_tokens),
            }),
            completion_tokens_details: Some(CompletionDetails {
                reasoning_tokens: Some(self.reasoning_tokens),
            }),
            ..Usage::default()
        };
        serde_json::to_string(&usage).unwrap_or_default()
    }

    fn responses_json(&self) -> String {
        format!(
            r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":{}}},"output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{}}},"total_tokens":{}}}"#,
            self.prompt_tokens,
            self.cached_tokens,
            self.completion_tokens,
            self.reasoning_tokens,
            self.total_tokens
        )
    }
}

fn content_bytes(content: &Value) -> usize {
    match content {
        Value::String(s) => s.len(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.len(),
                other => other
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, str::len),
            })
            .sum(),
        _ => 0,
    }
}

/// Usage the mock reports for a chat request `body` with `chunks` content chunks.
pub fn chat_usage(body: &Value, chunks: usize) -> MockUsage {
    let bytes: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|msgs| {
            msgs.iter()
                .map(|m| m.get("content").map_or(0, content_bytes))
                .sum()
        })
        .unwrap_or(0);
    MockUsage::new(text_tokens(bytes), chunks as u64)
}

/// Usage the mock reports for a legacy completions request.
pub fn completions_usage(body: &Value, chunks: usize) -> MockUsage {
    let bytes = body.get("prompt").map_or(0, content_bytes);
    MockUsage::new(text_tokens(bytes), chunks as u64)
}

/// Usage the mock reports for a Responses-API request.
pub fn responses_usage(body: &Value, chunks: usize) -> MockUsage {
    let bytes = match body.get("input") {
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.len(),
                other => other.get("content").map_or(0, content_bytes),
            })
            .sum(),
        _ => 0,
    };
    MockUsage::new(text_tokens(bytes), chunks as u64)
}

fn embedding_inputs(body: &Value) -> Vec<u64> {
    match body.get("input") {
        Some(Value::String(s)) => vec![text_tokens(s.len())],
        Some(Value::Array(items)) => {
            if items.iter().all(Value::is_number) && !items.is_empty() {
                // one input given as a token array
                return vec![items.len() as u64];
            }
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => text_tokens(s.len()),
                    Value::Array(tokens) => tokens.len() as u64,
                    _ => 0,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Usage the mock reports for an embeddings request (`completion_tokens` is 0,
/// `total_tokens == prompt_tokens`).
pub fn embeddings_usage(body: &Value) -> MockUsage {
    let prompt: u64 = embedding_inputs(body).iter().sum();
    MockUsage {
        prompt_tokens: prompt,
        completion_tokens: 0,
        total_tokens: prompt,
        cached_tokens: 0,
        reasoning_tokens: 0,
    }
}

fn not_found(method: &Method, path: &str, n: u64) -> Response<MockBody> {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("mock: no such endpoint {method} {path}"),
        "invalid_request_error",
        "unknown_url",
        n,
    )
}

fn invalid_json(n: u64) -> Response<MockBody> {
    error_response(
        StatusCode::BAD_REQUEST,
        "mock: body is not JSON",
        "invalid_request_error",
        "invalid_json",
        n,
    )
}

fn models_body() -> String {
    let data: Vec<String> = MOCK_MODELS
        .iter()
        .map(|m| {
            format!(r#"{{"id":"{m}","object":"model","created":{CREATED},"owned_by":"mock"}}"#)
        })
        .collect();
    format!(r#"{{"object":"list","data":[{}]}}"#, data.join(","))
}

/// The tool a chat request makes the mock call: with `tools`, when
/// `tool_choice` is `required` (the first tool) or names a function.
pub fn forced_tool(body: &Value) -> Option<String> {
    let first = body.get("tools")?.as_array()?.first()?;
    match body.get("tool_choice")? {
        Value::String(s) if s == "required" => {
            first["function"]["name"].as_str().map(str::to_string)
        }
        Value::Object(o) => o.get("function")?.get("name")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// The arguments of the mock's tool calls.
pub const TOOL_ARGUMENTS: &str = r#"{"query":"mock","n":1}"#;

/// A chat answer that calls `tool` (JSON, or a stream with the arguments in
/// two pieces).
fn chat_tool_call(
    st: &MockState,
    body: &Value,
    model: &str,
    n: u64,
    tool: &str,
) -> Response<MockBody> {
    let usage = chat_usage(body, st.stream_chunks.load(Ordering::Relaxed));
    let (id, call, m, name) = (
        format!("chatcmpl-mock{n}"),
        format!("call_mock{n}"),
        json_str(model),
        json_str(tool),
    );
    let args = json_str(TOOL_ARGUMENTS);
    if !is_stream(body) {
        let out = format!(
            r#"{{"id":"{id}","object":"chat.completion","created":{CREATED},"model":{m},"choices":[{{"index":0,"message":{{"role":"assistant","content":null,"tool_calls":[{{"id":"{call}","type":"function","function":{{"name":{name},"arguments":{args}}}}}]}},"finish_reason":"tool_calls"}}],"usage":{}}}"#,
            usage.chat_json()
        );
        return json_response(StatusCode::OK, out, n);
    }
    let head = format!(
        r#"{{"id":"{id}","object":"chat.completion.chunk","created":{CREATED},"model":{m},"#
    );
    let delta = |d: String, finish: &str| {
        sse(&format!(
            r#"{head}"choices":[{{"index":0,"delta":{d},"finish_reason":{finish}}}]}}"#
        ))
    };
    let (a, b) = TOOL_ARGUMENTS.split_at(TOOL_ARGUMENTS.len() / 2);
    let mut frames = VecDeque::from([
        delta(r#"{"role":"assistant","content":null}"#.to_string(), "null"),
        delta(
            format!(
                r#"{{"tool_calls":[{{"index":0,"id":"{call}","type":"function","function":{{"name":{name},"arguments":""}}}}]}}"#
            ),
            "null",
        ),
        delta(
            format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}}"#,
                json_str(a)
            ),
            "null",
        ),
        delta(
            format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}}"#,
                json_str(b)
            ),
            "null",
        ),
        delta("{}".to_string(), r#""tool_calls""#),
    ]);
    if include_usage(body) {
        frames.push_back(sse(&format!(
            r#"{head}"choices":[],"usage":{}}}"#,
            usage.chat_json()
        )));
    }
    frames.push_back(Bytes::from_static(DONE.as_bytes()));
    sse_response(frames, st, n)
}

fn chat(st: &MockState, body: &Value, model: &str, n: u64) -> Response<MockBody> {
    if let Some(tool) = forced_tool(body) {
        return chat_tool_call(st, body, model, n, &tool);
    }
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let usage = chat_usage(body, chunks);
    let id = format!("chatcmpl-mock{n}");
    let m = json_str(model);
    if !is_stream(body) {
        let content = CHUNK_TEXT.repeat(chunks);
        let out = format!(
            r#"{{"id":"{id}","object":"chat.completion","created":{CREATED},"model":{m},"choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{},"system_fingerprint":"fp_mock"}}"#,
            usage.chat_json()
        );
        return json_response(StatusCode::OK, out, n);
    }
    let head = format!(
        r#"{{"id":"{id}","object":"chat.completion.chunk","created":{CREATED},"model":{m},"#
    );
    let mut frames = VecDeque::with_capacity(chunks + 4);
    frames.push_back(sse(&format!(
        r#"{head}"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]}}"#
    )));
    let pad = match st.chunk_pad {
        0 => String::new(),
        n => format!(r#","x_pad":"{}""#, "x".repeat(n)),
    };
    let content = sse(&format!(
        r#"{head}"choices":[{{"index":0,"delta":{{"content":"{CHUNK_TEXT}"}},"finish_reason":null}}]{pad}}}"#
    ));
    for _ in 0..chunks {
        frames.push_back(content.clone());
    }
    frames.push_back(sse(&format!(
        r#"{head}"choices":[{{"index":0,"delta":{{}},"finish_reason":"stop"}}]}}"#
    )));
    if include_usage(body) {
        frames.push_back(sse(&format!(
            r#"{head}"choices":[],"usage":{}}}"#,
            usage.chat_json()
        )));
    }
    frames.push_back(Bytes::from_static(DONE.as_bytes()));
    sse_response(frames, st, n)
}

fn completions(st: &MockState, body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let usage = completions_usage(body, chunks);
    let id = format!("cmpl-mock{n}");
    let m = json_str(model);
    if !is_stream(body) {
        let text = CHUNK_TEXT.repeat(chunks);
        let out = format!(
            r#"{{"id":"{id}","object":"text_completion","created":{CREATED},"model":{m},"choices":[{{"text":"{text}","index":0,"logprobs":null,"finish_reason":"stop"}}],"usage":{}}}"#,
            usage.chat_json()
        );
        return json_response(StatusCode::OK, out, n);
    }
    let head =
        format!(r#"{{"id":"{id}","object":"text_completion","created":{CREATED},"model":{m},"#);
    let mut frames = VecDeque::with_capacity(chunks + 3);
    let content = sse(&format!(
        r#"{head}"choices":[{{"text":"{CHUNK_TEXT}","index":0,"logprobs":null,"finish_reason":null}}]}}"#
    ));
    for _ in 0..chunks {
        frames.push_back(content.clone());
    }
    frames.push_back(sse(&format!(
        r#"{head}"choices":[{{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}}]}}"#
    )));
    if include_usage(body) {
        frames.push_back(sse(&format!(
            r#"{head}"choices":[],"usage":{}}}"#,
            usage.chat_json()
        )));
    }
    frames.push_back(Bytes::from_static(DONE.as_bytes()));
    sse_response(frames, st, n)
}

pub(super) const VECTOR: &str = "[0.0123,-0.0456,0.0789,-0.1011,0.1213,-0.1415,0.1617,-0.1819]";

fn embeddings(body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let inputs = embedding_inputs(body);
    let usage = embeddings_usage(body);
    let data: Vec<String> = (0..inputs.len())
        .map(|i| format!(r#"{{"object":"embedding","index":{i},"embedding":{VECTOR}}}"#))
        .collect();
    let out = format!(
        r#"{{"object":"list","data":[{}],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}}"#,
        data.join(","),
        json_str(model),
        usage.prompt_tokens,
        usage.total_tokens
    );
    json_response(StatusCode::OK, out, n)
}

fn responses(st: &MockState, body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let usage = responses_usage(body, chunks);
    let id = format!("resp_mock{n}");
    let m = json_str(model);
    let text = CHUNK_TEXT.repeat(chunks);
    let completed = format!(
        r#"{{"id":"{id}","object":"response","created_at":{CREATED},"status":"completed","model":{m},"output":[{{"type":"message","id":"msg_mock{n}","status":"completed","role":"assistant","content":[{{"type":"output_text","text":"{text}","annotations":[]}}]}}],"usage":{}}}"#,
        usage.responses_json()
    );
    if !is_stream(body) {
        return json_response(StatusCode::OK, completed, n);
    }
    let mut frames = VecDeque::with_capacity(chunks + 2);
    frames.push_back(sse_event(
        "response.created",
        &format!(
            r#"{{"type":"response.created","response":{{"id":"{id}","object":"response","created_at":{CREATED},"status":"in_progress","model":{m},"output":[],"usage":null}}}}"#
        ),
    ));
    let delta = sse_event(
        "response.output_text.delta",
        &format!(
            r#"{{"type":"response.output_text.delta","item_id":"msg_mock{n}","output_index":0,"content_index":0,"delta":"{CHUNK_TEXT}"}}"#
        ),
    );
    for _ in 0..chunks {
        frames.push_back(delta.clone());
    }
    frames.push_back(sse_event(
        "response.completed",
        &format!(r#"{{"type":"response.completed","response":{completed}}}"#),
    ));
    sse_response(frames, st, n)
}

fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: &str,
    n: u64,
) -> Response<MockBody> {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "code": code}});
    json_response(status, body.to_string(), n)
}

fn sse(json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 8);
    s.push_str("data: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

const DONE: &str = "data: [DONE]\n\n";

fn include_usage(body: &Value) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
