//! Reads usage from a copy of the answer without holding it back: SSE events are
//! parsed as they pass (id, model, content size, usage), JSON bodies once complete.
//! When the gateway itself asked the upstream for `include_usage`, the usage-only
//! chunk is cut out before the client sees it. Frames are forwarded as the same
//! `Bytes` whenever nothing has to be removed.

mod translate;

use crate::protocol::{Read, Seam};
use bytes::{Bytes, BytesMut};
use std::borrow::Cow;
pub use translate::Framing;
use translate::Translating;

/// An SSE event longer than this ends metering of the stream's events (and their
/// holding back), so odd framing can never buffer a stream.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Bodies larger than this are passed through but not parsed for usage.
const MAX_JSON_METER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct Meter {
    /// how the answer is read (`protocol/`)
    seam: Seam,
    sse: bool,
    /// cut the usage-only chunk (the client did not ask for it)
    strip_usage: bool,
    /// SSE: bytes of an event not complete yet (copied only when an event spans frames)
    partial: BytesMut,
    /// JSON: the body so far (refcounted frames, no copy)
    parts: Vec<Bytes>,
    json_len: usize,
    json_overflow: bool,
    /// what the answer said so far
    pub read: Read,
    /// the route's `ai_log` attributes that read the answer (stream events or the
    /// JSON body), fed from the same copy
    pub capture: Option<Box<crate::telemetry::attributes::Collected>>,
    /// the answer is in another API than the client's: translated as it passes
    translating: Option<Box<Translating>>,
    /// a JSON answer's finish reason is wanted (its record goes to OTLP): its
    /// choices are read even when it reports its usage
    pub reads_finish_reason: bool,
}

impl std::fmt::Debug for Translating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Translating")
    }
}

impl Meter {
    /// `include_usage`: an OpenAI client asked for the usage chunk (read when
    /// the answer is translated from another API).
    pub fn new(seam: Seam, sse: bool, strip_usage: bool, include_usage: bool) -> Meter {
        Meter::framed(seam, sse, Framing::Sse, strip_usage, include_usage)
    }

    /// [`Meter::new`] for a stream whose events the upstream frames with
    /// `framing` (the client gets SSE either way: an eventstream answer is
    /// always one translated, the seam's [`Seam::events`] its translator).
    pub fn framed(
        seam: Seam,
        sse: bool,
        framing: Framing,
        strip_usage: bool,
        include_usage: bool,
    ) -> Meter {
        let translating = (!seam.same_api()).then(|| {
            let events = sse.then(|| seam.events(include_usage)).flatten();
            Box::new(Translating::new(seam, events, framing))
        });
        Meter {
            translating,
            seam,
            sse,
            strip_usage: sse && strip_usage,
            partial: BytesMut::new(),
            parts: Vec::new(),
            json_len: 0,
            json_overflow: false,
            read: Read::default(),
            capture: None,
            reads_finish_reason: true,
        }
    }

    /// A meter that reads nothing and passes every byte (an error answer whose
    /// body was already made the client's).
    pub fn passing(seam: Seam, sse: bool) -> Meter {
        let mut m = Meter::new(seam, sse, false, false);
        m.translating = None;
        m
    }

    pub fn is_sse(&self) -> bool {
        self.sse
    }

    /// Takes one frame; returns what to forward (None: nothing this time).
    pub fn on_frame(&mut self, data: Bytes) -> Option<Bytes> {
        if let Some(t) = self.translating.as_mut() {
            return t.on_frame(&data, &mut self.read, self.capture.as_deref_mut());
        }
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

    /// At the end of the body: parses a JSON answer; returns the bytes still
    /// held back (SSE, or a translated answer).
    pub fn finish(&mut self) -> Option<Bytes> {
        if let Some(t) = self.translating.as_mut() {
            return t.finish(&mut self.read, self.capture.as_deref_mut());
        }
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

    /// Meters one SSE event; true when the client does not get it.
    fn event(&mut self, ev: &[u8]) -> bool {
        let data = data_of(ev);
        if data.is_empty() {
            return false;
        }
        let capture = self.capture.as_deref_mut();
        self.seam
            .event(&mut self.read, &data, capture, self.strip_usage)
    }

    fn read_json(&mut self, body: &[u8]) {
        if let Some(c) = self.capture.as_mut().filter(|c| c.wants_response_body()) {
            c.response_body(body);
        }
        self.seam
            .answer(&mut self.read, body, self.reads_finish_reason);
    }
}

/// The data of one SSE event: its `data:` lines joined by newlines (borrowed
/// when there is one).
fn data_of(ev: &[u8]) -> Cow<'_, [u8]> {
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
    data
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

/// End (exclusive) of the SSE event starting at `from`: after its blank line.
fn event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = memchr::memchr(b'\n', &buf[i..]) {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::protocol::openai::scan::{finish_reason, is_plain_delta, text_bytes};
    use crate::protocol::{Dialect, Inbound};

    const SEAM: Seam = Seam {
        inbound: Inbound::OpenAi(Endpoint::ChatCompletions),
        dialect: Dialect::OpenAi,
    };

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
        let mut m = Meter::new(SEAM, true, true, false);
        let out = run(&mut m, &[CHUNK, FINISH, USAGE, DONE]);
        assert_eq!(out, format!("{CHUNK}{FINISH}{DONE}"));
        let u = m.read.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (7, 3, 10)
        );
        assert_eq!((u.cached_tokens, u.reasoning_tokens), (2, 1));
        assert_eq!(m.read.chat_id.as_deref(), Some("c1"));
        assert_eq!(m.read.model.as_deref(), Some("m"));
        assert_eq!(m.read.finish_reason.as_deref(), Some("stop"));
        assert_eq!(m.read.output_bytes, 5);
        assert!(m.read.done);
    }

    #[test]
    fn keeps_usage_chunk_when_client_asked() {
        let mut m = Meter::new(SEAM, true, false, false);
        let out = run(&mut m, &[CHUNK, USAGE, DONE]);
        assert_eq!(out, format!("{CHUNK}{USAGE}{DONE}"));
        assert_eq!(m.read.usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn events_split_across_frames() {
        let all = format!("{CHUNK}{USAGE}{DONE}");
        for cut_at in 1..all.len() {
            let (a, b) = all.split_at(cut_at);
            let mut m = Meter::new(SEAM, true, true, false);
            let out = run(&mut m, &[a, b]);
            assert_eq!(out, format!("{CHUNK}{DONE}"), "cut at {cut_at}");
            assert_eq!(m.read.usage.unwrap().total_tokens, 10);
            let mut m = Meter::new(SEAM, true, false, false);
            assert_eq!(run(&mut m, &[a, b]), all);
            assert_eq!(m.read.usage.unwrap().total_tokens, 10);
        }
    }

    #[test]
    fn fast_path_forwards_the_same_bytes() {
        let mut m = Meter::new(SEAM, true, true, false);
        let frame = Bytes::from_static(CHUNK.as_bytes());
        let out = m.on_frame(frame.clone()).unwrap();
        assert_eq!(out.as_ptr(), frame.as_ptr());
    }

    #[test]
    fn crlf_events() {
        let mut m = Meter::new(SEAM, true, true, false);
        let ev = CHUNK.replace('\n', "\r\n");
        let out = run(&mut m, &[&ev]);
        assert_eq!(out, ev);
        assert_eq!(m.read.output_bytes, 5);
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
        let mut fast = Meter::new(SEAM, true, true, false);
        run(&mut fast, &[CHUNK, CHUNK, FINISH, USAGE, DONE]);
        assert_eq!(fast.read.output_bytes, 10);
        assert_eq!(fast.read.finish_reason.as_deref(), Some("stop"));
        assert_eq!(fast.read.usage.unwrap().total_tokens, 10);
    }

    #[test]
    fn json_body_usage() {
        let mut m = Meter::new(SEAM, false, false, false);
        let body = r#"{"id":"chatcmpl-1","model":"gpt","choices":[{"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#;
        let (a, b) = body.split_at(30);
        assert_eq!(run(&mut m, &[a, b]), body);
        assert_eq!(m.read.usage.unwrap().total_tokens, 6);
        assert_eq!(m.read.chat_id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(m.read.output_bytes, 8);
    }

    #[test]
    fn json_choices_are_read_when_wanted_or_needed() {
        let with_usage = r#"{"id":"c-1","model":"gpt","choices":[{"message":{"content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#;
        let mut m = Meter::new(SEAM, false, false, false);
        m.reads_finish_reason = false;
        run(&mut m, &[with_usage]);
        assert_eq!(m.read.usage.unwrap().total_tokens, 6);
        assert_eq!(m.read.chat_id.as_deref(), Some("c-1"));
        assert_eq!(
            (m.read.finish_reason.as_deref(), m.read.output_bytes),
            (None, 0)
        );
        let mut m = Meter::new(SEAM, false, false, false);
        run(&mut m, &[with_usage]);
        assert_eq!(
            (m.read.finish_reason.as_deref(), m.read.output_bytes),
            (Some("stop"), 8)
        );
        // without usage the text size is what the estimate is made of
        let without =
            r#"{"id":"c-2","choices":[{"message":{"content":"hi there"},"finish_reason":"stop"}]}"#;
        let mut m = Meter::new(SEAM, false, false, false);
        m.reads_finish_reason = false;
        run(&mut m, &[without]);
        assert_eq!((m.read.usage, m.read.output_bytes), (None, 8));
        assert_eq!(m.read.chat_id.as_deref(), Some("c-2"));
    }

    #[test]
    fn responses_api_usage() {
        let mut m = Meter::new(SEAM, false, false, false);
        run(
            &mut m,
            &[
                r#"{"id":"resp_1","model":"m","output":[],"usage":{"input_tokens":5,"output_tokens":4,"total_tokens":9,"input_tokens_details":{"cached_tokens":1}}}"#,
            ],
        );
        let u = m.read.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            (5, 4, 1)
        );
        let mut m = Meter::new(SEAM, true, false, false);
        run(&mut m, &[
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abc\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_2\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2,\"total_tokens\":3}}}\n\n",
        ]);
        assert_eq!(m.read.usage.unwrap().total_tokens, 3);
        assert_eq!(m.read.output_bytes, 3);
        assert_eq!(m.read.chat_id.as_deref(), Some("resp_2"));
        assert!(m.read.done);
    }

    #[test]
    fn cut_stream_keeps_what_was_seen() {
        let mut m = Meter::new(SEAM, true, true, false);
        let out = run(
            &mut m,
            &[
                CHUNK,
                "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"wor",
            ],
        );
        assert!(out.starts_with(CHUNK));
        assert!(m.read.usage.is_none());
        assert!(!m.read.done);
        // "hello" plus the "wor" of the cut event, which the client also received
        assert_eq!(m.read.output_bytes, 8);
    }
}

#[cfg(test)]
mod proptests;
