//! The Amazon Bedrock side of the mock: the Converse and ConverseStream APIs of
//! Bedrock Runtime, SigV4-verified ([`sigv4`]), streams in AWS eventstream framing
//! ([`eventstream`]).
//!
//! # Endpoints (at the mock's root, [`super::MockUpstream::bedrock_base_url`])
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /model/{modelId}/converse` | a Converse JSON answer |
//! | `POST /model/{modelId}/converse-stream` | `application/vnd.amazon.eventstream` frames |
//!
//! `{modelId}` is one path segment, percent-encoded as the SDKs send it
//! (`anthropic.claude-3-5-sonnet-20240620-v1%3A0`, an ARN with `%3A` and `%2F`);
//! the mock decodes it and keeps it ([`super::MockUpstream::bedrock_models`]). A
//! path of another shape (an unencoded `/` in the id) or another operation is a
//! 404 `UnknownOperationException`.
//!
//! Every request is SigV4-verified first, before the shared switches: against
//! [`AWS_TEST_ACCESS_KEY_ID`] / [`AWS_TEST_SECRET_ACCESS_KEY`], region
//! [`AWS_TEST_REGION`] (`set_aws_region`), service `bedrock`, and a session token
//! only when `set_aws_session_token(Some(..))` set one ([`AWS_TEST_SESSION_TOKEN`]
//! is the one to use); `x-amz-date` within 5 minutes. A refusal is a 403 with
//! `x-amzn-ErrorType` (`InvalidSignatureException` and `{"message":"The request
//! signature we calculated does not match the signature you provided..."}` for a
//! wrong signature; `MissingAuthenticationTokenException`,
//! `UnrecognizedClientException` for another key or token,
//! `IncompleteSignatureException`) and is counted in `sigv4_refusals()`.
//!
//! Errors are `{"message":..}` with `x-amzn-ErrorType` from the status
//! ([`bedrock_error_type`]): 400 `ValidationException`, 403
//! `AccessDeniedException`, 404 `ResourceNotFoundException`, 429
//! `ThrottlingException`, 500 `InternalServerException`, 503
//! `ServiceUnavailableException`, ... (`fail_with` answers in this shape). A body
//! must be JSON with only Converse's top-level fields (else 400 "Malformed input
//! request: extraneous key [x] ..."), a non-empty `messages` whose first is the
//! user's, each with `role` `user` or `assistant` and a non-empty `content` array
//! of objects. Every answer carries `x-amzn-requestid: req_mock<n>`.
//!
//! # Usage figures
//!
//! With `tokens(b) = ceil(b / 4)` and `N` chunks (`stream_chunks`, default 8):
//! * `P = tokens(B)`, `B` the bytes of the `text` of every `system` block and of
//!   every message's `content` block, a `toolResult` counting its `content`'s
//!   `text`s and the string leaves of its `json`s (images, documents, `toolUse`
//!   and `cachePoint` blocks count 0);
//! * the cached prefix `K`: `tokens(C)` where `C` is the bytes of the `system` text
//!   blocks before its last `cachePoint` block; else, while
//!   `bedrock_cache_figures(true)`, `P / 2`; else 0;
//! * `cacheReadInputTokens = K / 2` (floor), `cacheWriteInputTokens = K - read`
//!   (both left out when `K` is 0, as the API does), `inputTokens = P - K`
//!   (Bedrock's excludes the cache reads and writes);
//! * `outputTokens` = the text pieces, or 3 for a `toolUse` block;
//! * `totalTokens = P + outputTokens` (everything); `metrics.latencyMs` =
//!   [`BEDROCK_LATENCY_MS`].
//!
//! [`ConverseAnswer::plan`] computes them for a body.
//!
//! # The answer
//!
//! `output.message` `{role: assistant, content}` with `stopReason`:
//! * a `toolUse` block `{toolUseId: "tooluse_mock<n>", name, input:
//!   MOCK_TOOL_INPUT}` (`stopReason: tool_use`) when `toolConfig.tools` is non-empty
//!   and `toolChoice` is `{"tool":{"name"}}` (that one), `{"any":{}}` (the first
//!   tool), or `{"auto":{}}`/absent while the last message is a user text (the first
//!   tool);
//! * else one text block: `N` pieces of `"word "`, preceded by
//!   `tool_result_text(toolUseId)` when the last message holds a `toolResult` (the
//!   first one's id); `inferenceConfig.maxTokens` bounds the pieces
//!   (`stopReason: max_tokens` when it cut some), else `end_turn`.
//!
//! # Stream
//!
//! Events, each one frame with `:event-type` its name and a JSON payload (with a
//! padding field `p`, as the API adds): `messageStart {role}`; for text, one
//! `contentBlockDelta {contentBlockIndex: 0, delta: {text}}` per piece; for a tool,
//! `contentBlockStart {start: {toolUse: {toolUseId, name}}}` then three
//! `contentBlockDelta {delta: {toolUse: {input: <piece>}}}` (the
//! `TOOL_INPUT_PIECES`); `contentBlockStop`; `messageStop {stopReason}`;
//! `metadata {usage, metrics}`. A text answer is `N + 4` events, a tool call 8.
//! `cut_stream_after(k)` sends `k` events and aborts; `bedrock_exception_after(k)`
//! sends `k` events, then a `modelStreamErrorException` frame (`:message-type:
//! exception`, `{"message","originalStatusCode":500,"originalMessage"}`), and ends
//! cleanly; `bedrock_tiny_writes(true)` sends the bytes in pieces of 1 to 7 bytes,
//! one write each, across frame boundaries (`set_chunk_delay` then spaces pieces).

pub mod eventstream;
pub mod sigv4;

use super::anthropic::tool_input;
use super::body::MockBody;
use super::cloud::{percent_decode, string_leaves_bytes};
use super::{json_response, lock, response, text_tokens, MockState, NO_CUT};
use super::{CHUNK_TEXT, TOOL_INPUT_PIECES};
use crate::mock_upstream::gemini::tool_result_text;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// The access key id the mock verifies signatures against.
pub const AWS_TEST_ACCESS_KEY_ID: &str = "AKIAMOCKTESTKEY00001";
/// The secret access key the mock verifies signatures against.
pub const AWS_TEST_SECRET_ACCESS_KEY: &str = "mock/Secret+Key0123456789abcdefghijklmnop";
/// The session token to configure (and `set_aws_session_token(Some(..))` the mock with).
pub const AWS_TEST_SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEMOCKSESSIONTOKEN//test";
/// The region the mock expects in the credential scope unless `set_aws_region` changed it.
pub const AWS_TEST_REGION: &str = "us-east-1";
/// `metrics.latencyMs` of every answer.
pub const BEDROCK_LATENCY_MS: u64 = 120;
/// `outputTokens` of a `toolUse` answer.
pub const BEDROCK_TOOL_USE_TOKENS: u64 = TOOL_INPUT_PIECES.len() as u64;

/// Converse's `usage` (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConverseUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_write_input_tokens: u64,
}

impl ConverseUsage {
    /// All prompt tokens: input + cache reads + cache writes.
    pub fn prompt_total(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens
    }

    fn json(&self) -> Value {
        let mut u = json!({"inputTokens": self.input_tokens, "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens});
        if self.cache_read_input_tokens + self.cache_write_input_tokens > 0 {
            u["cacheReadInputTokens"] = json!(self.cache_read_input_tokens);
            u["cacheWriteInputTokens"] = json!(self.cache_write_input_tokens);
        }
        u
    }
}

/// What the answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConverseReply {
    /// One text block, one piece per output token (and per stream delta).
    Text(Vec<String>),
    /// A `toolUse` block calling this tool.
    ToolUse(String),
}

/// What the mock answers to a Converse request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConverseAnswer {
    pub reply: ConverseReply,
    /// `end_turn`, `tool_use` or `max_tokens`.
    pub stop_reason: &'static str,
    pub usage: ConverseUsage,
}

fn block_bytes(block: &Value) -> usize {
    if let Some(t) = block.get("text").and_then(Value::as_str) {
        return t.len();
    }
    if let Some(json) = block.get("json") {
        return string_leaves_bytes(json);
    }
    block
        .get("toolResult")
        .and_then(|r| r.get("content"))
        .and_then(Value::as_array)
        .map_or(0, |c| c.iter().map(block_bytes).sum())
}

fn blocks(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn messages(body: &Value) -> &[Value] {
    blocks(body.get("messages"))
}

/// `(B, C)` of the module doc.
fn prompt_bytes(body: &Value) -> (usize, usize) {
    let mut total = 0;
    let mut cached = 0;
    for b in blocks(body.get("system")) {
        total += block_bytes(b);
        if b.get("cachePoint").is_some() {
            cached = total;
        }
    }
    for m in messages(body) {
        total += blocks(m.get("content"))
            .iter()
            .map(block_bytes)
            .sum::<usize>();
    }
    (total, cached)
}

fn last_content(body: &Value) -> &[Value] {
    blocks(messages(body).last().and_then(|m| m.get("content")))
}

fn tool_result_id(body: &Value) -> Option<String> {
    last_content(body).iter().find_map(|b| {
        b.get("toolResult")?
            .get("toolUseId")?
            .as_str()
            .map(str::to_string)
    })
}

fn last_is_user_text(body: &Value) -> bool {
    let user = messages(body)
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    user == Some("user")
        && last_content(body).iter().any(|b| b.get("text").is_some())
        && tool_result_id(body).is_none()
}

fn chosen_tool(body: &Value) -> Option<String> {
    let config = body.get("toolConfig")?;
    let first = blocks(config.get("tools"))
        .first()?
        .pointer("/toolSpec/name")?
        .as_str()?;
    let choice = config.get("toolChoice");
    if let Some(name) = choice
        .and_then(|c| c.pointer("/tool/name"))
        .and_then(Value::as_str)
    {
        return Some(name.to_string());
    }
    if choice.and_then(|c| c.get("any")).is_some() {
        return Some(first.to_string());
    }
    last_is_user_text(body).then(|| first.to_string())
}

impl ConverseAnswer {
    /// The answer to `body` with `chunks` text chunks; `cache_figures` as set by
    /// `bedrock_cache_figures`.
    pub fn plan(body: &Value, chunks: usize, cache_figures: bool) -> ConverseAnswer {
        let (total, cached) = prompt_bytes(body);
        let prompt = text_tokens(total);
        let cache = match cached {
            0 if cache_figures => prompt / 2,
            c => text_tokens(c),
        };
        let read = cache / 2;
        let (reply, stop_reason, output) = match chosen_tool(body) {
            Some(name) => (
                ConverseReply::ToolUse(name),
                "tool_use",
                BEDROCK_TOOL_USE_TOKENS,
            ),
            None => {
                let mut pieces: Vec<String> = tool_result_id(body)
                    .map(|id| tool_result_text(&id))
                    .into_iter()
                    .collect();
                pieces.extend(std::iter::repeat_n(CHUNK_TEXT.to_string(), chunks));
                let max = body
                    .pointer("/inferenceConfig/maxTokens")
                    .and_then(Value::as_u64)
                    .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
                let mut stop = "end_turn";
                if pieces.len() > max {
                    pieces.truncate(max);
                    stop = "max_tokens";
                }
                let output = pieces.len() as u64;
                (ConverseReply::Text(pieces), stop, output)
            }
        };
        ConverseAnswer {
            reply,
            stop_reason,
            usage: ConverseUsage {
                input_tokens: prompt - cache,
                output_tokens: output,
                total_tokens: prompt + output,
                cache_read_input_tokens: read,
                cache_write_input_tokens: cache - read,
            },
        }
    }
}

/// Usage of the answer to `body` with `chunks` chunks (`bedrock_cache_figures` off).
pub fn converse_usage(body: &Value, chunks: usize) -> ConverseUsage {
    ConverseAnswer::plan(body, chunks, false).usage
}

/// A minimal Converse request: one user message of `text`.
pub fn converse_body(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}]})
}

// ------------------------------------------------------------------ errors

/// The `x-amzn-ErrorType` Bedrock uses for `status`.
pub fn bedrock_error_type(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        s if s >= 500 => "InternalServerException",
        _ => "ValidationException",
    }
}

fn with_request_id(mut resp: Response<MockBody>, n: u64) -> Response<MockBody> {
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock{n}")) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// An error answer of type `error_type`: `{"message":..}` and `x-amzn-ErrorType`.
pub(super) fn typed_error(
    status: StatusCode,
    error_type: &'static str,
    body: String,
    n: u64,
) -> Response<MockBody> {
    let mut resp = with_request_id(json_response(status, body, n), n);
    resp.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    resp
}

/// An error answer in Bedrock's shape, its type from the status.
pub(super) fn error(status: StatusCode, message: &str, n: u64) -> Response<MockBody> {
    error_with_body(status, json!({ "message": message }).to_string(), n)
}

/// An error answer with a body given by the test (`fail_with_body`).
pub(super) fn error_with_body(status: StatusCode, body: String, n: u64) -> Response<MockBody> {
    typed_error(status, bedrock_error_type(status.as_u16()), body, n)
}

/// Verifies the request's signature; the 403 to answer when it does not hold.
pub(super) fn authenticate(
    st: &MockState,
    parts: &http::request::Parts,
    raw: &[u8],
    n: u64,
) -> Option<Response<MockBody>> {
    let cfg = lock(&st.cloud.aws).clone();
    let refusal = sigv4::verify(&cfg, parts, raw, jiff::Timestamp::now()).err()?;
    st.cloud.sigv4_refusals.fetch_add(1, Ordering::SeqCst);
    let body = json!({ "message": refusal.message }).to_string();
    Some(typed_error(
        StatusCode::FORBIDDEN,
        refusal.error_type,
        body,
        n,
    ))
}

// ------------------------------------------------------------------ routing

const CONVERSE_FIELDS: [&str; 10] = [
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
];

/// The first problem of a Converse body, in Bedrock's words where it has them.
fn invalid(body: &Value) -> Option<String> {
    let Some(obj) = body.as_object() else {
        return Some("mock: body is not a JSON object".into());
    };
    if let Some(k) = obj.keys().find(|k| !CONVERSE_FIELDS.contains(&k.as_str())) {
        return Some(format!(
            "Malformed input request: extraneous key [{k}] is not permitted, please reformat \
             your input and try again."
        ));
    }
    let msgs = messages(body);
    if msgs.is_empty() {
        return Some("messages: at least one message is required".into());
    }
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "assistant")) {
            return Some(format!(
                "1 validation error detected: Value at 'messages.{}.member.role' failed to \
                 satisfy constraint: Member must satisfy enum value set: [user, assistant]",
                i + 1
            ));
        }
        let content = blocks(m.get("content"));
        if content.is_empty() || !content.iter().all(Value::is_object) {
            return Some(format!(
                "messages.{i}.content: must be a non-empty list of blocks"
            ));
        }
    }
    if msgs[0].get("role").and_then(Value::as_str) != Some("user") {
        return Some(
            "A conversation must start with a user message. Try again with a conversation \
             that starts with a user message."
                .into(),
        );
    }
    None
}

/// Answers a request under `/model/` (after [`authenticate`] and the shared switches).
pub(super) fn route(
    st: &MockState,
    parts: &http::request::Parts,
    json: Option<Value>,
    n: u64,
) -> Response<MockBody> {
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    let target = match segments[..] {
        ["", "model", id, op] if parts.method == Method::POST => percent_decode(id)
            .filter(|id| !id.is_empty())
            .zip(match op {
                "converse" => Some(false),
                "converse-stream" => Some(true),
                _ => None,
            }),
        _ => None,
    };
    let Some((model, stream)) = target else {
        let message = format!(
            "mock: no such operation {} {}",
            parts.method,
            parts.uri.path()
        );
        let body = json!({ "message": message }).to_string();
        return typed_error(StatusCode::NOT_FOUND, "UnknownOperationException", body, n);
    };
    lock(&st.cloud.bedrock_models).push(model);
    let Some(body) = json else {
        return error(StatusCode::BAD_REQUEST, "mock: body is not JSON", n);
    };
    if let Some(problem) = invalid(&body) {
        return error(StatusCode::BAD_REQUEST, &problem, n);
    }
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let plan = ConverseAnswer::plan(
        &body,
        chunks,
        st.cloud.bedrock_cache.load(Ordering::Relaxed),
    );
    if stream {
        return converse_stream(st, &plan, n);
    }
    let content = match &plan.reply {
        ConverseReply::Text(pieces) => json!([{ "text": pieces.concat() }]),
        ConverseReply::ToolUse(name) => {
            json!([{"toolUse": {"toolUseId": format!("tooluse_mock{n}"),
            "name": name, "input": tool_input()}}])
        }
    };
    let out = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": plan.stop_reason,
        "usage": plan.usage.json(),
        "metrics": {"latencyMs": BEDROCK_LATENCY_MS},
    });
    with_request_id(json_response(StatusCode::OK, out.to_string(), n), n)
}

/// The padding field `p` of the `i`-th event (the API pads its events too).
fn pad(i: usize) -> &'static str {
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    &LETTERS[..1 + (i * 7) % 26]
}

/// The eventstream frames of `plan`, one per event.
pub fn stream_events(plan: &ConverseAnswer, n: u64) -> Vec<Bytes> {
    let mut events: Vec<(&str, Value)> = vec![("messageStart", json!({"role": "assistant"}))];
    match &plan.reply {
        ConverseReply::Text(pieces) => {
            for piece in pieces {
                events.push((
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                ));
            }
        }
        ConverseReply::ToolUse(name) => {
            events.push((
                "contentBlockStart",
                json!({"contentBlockIndex": 0,
                "start": {"toolUse": {"toolUseId": format!("tooluse_mock{n}"), "name": name}}}),
            ));
            for piece in TOOL_INPUT_PIECES {
                events.push((
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                ));
            }
        }
    }
    events.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
    events.push(("messageStop", json!({"stopReason": plan.stop_reason})));
    let mut frames: Vec<Bytes> = events
        .into_iter()
        .enumerate()
        .map(|(i, (name, mut payload))| {
            payload["p"] = json!(pad(i));
            eventstream::event(name, &payload)
        })
        .collect();
    frames.push(eventstream::event(
        "metadata",
        &json!({"usage": plan.usage.json(), "metrics": {"latencyMs": BEDROCK_LATENCY_MS}}),
    ));
    frames
}

/// The `modelStreamErrorException` frame of `bedrock_exception_after`.
pub fn stream_exception() -> Bytes {
    eventstream::exception(
        "modelStreamErrorException",
        &json!({"message": "mock: the model stream failed", "originalStatusCode": 500,
            "originalMessage": "mock failure"}),
    )
}

fn converse_stream(st: &MockState, plan: &ConverseAnswer, n: u64) -> Response<MockBody> {
    let mut frames = stream_events(plan, n);
    let cut_after = st.cut_after.load(Ordering::Relaxed);
    let cut = cut_after != NO_CUT;
    if cut {
        frames.truncate(cut_after);
    }
    let exception_after = st.cloud.bedrock_exception_after.load(Ordering::Relaxed);
    if !cut && exception_after < frames.len() {
        frames.truncate(exception_after);
        frames.push(stream_exception());
    }
    let tiny = st.cloud.bedrock_tiny_writes.load(Ordering::Relaxed);
    let frames: VecDeque<Bytes> = if tiny {
        eventstream::tiny_pieces(frames).into()
    } else {
        frames.into()
    };
    let delay = st.chunk_delay_ms.load(Ordering::Relaxed);
    let body = MockBody::stream(frames, delay, cut).flushing_each(tiny);
    let resp = response(
        StatusCode::OK,
        "application/vnd.amazon.eventstream",
        body,
        n,
    );
    with_request_id(resp, n)
}
