//! Gemini's `GenerateContentResponse` as read (a whole answer, or one stream
//! event): texts stay raw JSON strings, so they are counted and passed on
//! without being unescaped; its usage in the normalised form, its finish
//! reasons in OpenAI's words, and the ids the OpenAI answer gets.

use super::super::Read;
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::usage::Usage;
use std::borrow::Cow;

/// OpenAI's `finish_reason` for a Gemini `finishReason` (`called`: the
/// candidate holds function calls).
pub fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "LANGUAGE"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if called => "tool_calls",
        // STOP, MALFORMED_FUNCTION_CALL, OTHER and any later addition
        _ => "stop",
    }
}

/// A whole answer or one stream event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseIn<'a> {
    #[serde(borrow, default)]
    pub candidates: Vec<CandidateIn<'a>>,
    #[serde(borrow, default)]
    pub prompt_feedback: Option<FeedbackIn<'a>>,
    #[serde(default)]
    pub usage_metadata: Option<UsageIn>,
    #[serde(borrow, default)]
    pub model_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub response_id: Option<Cow<'a, str>>,
    /// (an error in a stream)
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl ResponseIn<'_> {
    /// The body is a `GenerateContentResponse` (not an error or another shape).
    pub fn is_answer(&self) -> bool {
        !self.candidates.is_empty()
            || self.prompt_feedback.is_some()
            || self.usage_metadata.is_some()
            || self.response_id.is_some()
    }

    /// The prompt was blocked: no candidate answers it.
    pub fn blocked(&self) -> bool {
        self.candidates.is_empty()
            && self
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CandidateIn<'a> {
    #[serde(borrow, default)]
    pub content: Option<ContentIn<'a>>,
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub index: Option<u32>,
}

impl<'a> CandidateIn<'a> {
    pub fn parts(&self) -> &[PartIn<'a>] {
        self.content.as_ref().map_or(&[], |c| &c.parts)
    }

    /// Its answer's texts and its thoughts' (raw JSON strings), and the bytes
    /// of generated text it holds.
    pub fn texts(&self) -> (Vec<&'a RawValue>, Vec<&'a RawValue>, usize) {
        let (mut texts, mut thoughts, mut bytes) = (Vec::new(), Vec::new(), 0);
        for p in self.parts() {
            if let Some(t) = p
                .text
                .filter(|t| t.get().starts_with('"') && t.get() != "\"\"")
            {
                bytes += t.get().len().saturating_sub(2);
                match p.thought {
                    Some(true) => thoughts.push(t),
                    _ => texts.push(t),
                }
            }
            if let Some(c) = &p.function_call {
                bytes += c.name.len() + c.args.map_or(0, |a| a.get().len());
            }
        }
        (texts, thoughts, bytes)
    }
}

#[derive(Deserialize)]
pub(super) struct ContentIn<'a> {
    #[serde(borrow, default)]
    pub parts: Vec<PartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartIn<'a> {
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    /// the text is a thought (a summary of the model's reasoning)
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(borrow, default)]
    pub function_call: Option<CallIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct CallIn<'a> {
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub args: Option<&'a RawValue>,
}

impl CallIn<'_> {
    /// The call's `args` as OpenAI's `arguments` text.
    pub fn arguments(&self) -> &str {
        self.args.map_or("{}", RawValue::get)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FeedbackIn<'a> {
    #[serde(borrow, default)]
    pub block_reason: Option<Cow<'a, str>>,
}

/// `usageMetadata`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct UsageIn {
    pub prompt_token_count: u64,
    pub tool_use_prompt_token_count: u64,
    pub cached_content_token_count: u64,
    pub candidates_token_count: u64,
    pub thoughts_token_count: u64,
    pub total_token_count: Option<u64>,
}

impl UsageIn {
    /// In OpenAI's convention: the prompt counts the tool-use prompt (and,
    /// as Gemini's own count does, the cached tokens); the completion counts
    /// the thoughts.
    pub fn normalised(&self) -> Usage {
        let prompt = self
            .prompt_token_count
            .saturating_add(self.tool_use_prompt_token_count);
        let completion = self
            .candidates_token_count
            .saturating_add(self.thoughts_token_count);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_token_count
                .unwrap_or(prompt.saturating_add(completion)),
            cached_tokens: self.cached_content_token_count,
            reasoning_tokens: self.thoughts_token_count,
            ..Usage::default()
        }
    }
}

/// Longest upstream `responseId` taken into an id (a longer one gets a made one).
const MAX_ID: usize = 128;

/// The OpenAI answer's id (`chatcmpl-<responseId>`, or a made one) and model
/// (`modelVersion`, or what `read` already holds, or `unknown`), both noted
/// in `read`.
pub(super) fn note_ids(read: &mut Read, r: &ResponseIn<'_>) -> (String, String) {
    let id = match r.response_id.as_deref() {
        Some(id) if !id.is_empty() && id.len() <= MAX_ID => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    };
    read.chat_id = Some(id.clone());
    if let Some(m) = r.model_version.as_deref().filter(|m| m.len() <= MAX_ID) {
        read.model = Some(m.to_string());
    }
    let model = read.model.clone().unwrap_or_else(|| "unknown".to_string());
    (id, model)
}

/// An id for a tool call of an answer (Gemini's calls have none): unique, so
/// a client that keys tool results by id across turns keeps them apart.
pub(super) fn call_id() -> String {
    format!("call_{:024x}", fastrand::u128(..) >> 32)
}
