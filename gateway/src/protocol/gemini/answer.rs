//! A whole `generateContent` answer as an OpenAI `chat.completion`, read into
//! [`Read`] on the way: one choice per candidate (texts joined, thoughts as
//! `reasoning_content`, function calls as `tool_calls`), a prompt Gemini
//! blocked as an empty message finished by `content_filter`.

use super::super::chat::answer::{CallOut, ChoiceOut, Completion, MessageOut};
use super::super::write::TextOut;
use super::super::Read;
use super::read::{call_id, finish_reason, note_ids, CandidateIn, ResponseIn};
use bytes::Bytes;
use shared::usage::Usage;
use shared::wire::openai::{CompletionDetails, Usage as OpenAiUsage};

/// Most candidates one answer is translated with (Gemini gives at most 8).
const MAX_CHOICES: usize = 16;

/// A generateContent JSON answer -> an OpenAI chat.completion, read into
/// `read` (a body of another shape comes back as it is).
pub fn answer_to_chat(body: &[u8], read: &mut Read) -> Bytes {
    let Ok(r) = crate::json::from_bytes::<ResponseIn<'_>>(body) else {
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
        choices.push(ChoiceOut::new(
            0,
            MessageOut::assistant(Some(TextOut::Str("")), None, Vec::new()),
            Some(if r.blocked() {
                "content_filter"
            } else {
                "stop"
            }),
        ));
    }
    if let Some(f) = choices.first().and_then(|c| c.finish_reason) {
        read.finish_reason = Some(f.to_string());
    }
    Completion::new(&id, &model, &choices, read.usage.as_ref().map(openai_usage)).to_bytes(body)
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
        .map(|call| CallOut::function(call_id(), &call.name, call.arguments()))
        .collect();
    let content = match TextOut::join(&texts, "") {
        Some(t) => Some(t),
        None if calls.is_empty() => Some(TextOut::Str("")),
        None => None,
    };
    let finish = c
        .finish_reason
        .as_deref()
        .map(|f| finish_reason(f, !calls.is_empty()));
    let message = MessageOut::assistant(content, TextOut::join(&thoughts, ""), calls);
    ChoiceOut::new(c.index.unwrap_or(position as u32), message, finish)
}
