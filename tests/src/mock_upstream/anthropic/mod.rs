//! The Anthropic side of the mock: the Messages API as Anthropic serves it.
//!
//! # Endpoints
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1/messages` (any query, e.g. `?beta=true`) | a `message` JSON, or SSE events when `"stream": true` |
//! | `POST /v1/messages/count_tokens` | `{"input_tokens": N}` |
//! | `GET /v1/models` with an `anthropic-version` header | `mock-small`, `mock-large` in Anthropic's list shape (`type: model`, `has_more`, `first_id`, `last_id`) |
//!
//! Every request to these needs an api key, in a non-empty `x-api-key` or as an
//! `Authorization: Bearer` token (what the `anthropic` Python SDK 2.x sends; else
//! 401 `authentication_error`, "x-api-key header is required"), and a non-empty
//! `anthropic-version` (else 400 `invalid_request_error`); any values are
//! accepted. The recorded request shows which header carried the key. Then: another path or method
//! under `/v1/messages` is a 404 `not_found_error`; a body that is not JSON, or
//! without a non-empty string `model`, a non-empty `messages` array or (create
//! only) a positive integer `max_tokens`, is a 400 `invalid_request_error` whose
//! message starts with the field's name (`max_tokens: Field required`). Every
//! answer carries `request-id: req_mock<n>` (and `x-request-id`, as on the OpenAI
//! side); the message id is `msg_mock<n>`, a tool_use id `toolu_mock<n>`.
//!
//! # Errors
//!
//! Errors have Anthropic's shape, `{"type":"error","error":{"type":..,"message":..},
//! "request_id":"req_mock<n>"}`, with `error.type` from the status
//! ([`anthropic_error_type`]): 400 `invalid_request_error`, 401
//! `authentication_error`, 403 `permission_error`, 404 `not_found_error`, 413
//! `request_too_large`, 429 `rate_limit_error` (with `retry-after:`
//! [`RETRY_AFTER_SECS`]), 529 `overloaded_error`, any other 5xx `api_error`, any
//! other 4xx `invalid_request_error`. The switches of [`super::MockUpstream`] answer
//! these paths in this shape: `fail_with(status)` (message "mock failure"),
//! `reject_token(key, status)` matched against the api key; `fail_with_body(status,
//! body)` sends `body` as given (with `request-id`, and `retry-after` on 429).
//!
//! # Usage figures
//!
//! With `tokens(b) = ceil(b / 4)` and `N` content chunks (`stream_chunks`, default
//! 8), as on the OpenAI side:
//!
//! * `B` = bytes of `system` (a string, or the `text` of each block) plus the bytes
//!   of every `messages[].content` (a string, or per block its `text`, and for a
//!   `tool_result` block its `content` counted the same way; images and
//!   `tool_use` blocks count 0). An OpenAI chat request translated with its text
//!   kept has the same `B`, so `chat_usage(..).prompt_tokens` equals
//!   [`MessagesUsage::prompt_total`].
//! * `C` = bytes of the `system` blocks up to and including the last one carrying
//!   `cache_control` (0 when none does, or when `system` is a string); `P =
//!   tokens(C)` is the cached prefix.
//! * `cache_read_input_tokens = P / 2` (floor), `cache_creation_input_tokens = P -
//!   cache_read`, `input_tokens = tokens(B) - P` (Anthropic's `input_tokens`
//!   excludes cache reads and writes). `count_tokens` answers `tokens(B)`
//!   ([`count_tokens_input`]).
//! * `cache_creation` breaks the writes down by lifetime, as the API does: all in
//!   `ephemeral_1h_input_tokens` when that last `cache_control` has `ttl: "1h"`,
//!   else all in `ephemeral_5m_input_tokens`.
//! * `output_tokens` = one per delta event of the answer: thinking chunks + text
//!   chunks + 3 for a tool_use block (the 3 `input_json_delta` pieces); when
//!   thinking is on, `output_tokens_details: {"thinking_tokens": <thinking
//!   chunks>}` too.
//! * `service_tier` is always `"standard"`.
//!
//! [`messages_usage`] computes these for a request body; [`MessagesAnswer::plan`]
//! gives the whole answer (blocks, stop reason, usage).
//!
//! # The answer
//!
//! Content blocks, in order, each only when it applies:
//! 1. thinking, when `thinking.type` is `enabled` or `adaptive`: `N` chunks of
//!    [`THINKING_TEXT`], signature [`SIGNATURE`];
//! 2. text, always: `N` chunks of `"word "`;
//! 3. tool_use, when the request has a non-empty `tools` and `tool_choice` asks for
//!    one: `{"type":"tool"}` -> its `name`; `{"type":"any"}` -> the first tool;
//!    `auto` or no `tool_choice` -> the first tool only while
//!    `set_tool_use_on_auto(true)`; `none` -> never. `input` is
//!    [`MOCK_TOOL_INPUT`].
//!
//! `stop_reason` is `tool_use` with a tool_use block, else `end_turn`; `max_tokens`
//! bounds the deltas (thinking first, then text, then the 3 tool pieces, a tool
//! block dropped unless whole): when anything was cut, `stop_reason` is
//! `max_tokens`. `stop_sequence` is always `null`.
//!
//! # Stream
//!
//! Each event is one body frame `event: <type>\ndata: <json>\n\n` whose `type`
//! equals the event name:
//! 1. `message_start`: the message with `content: []`, `stop_reason: null` and the
//!    usage above with `output_tokens: 1` (no `output_tokens_details`);
//! 2. per block, with `index` counting blocks from 0: `content_block_start` (the
//!    block empty: `text: ""`, `thinking: ""` and `signature: ""`, or tool_use with
//!    `input: {}`), after the first one a `ping`, then `content_block_delta`s
//!    (`text_delta` per chunk; `thinking_delta` per chunk then one
//!    `signature_delta`; `input_json_delta` with the pieces of
//!    [`TOOL_INPUT_PIECES`]), then `content_block_stop`;
//! 3. `message_delta` with `stop_reason`, `stop_sequence: null` and a `usage` with
//!    the output figures only, `output_tokens` (and `output_tokens_details` when
//!    thinking is on): the input and cache figures are in `message_start` alone;
//! 4. `message_stop`.
//!
//! A plain text answer is therefore `N + 6` events. `cut_stream_after(k)` sends the
//! first `k` events and aborts the body, `set_chunk_delay(ms)` spaces them,
//! `set_stream_chunks(n)` sets `N`, as on the OpenAI side. `error_stream_after(k)`
//! sends the first `k` events, then `event: error` with `{"type":"error","error":
//! {"type":"overloaded_error","message":"Overloaded"},"request_id":..}`, and ends
//! the body cleanly (no `message_stop`), as the API does when it fails after the
//! 200.

mod stream;

use super::body::MockBody;
use super::{is_stream, json_response, sse_response, text_tokens, MockState};
use super::{CHUNK_TEXT, MOCK_MODELS};
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// The `anthropic-version` of [`ANTHROPIC_HEADERS`], the API's first dated version
/// (the mock accepts any non-empty value; the `anthropic` Python SDK 2.x sends a
/// later one).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The two headers every request to the Anthropic endpoints needs, with a made-up
/// key: what a test sends straight to the mock.
pub const ANTHROPIC_HEADERS: [(&str, &str); 2] = [
    ("x-api-key", "sk-ant-mock"),
    ("anthropic-version", ANTHROPIC_VERSION),
];
/// The `input` of every `tool_use` block, as JSON text.
pub const MOCK_TOOL_INPUT: &str = r#"{"query":"mock","n":1}"#;
/// [`MOCK_TOOL_INPUT`] as the `partial_json` of the stream's `input_json_delta`
/// events, one output token each.
pub const TOOL_INPUT_PIECES: [&str; 3] = [r#"{"query":"#, r#""mock","#, r#""n":1}"#];
/// Text of one thinking chunk.
pub const THINKING_TEXT: &str = "think ";
/// The `signature` of every thinking block.
pub const SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";
/// `retry-after` (seconds) of every Anthropic 429.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Usage figures of a Messages answer, as Anthropic reports them: `input_tokens`
/// excludes the cache reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessagesUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// Whether the cache writes are reported as 1-hour entries (`ttl: "1h"`) rather
    /// than 5-minute ones, in `cache_creation`.
    pub cache_ttl_1h: bool,
    /// `output_tokens_details.thinking_tokens` (reported only when thinking is on).
    pub thinking_tokens: Option<u64>,
}

impl MessagesUsage {
    /// All prompt tokens: input + cache reads + cache writes.
    pub fn prompt_total(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
    }

    /// The `usage` of the JSON answer (`final_figures`) or of `message_start`
    /// (`output_tokens` 1, no `output_tokens_details`).
    fn json(&self, final_figures: bool) -> Value {
        let creation = self.cache_creation_input_tokens;
        let (m5, h1) = if self.cache_ttl_1h {
            (0, creation)
        } else {
            (creation, 0)
        };
        let mut usage = json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": m5, "ephemeral_1h_input_tokens": h1},
            "output_tokens": if final_figures { self.output_tokens } else { 1 },
            "service_tier": "standard",
        });
        if final_figures {
            self.add_details(&mut usage);
        }
        usage
    }

    /// The `usage` of `message_delta`: the output figures only.
    fn delta_json(&self) -> Value {
        let mut usage = json!({"output_tokens": self.output_tokens});
        self.add_details(&mut usage);
        usage
    }

    fn add_details(&self, usage: &mut Value) {
        if let Some(t) = self.thinking_tokens {
            usage["output_tokens_details"] = json!({"thinking_tokens": t});
        }
    }
}

/// Bytes of a `content` (or `system`): a string, or the `text` of each block;
/// a `tool_result` block counts its own `content` the same way.
fn content_bytes(content: &Value) -> usize {
    match content {
        Value::String(s) => s.len(),
        Value::Array(blocks) => blocks.iter().map(block_bytes).sum(),
        _ => 0,
    }
}

fn block_bytes(block: &Value) -> usize {
    if let Some(text) = block.get("text").and_then(Value::as_str) {
        return text.len();
    }
    if block.get("type").and_then(Value::as_str) == Some("tool_result") {
        return block.get("content").map_or(0, content_bytes);
    }
    0
}

fn has_cache_control(block: &Value) -> bool {
    block.get("cache_control").is_some_and(Value::is_object)
}

/// `(B, C, ttl_1h)`: the bytes of system + messages, the bytes of the system
/// blocks up to and including the last one carrying `cache_control`, and whether
/// that `cache_control` has `ttl: "1h"`.
fn prompt_bytes(body: &Value) -> (usize, usize, bool) {
    let mut total = 0;
    let mut cached = 0;
    let mut ttl_1h = false;
    match body.get("system") {
        Some(Value::Array(blocks)) => {
            for b in blocks {
                total += block_bytes(b);
                if has_cache_control(b) {
                    cached = total;
                    ttl_1h = b.pointer("/cache_control/ttl").and_then(Value::as_str) == Some("1h");
                }
            }
        }
        Some(other) => total += content_bytes(other),
        None => {}
    }
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        total += msgs
            .iter()
            .map(|m| m.get("content").map_or(0, content_bytes))
            .sum::<usize>();
    }
    (total, cached, ttl_1h)
}

/// `input_tokens` of `POST /v1/messages/count_tokens`: `tokens(B)`, every prompt
/// token whether cached or not.
pub fn count_tokens_input(body: &Value) -> u64 {
    text_tokens(prompt_bytes(body).0)
}

/// What the mock answers to a Messages request: the blocks, in this order (a
/// thinking block, a text block, a tool_use block), the stop reason and usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesAnswer {
    /// `thinking_delta` events (0 and no thinking block unless thinking is on).
    pub thinking_chunks: usize,
    /// Whether the answer has a thinking block.
    pub thinking: bool,
    /// `text_delta` events of the text block (always present).
    pub text_chunks: usize,
    /// Name of the tool of the `tool_use` block, when there is one.
    pub tool: Option<String>,
    /// `end_turn`, `tool_use` or `max_tokens`.
    pub stop_reason: &'static str,
    pub usage: MessagesUsage,
}

fn thinking_on(body: &Value) -> bool {
    matches!(
        body.pointer("/thinking/type").and_then(Value::as_str),
        Some("enabled" | "adaptive")
    )
}

/// The tool a request asks for: `tool_choice` `tool` -> its `name`, `any` -> the
/// first tool, `auto` or absent -> the first tool when `on_auto`, `none` -> no
/// tool; never a tool without a non-empty `tools`.
fn chosen_tool(body: &Value, on_auto: bool) -> Option<String> {
    let tools = body.get("tools").and_then(Value::as_array)?;
    let first = tools.first()?.get("name").and_then(Value::as_str)?;
    let choice = body.get("tool_choice");
    match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
        Some("tool") => choice
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        Some("any") => Some(first.to_string()),
        Some("none") => None,
        _ => on_auto.then(|| first.to_string()),
    }
}

impl MessagesAnswer {
    /// The answer to `body` with `chunks` text chunks; `tool_use_on_auto` as set by
    /// [`super::MockUpstream::set_tool_use_on_auto`].
    pub fn plan(body: &Value, chunks: usize, tool_use_on_auto: bool) -> MessagesAnswer {
        let (total, cached, cache_ttl_1h) = prompt_bytes(body);
        let prompt = text_tokens(total);
        let cache = text_tokens(cached);
        let read = cache / 2;
        let thinking = thinking_on(body);
        let mut budget = body
            .get("max_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let mut take = |want: usize| -> usize {
            let got = (want as u64).min(budget);
            budget -= got;
            got as usize
        };
        let thinking_chunks = take(if thinking { chunks } else { 0 });
        let text_chunks = take(chunks);
        let mut truncated = text_chunks < chunks || (thinking && thinking_chunks < chunks);
        let mut tool = chosen_tool(body, tool_use_on_auto);
        if tool.is_some() && take(TOOL_INPUT_PIECES.len()) < TOOL_INPUT_PIECES.len() {
            tool = None;
            truncated = true;
        }
        let tool_tokens = if tool.is_some() {
            TOOL_INPUT_PIECES.len()
        } else {
            0
        };
        let stop_reason = match (truncated, &tool) {
            (true, _) => "max_tokens",
            (false, Some(_)) => "tool_use",
            (false, None) => "end_turn",
        };
        MessagesAnswer {
            thinking_chunks,
            thinking,
            text_chunks,
            tool,
            stop_reason,
            usage: MessagesUsage {
                input_tokens: prompt - cache,
                output_tokens: (thinking_chunks + text_chunks + tool_tokens) as u64,
                cache_read_input_tokens: read,
                cache_creation_input_tokens: cache - read,
                cache_ttl_1h,
                thinking_tokens: thinking.then_some(thinking_chunks as u64),
            },
        }
    }
}

/// Usage the mock reports for a Messages request `body` with `chunks` text chunks
/// (with [`super::MockUpstream::set_tool_use_on_auto`] off).
pub fn messages_usage(body: &Value, chunks: usize) -> MessagesUsage {
    MessagesAnswer::plan(body, chunks, false).usage
}

/// A minimal Messages request: one user message, `max_tokens` 1024.
pub fn messages_body(model: &str, text: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
    })
}

/// The `error.type` Anthropic uses for `status`.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn with_anthropic_headers(mut resp: Response<MockBody>, n: u64) -> Response<MockBody> {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock{n}")) {
        h.insert("request-id", v);
    }
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    resp
}

/// An Anthropic error answer: `{"type":"error","error":{"type","message"},
/// "request_id"}`, `request-id`, and `retry-after` on 429.
pub(super) fn error(status: StatusCode, message: &str, n: u64) -> Response<MockBody> {
    let body = json!({
        "type": "error",
        "error": {"type": anthropic_error_type(status.as_u16()), "message": message},
        "request_id": format!("req_mock{n}"),
    });
    error_with_body(status, body.to_string(), n)
}

/// An error answer with a body given by the test (`fail_with_body`).
pub(super) fn error_with_body(status: StatusCode, body: String, n: u64) -> Response<MockBody> {
    with_anthropic_headers(json_response(status, body, n), n)
}

/// The api key of a request: `x-api-key`, else the `Authorization: Bearer` token.
pub(super) fn api_key(headers: &http::HeaderMap) -> Option<&str> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = || {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    };
    key.filter(|k| !k.is_empty())
        .or_else(bearer)
        .filter(|k| !k.is_empty())
}

fn header_set(parts: &http::request::Parts, name: &str) -> bool {
    parts
        .headers
        .get(name)
        .is_some_and(|v| !v.as_bytes().is_empty())
}

/// Answers a request in the Anthropic dialect (after the shared switches).
pub(super) fn route(
    state: &MockState,
    parts: &http::request::Parts,
    json: Option<Value>,
    n: u64,
) -> Response<MockBody> {
    if api_key(&parts.headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "x-api-key header is required", n);
    }
    if !header_set(parts, "anthropic-version") {
        return error(
            StatusCode::BAD_REQUEST,
            "anthropic-version: header is required",
            n,
        );
    }
    let path = parts.uri.path();
    let op = match (&parts.method, path) {
        (&Method::GET, "/v1/models") => return models(n),
        (&Method::POST, "/v1/messages") => Op::Create,
        (&Method::POST, "/v1/messages/count_tokens") => Op::CountTokens,
        _ => {
            let message = format!("mock: no such endpoint {} {path}", parts.method);
            return error(StatusCode::NOT_FOUND, &message, n);
        }
    };
    let Some(body) = json else {
        return error(StatusCode::BAD_REQUEST, "mock: body is not JSON", n);
    };
    if let Some(problem) = invalid(&body, op) {
        return error(StatusCode::BAD_REQUEST, problem, n);
    }
    match op {
        Op::Create => messages(state, &body, n),
        Op::CountTokens => {
            let out = json!({"input_tokens": count_tokens_input(&body)});
            with_anthropic_headers(json_response(StatusCode::OK, out.to_string(), n), n)
        }
    }
}

/// A Messages create request whose headers were checked elsewhere (Vertex AI's
/// `rawPredict`, the model taken from the URL): the body checks, then the answer.
pub(in crate::mock_upstream) fn create(
    state: &MockState,
    body: &Value,
    n: u64,
) -> Response<MockBody> {
    match invalid(body, Op::Create) {
        Some(problem) => error(StatusCode::BAD_REQUEST, problem, n),
        None => messages(state, body, n),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    CountTokens,
}

/// The first required field missing or wrong, as Anthropic words it.
fn invalid(body: &Value, op: Op) -> Option<&'static str> {
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Some("model: Field required");
    }
    match body.get("messages").and_then(Value::as_array) {
        None => return Some("messages: Field required"),
        Some(m) if m.is_empty() => return Some("messages: at least one message is required"),
        Some(_) => {}
    }
    if op == Op::Create {
        match body.get("max_tokens") {
            None => return Some("max_tokens: Field required"),
            Some(v) if v.as_u64().is_none_or(|t| t == 0) => {
                return Some("max_tokens: must be a positive integer")
            }
            Some(_) => {}
        }
    }
    None
}

fn models(n: u64) -> Response<MockBody> {
    let data: Vec<Value> = MOCK_MODELS
        .iter()
        .map(|m| {
            json!({"type": "model", "id": m, "display_name": m,
                   "created_at": "2023-11-14T22:13:20Z"})
        })
        .collect();
    let out = json!({
        "data": data,
        "has_more": false,
        "first_id": MOCK_MODELS.first(),
        "last_id": MOCK_MODELS.last(),
    });
    with_anthropic_headers(json_response(StatusCode::OK, out.to_string(), n), n)
}

/// [`MOCK_TOOL_INPUT`] as JSON (the input or arguments of every tool call).
pub(in crate::mock_upstream) fn tool_input() -> Value {
    serde_json::from_str(MOCK_TOOL_INPUT).unwrap_or(Value::Null)
}

fn messages(st: &MockState, body: &Value, n: u64) -> Response<MockBody> {
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let on_auto = st.tool_use_on_auto.load(Ordering::Relaxed);
    let plan = MessagesAnswer::plan(body, chunks, on_auto);
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let id = format!("msg_mock{n}");
    if is_stream(body) {
        let mut frames = stream::frames(&plan, &id, &model, n);
        let error_after = st.stream_error_after.load(Ordering::Relaxed);
        if error_after < frames.len() {
            frames.truncate(error_after);
            frames.push_back(stream::error_event(n));
        }
        return with_anthropic_headers(sse_response(frames, st, n), n);
    }
    let mut content = Vec::with_capacity(3);
    if plan.thinking {
        content.push(json!({"type": "thinking",
            "thinking": THINKING_TEXT.repeat(plan.thinking_chunks), "signature": SIGNATURE}));
    }
    content.push(json!({"type": "text", "text": CHUNK_TEXT.repeat(plan.text_chunks)}));
    if let Some(name) = &plan.tool {
        content.push(json!({"type": "tool_use", "id": format!("toolu_mock{n}"),
            "name": name, "input": tool_input()}));
    }
    let out = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": plan.stop_reason,
        "stop_sequence": null,
        "usage": plan.usage.json(true),
    });
    with_anthropic_headers(json_response(StatusCode::OK, out.to_string(), n), n)
}
