//! A whole Converse answer as an OpenAI `chat.completion`, read into [`Read`]
//! on the way: text blocks joined into `content`, `toolUse` blocks as
//! `tool_calls`, `reasoningContent` text as `reasoning_content`.

use super::super::fields::{raw_len, text};
use super::super::write::{now_secs, openai_usage, TextOut};
use super::super::Read;
use super::read::{finish_reason, new_id, AnswerIn};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use shared::wire::openai::Usage as OpenAiUsage;

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
            calls.push(CallOut {
                id: &u.tool_use_id,
                kind: "function",
                function: FunctionOut {
                    name: &u.name,
                    arguments: input,
                },
            });
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
    let out = Completion {
        id: read.chat_id.as_deref().unwrap_or_default(),
        object: "chat.completion",
        created: now_secs(),
        model: read.model.as_deref().unwrap_or("unknown"),
        choices: [ChoiceOut {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content: TextOut::join(&texts, ""),
                reasoning_content: TextOut::join(&reasoning, ""),
                tool_calls: (!calls.is_empty()).then_some(calls),
            },
            finish_reason: finish,
            logprobs: None,
        }],
        usage: read.usage.as_ref().map(openai_usage),
    };
    serde_json::to_vec(&out).map_or_else(|_| Bytes::copy_from_slice(body), Bytes::from)
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
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
struct CallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    /// the tool input's JSON text, as a string
    arguments: &'a str,
}
