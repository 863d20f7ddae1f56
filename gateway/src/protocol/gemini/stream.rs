//! Gemini's stream (`streamGenerateContent?alt=sse`: each event's data a
//! `GenerateContentResponse` holding what came since the last) rebuilt as
//! OpenAI `chat.completion.chunk` events, event by event: one chunk per
//! candidate and event, its first with the role; texts as `content`, thoughts
//! as `reasoning_content`, each function call (Gemini sends them whole) as one
//! `tool_calls` delta; the finish reason on the chunk of the event that
//! brought it. Gemini's stream has no end marker: when it ends after a finish
//! reason, the usage chunk (when the client asked for it: the last
//! `usageMetadata`, which Gemini repeats as it grows) and `data: [DONE]`.

use super::super::write::{data as write_data, now_secs, TextOut};
use super::super::{Events, Read};
use super::answer::openai_usage;
use super::error::error_to_chat;
use super::read::{call_id, finish_reason, note_ids, CandidateIn, ResponseIn};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use shared::wire::openai::Usage as OpenAiUsage;

/// Most candidates one stream is followed through (Gemini gives at most 8).
const MAX_CANDIDATES: usize = 16;
/// Most tool calls one candidate is followed through (more get no deltas).
const MAX_TOOL_CALLS: u32 = 1024;

/// Gemini events -> OpenAI chunks, for one stream.
pub struct GeminiToChat {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    /// per candidate index: its role chunk is written, and how many tool
    /// calls it made
    candidates: Vec<(bool, u32)>,
    /// a finish reason arrived: the answer is complete
    stopped: bool,
    /// the usage chunk and `[DONE]` are written
    finished: bool,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[{"index":`,
    /// the start of every chunk of this stream, written once
    head: Vec<u8>,
}

impl GeminiToChat {
    /// `include_usage`: the client asked for the usage chunk
    /// (`stream_options.include_usage`).
    pub fn new(include_usage: bool) -> Self {
        GeminiToChat {
            include_usage,
            id: String::new(),
            model: String::new(),
            created: now_secs(),
            candidates: Vec::new(),
            stopped: false,
            finished: false,
            head: Vec::new(),
        }
    }

    /// Translates the data of one Gemini SSE event, reading it into `read`.
    pub fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        let Ok(r) = serde_json::from_slice::<ResponseIn<'_>>(data) else {
            return;
        };
        if r.error.is_some() {
            out.put_slice(b"data: ");
            out.put_slice(&error_to_chat(data, 500));
            out.put_slice(b"\n\n");
            return;
        }
        if self.head.is_empty() {
            let (id, model) = note_ids(read, &r);
            (self.id, self.model) = (id, model);
            self.head = self.chunk_head();
        }
        if let Some(u) = &r.usage_metadata {
            read.usage = Some(u.normalised());
        }
        if r.blocked() {
            let delta = Delta {
                role: Some("assistant"),
                content: Some(TextOut::Static("")),
                ..Delta::default()
            };
            self.candidates
                .resize(self.candidates.len().max(1), (true, 0));
            return self.write(0, &delta, Some("content_filter"), read, out);
        }
        for (position, c) in r.candidates.iter().enumerate() {
            let index = c.index.unwrap_or(position as u32);
            self.candidate(index, c, read, out);
        }
    }

    fn candidate(&mut self, index: u32, c: &CandidateIn<'_>, read: &mut Read, out: &mut BytesMut) {
        let i = index as usize;
        if i >= MAX_CANDIDATES {
            return;
        }
        if self.candidates.len() <= i {
            self.candidates.resize(i + 1, (false, 0));
        }
        let (texts, thoughts, bytes) = c.texts();
        read.output_bytes += bytes;
        let (started, calls) = &mut self.candidates[i];
        let mut delta = Delta {
            content: TextOut::join(&texts, ""),
            reasoning_content: TextOut::join(&thoughts, ""),
            ..Delta::default()
        };
        if !*started {
            *started = true;
            delta.role = Some("assistant");
            delta.content.get_or_insert(TextOut::Static(""));
        }
        for call in c.parts().iter().filter_map(|p| p.function_call.as_ref()) {
            if *calls >= MAX_TOOL_CALLS {
                break;
            }
            delta.tool_calls.push(ToolDelta {
                index: *calls,
                id: call_id(),
                kind: "function",
                function: FunctionDelta {
                    name: &call.name,
                    arguments: call.arguments(),
                },
            });
            *calls += 1;
        }
        let finish = c
            .finish_reason
            .as_deref()
            .map(|f| finish_reason(f, *calls > 0));
        if delta.is_empty() && finish.is_none() {
            return;
        }
        self.write(index, &delta, finish, read, out);
    }

    /// One chunk: the head, the choice's index, its delta and finish reason.
    fn write(
        &mut self,
        index: u32,
        delta: &Delta<'_>,
        finish: Option<&'static str>,
        read: &mut Read,
        out: &mut BytesMut,
    ) {
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
                self.stopped = true;
                read.done = true;
                if index == 0 || read.finish_reason.is_none() {
                    read.finish_reason = Some(f.to_string());
                }
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

    /// The upstream stream ended (also when cut): when a finish reason came,
    /// the usage chunk and `[DONE]`; a cut answer is left cut.
    pub fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        if !self.stopped || self.finished {
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
                        usage: openai_usage(u),
                    },
                );
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

impl Events for GeminiToChat {
    fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        GeminiToChat::event(self, data, read, out);
    }
    fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        GeminiToChat::end(self, read, out);
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

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<TextOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolDelta<'a>>,
}

impl Delta<'_> {
    fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.content.is_none()
            && self.reasoning_content.is_none()
            && self.tool_calls.is_empty()
    }
}

#[derive(Serialize)]
struct ToolDelta<'a> {
    index: u32,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    name: &'a str,
    arguments: &'a str,
}
