//! A whole `generateContent` answer as an OpenAI `chat.completion`, read into
//! [`Read`] on the way: one choice per candidate (texts joined, thoughts as
//! `reasoning_content`, function calls as `tool_calls`), a prompt Gemini
//! blocked as an empty message finished by `content_filter`.

use super::super::write::{now_secs, TextOut};
use super::super::Read;
use super::read::{call_id, finish_reason, note_ids, CandidateIn, ResponseIn};
use bytes::Bytes;
use serde::Serialize;
use shared::usage::Usage;
use shared::wire::openai::{CompletionDetails, Usage as OpenAiUsage};

/// Most candidates one answer is translated with (Gemini gives at most 8).
const MAX_CHOICES: usize = 16;

/// A generateContent JSON answer -> an OpenAI chat.completion, read into
/// `read` (a body of another shape comes back as it is).
pub fn answer_to_chat(body: &[u8], read: &mut Read) -> Bytes {
    let Ok(r) = serde_json::from_slice::<ResponseIn<'_>>(body) else {
        return Bytes::copy_from_slice(body);
    };
    if !r.is_answer() || r.error.is_some() {
        return Bytes::copy_from_slice(body);
    }
    let (id, model) = note_ids(read, &r);
    if let Some(u) = &r.usage_metadata {
        read.usage = Some(u.normalised());
    }
    let mut choices: Vec<ChoiceOut<'_>> = r
        .candidates
        .iter()
        .take(MAX_CHOICES)
        .enumerate()
        .map(|(i, c)| choice(i, c, read))
        .collect();
    if choices.is_empty() {
        // no candidate: the prompt was blocked, or (rarely) nothing came
        choices.push(ChoiceOut {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content: Some(TextOut::Static("")),
                reasoning_content: None,
                tool_calls: None,
            },
            finish_reason: Some(if r.blocked() {
                "content_filter"
            } else {
                "stop"
            }),
            logprobs: None,
        });
    }
    if let Some(f) = choices.first().and_then(|c| c.finish_reason) {
        read.finish_reason = Some(f.to_string());
    }
    let out = Completion {
        id: &id,
        object: "chat.completion",
        created: now_secs(),
        model: &model,
        choices,
        usage: read.usage.as_ref().map(openai_usage),
    };
    serde_json::to_vec(&out).map_or_else(|_| Bytes::copy_from_slice(body), Bytes::from)
}

/// Normalised usage as OpenAI's `usage`, the thoughts in
/// `completion_tokens_details.reasoning_tokens`.
pub(super) fn openai_usage(u: &Usage) -> OpenAiUsage {
    OpenAiUsage {
        completion_tokens_details: Some(CompletionDetails {
            reasoning_tokens: Some(u.reasoning_tokens),
        }),
        ..super::super::write::openai_usage(u)
    }
}

/// One candidate as a choice (`position`: its place, when it names no index).
fn choice<'a>(position: usize, c: &'a CandidateIn<'a>, read: &mut Read) -> ChoiceOut<'a> {
    let (texts, thoughts, bytes) = c.texts();
    read.output_bytes += bytes;
    let calls: Vec<CallOut<'_>> = c
        .parts()
        .iter()
        .filter_map(|p| p.function_call.as_ref())
        .map(|call| CallOut {
            id: call_id(),
            kind: "function",
            function: FunctionOut {
                name: &call.name,
                arguments: call.arguments(),
            },
        })
        .collect();
    let content = match TextOut::join(&texts, "") {
        Some(t) => Some(t),
        None if calls.is_empty() => Some(TextOut::Static("")),
        None => None,
    };
    ChoiceOut {
        index: c.index.unwrap_or(position as u32),
        finish_reason: c
            .finish_reason
            .as_deref()
            .map(|f| finish_reason(f, !calls.is_empty())),
        message: MessageOut {
            role: "assistant",
            content,
            reasoning_content: TextOut::join(&thoughts, ""),
            tool_calls: (!calls.is_empty()).then_some(calls),
        },
        logprobs: None,
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    finish_reason: Option<&'static str>,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<CallOut<'a>>>,
}

#[derive(Serialize)]
pub(super) struct CallOut<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut<'a>,
}

#[derive(Serialize)]
pub(super) struct FunctionOut<'a> {
    pub name: &'a str,
    /// the call's `args` JSON text, as a string
    pub arguments: &'a str,
}
