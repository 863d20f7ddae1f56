//! The Gemini side of the mock: Google AI Studio's native API
//! (`generateContent`), whose bodies Vertex AI's `publishers/google` paths answer
//! too ([`super::vertex`]).
//!
//! # Endpoints (under `/v1beta`, the base URL [`super::MockUpstream::gemini_base_url`])
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1beta/models/{model}:generateContent` | a `GenerateContentResponse` JSON |
//! | `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` | the same as SSE chunks `data: {..}\r\n\r\n` (without `alt=sse`: 400) |
//! | `POST /v1beta/models/{model}:embedContent` | `{"embedding":{"values":[8 floats]}}` (the OpenAI side's vector) |
//! | `POST /v1beta/models/{model}:batchEmbedContents` | `{"embeddings":[..]}`, one per `requests[]` (each `model` must be `models/{model}`) |
//! | `GET /v1beta/models` | `models/mock-small`, `models/mock-large` (counted in `model_hits`) |
//!
//! `{model}` is percent-decoded; the answer's `modelVersion` is that name. Every
//! request needs a non-empty `x-goog-api-key` (any value; a key in the query
//! string is not read): else 403 `PERMISSION_DENIED`. Embeddings answer no usage,
//! as the API does.
//!
//! # Requests checked
//!
//! A generate body must be JSON (else 400 "Invalid JSON payload received.") with
//! only the request's top-level fields (`contents`, `systemInstruction`, `tools`,
//! `toolConfig`, `safetySettings`, `generationConfig`, `cachedContent`, `labels`,
//! camelCase or snake_case; any other is a 400 `Unknown name "x": Cannot find
//! field.`, so an OpenAI field passed through is caught), a non-empty `contents`
//! whose items have `role` `user` or `model` (or none) and a non-empty `parts`
//! array of objects. Errors have Google's shape ([`google_error_body`]):
//! `{"error":{"code":400,"message":..,"status":"INVALID_ARGUMENT"}}`; a 429 adds
//! `details: [RetryInfo {retryDelay: "1s"}]`. An unknown path or method is 404
//! `NOT_FOUND`.
//!
//! # Usage figures
//!
//! With `tokens(b) = ceil(b / 4)` and `N` content chunks (`stream_chunks`, default 8):
//!
//! * `promptTokenCount = P = tokens(B)`, `B` the bytes of the `text` of every part of
//!   `systemInstruction` and of every `contents[]` item, a `functionResponse` part
//!   counting the string leaves of its `response` (so an OpenAI chat translated
//!   with its text kept has the same `B` as [`super::chat_usage`] counts);
//!   `inlineData`, `fileData` and `functionCall` parts count 0.
//! * `candidatesTokenCount` = one per text piece of the answer (below), 3 for a
//!   function call ([`GEMINI_TOOL_CALL_TOKENS`]).
//! * `cachedContentTokenCount = P / 2` (floor) when the request names a
//!   `cachedContent` or `gemini_cached(true)` is set; it is part of `P`.
//! * `thoughtsTokenCount = N` when `generationConfig.thinkingConfig` has
//!   `includeThoughts: true` or a `thinkingBudget` above 0, or `gemini_thoughts(true)`
//!   is set; not part of `candidatesTokenCount`.
//! * `totalTokenCount = P + candidates + thoughts`.
//!
//! As in proto JSON, a count of 0 is left out (`promptTokenCount` and
//! `totalTokenCount` are always written); `promptTokensDetails` is
//! `[{"modality":"TEXT","tokenCount":P}]`. [`GeminiAnswer::plan`] computes all this.
//!
//! # The answer
//!
//! `candidates[0]` with `content: {role: "model", parts}`, `index: 0` and
//! `finishReason`; `modelVersion` the model; `responseId` `mock-resp-<n>`.
//! * A function call, when `tools[].functionDeclarations` is non-empty and
//!   `toolConfig.functionCallingConfig.mode` is `ANY` (the first of
//!   `allowedFunctionNames`, else the first declared function), or `AUTO`/unset
//!   while the last turn is a user text (the first declared function); `NONE`
//!   never: one part `{"functionCall":{"name":..,"args":MOCK_TOOL_INPUT}}`,
//!   `finishReason: STOP`.
//! * Otherwise text: `N` pieces of `"word "`, preceded by [`tool_result_text`]`(name)`
//!   when the last turn holds a `functionResponse` (the first one's `name`), so a
//!   tool round trip shows the name. `generationConfig.maxOutputTokens` bounds the
//!   pieces (`finishReason: MAX_TOKENS` when it cut some), else `STOP`.
//! * When thoughts are on and `includeThoughts` is true, the text is preceded by a
//!   part `{"text": THINKING_TEXT x N, "thought": true}`.
//! * `gemini_block_answer(true)`: only the first half (floor) of the pieces, then
//!   `finishReason: SAFETY` with `safetyRatings` (one `blocked: true`); no
//!   `content` when no piece is left.
//! * `gemini_block_prompt(true)`: no `candidates`, `promptFeedback: {blockReason:
//!   SAFETY, safetyRatings}` and usage with the prompt alone.
//!
//! # Stream
//!
//! One SSE chunk per thought piece (when shown: `{"text":"think ","thought":true}`),
//! then one per text piece, the last carrying `finishReason`; a function call, a
//! blocked prompt, or an answer with no text piece is one chunk; a safety block
//! ends with a chunk without `content` carrying `finishReason: SAFETY`. Every chunk
//! carries the usage so far (cumulative: `candidatesTokenCount` counts the pieces
//! sent, `thoughtsTokenCount` the thought pieces sent, or `N` from the first chunk
//! when thoughts are counted but not shown), `modelVersion` and `responseId`.
//! `cut_stream_after`, `set_chunk_delay` and `set_stream_chunks` apply as on the
//! other sides.

mod answer;

pub use answer::{
    gemini_body, gemini_usage, tool_result_text, GeminiAnswer, GeminiReply, GeminiSwitches,
    GeminiUsage, GEMINI_API_KEY, GEMINI_TOOL_CALL_TOKENS,
};

use super::body::MockBody;
use super::cloud::percent_decode;
use super::{json_response, openai, sse_response, MockState, MOCK_MODELS};
use answer::{stream_chunks, Head};
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

// ------------------------------------------------------------------ errors

/// The `status` word Google's APIs use for an HTTP status.
pub fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// `{"error":{"code","message","status"}}` (429: with a `RetryInfo` detail).
pub fn google_error_body(status: u16, message: &str) -> String {
    let mut e = json!({"code": status, "message": message, "status": google_status(status)});
    if status == 429 {
        e["details"] = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "1s"}]);
    }
    json!({ "error": e }).to_string()
}

/// An error answer in Google's shape.
pub(super) fn error(status: StatusCode, message: &str, n: u64) -> Response<MockBody> {
    json_response(status, google_error_body(status.as_u16(), message), n)
}

fn bad_request(message: &str, n: u64) -> Response<MockBody> {
    error(StatusCode::BAD_REQUEST, message, n)
}

fn not_found(parts: &http::request::Parts, n: u64) -> Response<MockBody> {
    let message = format!(
        "mock: no such endpoint {} {}",
        parts.method,
        parts.uri.path()
    );
    error(StatusCode::NOT_FOUND, &message, n)
}

/// The refusal of a request without `x-goog-api-key`, as the API words it.
pub(super) fn check_api_key(parts: &http::request::Parts, n: u64) -> Option<Response<MockBody>> {
    let key = parts.headers.get("x-goog-api-key");
    if key.is_some_and(|k| !k.as_bytes().is_empty()) {
        return None;
    }
    Some(error(
        StatusCode::FORBIDDEN,
        "Method doesn't allow unregistered callers (callers without established identity). \
         Please use API Key or other form of API consumer identity to call this API.",
        n,
    ))
}

// ------------------------------------------------------------------ routing

/// `{model}:{method}` of a path's last segment, the model decoded.
pub(super) fn model_and_method(segment: &str) -> Option<(String, &str)> {
    let (model, method) = segment.rsplit_once(':')?;
    let model = percent_decode(model).filter(|m| !m.is_empty())?;
    Some((model, method))
}

/// Whether the query has `alt=sse`.
pub(super) fn alt_sse(parts: &http::request::Parts) -> bool {
    parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
}

/// Answers a request under `/v1beta/` (after the key check and the shared switches).
pub(super) fn route(
    state: &MockState,
    parts: &http::request::Parts,
    json: Option<Value>,
    n: u64,
) -> Response<MockBody> {
    let path = parts.uri.path();
    if parts.method == Method::GET && path == "/v1beta/models" {
        return models(n);
    }
    let Some(segment) = path.strip_prefix("/v1beta/models/") else {
        return not_found(parts, n);
    };
    let Some((model, method)) = model_and_method(segment).filter(|_| !segment.contains('/')) else {
        return not_found(parts, n);
    };
    if parts.method != Method::POST {
        return not_found(parts, n);
    }
    match method {
        "generateContent" => generate(state, json, &model, false, n),
        "streamGenerateContent" if alt_sse(parts) => generate(state, json, &model, true, n),
        "streamGenerateContent" => bad_request("mock: streamGenerateContent needs alt=sse", n),
        "embedContent" => embed(json, n),
        "batchEmbedContents" => batch_embed(json, &model, n),
        _ => not_found(parts, n),
    }
}

const REQUEST_FIELDS: [(&str, &str); 8] = [
    ("contents", "contents"),
    ("systemInstruction", "system_instruction"),
    ("tools", "tools"),
    ("toolConfig", "tool_config"),
    ("safetySettings", "safety_settings"),
    ("generationConfig", "generation_config"),
    ("cachedContent", "cached_content"),
    ("labels", "labels"),
];

/// The first problem of a generate body, as the API words it.
fn invalid(body: &Value) -> Option<String> {
    let Some(obj) = body.as_object() else {
        return Some("Invalid JSON payload received. Expected an object.".into());
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !REQUEST_FIELDS.iter().any(|(c, s)| k == c || k == s))
    {
        return Some(format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        ));
    }
    let contents = match body.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => return Some("* GenerateContentRequest.contents: contents is not specified".into()),
    };
    for (i, c) in contents.iter().enumerate() {
        match c.get("role") {
            None => {}
            Some(Value::String(r)) if r == "user" || r == "model" => {}
            Some(_) => return Some("Please use a valid role: user, model.".into()),
        }
        let parts_ok = c
            .get("parts")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty() && p.iter().all(Value::is_object));
        if !parts_ok {
            return Some(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            ));
        }
    }
    None
}

/// The Gemini switches as they are now.
pub(super) fn switches(st: &MockState) -> GeminiSwitches {
    let c = &st.cloud;
    GeminiSwitches {
        cached: c.gemini_cached.load(Ordering::Relaxed),
        thoughts: c.gemini_thoughts.load(Ordering::Relaxed),
        block_prompt: c.gemini_block_prompt.load(Ordering::Relaxed),
        block_answer: c.gemini_block_answer.load(Ordering::Relaxed),
    }
}

/// `generateContent` / `streamGenerateContent` of `model` (AI Studio and Vertex AI).
pub(super) fn generate(
    st: &MockState,
    json: Option<Value>,
    model: &str,
    stream: bool,
    n: u64,
) -> Response<MockBody> {
    let Some(body) = json else {
        return bad_request("Invalid JSON payload received.", n);
    };
    if let Some(problem) = invalid(&body) {
        return bad_request(&problem, n);
    }
    let plan = GeminiAnswer::plan(
        &body,
        st.stream_chunks.load(Ordering::Relaxed),
        switches(st),
    );
    let head = Head {
        model,
        id: format!("mock-resp-{n}"),
    };
    if !stream {
        let out = head.chunk(
            &plan.reply,
            plan.thought_pieces,
            plan.finish_reason,
            plan.usage,
        );
        return json_response(StatusCode::OK, out.to_string(), n);
    }
    sse_response(stream_chunks(&plan, &head), st, n)
}

// ------------------------------------------------------------------ embeddings, models

fn vector() -> Value {
    serde_json::from_str(openai::VECTOR).unwrap_or(Value::Null)
}

fn has_parts(content: Option<&Value>) -> bool {
    content
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty())
}

fn embed(json: Option<Value>, n: u64) -> Response<MockBody> {
    let Some(body) = json else {
        return bad_request("Invalid JSON payload received.", n);
    };
    if !has_parts(body.get("content")) {
        return bad_request(
            "* EmbedContentRequest.content: contents is not specified",
            n,
        );
    }
    let out = json!({"embedding": {"values": vector()}});
    json_response(StatusCode::OK, out.to_string(), n)
}

fn batch_embed(json: Option<Value>, model: &str, n: u64) -> Response<MockBody> {
    let Some(body) = json else {
        return bad_request("Invalid JSON payload received.", n);
    };
    let requests = match body.get("requests").and_then(Value::as_array) {
        Some(r) if !r.is_empty() => r,
        _ => return bad_request("* BatchEmbedContentsRequest.requests: is empty", n),
    };
    let name = format!("models/{model}");
    for (i, r) in requests.iter().enumerate() {
        if r.get("model").and_then(Value::as_str) != Some(name.as_str()) {
            let message = format!(
                "* BatchEmbedContentsRequest.requests[{i}].model: the model of each request \
                 must be the batch's, {name}"
            );
            return bad_request(&message, n);
        }
        if !has_parts(r.get("content")) {
            let message = format!("* BatchEmbedContentsRequest.requests[{i}].content: is empty");
            return bad_request(&message, n);
        }
    }
    let embeddings: Vec<Value> = requests
        .iter()
        .map(|_| json!({"values": vector()}))
        .collect();
    let out = json!({ "embeddings": embeddings });
    json_response(StatusCode::OK, out.to_string(), n)
}

fn models(n: u64) -> Response<MockBody> {
    let models: Vec<Value> = MOCK_MODELS
        .iter()
        .map(|m| {
            json!({"name": format!("models/{m}"), "version": "001", "displayName": m,
                "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
                "supportedGenerationMethods": ["generateContent", "countTokens", "embedContent"]})
        })
        .collect();
    json_response(StatusCode::OK, json!({ "models": models }).to_string(), n)
}
