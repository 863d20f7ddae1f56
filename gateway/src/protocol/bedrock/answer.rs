//! A whole Converse answer as an OpenAI `chat.completion`, read into [`Read`]
//! on the way: text blocks joined into `content`, `toolUse` blocks as
//! `tool_calls`, `reasoningContent` text as `reasoning_content`.

use super::super::chat::answer::{CallOut, ChoiceOut, Completion, MessageOut};
use super::super::fields::{raw_len, text};
use super::super::write::{openai_usage, TextOut};
use super::super::Read;
use super::read::{finish_reason, new_id, AnswerIn};
use bytes::Bytes;
use serde_json::value::RawValue;

/// A Converse answer as OpenAI's (a body of another shape comes back as it
/// is). Its model is `read.model` (the upstream model, set by the caller), or
/// `unknown`; its id a new one (Converse answers carry none).
pub fn answer_to_chat(body: &[u8], read: &mut Read) -> Bytes {
    let Ok(a) = serde_json::from_slice::<AnswerIn<'_>>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let Some(m) = a.output.and_then(|o| o.message) else {
        return Bytes::copy_from_slice(body);
    };
    let mut texts = Vec::new();
    let mut reasoning = Vec::new();
    let mut calls = Vec::new();
    for b in &m.content {
        if let Some(t) = text(b.text) {
            read.output_bytes += raw_len(Some(t));
            texts.push(t);
        }
        if let Some(t) = b
            .reasoning_content
            .as_ref()
            .and_then(|r| r.reasoning_text.as_ref())
        {
            read.output_bytes += raw_len(t.text);
            reasoning.extend(text(t.text));
        }
        if let Some(u) = &b.tool_use {
            let input = u.input.map_or("{}", RawValue::get);
            read.output_bytes += input.len();
            calls.push(CallOut::function(&*u.tool_use_id, &u.name, input));
        }
    }
    if read.chat_id.is_none() {
        read.chat_id = Some(new_id());
    }
    if let Some(u) = &a.usage {
        read.usage = Some(u.normalised());
    }
    let finish = a.stop_reason.as_deref().map(finish_reason);
    if let Some(f) = finish {
        read.finish_reason = Some(f.to_string());
    }
    let choice = ChoiceOut::new(
        0,
        MessageOut::assistant(
            TextOut::join(&texts, ""),
            TextOut::join(&reasoning, ""),
            calls,
        ),
        finish,
    );
    Completion::new(
        read.chat_id.as_deref().unwrap_or_default(),
        read.model.as_deref().unwrap_or("unknown"),
        &[choice],
        read.usage.as_ref().map(openai_usage),
    )
    .to_bytes(body)
}
