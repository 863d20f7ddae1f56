//! An Anthropic stream rebuilt as OpenAI `chat.completion.chunk` events, event
//! by event: every chunk carries the message's id; text, thinking
//! (`reasoning_content`) and tool input arrive as deltas, the stop reason as
//! `finish_reason`, and after `message_stop` the usage chunk (when the client
//! asked for it) and `data: [DONE]`.

use super::super::chat::error::error_body;
use super::super::fields::{nonempty, text};
use super::super::write::{data as write_data, now_secs, openai_usage, TextOut};
use super::super::Read;
use super::read::{finish_reason, note_event, EventIn};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use shared::wire::openai::Usage as OpenAiUsage;

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

/// The OpenAI `chat.completion.chunk` events of one translated stream: each
/// delta as a chunk with the stream's id, model and time, and at the end the
/// usage chunk (when the client asked for it) and `data: [DONE]`.
pub(crate) struct Chunks {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    /// the usage chunk and `[DONE]` are written
    finished: bool,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[{"index":0,"delta":`,
    /// the start of every chunk of this stream, written once
    head: Vec<u8>,
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
                delta.content = Some(TextOut::Static(""));
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
                        delta.tool_calls = Some([ToolDelta {
                            index: k,
                            id: b.id.as_deref(),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: b.name.as_deref(),
                                arguments: TextOut::Static(""),
                            },
                        }]);
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
                        delta.tool_calls = Some([ToolDelta {
                            index: k,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: TextOut::Raw(args),
                            },
                        }]);
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

impl Chunks {
    pub(crate) fn new(include_usage: bool) -> Self {
        Chunks {
            include_usage,
            id: String::new(),
            model: String::new(),
            created: now_secs(),
            finished: false,
            head: Vec::new(),
        }
    }

    /// The stream's id and model (in the chunks written after).
    pub(crate) fn name(&mut self, id: &str, model: &str) {
        self.id = id.to_string();
        self.model = model.to_string();
        self.head.clear();
    }

    /// Writes one chunk of `delta` and `finish` (none when both are empty).
    pub(crate) fn write(&mut self, out: &mut BytesMut, delta: &Delta<'_>, finish: Option<&str>) {
        if delta.is_empty() && finish.is_none() {
            return;
        }
        if self.head.is_empty() {
            self.head = self.chunk_head();
        }
        // the chunk: its head, the delta, the finish reason
        out.put_slice(&self.head);
        let _ = serde_json::to_writer(out.writer(), delta);
        out.put_slice(b",\"finish_reason\":");
        match finish {
            Some(f) => {
                out.put_slice(b"\"");
                out.put_slice(f.as_bytes());
                out.put_slice(b"\"");
            }
            None => out.put_slice(b"null"),
        }
        out.put_slice(b"}]}\n\n");
    }

    /// `data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,
    /// "choices":[{"index":0,"delta":`
    fn chunk_head(&self) -> Vec<u8> {
        let mut head = b"data: {\"id\":".to_vec();
        let _ = serde_json::to_writer(&mut head, &self.id);
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        head.extend_from_slice(self.created.to_string().as_bytes());
        head.extend_from_slice(b",\"model\":");
        let _ = serde_json::to_writer(&mut head, &self.model);
        head.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        head
    }

    /// The usage chunk (when asked for and known) and `[DONE]`, once.
    pub(crate) fn finish(&mut self, read: &Read, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.include_usage {
            if let Some(u) = &read.usage {
                write_data(
                    out,
                    &Chunk {
                        id: &self.id,
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: &[],
                        usage: Some(openai_usage(u)),
                    },
                );
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_calls: Option<[ToolDelta<'a>; 1]>,
}

impl Delta<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.content.is_none()
            && self.reasoning_content.is_none()
            && self.tool_calls.is_none()
    }
}

#[derive(Serialize)]
pub(crate) struct ToolDelta<'a> {
    pub(crate) index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<&'static str>,
    pub(crate) function: FunctionDelta<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    pub(crate) arguments: TextOut<'a>,
}
