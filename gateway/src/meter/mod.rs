//! Reads usage from a copy of the answer without holding it back: SSE events are
//! parsed as they pass (id, model, content size, usage), JSON bodies once complete.
//! When the gateway itself asked the upstream for `include_usage`, the usage-only
//! chunk is cut out before the client sees it. Frames are forwarded as the same
//! `Bytes` whenever nothing has to be removed.

mod scan;

use bytes::{Bytes, BytesMut};
use scan::{event_end, finish_reason, is_plain_delta, text_bytes};
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::usage::Usage;
use std::borrow::Cow;

/// An SSE event longer than this ends metering of the stream's events (and their
/// holding back), so odd framing can never buffer a stream.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Bodies larger than this are passed through but not parsed for usage.
const MAX_JSON_METER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Meter {
    sse: bool,
    /// cut the usage-only chunk (the client did not ask for it)
    strip_usage: bool,
    /// SSE: bytes of an event not complete yet (copied only when an event spans frames)
    partial: BytesMut,
    /// JSON: the body so far (refcounted frames, no copy)
    parts: Vec<Bytes>,
    json_len: usize,
    json_overflow: bool,
    pub chat_id: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// bytes of generated text seen, for estimating when no usage arrives
    pub output_bytes: usize,
    pub finish_reason: Option<String>,
    /// `data: [DONE]` seen (or `response.completed`)
    pub done: bool,
    /// the route's `ai_log` attributes that read the answer (stream events or the
    /// JSON body), fed from the same copy
    pub capture: Option<Box<crate::telemetry::attributes::Collected>>,
}

impl Meter {
    pub fn new(sse: bool, strip_usage: bool) -> Meter {
        Meter {
            sse,
            strip_usage: sse && strip_usage,
            ..Meter::default()
        }
    }

    pub fn is_sse(&self) -> bool {
        self.sse
    }

    /// Takes one frame; returns what to forward (None: nothing this time).
    pub fn on_frame(&mut self, data: Bytes) -> Option<Bytes> {
        if !self.sse {
            self.json_len += data.len();
            if self.json_len <= MAX_JSON_METER_BYTES {
                self.parts.push(data.clone());
            } else {
                self.json_overflow = true;
                self.parts.clear();
            }
            return Some(data);
        }
        if self.partial.is_empty() {
            // Fast path: the frame starts at an event boundary.
            let (end, drops) = self.scan(&data);
            if end < data.len() {
                self.partial.extend_from_slice(&data[end..]);
            }
            if !self.strip_usage {
                return Some(data);
            }
            return Some(cut(&data, end, &drops)).filter(|b| !b.is_empty());
        }
        if self.partial.len() + data.len() > MAX_EVENT_BYTES {
            // Not SSE as we know it (no event end in sight): stop holding bytes back.
            self.strip_usage = false;
            let mut held = std::mem::take(&mut self.partial);
            held.extend_from_slice(&data);
            return Some(held.freeze());
        }
        self.partial.extend_from_slice(&data);
        let buf = std::mem::take(&mut self.partial).freeze();
        let (end, drops) = self.scan(&buf);
        if end < buf.len() {
            self.partial.extend_from_slice(&buf[end..]);
        }
        if !self.strip_usage {
            return Some(data);
        }
        Some(cut(&buf, end, &drops)).filter(|b| !b.is_empty())
    }

    /// At the end of the body: parses a JSON answer; returns SSE bytes still held back.
    pub fn finish(&mut self) -> Option<Bytes> {
        if !self.sse {
            if !self.json_overflow && !self.parts.is_empty() {
                let parts = std::mem::take(&mut self.parts);
                let whole = if parts.len() == 1 {
                    parts.into_iter().next().unwrap_or_default()
                } else {
                    let mut b = BytesMut::with_capacity(self.json_len);
                    for p in &parts {
                        b.extend_from_slice(p);
                    }
                    b.freeze()
                };
                self.read_json(&whole);
            }
            return None;
        }
        if self.partial.is_empty() {
            return None;
        }
        // An unterminated last event: meter it, and forward it when it was held back.
        let rest = std::mem::take(&mut self.partial).freeze();
        self.event(&rest);
        self.strip_usage.then_some(rest)
    }

    /// Meters the complete events at the start of `buf`; returns the end of the last
    /// complete event and the ranges to cut.
    fn scan(&mut self, buf: &[u8]) -> (usize, Vec<(usize, usize)>) {
        let mut drops = Vec::new();
        let mut start = 0;
        while let Some(end) = event_end(buf, start) {
            if self.event(&buf[start..end]) && self.strip_usage {
                drops.push((start, end));
            }
            start = end;
        }
        (start, drops)
    }

    /// Meters one SSE event; true when it is the usage-only chunk.
    fn event(&mut self, ev: &[u8]) -> bool {
        let mut data: Cow<'_, [u8]> = Cow::Borrowed(&[]);
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', ev).chain(std::iter::once(ev.len())) {
            let line = &ev[start.min(end)..end];
            start = end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(rest) = line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                data = if data.is_empty() {
                    Cow::Borrowed(rest)
                } else {
                    let mut joined = data.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(rest);
                    Cow::Owned(joined)
                };
            }
        }
        if data.is_empty() {
            return false;
        }
        if &*data == b"[DONE]" {
            self.done = true;
            return false;
        }
        if let Some(c) = self.capture.as_mut().filter(|c| c.wants_stream()) {
            c.stream_event(&data);
        }
        if self.chat_id.is_some() && is_plain_delta(&data) {
            // The common chunk of a stream: only its text size matters here.
            self.output_bytes += text_bytes(&data);
            if let Some(f) = finish_reason(&data) {
                self.finish_reason = Some(f);
            }
            return false;
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(&data) else {
            return false;
        };
        self.note_ids(chunk.id.as_deref(), chunk.model.as_deref());
        let mut usage_only = false;
        if let Some(choices) = &chunk.choices {
            for c in choices {
                self.note_choice(c);
            }
            usage_only = choices.is_empty() && chunk.usage.is_some();
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.to_usage());
        }
        // Responses API stream events.
        if let Some(delta) = &chunk.delta {
            self.output_bytes += delta.len();
        }
        if let Some(resp) = &chunk.response {
            self.note_ids(resp.id.as_deref(), resp.model.as_deref());
            if let Some(u) = &resp.usage {
                self.usage = Some(u.to_usage());
            }
            if chunk.kind.as_deref() == Some("response.completed") {
                self.done = true;
            }
        }
        usage_only
    }

    /// Text size and finish reason of one choice (a stream delta or a whole message).
    fn note_choice(&mut self, c: &Choice<'_>) {
        for m in [&c.delta, &c.message].into_iter().flatten() {
            self.output_bytes += m.content.as_deref().map_or(0, str::len)
                + m.reasoning_content.as_deref().map_or(0, str::len)
                + m.tool_calls.map_or(0, |t| t.get().len());
        }
        self.output_bytes += c.text.as_deref().map_or(0, str::len);
        if let Some(f) = &c.finish_reason {
            self.finish_reason = Some(f.to_string());
        }
    }

    fn note_ids(&mut self, id: Option<&str>, model: Option<&str>) {
        if self.chat_id.is_none() {
            self.chat_id = id.map(str::to_string);
        }
        if self.model.is_none() {
            self.model = model.map(str::to_string);
        }
    }

    fn read_json(&mut self, body: &[u8]) {
        if let Some(c) = self.capture.as_mut().filter(|c| c.wants_response_body()) {
            c.response_body(body);
        }
        let Ok(b) = serde_json::from_slice::<Whole<'_>>(body) else {
            return;
        };
        self.note_ids(b.id.as_deref(), b.model.as_deref());
        if let Some(u) = &b.usage {
            self.usage = Some(u.to_usage());
        }
        for c in b.choices.iter().flatten() {
            self.note_choice(c);
        }
        if let Some(out) = b.output {
            self.output_bytes += out.get().len();
        }
    }
}

/// `buf[..end]` without the `drops` ranges, sharing memory where possible.
fn cut(buf: &Bytes, end: usize, drops: &[(usize, usize)]) -> Bytes {
    if drops.is_empty() {
        return buf.slice(..end);
    }
    let mut out = BytesMut::with_capacity(end);
    let mut at = 0;
    for &(s, e) in drops {
        out.extend_from_slice(&buf[at..s]);
        at = e;
    }
    out.extend_from_slice(&buf[at..end]);
    out.freeze()
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    response: Option<Box<Whole<'a>>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Message<'a>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// A whole JSON answer (chat, completion, embeddings, or a Responses object).
#[derive(Deserialize)]
struct Whole<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    output: Option<&'a RawValue>,
}

/// Chat/completions (`prompt_tokens`...) and Responses (`input_tokens`...) usage.
#[derive(Deserialize, Default)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default, alias = "input_tokens_details")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, alias = "output_tokens_details")]
    completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl RawUsage {
    fn to_usage(&self) -> Usage {
        let prompt = self.prompt_tokens.or(self.input_tokens).unwrap_or(0);
        let completion = self.completion_tokens.or(self.output_tokens).unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_tokens
                .unwrap_or(prompt.saturating_add(completion)),
            cached_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .or(self.prompt_cache_hit_tokens)
                .unwrap_or(0),
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"},\"finish_reason\":null}]}\n\n";
    const FINISH: &str = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    const USAGE: &str = "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn run(m: &mut Meter, frames: &[&str]) -> String {
        let mut out = Vec::new();
        for f in frames {
            if let Some(b) = m.on_frame(Bytes::copy_from_slice(f.as_bytes())) {
                out.extend_from_slice(&b);
            }
        }
        if let Some(b) = m.finish() {
            out.extend_from_slice(&b);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strips_usage_chunk_and_reads_usage() {
        let mut m = Meter::new(true, true);
        let out = run(&mut m, &[CHUNK, FINISH, USAGE, DONE]);
        assert_eq!(out, format!("{CHUNK}{FINISH}{DONE}"));
        let u = m.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (7, 3, 10)
        );
        assert_eq!((u.cached_tokens, u.reasoning_tokens), (2, 1));
        assert_eq!(m.chat_id.as_deref(), Some("c1"));
        assert_eq!(m.model.as_deref(), Some("m"));
        assert_eq!(m.finish_reason.as_deref(), Some("stop"));
        assert_eq!(m.output_bytes, 5);
        assert!(m.done);
    }

    #[test]
    fn keeps_usage_chunk_when_client_asked() {
        let mut m = Meter::new(true, false);
        let out = run(&mut m, &[CHUNK, USAGE, DONE]);
        assert_eq!(out, format!("{CHUNK}{USAGE}{DONE}"));
        assert_eq!(m.usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn events_split_across_frames() {
        let all = format!("{CHUNK}{USAGE}{DONE}");
        for cut_at in 1..all.len() {
            let (a, b) = all.split_at(cut_at);
            let mut m = Meter::new(true, true);
            let out = run(&mut m, &[a, b]);
            assert_eq!(out, format!("{CHUNK}{DONE}"), "cut at {cut_at}");
            assert_eq!(m.usage.unwrap().total_tokens, 10);
            let mut m = Meter::new(true, false);
            assert_eq!(run(&mut m, &[a, b]), all);
            assert_eq!(m.usage.unwrap().total_tokens, 10);
        }
    }

    #[test]
    fn fast_path_forwards_the_same_bytes() {
        let mut m = Meter::new(true, true);
        let frame = Bytes::from_static(CHUNK.as_bytes());
        let out = m.on_frame(frame.clone()).unwrap();
        assert_eq!(out.as_ptr(), frame.as_ptr());
    }

    #[test]
    fn crlf_events() {
        let mut m = Meter::new(true, true);
        let ev = CHUNK.replace('\n', "\r\n");
        let out = run(&mut m, &[&ev]);
        assert_eq!(out, ev);
        assert_eq!(m.output_bytes, 5);
    }

    #[test]
    fn byte_scan_matches_the_parse() {
        let ev = r#"{"id":"c","choices":[{"delta":{"content":"he said \"hi\"","reasoning_content":"ab"},"finish_reason":"length"}],"usage":null}"#;
        assert!(is_plain_delta(ev.as_bytes()));
        assert_eq!(text_bytes(ev.as_bytes()), "he said \"hi\"".len() + 2);
        assert_eq!(finish_reason(ev.as_bytes()).as_deref(), Some("length"));
        assert!(!is_plain_delta(
            br#"{"choices":[],"usage":{"total_tokens":1}}"#
        ));
        assert!(!is_plain_delta(
            br#"{"type":"response.output_text.delta","delta":"x"}"#
        ));
        // A stream metered by the scan and one metered by full parses agree.
        let mut fast = Meter::new(true, true);
        run(&mut fast, &[CHUNK, CHUNK, FINISH, USAGE, DONE]);
        assert_eq!(fast.output_bytes, 10);
        assert_eq!(fast.finish_reason.as_deref(), Some("stop"));
        assert_eq!(fast.usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn json_body_usage() {
        let mut m = Meter::new(false, false);
        let body = r#"{"id":"chatcmpl-1","model":"gpt","choices":[{"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#;
        let (a, b) = body.split_at(30);
        assert_eq!(run(&mut m, &[a, b]), body);
        assert_eq!(m.usage.unwrap().total_tokens, 6);
        assert_eq!(m.chat_id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(m.output_bytes, 8);
    }

    #[test]
    fn responses_api_usage() {
        let mut m = Meter::new(false, false);
        run(
            &mut m,
            &[
                r#"{"id":"resp_1","model":"m","output":[],"usage":{"input_tokens":5,"output_tokens":4,"total_tokens":9,"input_tokens_details":{"cached_tokens":1}}}"#,
            ],
        );
        let u = m.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            (5, 4, 1)
        );
        let mut m = Meter::new(true, false);
        run(&mut m, &[
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abc\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_2\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2,\"total_tokens\":3}}}\n\n",
        ]);
        assert_eq!(m.usage.unwrap().total_tokens, 3);
        assert_eq!(m.output_bytes, 3);
        assert_eq!(m.chat_id.as_deref(), Some("resp_2"));
        assert!(m.done);
    }

    #[test]
    fn cut_stream_keeps_what_was_seen() {
        let mut m = Meter::new(true, true);
        let out = run(
            &mut m,
            &[
                CHUNK,
                "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"wor",
            ],
        );
        assert!(out.starts_with(CHUNK));
        assert!(m.usage.is_none());
        assert!(!m.done);
        // "hello" plus the "wor" of the cut event, which the client also received
        assert_eq!(m.output_bytes, 8);
    }
}
