//! What the Gemini mock answers: the plan of an answer (usage, reply, finish
//! reason) from the request and the switches, and its JSON and SSE chunks (the
//! figures and shapes in the parent module's doc).

use crate::mock_upstream::anthropic::tool_input;
use crate::mock_upstream::cloud::string_leaves_bytes;
use crate::mock_upstream::{text_tokens, CHUNK_TEXT, THINKING_TEXT};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;

/// A made-up Gemini API key for tests talking to the mock directly.
pub const GEMINI_API_KEY: &str = "gm-mock-key";
/// `candidatesTokenCount` of a function-call answer.
pub const GEMINI_TOOL_CALL_TOKENS: u64 = 3;

/// The first text piece of an answer to a turn holding a `functionResponse` of `name`
/// (Gemini), or a `toolResult` of `name` = its `toolUseId` (Bedrock).
pub fn tool_result_text(name: &str) -> String {
    format!("{name} returned. ")
}

/// The switches of [`super::MockUpstream`] that shape a Gemini answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeminiSwitches {
    /// `gemini_cached(true)`: report `cachedContentTokenCount` whatever the request.
    pub cached: bool,
    /// `gemini_thoughts(true)`: report `thoughtsTokenCount` whatever the request.
    pub thoughts: bool,
    /// `gemini_block_prompt(true)`
    pub block_prompt: bool,
    /// `gemini_block_answer(true)`
    pub block_answer: bool,
}

/// `usageMetadata` of a Gemini answer (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeminiUsage {
    pub prompt_token_count: u64,
    pub candidates_token_count: u64,
    pub cached_content_token_count: u64,
    pub thoughts_token_count: u64,
    pub total_token_count: u64,
}

impl GeminiUsage {
    fn new(prompt: u64, cached: u64, candidates: u64, thoughts: u64) -> Self {
        GeminiUsage {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            cached_content_token_count: cached,
            thoughts_token_count: thoughts,
            total_token_count: prompt + candidates + thoughts,
        }
    }

    /// As proto JSON writes it: counts of 0 left out, but for prompt and total.
    pub fn json(&self) -> Value {
        let mut u = json!({
            "promptTokenCount": self.prompt_token_count,
            "totalTokenCount": self.total_token_count,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_token_count}],
        });
        for (key, v) in [
            ("candidatesTokenCount", self.candidates_token_count),
            ("cachedContentTokenCount", self.cached_content_token_count),
            ("thoughtsTokenCount", self.thoughts_token_count),
        ] {
            if v > 0 {
                u[key] = json!(v);
            }
        }
        u
    }
}

/// What the answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeminiReply {
    /// Text, one piece per output token (and per stream chunk).
    Text(Vec<String>),
    /// A `functionCall` of this function.
    FunctionCall(String),
    /// `promptFeedback.blockReason: SAFETY`, no candidates.
    PromptBlocked,
}

/// What the mock answers to a generate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiAnswer {
    pub reply: GeminiReply,
    /// Thought pieces shown (`includeThoughts`), each [`THINKING_TEXT`].
    pub thought_pieces: usize,
    /// `STOP`, `MAX_TOKENS` or `SAFETY` (`None` for a blocked prompt).
    pub finish_reason: Option<&'static str>,
    pub usage: GeminiUsage,
}

/// `v[camel]`, or `v[snake]` (proto JSON reads both spellings).
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn parts_bytes(content: &Value) -> usize {
    let Some(parts) = content.get("parts").and_then(Value::as_array) else {
        return 0;
    };
    parts
        .iter()
        .map(|p| {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                t.len()
            } else if let Some(r) = field(p, "functionResponse", "function_response") {
                r.get("response").map_or(0, string_leaves_bytes)
            } else {
                0
            }
        })
        .sum()
}

fn contents(body: &Value) -> &[Value] {
    body.get("contents")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `B`: the bytes of the prompt's text (see the module doc).
fn prompt_bytes(body: &Value) -> usize {
    let system = field(body, "systemInstruction", "system_instruction").map_or(0, parts_bytes);
    system + contents(body).iter().map(parts_bytes).sum::<usize>()
}

fn last_parts(body: &Value) -> &[Value] {
    contents(body)
        .last()
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The `name` of the first `functionResponse` of the last turn.
fn function_response_name(body: &Value) -> Option<String> {
    last_parts(body).iter().find_map(|p| {
        field(p, "functionResponse", "function_response")?
            .get("name")?
            .as_str()
            .map(str::to_string)
    })
}

fn last_turn_is_user_text(body: &Value) -> bool {
    let role = contents(body)
        .last()
        .and_then(|c| c.get("role"))
        .and_then(Value::as_str);
    matches!(role, None | Some("user"))
        && last_parts(body).iter().any(|p| p.get("text").is_some())
        && function_response_name(body).is_none()
}

/// The function the answer calls (see the module doc).
fn called_function(body: &Value) -> Option<String> {
    let tools = body.get("tools").and_then(Value::as_array)?;
    let first = tools.iter().find_map(|t| {
        field(t, "functionDeclarations", "function_declarations")?
            .as_array()?
            .first()?
            .get("name")?
            .as_str()
    })?;
    let config = field(body, "toolConfig", "tool_config")
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"));
    let mode = config.and_then(|c| c.get("mode")).and_then(Value::as_str);
    match mode {
        Some("NONE") => None,
        Some("ANY") => {
            let allowed = config
                .and_then(|c| field(c, "allowedFunctionNames", "allowed_function_names"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str);
            Some(allowed.unwrap_or(first).to_string())
        }
        _ => last_turn_is_user_text(body).then(|| first.to_string()),
    }
}

fn generation_config(body: &Value) -> Option<&Value> {
    field(body, "generationConfig", "generation_config")
}

fn thinking_config(body: &Value) -> Option<&Value> {
    generation_config(body).and_then(|g| field(g, "thinkingConfig", "thinking_config"))
}

fn include_thoughts(body: &Value) -> bool {
    thinking_config(body)
        .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn thinking_asked(body: &Value) -> bool {
    let budget = thinking_config(body)
        .and_then(|t| field(t, "thinkingBudget", "thinking_budget"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    include_thoughts(body) || budget > 0
}

fn names_cached_content(body: &Value) -> bool {
    field(body, "cachedContent", "cached_content")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

impl GeminiAnswer {
    /// The answer to generate request `body` with `chunks` content chunks.
    pub fn plan(body: &Value, chunks: usize, sw: GeminiSwitches) -> GeminiAnswer {
        let prompt = text_tokens(prompt_bytes(body));
        let cached = if sw.cached || names_cached_content(body) {
            prompt / 2
        } else {
            0
        };
        if sw.block_prompt {
            return GeminiAnswer {
                reply: GeminiReply::PromptBlocked,
                thought_pieces: 0,
                finish_reason: None,
                usage: GeminiUsage::new(prompt, cached, 0, 0),
            };
        }
        let thinking = sw.thoughts || thinking_asked(body);
        let thoughts = if thinking { chunks } else { 0 };
        let thought_pieces = if include_thoughts(body) { thoughts } else { 0 };
        let (reply, finish) = match called_function(body) {
            Some(name) => (GeminiReply::FunctionCall(name), "STOP"),
            None => {
                let mut pieces: Vec<String> = function_response_name(body)
                    .map(|n| tool_result_text(&n))
                    .into_iter()
                    .collect();
                pieces.extend(std::iter::repeat_n(CHUNK_TEXT.to_string(), chunks));
                let max = generation_config(body)
                    .and_then(|g| field(g, "maxOutputTokens", "max_output_tokens"))
                    .and_then(Value::as_u64)
                    .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
                let mut finish = "STOP";
                if pieces.len() > max {
                    pieces.truncate(max);
                    finish = "MAX_TOKENS";
                }
                if sw.block_answer {
                    pieces.truncate(pieces.len() / 2);
                    finish = "SAFETY";
                }
                (GeminiReply::Text(pieces), finish)
            }
        };
        let candidates = match &reply {
            GeminiReply::Text(p) => p.len() as u64,
            _ => GEMINI_TOOL_CALL_TOKENS,
        };
        GeminiAnswer {
            reply,
            thought_pieces,
            finish_reason: Some(finish),
            usage: GeminiUsage::new(prompt, cached, candidates, thoughts as u64),
        }
    }
}

/// `usageMetadata` of the answer to `body` with `chunks` chunks, the switches off.
pub fn gemini_usage(body: &Value, chunks: usize) -> GeminiUsage {
    GeminiAnswer::plan(body, chunks, GeminiSwitches::default()).usage
}

/// A minimal generate request: one user turn of `text`.
pub fn gemini_body(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

/// The fields every answer and chunk carries.
pub(super) struct Head<'a> {
    pub(super) model: &'a str,
    pub(super) id: String,
}

const SAFETY_RATINGS: &str = r#"[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true},{"category":"HARM_CATEGORY_HARASSMENT","probability":"NEGLIGIBLE"}]"#;

fn safety_ratings() -> Value {
    serde_json::from_str(SAFETY_RATINGS).unwrap_or(Value::Null)
}

impl Head<'_> {
    /// One answer (or chunk): `reply` with `thoughts` thought pieces.
    pub(super) fn chunk(
        &self,
        reply: &GeminiReply,
        thoughts: usize,
        finish: Option<&str>,
        usage: GeminiUsage,
    ) -> Value {
        let mut out = json!({"usageMetadata": usage.json(), "modelVersion": self.model,
            "responseId": self.id});
        let mut parts = Vec::new();
        if thoughts > 0 {
            parts.push(json!({"text": THINKING_TEXT.repeat(thoughts), "thought": true}));
        }
        match reply {
            GeminiReply::PromptBlocked => {
                out["promptFeedback"] = json!({"blockReason": "SAFETY",
                    "safetyRatings": safety_ratings()});
                return out;
            }
            GeminiReply::FunctionCall(name) => {
                let args = tool_input();
                parts.push(json!({"functionCall": {"name": name, "args": args}}));
            }
            GeminiReply::Text(pieces) if !pieces.is_empty() => {
                parts.push(json!({"text": pieces.concat()}));
            }
            GeminiReply::Text(_) => {}
        }
        let mut candidate = json!({"index": 0});
        if !parts.is_empty() {
            candidate["content"] = json!({"parts": parts, "role": "model"});
        }
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
            if f == "SAFETY" {
                candidate["safetyRatings"] = safety_ratings();
            }
        }
        out["candidates"] = json!([candidate]);
        out
    }
}

fn sse_chunk(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\r\n\r\n"))
}

/// The SSE chunks of `plan` (see the module doc).
pub(super) fn stream_chunks(plan: &GeminiAnswer, head: &Head) -> VecDeque<Bytes> {
    let u = plan.usage;
    let usage = |candidates: u64, thoughts: u64| {
        GeminiUsage::new(
            u.prompt_token_count,
            u.cached_content_token_count,
            candidates,
            thoughts,
        )
    };
    let mut out = VecDeque::new();
    let pieces = match &plan.reply {
        GeminiReply::Text(p) => p,
        whole => {
            let (c, t) = (u.candidates_token_count, u.thoughts_token_count);
            out.push_back(sse_chunk(&head.chunk(
                whole,
                0,
                plan.finish_reason,
                usage(c, t),
            )));
            return out;
        }
    };
    let empty = GeminiReply::Text(Vec::new());
    // thoughts counted but not shown are all there from the first chunk
    let mut thoughts = u.thoughts_token_count - plan.thought_pieces as u64;
    for _ in 0..plan.thought_pieces {
        thoughts += 1;
        out.push_back(sse_chunk(&head.chunk(&empty, 1, None, usage(0, thoughts))));
    }
    let safety = plan.finish_reason == Some("SAFETY");
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let finish = plan.finish_reason.filter(|_| last && !safety);
        let reply = GeminiReply::Text(vec![piece.clone()]);
        let v = head.chunk(&reply, 0, finish, usage(i as u64 + 1, thoughts));
        out.push_back(sse_chunk(&v));
    }
    if safety || pieces.is_empty() {
        let v = head.chunk(
            &empty,
            0,
            plan.finish_reason,
            usage(pieces.len() as u64, thoughts),
        );
        out.push_back(sse_chunk(&v));
    }
    out
}
