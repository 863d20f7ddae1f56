//! The Converse answer and ConverseStream event shapes as read (texts stay raw
//! JSON strings, so they are counted and passed on without being unescaped),
//! Bedrock's stop reasons in OpenAI's words, and its token usage normalised.

use serde::Deserialize;
use serde_json::value::RawValue;
use shared::usage::Usage;
use std::borrow::Cow;

/// OpenAI's `finish_reason` for a Converse `stopReason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, malformed_* and any later addition
        _ => "stop",
    }
}

/// A new id for an answer: Converse answers carry none (the request id is a
/// response header), and OpenAI clients expect one.
pub(super) fn new_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// Converse's `usage` (`TokenUsage`): `inputTokens` counts neither the tokens
/// read from nor those written to the prompt cache.
#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

impl TokenUsage {
    /// In the gateway's (OpenAI's) convention: the prompt counts cache reads
    /// and writes; the total is the sum of prompt and completion.
    pub fn normalised(&self) -> Usage {
        let prompt = self
            .input_tokens
            .saturating_add(self.cache_read_input_tokens)
            .saturating_add(self.cache_write_input_tokens);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt.saturating_add(self.output_tokens),
            cached_tokens: self.cache_read_input_tokens,
            cache_creation_tokens: self.cache_write_input_tokens,
            // (Converse reports no split of reasoning tokens)
            reasoning_tokens: 0,
            estimated: false,
        }
    }
}

// ---- a whole answer ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AnswerIn<'a> {
    #[serde(borrow, default)]
    pub output: Option<OutputIn<'a>>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
pub(super) struct OutputIn<'a> {
    #[serde(borrow, default)]
    pub message: Option<MessageIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct MessageIn<'a> {
    #[serde(borrow, default)]
    pub content: Vec<BlockIn<'a>>,
}

/// A content block of an answer: one of its members is set.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockIn<'a> {
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseIn<'a>>,
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolUseIn<'a> {
    #[serde(borrow, default)]
    pub tool_use_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// (an answer's: a JSON value; a stream delta's: a piece of JSON text)
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
}

/// An answer's `reasoningContent`: `{"reasoningText":{"text","signature"}}`
/// (or `redactedContent`, which has no text to show).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReasoningIn<'a> {
    #[serde(borrow, default)]
    pub reasoning_text: Option<ReasoningText<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ReasoningText<'a> {
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
}

// ---- stream events (each the payload of one eventstream message) ----

/// `contentBlockStart`: `{"start":{"toolUse":{..}},"contentBlockIndex":n}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockStartIn<'a> {
    #[serde(borrow, default)]
    pub start: Option<StartIn<'a>>,
    #[serde(default)]
    pub content_block_index: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StartIn<'a> {
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseIn<'a>>,
}

/// `contentBlockDelta`: `{"delta":{"text"|"toolUse"|"reasoningContent"},"contentBlockIndex":n}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockDeltaIn<'a> {
    #[serde(borrow, default)]
    pub delta: Option<DeltaIn<'a>>,
    #[serde(default)]
    pub content_block_index: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeltaIn<'a> {
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseIn<'a>>,
    /// (a delta's reasoning: `{"text"}`, or a `signature`, which has no text)
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningText<'a>>,
}

/// `messageStop`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageStopIn<'a> {
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// `metadata`: the usage (and metrics, trace: not read).
#[derive(Deserialize)]
pub(super) struct MetadataIn {
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// An exception's payload (`{"message": ..}`; a `modelStreamErrorException`
/// adds the model's own status and message).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExceptionIn<'a> {
    #[serde(borrow, default, alias = "Message")]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub original_message: Option<Cow<'a, str>>,
    /// (the framing's `error` messages: their `:error-code`)
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
}
