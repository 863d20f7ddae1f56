//! A whole OpenAI `chat.completion` as the translations write it from another
//! dialect's answer: its choices, each an assistant message (text, reasoning,
//! tool calls) with its finish reason, and the usage.

use super::super::write::{now_secs, TextOut};
use bytes::Bytes;
use serde::Serialize;
use shared::wire::openai::Usage as OpenAiUsage;
use std::borrow::Cow;

#[derive(Serialize)]
pub(crate) struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChoiceOut<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

impl<'a> Completion<'a> {
    /// The answer `id` of `model`, made now.
    pub fn new(
        id: &'a str,
        model: &'a str,
        choices: &'a [ChoiceOut<'a>],
        usage: Option<OpenAiUsage>,
    ) -> Self {
        Completion {
            id,
            object: "chat.completion",
            created: now_secs(),
            model,
            choices,
            usage,
        }
    }

    /// Its JSON; `upstream` (the body it was made from) should it not write.
    pub fn to_bytes(&self, upstream: &[u8]) -> Bytes {
        serde_json::to_vec(self).map_or_else(|_| Bytes::copy_from_slice(upstream), Bytes::from)
    }
}

#[derive(Serialize)]
pub(crate) struct ChoiceOut<'a> {
    pub index: u32,
    pub message: MessageOut<'a>,
    pub finish_reason: Option<&'static str>,
    logprobs: Option<()>,
}

impl<'a> ChoiceOut<'a> {
    pub fn new(index: u32, message: MessageOut<'a>, finish_reason: Option<&'static str>) -> Self {
        ChoiceOut {
            index,
            message,
            finish_reason,
            logprobs: None,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    role: &'static str,
    content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<CallOut<'a>>>,
}

impl<'a> MessageOut<'a> {
    /// The assistant's message (`tool_calls` absent when it made none).
    pub fn assistant(
        content: Option<TextOut<'a>>,
        reasoning_content: Option<TextOut<'a>>,
        calls: Vec<CallOut<'a>>,
    ) -> Self {
        MessageOut {
            role: "assistant",
            content,
            reasoning_content,
            tool_calls: (!calls.is_empty()).then_some(calls),
        }
    }
}

/// A function call of the answer.
#[derive(Serialize)]
pub(crate) struct CallOut<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    /// the call's input, JSON text, as a string
    arguments: &'a str,
}

impl<'a> CallOut<'a> {
    /// The call `id` of function `name` with `arguments` (JSON text).
    pub fn function(id: impl Into<Cow<'a, str>>, name: &'a str, arguments: &'a str) -> Self {
        CallOut {
            id: id.into(),
            kind: "function",
            function: FunctionOut { name, arguments },
        }
    }
}
