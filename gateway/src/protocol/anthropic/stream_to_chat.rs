//! An Anthropic stream rebuilt as OpenAI `chat.completion.chunk` events, event
//! by event: every chunk carries the message's id; text, thinking
//! (`reasoning_content`) and tool input arrive as deltas, the stop reason as
//! `finish_reason`, and after `message_stop` the usage chunk (when the client
//! asked for it) and `data: [DONE]`.

use super::super::chat::chunks::{Chunks, Delta, ToolDelta};
use super::super::chat::error::error_body;
use super::super::fields::{nonempty, text};
use super::super::write::TextOut;
use super::super::Read;
use super::read::{finish_reason, note_event, EventIn};
use bytes::{BufMut, BytesMut};
use std::borrow::Cow;

/// Most tool calls one answer is followed through (more get no deltas).
const MAX_TOOL_CALLS: usize = 1024;

/// Anthropic events -> OpenAI chunks, for one stream.
pub struct MessagesToChat {
    chunks: Chunks,
    /// (Anthropic content block index, OpenAI tool call index) of tool_use blocks
    tools: Vec<(usize, u32)>,
    /// a stop reason arrived: the answer is complete
    stopped: bool,
}

impl MessagesToChat {
    /// `include_usage`: the client asked for the usage chunk
    /// (`stream_options.include_usage`).
    pub fn new(include_usage: bool) -> Self {
        MessagesToChat {
            chunks: Chunks::new(include_usage),
            tools: Vec::new(),
            stopped: false,
        }
    }

    /// Translates the data of one Anthropic SSE event, reading it into `read`.
    pub fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        let Ok(e) = serde_json::from_slice::<EventIn<'_>>(data) else {
            return;
        };
        note_event(read, &e);
        let tool;
        let mut delta = Delta::default();
        let mut finish = None;
        match e.kind.as_ref() {
            "message_start" => {
                if let Some(m) = &e.message {
                    self.chunks.name(
                        m.id.as_deref().unwrap_or_default(),
                        m.model.as_deref().unwrap_or_default(),
                    );
                }
                delta.role = Some("assistant");
                delta.content = Some(TextOut::Str(""));
            }
            "content_block_start" => {
                let (Some(b), Some(index)) = (&e.content_block, e.index) else {
                    return;
                };
                match b.kind.as_ref() {
                    "text" => delta.content = nonempty(b.text).map(TextOut::Raw),
                    "thinking" => delta.reasoning_content = nonempty(b.thinking).map(TextOut::Raw),
                    "tool_use" if self.tools.len() < MAX_TOOL_CALLS => {
                        let k = self.tools.len() as u32;
                        self.tools.push((index, k));
                        tool = [ToolDelta::start(
                            k,
                            b.id.as_deref().map(Cow::Borrowed),
                            b.name.as_deref(),
                            TextOut::Str(""),
                        )];
                        delta.tool_calls = &tool;
                    }
                    _ => return,
                }
            }
            "content_block_delta" => {
                let Some(d) = &e.delta else { return };
                match d.kind.as_deref() {
                    Some("text_delta") => delta.content = text(d.text).map(TextOut::Raw),
                    Some("thinking_delta") => {
                        delta.reasoning_content = text(d.thinking).map(TextOut::Raw)
                    }
                    Some("input_json_delta") => {
                        let (Some(k), Some(args)) = (self.tool(e.index), text(d.partial_json))
                        else {
                            return;
                        };
                        tool = [ToolDelta::arguments(k, args)];
                        delta.tool_calls = &tool;
                    }
                    _ => return,
                }
            }
            "message_delta" => {
                let Some(s) = e.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) else {
                    return;
                };
                finish = Some(finish_reason(s));
                self.stopped = true;
            }
            "message_stop" => return self.chunks.finish(read, out),
            "error" => {
                let err = e.error.as_ref();
                let kind = err.and_then(|e| e.kind.as_deref()).unwrap_or("api_error");
                let message = err.and_then(|e| e.message.as_deref()).unwrap_or_default();
                out.put_slice(b"data: ");
                out.put_slice(&error_body(message, kind, None));
                out.put_slice(b"\n\n");
                return;
            }
            _ => return,
        }
        self.chunks.write(out, &delta, finish);
    }

    /// The upstream stream ended (also when cut): when the answer was complete
    /// (a stop reason came) but `message_stop` did not, the usage chunk and
    /// `[DONE]` still owed; a cut answer is left cut.
    pub fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        if self.stopped {
            self.chunks.finish(read, out);
        }
    }

    /// The OpenAI tool call index of Anthropic content block `index`.
    fn tool(&self, index: Option<usize>) -> Option<u32> {
        let index = index?;
        self.tools.iter().find(|t| t.0 == index).map(|t| t.1)
    }
}
