//! Whole JSON answers translated: an Anthropic `message` as an OpenAI
//! `chat.completion`, and back; each read into [`Read`] on the way.

use super::super::chat::answer::{CallOut, ChoiceOut, Completion, MessageOut};
use super::super::fields::text;
use super::super::write::{openai_usage, TextOut};
use super::super::{openai, Read};
use super::read::{finish_reason, note_message, stop_reason, MessageIn};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::usage::Usage;
use shared::wire::anthropic::Usage as AnthropicUsage;
use std::borrow::Cow;

/// An Anthropic answer as OpenAI's (a body of another shape comes back as it is).
pub fn messages_answer_to_chat(body: &[u8], read: &mut Read) -> Bytes {
    let Ok(m) = serde_json::from_slice::<MessageIn<'_>>(body) else {
        return Bytes::copy_from_slice(body);
    };
    if m.kind.as_deref().is_some_and(|k| k != "message") {
        return Bytes::copy_from_slice(body);
    }
    note_message(read, &m);
    let mut texts = Vec::new();
    let mut thinking = Vec::new();
    let mut calls = Vec::new();
    for b in &m.content {
        match b.kind.as_ref() {
            "text" => texts.extend(text(b.text)),
            "thinking" => thinking.extend(text(b.thinking)),
            "tool_use" => calls.push(CallOut::function(
                b.id.as_deref().unwrap_or_default(),
                b.name.as_deref().unwrap_or_default(),
                b.input.map_or("{}", RawValue::get),
            )),
            _ => {}
        }
    }
    let choice = ChoiceOut::new(
        0,
        MessageOut::assistant(
            TextOut::join(&texts, ""),
            TextOut::join(&thinking, ""),
            calls,
        ),
        m.stop_reason.as_deref().map(finish_reason),
    );
    Completion::new(
        m.id.as_deref().unwrap_or_default(),
        m.model.as_deref().unwrap_or_default(),
        &[choice],
        read.usage.as_ref().map(openai_usage),
    )
    .to_bytes(body)
}

/// An OpenAI chat answer as Anthropic's (a body of another shape comes back as it is).
pub fn chat_answer_to_messages(body: &[u8], read: &mut Read) -> Bytes {
    chat_answer_as_message(body, read, None)
}

/// [`chat_answer_to_messages`] with `usage` (when known) as the message's
/// figures instead of those the chat answer carries: the upstream's own, for a
/// chat answer made from a third API's (chat has no field for cache writes).
pub(crate) fn chat_answer_as_message(body: &[u8], read: &mut Read, usage: Option<Usage>) -> Bytes {
    let Ok(c) = serde_json::from_slice::<ChatIn<'_>>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let Some(choice) = c.choices.into_iter().next() else {
        return Bytes::copy_from_slice(body);
    };
    openai::answer(read, body, true);
    let mut content = Vec::new();
    let m = choice.message;
    if let Some(t) = super::super::fields::nonempty(m.reasoning_content) {
        content.push(BlockOut::Thinking {
            thinking: t,
            signature: "",
        });
    }
    if let Some(t) = super::super::fields::nonempty(m.content) {
        content.push(BlockOut::Text { text: t });
    }
    for call in m.tool_calls.into_iter().flatten() {
        content.push(BlockOut::ToolUse {
            input: tool_input(call.function.arguments.as_deref().unwrap_or("")),
            id: call.id,
            name: call.function.name,
        });
    }
    let out = Message {
        id: c.id.as_deref().unwrap_or_default(),
        kind: "message",
        role: "assistant",
        model: c.model.as_deref().unwrap_or_default(),
        content,
        stop_reason: choice.finish_reason.as_deref().map(stop_reason),
        stop_sequence: None,
        usage: AnthropicUsage::from_normalised(&usage.or(read.usage).unwrap_or_default()),
    };
    serde_json::to_vec(&out).map_or_else(|_| Bytes::copy_from_slice(body), Bytes::from)
}

/// A tool call's `arguments` as an Anthropic `input`: the JSON it holds, `{}`
/// when empty, the text as a JSON string when it is not JSON.
pub(super) fn tool_input(arguments: &str) -> Box<RawValue> {
    let a = arguments.trim();
    let parsed = if a.is_empty() {
        RawValue::from_string("{}".to_string())
    } else {
        RawValue::from_string(a.to_string())
    };
    parsed
        .or_else(|_| serde_json::value::to_raw_value(a))
        .unwrap_or_default()
}

// ---- OpenAI chat answer, as read ----

#[derive(Deserialize)]
struct ChatIn<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<ChatChoiceIn<'a>>,
}

#[derive(Deserialize)]
struct ChatChoiceIn<'a> {
    #[serde(borrow)]
    message: ChatMessageIn<'a>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChatMessageIn<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallIn<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct ToolCallIn<'a> {
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub function: FunctionIn<'a>,
}

#[derive(Deserialize, Default)]
pub(super) struct FunctionIn<'a> {
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

// ---- Anthropic message, as written ----

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: AnthropicUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockOut<'a> {
    Thinking {
        thinking: &'a RawValue,
        signature: &'static str,
    },
    Text {
        text: &'a RawValue,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
}
