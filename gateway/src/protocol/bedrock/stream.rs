//! A ConverseStream rebuilt as OpenAI `chat.completion.chunk` events, event by
//! event. Each event's data is `{"<event type>": <payload>}`, as the framing
//! ([`super::eventstream`]) makes of one eventstream message:
//!
//! | ConverseStream | OpenAI chunk |
//! |---|---|
//! | `messageStart` | `delta: {role: assistant, content: ""}` |
//! | `contentBlockStart` with `toolUse` | a tool call's id and name |
//! | `contentBlockDelta` `text` / `toolUse.input` / `reasoningContent.text` | `content` / the call's `arguments` / `reasoning_content` |
//! | `messageStop` | the chunk with `finish_reason` |
//! | `metadata` (after `messageStop`) | the usage chunk (when asked for), then `[DONE]` |
//! | an exception (`throttlingException`...) or the framing's `error` | an OpenAI error event; the stream ends |
//!
//! Every chunk carries a new id (Converse streams have none) and the model
//! the caller set in [`Read::model`] (`unknown` when it did not).

use super::super::chat::chunks::{Chunks, Delta, ToolDelta};
use super::super::fields::{raw_len, text};
use super::super::write::TextOut;
use super::super::{Events, Read};
use super::error::exception;
use super::read::{
    finish_reason, new_id, BlockDeltaIn, BlockStartIn, ExceptionIn, MessageStopIn, MetadataIn,
};
use crate::request_body::Fields;
use bytes::{BufMut, BytesMut};
use std::borrow::Cow;

/// Most tool calls one answer is followed through (more get no deltas).
const MAX_TOOL_CALLS: usize = 1024;

/// ConverseStream events -> OpenAI chunks, for one stream.
pub struct ConverseToChat {
    chunks: Chunks,
    /// the chunks' id and model are set
    named: bool,
    /// (Converse content block index, OpenAI tool call index) of toolUse blocks
    tools: Vec<(u64, u32)>,
    /// `messageStop` arrived: the answer is complete
    stopped: bool,
    /// an exception ended the stream: nothing more is written
    failed: bool,
}

impl ConverseToChat {
    /// `include_usage`: the client asked for the usage chunk
    /// (`stream_options.include_usage`).
    pub fn new(include_usage: bool) -> Self {
        ConverseToChat {
            chunks: Chunks::new(include_usage),
            named: false,
            tools: Vec::new(),
            stopped: false,
            failed: false,
        }
    }

    /// Translates one event's data, reading it into `read`.
    pub fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        if self.failed {
            return;
        }
        let Ok(fields) = serde_json::from_slice::<Fields<'_>>(data) else {
            return;
        };
        let Some((kind, payload)) = fields.0.first() else {
            return;
        };
        let payload = payload.get().as_bytes();
        if !self.named {
            self.named = true;
            let id = read.chat_id.get_or_insert_with(new_id);
            self.chunks
                .name(id, read.model.as_deref().unwrap_or("unknown"));
        }
        let tool;
        let mut delta = Delta::default();
        let mut finish = None;
        match kind.as_ref() {
            "messageStart" => {
                delta.role = Some("assistant");
                delta.content = Some(TextOut::Str(""));
            }
            "contentBlockStart" => {
                let Ok(b) = serde_json::from_slice::<BlockStartIn<'_>>(payload) else {
                    return;
                };
                let (Some(u), Some(index)) =
                    (b.start.and_then(|s| s.tool_use), b.content_block_index)
                else {
                    return;
                };
                if self.tools.len() >= MAX_TOOL_CALLS {
                    return;
                }
                let k = self.tools.len() as u32;
                self.tools.push((index, k));
                tool = [ToolDelta::start(
                    k,
                    Some(Cow::Borrowed(&*u.tool_use_id)),
                    Some(&u.name),
                    TextOut::Str(""),
                )];
                delta.tool_calls = &tool;
                return self.chunks.write(out, &delta, None);
            }
            "contentBlockDelta" => {
                let Ok(b) = serde_json::from_slice::<BlockDeltaIn<'_>>(payload) else {
                    return;
                };
                let Some(d) = b.delta else { return };
                if let Some(t) = text(d.text) {
                    read.output_bytes += raw_len(Some(t));
                    delta.content = Some(TextOut::Raw(t));
                } else if let Some(t) = d.reasoning_content.and_then(|r| text(r.text)) {
                    read.output_bytes += raw_len(Some(t));
                    delta.reasoning_content = Some(TextOut::Raw(t));
                } else if let Some(args) = d.tool_use.and_then(|u| text(u.input)) {
                    let Some(k) = self.tool(b.content_block_index) else {
                        return;
                    };
                    read.output_bytes += raw_len(Some(args));
                    tool = [ToolDelta::arguments(k, args)];
                    delta.tool_calls = &tool;
                    return self.chunks.write(out, &delta, None);
                }
            }
            "messageStop" => {
                let stop = serde_json::from_slice::<MessageStopIn<'_>>(payload).ok();
                let f = finish_reason(
                    stop.as_ref()
                        .and_then(|s| s.stop_reason.as_deref())
                        .unwrap_or(""),
                );
                read.finish_reason = Some(f.to_string());
                read.done = true;
                finish = Some(f);
                self.stopped = true;
            }
            "metadata" => {
                if let Ok(m) = serde_json::from_slice::<MetadataIn>(payload) {
                    if let Some(u) = m.usage {
                        read.usage = Some(u.normalised());
                    }
                }
                read.done = true;
                if self.stopped {
                    self.chunks.finish(read, out);
                }
                return;
            }
            k if k.ends_with("Exception") || k == "error" => {
                let e = serde_json::from_slice::<ExceptionIn<'_>>(payload).unwrap_or_default();
                self.failed = true;
                out.put_slice(b"data: ");
                out.put_slice(&exception(k, &e));
                out.put_slice(b"\n\n");
                return;
            }
            // contentBlockStop, and any later addition
            _ => return,
        }
        self.chunks.write(out, &delta, finish);
    }

    /// The upstream stream ended (also when cut): after `messageStop`, the
    /// usage chunk (when `metadata` gave usage) and `[DONE]` still owed; a cut
    /// answer is left cut, a failed one ended.
    pub fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        if self.stopped && !self.failed {
            self.chunks.finish(read, out);
        }
    }

    /// The OpenAI tool call index of Converse content block `index`.
    fn tool(&self, index: Option<u64>) -> Option<u32> {
        let index = index?;
        self.tools.iter().find(|t| t.0 == index).map(|t| t.1)
    }
}

impl Events for ConverseToChat {
    fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        ConverseToChat::event(self, data, read, out);
    }
    fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        ConverseToChat::end(self, read, out);
    }
}
