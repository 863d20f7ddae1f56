//! An OpenAI chat stream rebuilt as Anthropic events, chunk by chunk:
//! `message_start`, then content blocks (`thinking` from `reasoning_content`,
//! `text`, one `tool_use` per tool call) each opened, fed deltas and stopped
//! with consecutive indexes, and after `[DONE]` a `message_delta` carrying the
//! stop reason and usage, then `message_stop`.

use super::super::fields::nonempty;
use super::super::write::event;
use super::super::{openai, Read};
use super::read::stop_reason;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::wire::anthropic::{error_type, Usage as AnthropicUsage};
use std::borrow::Cow;

/// Most tool calls one answer is followed through (more get no deltas).
const MAX_TOOL_CALLS: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Thinking,
    Text,
    /// the tool call's place in [`ChatToMessages::tools`]
    Tool(usize),
}

/// OpenAI chunks -> Anthropic events, for one stream.
#[derive(Default)]
pub struct ChatToMessages {
    started: bool,
    /// the content block open now: its index and kind
    open: Option<(usize, Kind)>,
    /// the index of the next content block
    next: usize,
    /// (OpenAI tool call index, content block index, call id) of each tool call
    tools: Vec<(u32, usize, String)>,
    /// the upstream's finish reason, as Anthropic's stop reason
    finish: Option<&'static str>,
    /// `message_stop` is written
    stopped: bool,
}

impl ChatToMessages {
    pub fn new() -> Self {
        Self::default()
    }

    /// Translates the data of one OpenAI SSE event (`[DONE]` included),
    /// reading it into `read`.
    pub fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        openai::event(read, data, None);
        if data == b"[DONE]" {
            return self.finish(read, out);
        }
        let Ok(c) = serde_json::from_slice::<ChunkIn<'_>>(data) else {
            return;
        };
        if let Some(e) = c.error {
            let message = e.message.as_deref().unwrap_or("upstream error");
            return event(
                out,
                "error",
                &Event::Error {
                    error: ErrorOut {
                        kind: error_type(500),
                        message,
                    },
                },
            );
        }
        if !self.started {
            self.start(c.id.as_deref(), c.model.as_deref(), out);
        }
        let Some(choice) = c.choices.into_iter().next() else {
            return;
        };
        if let Some(d) = choice.delta {
            if let Some(t) = nonempty(d.reasoning_content.or(d.reasoning)) {
                let index = self.block(Kind::Thinking, None, out);
                let delta = DeltaOut::Thinking { thinking: t };
                event(
                    out,
                    "content_block_delta",
                    &Event::ContentBlockDelta { index, delta },
                );
            }
            if let Some(t) = nonempty(d.content) {
                let index = self.block(Kind::Text, None, out);
                let delta = DeltaOut::Text { text: t };
                event(
                    out,
                    "content_block_delta",
                    &Event::ContentBlockDelta { index, delta },
                );
            }
            for call in d.tool_calls.into_iter().flatten() {
                self.tool_call(call, out);
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(stop_reason(&f));
            self.close(out);
        }
    }

    /// The upstream stream ended (also when cut): when the answer was complete
    /// (a finish reason came) but `[DONE]` did not, the `message_delta` and
    /// `message_stop` still owed; a cut answer is left cut.
    pub fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        if self.finish.is_some() {
            self.finish(read, out);
        }
    }

    fn start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut BytesMut) {
        self.started = true;
        let message = MessageStart {
            id: id.unwrap_or_default(),
            kind: "message",
            role: "assistant",
            model: model.unwrap_or_default(),
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: AnthropicUsage {
                input_tokens: Some(0),
                output_tokens: Some(0),
                ..AnthropicUsage::default()
            },
        };
        event(out, "message_start", &Event::MessageStart { message });
    }

    fn tool_call(&mut self, call: ToolDeltaIn<'_>, out: &mut BytesMut) {
        let id = call.id.as_deref().filter(|id| !id.is_empty());
        // the call this delta continues: the last one under its index, unless
        // the delta names another id (providers that number every call 0)
        let known = self
            .tools
            .iter()
            .rposition(|t| t.0 == call.index)
            .and_then(|k| self.tools.get(k))
            .filter(|t| id.is_none_or(|id| t.2 == id))
            .map(|t| t.1);
        let index = match (known, id) {
            (Some(i), _) => i,
            (None, Some(id)) if self.tools.len() < MAX_TOOL_CALLS => {
                let name = call.function.as_ref().and_then(|f| f.name.as_deref());
                let tool = Some((id, name.unwrap_or_default()));
                let i = self.block(Kind::Tool(self.tools.len()), tool, out);
                self.tools.push((call.index, i, id.to_string()));
                i
            }
            _ => return,
        };
        if let Some(args) = nonempty(call.function.and_then(|f| f.arguments)) {
            let delta = DeltaOut::InputJson { partial_json: args };
            event(
                out,
                "content_block_delta",
                &Event::ContentBlockDelta { index, delta },
            );
        }
    }

    /// The index of the open block of `kind`, opening one (and closing the
    /// one open) when needed; `tool`: a tool call's id and name.
    fn block(&mut self, kind: Kind, tool: Option<(&str, &str)>, out: &mut BytesMut) -> usize {
        if let Some((i, k)) = self.open {
            if k == kind {
                return i;
            }
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((index, kind));
        let content_block = match (kind, tool) {
            (Kind::Thinking, _) => StartBlock::Thinking {
                thinking: "",
                signature: "",
            },
            (Kind::Tool(_), Some((id, name))) => StartBlock::ToolUse {
                id,
                name,
                input: Empty {},
            },
            _ => StartBlock::Text { text: "" },
        };
        let e = Event::ContentBlockStart {
            index,
            content_block,
        };
        event(out, "content_block_start", &e);
        index
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            event(
                out,
                "content_block_stop",
                &Event::ContentBlockStop { index },
            );
        }
    }

    fn finish(&mut self, read: &Read, out: &mut BytesMut) {
        if self.stopped {
            return;
        }
        if !self.started {
            self.start(read.chat_id.as_deref(), read.model.as_deref(), out);
        }
        self.stopped = true;
        self.close(out);
        let e = Event::MessageDelta {
            delta: Stop {
                stop_reason: self.finish.unwrap_or("end_turn"),
                stop_sequence: None,
            },
            usage: AnthropicUsage::from_normalised(&read.usage.unwrap_or_default()),
        };
        event(out, "message_delta", &e);
        event(out, "message_stop", &Event::MessageStop);
    }
}

// ---- OpenAI chunk, as read ----

#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<ChoiceIn<'a>>,
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    /// (vLLM's and OpenRouter's name for it)
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDeltaIn<'a>>>,
}

#[derive(Deserialize)]
struct ToolDeltaIn<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

// ---- Anthropic events, as written ----

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: MessageStart<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartBlock<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: DeltaOut<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: Stop,
        usage: AnthropicUsage,
    },
    MessageStop,
    Error {
        error: ErrorOut<'a>,
    },
}

#[derive(Serialize)]
struct MessageStart<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: AnthropicUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a RawValue },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a RawValue },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a RawValue },
}

#[derive(Serialize)]
struct Stop {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}
