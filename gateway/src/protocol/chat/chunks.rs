//! The OpenAI `chat.completion.chunk` events of one stream translated from
//! another dialect: each delta a chunk with the stream's id, model and time,
//! and at the end the usage chunk (when the client asked for it) and
//! `data: [DONE]`.

use super::super::write::{data as write_data, now_secs, openai_usage, TextOut};
use super::super::Read;
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use shared::usage::Usage;
use shared::wire::openai::Usage as OpenAiUsage;
use std::borrow::Cow;

/// The chunks of one translated stream.
pub(crate) struct Chunks {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    /// the usage chunk's figures from the normalised ones
    usage: fn(&Usage) -> OpenAiUsage,
    /// the usage chunk and `[DONE]` are written
    finished: bool,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[{"index":`,
    /// the start of every chunk of this stream, written once
    head: Vec<u8>,
}

impl Chunks {
    /// `include_usage`: the client asked for the usage chunk
    /// (`stream_options.include_usage`).
    pub(crate) fn new(include_usage: bool) -> Self {
        Chunks {
            include_usage,
            id: String::new(),
            model: String::new(),
            created: now_secs(),
            usage: openai_usage,
            finished: false,
            head: Vec::new(),
        }
    }

    /// The usage chunk's figures made by `usage` (instead of [`openai_usage`]).
    pub(crate) fn with_usage(mut self, usage: fn(&Usage) -> OpenAiUsage) -> Self {
        self.usage = usage;
        self
    }

    /// The stream's id and model (in the chunks written after).
    pub(crate) fn name(&mut self, id: &str, model: &str) {
        self.id = id.to_string();
        self.model = model.to_string();
        self.head.clear();
    }

    /// Writes one chunk of `delta` and `finish` for the first choice (none
    /// when both are empty).
    pub(crate) fn write(&mut self, out: &mut BytesMut, delta: &Delta<'_>, finish: Option<&str>) {
        self.write_choice(out, 0, delta, finish);
    }

    /// Writes one chunk of `delta` and `finish` for choice `index` (none when
    /// both are empty).
    pub(crate) fn write_choice(
        &mut self,
        out: &mut BytesMut,
        index: u32,
        delta: &Delta<'_>,
        finish: Option<&str>,
    ) {
        if delta.is_empty() && finish.is_none() {
            return;
        }
        if self.head.is_empty() {
            self.head = self.chunk_head();
        }
        // the chunk: its head, the choice's index, the delta, the finish reason
        out.put_slice(&self.head);
        out.put_slice(itoa::Buffer::new().format(index).as_bytes());
        out.put_slice(b",\"delta\":");
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
    /// "choices":[{"index":`
    fn chunk_head(&self) -> Vec<u8> {
        let mut head = b"data: {\"id\":".to_vec();
        let _ = serde_json::to_writer(&mut head, &self.id);
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        head.extend_from_slice(itoa::Buffer::new().format(self.created).as_bytes());
        head.extend_from_slice(b",\"model\":");
        let _ = serde_json::to_writer(&mut head, &self.model);
        head.extend_from_slice(b",\"choices\":[{\"index\":");
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
                    &UsageChunk {
                        id: &self.id,
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: [],
                        usage: (self.usage)(u),
                    },
                );
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

#[derive(Serialize)]
struct UsageChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [(); 0],
    usage: OpenAiUsage,
}

/// One chunk's `delta`.
#[derive(Serialize, Default)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub(crate) tool_calls: &'a [ToolDelta<'a>],
}

impl Delta<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.content.is_none()
            && self.reasoning_content.is_none()
            && self.tool_calls.is_empty()
    }
}

/// A tool call's part in a delta: its start (id, name), or more of its
/// arguments.
#[derive(Serialize)]
pub(crate) struct ToolDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: TextOut<'a>,
}

impl<'a> ToolDelta<'a> {
    /// Call `index` begins: its `id`, function `name` (each left out when
    /// unknown) and `arguments` so far.
    pub(crate) fn start(
        index: u32,
        id: Option<Cow<'a, str>>,
        name: Option<&'a str>,
        arguments: TextOut<'a>,
    ) -> Self {
        ToolDelta {
            index,
            id,
            kind: Some("function"),
            function: FunctionDelta { name, arguments },
        }
    }

    /// More of call `index`'s arguments (a raw JSON string).
    pub(crate) fn arguments(index: u32, arguments: &'a serde_json::value::RawValue) -> Self {
        ToolDelta {
            index,
            id: None,
            kind: None,
            function: FunctionDelta {
                name: None,
                arguments: TextOut::Raw(arguments),
            },
        }
    }
}
