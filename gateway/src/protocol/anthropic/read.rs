//! Reading Anthropic answers and stream events into [`Read`] (the pass-through
//! path, and the translations to OpenAI's shape), and the Anthropic answer and
//! event types as read: texts stay raw JSON strings, so they are counted and
//! passed on without being unescaped.

use super::super::fields::raw_len;
use super::super::Read;
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::wire::anthropic::Usage as WireUsage;
use std::borrow::Cow;

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and any later addition
        _ => "stop",
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub(super) fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Reads a whole Anthropic JSON answer (a `message`).
pub fn read_answer(read: &mut Read, body: &[u8]) {
    if let Ok(m) = crate::json::from_bytes::<MessageIn<'_>>(body) {
        note_message(read, &m);
    }
}

pub(super) fn note_message(read: &mut Read, m: &MessageIn<'_>) {
    note_ids(read, m.id.as_deref(), m.model.as_deref());
    if let Some(u) = &m.usage {
        read.usage = Some(u.normalised());
    }
    for b in &m.content {
        read.output_bytes +=
            raw_len(b.text) + raw_len(b.thinking) + b.input.map_or(0, |i| i.get().len());
    }
    if let Some(s) = &m.stop_reason {
        read.finish_reason = Some(finish_reason(s).to_string());
    }
}

/// Reads the data of one Anthropic SSE event: `message_stop` ends the stream.
pub fn read_event(read: &mut Read, data: &[u8]) {
    if let Ok(e) = crate::json::from_bytes::<EventIn<'_>>(data) {
        note_event(read, &e);
    }
}

pub(super) fn note_event(read: &mut Read, e: &EventIn<'_>) {
    match e.kind.as_ref() {
        "content_block_delta" => {
            if let Some(d) = &e.delta {
                read.output_bytes +=
                    raw_len(d.text) + raw_len(d.thinking) + raw_len(d.partial_json);
            }
        }
        "message_start" => {
            if let Some(m) = &e.message {
                note_message(read, m);
            }
        }
        "content_block_start" => {
            if let Some(b) = &e.content_block {
                read.output_bytes += raw_len(b.text) + raw_len(b.thinking);
            }
        }
        "message_delta" => {
            if let Some(u) = &e.usage {
                read.usage = Some(u.over(read.usage.as_ref()));
            }
            if let Some(s) = e.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                read.finish_reason = Some(finish_reason(s).to_string());
            }
        }
        "message_stop" => read.done = true,
        _ => {}
    }
}

pub(super) fn note_ids(read: &mut Read, id: Option<&str>, model: Option<&str>) {
    if read.chat_id.is_none() {
        read.chat_id = id.map(str::to_string);
    }
    if read.model.is_none() {
        read.model = model.map(str::to_string);
    }
}

/// An Anthropic `message` (a whole answer, or the one `message_start` carries).
#[derive(Deserialize)]
pub(super) struct MessageIn<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Vec<BlockIn<'a>>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

/// A content block of an answer (or a `content_block_start`).
#[derive(Deserialize)]
pub(super) struct BlockIn<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub thinking: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
}

/// One stream event.
#[derive(Deserialize)]
pub(super) struct EventIn<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub message: Option<MessageIn<'a>>,
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(borrow, default)]
    pub content_block: Option<BlockIn<'a>>,
    #[serde(borrow, default)]
    pub delta: Option<DeltaIn<'a>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(borrow, default)]
    pub error: Option<ErrorIn<'a>>,
}

/// A `content_block_delta`'s or a `message_delta`'s delta.
#[derive(Deserialize)]
pub(super) struct DeltaIn<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub thinking: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub partial_json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// An `error` event's or an error body's `error`.
#[derive(Deserialize)]
pub(super) struct ErrorIn<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
}
