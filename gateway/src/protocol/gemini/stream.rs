//! Gemini's stream (`streamGenerateContent?alt=sse`: each event's data a
//! `GenerateContentResponse` holding what came since the last) rebuilt as
//! OpenAI `chat.completion.chunk` events, event by event: one chunk per
//! candidate and event, its first with the role; texts as `content`, thoughts
//! as `reasoning_content`, each function call (Gemini sends them whole) as one
//! `tool_calls` delta; the finish reason on the chunk of the event that
//! brought it. Gemini's stream has no end marker: when it ends after a finish
//! reason, the usage chunk (when the client asked for it: the last
//! `usageMetadata`, which Gemini repeats as it grows) and `data: [DONE]`.

use super::super::chat::chunks::{Chunks, Delta, ToolDelta};
use super::super::write::TextOut;
use super::super::{Events, Read};
use super::answer::openai_usage;
use super::error::error_to_chat;
use super::read::{call_id, finish_reason, note_ids, CandidateIn, ResponseIn};
use bytes::{BufMut, BytesMut};

/// Most candidates one stream is followed through (Gemini gives at most 8).
const MAX_CANDIDATES: usize = 16;
/// Most tool calls one candidate is followed through (more get no deltas).
const MAX_TOOL_CALLS: u32 = 1024;

/// Gemini events -> OpenAI chunks, for one stream.
pub struct GeminiToChat {
    chunks: Chunks,
    /// the chunks' id and model are set
    named: bool,
    /// per candidate index: its role chunk is written, and how many tool
    /// calls it made
    candidates: Vec<(bool, u32)>,
    /// a finish reason arrived: the answer is complete
    stopped: bool,
}

impl GeminiToChat {
    /// `include_usage`: the client asked for the usage chunk
    /// (`stream_options.include_usage`; its figures with the thoughts in
    /// `completion_tokens_details.reasoning_tokens`).
    pub fn new(include_usage: bool) -> Self {
        GeminiToChat {
            chunks: Chunks::new(include_usage).with_usage(openai_usage),
            named: false,
            candidates: Vec::new(),
            stopped: false,
        }
    }

    /// Translates the data of one Gemini SSE event, reading it into `read`.
    pub fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        let Ok(r) = crate::json::from_bytes::<ResponseIn<'_>>(data) else {
            return;
        };
        if r.error.is_some() {
            out.put_slice(b"data: ");
            out.put_slice(&error_to_chat(data, 500));
            out.put_slice(b"\n\n");
            return;
        }
        if !self.named {
            self.named = true;
            let (id, model) = note_ids(read, &r);
            self.chunks.name(&id, &model);
        }
        if let Some(u) = &r.usage_metadata {
            read.usage = Some(u.normalised());
        }
        if r.blocked() {
            let delta = Delta {
                role: Some("assistant"),
                content: Some(TextOut::Str("")),
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
        let mut tools = Vec::new();
        for call in c.parts().iter().filter_map(|p| p.function_call.as_ref()) {
            if *calls >= MAX_TOOL_CALLS {
                break;
            }
            let arguments = TextOut::Str(call.arguments());
            tools.push(ToolDelta::start(
                *calls,
                Some(call_id().into()),
                Some(&call.name),
                arguments,
            ));
            *calls += 1;
        }
        let mut delta = Delta {
            content: TextOut::join(&texts, ""),
            reasoning_content: TextOut::join(&thoughts, ""),
            tool_calls: &tools,
            ..Delta::default()
        };
        if !*started {
            *started = true;
            delta.role = Some("assistant");
            delta.content.get_or_insert(TextOut::Str(""));
        }
        let finish = c
            .finish_reason
            .as_deref()
            .map(|f| finish_reason(f, *calls > 0));
        self.write(index, &delta, finish, read, out);
    }

    /// One chunk of choice `index` (none when `delta` and `finish` are
    /// empty); a finish reason read.
    fn write(
        &mut self,
        index: u32,
        delta: &Delta<'_>,
        finish: Option<&'static str>,
        read: &mut Read,
        out: &mut BytesMut,
    ) {
        if let Some(f) = finish {
            self.stopped = true;
            read.done = true;
            if index == 0 || read.finish_reason.is_none() {
                read.finish_reason = Some(f.to_string());
            }
        }
        self.chunks.write_choice(out, index, delta, finish);
    }

    /// The upstream stream ended (also when cut): when a finish reason came,
    /// the usage chunk and `[DONE]`; a cut answer is left cut.
    pub fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        if self.stopped {
            self.chunks.finish(read, out);
        }
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
