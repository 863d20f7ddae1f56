//! Whole JSON answers translated: an Anthropic `message` as an OpenAI
//! `chat.completion`, and back; each read into [`Read`] on the way.

use super::super::fields::text;
use super::super::write::{now_secs, openai_usage, TextOut};
use super::super::{openai, Read};
use super::read::{finish_reason, note_message, stop_reason, MessageIn};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::wire::anthropic::Usage as AnthropicUsage;
use shared::wire::openai::Usage as OpenAiUsage;
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
            "tool_use" => calls.push(CallOut {
                id: b.id.as_deref().unwrap_or_default(),
                kind: "function",
                function: FunctionOut {
                    name: b.name.as_deref().unwrap_or_default(),
                    arguments: b.input.map_or("{}", RawValue::get),
                },
            }),
            _ => {}
        }
    }
    let out = Completion {
        id: m.id.as_deref().unwrap_or_default(),
        object: "chat.completion",
        created: now_secs(),
        model: m.model.as_deref().unwrap_or_default(),
        choices: [ChoiceOut {
            index: 0,
            message: MessageOut {
                role: "assistant",
                content: TextOut::join(&texts, ""),
                reasoning_content: TextOut::join(&thinking, ""),
                tool_calls: (!calls.is_empty()).then_some(calls),
            },
            finish_reason: m.stop_reason.as_deref().map(finish_reason),
            logprobs: None,
        }],
        usage: read.usage.as_ref().map(openai_usage),
    };
    serde_json::to_vec(&out).map_or_else(|_| Bytes::copy_from_slice(body), Bytes::from)
}

/// An OpenAI chat answer as Anthropic's (a body of another shape comes back as it is).
pub fn chat_answer_to_messages(body: &[u8], read: &mut Read) -> Bytes {
    let Ok(c) = serde_json::from_slice::<ChatIn<'_>>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let Some(choice) = c.choices.into_iter().next() else {
        return Bytes::copy_from_slice(body);
    };
    openai::answer(read, body);
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
        usage: AnthropicUsage::from_normalised(&read.usage.unwrap_or_default()),
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

// ---- OpenAI chat answer, as written ----

#[derive(Serialize)]
pub(crate) struct Completion<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) choices: [ChoiceOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
pub(crate) struct ChoiceOut<'a> {
    pub(crate) index: u32,
    pub(crate) message: MessageOut<'a>,
    pub(crate) finish_reason: Option<&'static str>,
    pub(crate) logprobs: Option<()>,
}

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    pub(crate) role: &'static str,
    pub(crate) content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_calls: Option<Vec<CallOut<'a>>>,
}

#[derive(Serialize)]
pub(crate) struct CallOut<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: FunctionOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionOut<'a> {
    pub(crate) name: &'a str,
    /// the tool input's JSON text, as a string
    pub(crate) arguments: &'a str,
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
