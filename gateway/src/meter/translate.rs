//! An answer in another API than the client's, translated as it passes:
//! stream events one by one through the seam's [`Events`], a JSON answer held
//! until it is whole (it is one value) and translated then.
//!
//! A stream's events are cut out of the upstream's bytes by its [`Framing`]:
//! SSE (each event's `data:` lines), or AWS eventstream (Bedrock's
//! ConverseStream: each message's `{"<type>": <payload>}`, decoded by
//! [`eventstream::Decoder`]). An eventstream that fails its CRCs or framing
//! ends there: the translator gets one last event, the decoder's
//! [`eventstream::Broken::data`] (an `error`, which it makes the client's
//! error event), and every later byte is dropped.

use super::{data_of, event_end, MAX_EVENT_BYTES, MAX_JSON_METER_BYTES};
use crate::protocol::bedrock::eventstream;
use crate::protocol::{Events, Read, Seam};
use crate::telemetry::attributes::Collected;
use bytes::{Bytes, BytesMut};

/// The client's bytes are written into blocks of this size ...
const OUT_BLOCK: usize = 8 * 1024;
/// ... a new one taken when less than this is left.
const OUT_LOW: usize = 2 * 1024;

/// How an upstream stream is cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`
    Sse,
    /// `application/vnd.amazon.eventstream` (Bedrock's ConverseStream)
    EventStream,
}

pub(super) struct Translating {
    seam: Seam,
    /// None for a JSON answer
    events: Option<Box<dyn Events>>,
    /// an eventstream's decoder (None: SSE, or a JSON answer)
    eventstream: Option<Box<eventstream::Decoder>>,
    /// SSE: bytes of an event not complete yet; JSON: the answer so far
    held: BytesMut,
    /// the client's bytes made so far
    out: BytesMut,
    /// a JSON answer too large to translate
    too_large: bool,
}

impl Translating {
    pub(super) fn new(
        seam: Seam,
        events: Option<Box<dyn Events>>,
        framing: Framing,
    ) -> Translating {
        let eventstream = (events.is_some() && framing == Framing::EventStream)
            .then(|| Box::new(eventstream::Decoder::new()));
        Translating {
            seam,
            events,
            eventstream,
            held: BytesMut::new(),
            out: BytesMut::new(),
            too_large: false,
        }
    }

    /// Takes one upstream frame; returns the client's bytes it completes.
    pub(super) fn on_frame(
        &mut self,
        data: &[u8],
        read: &mut Read,
        capture: Option<&mut Collected>,
    ) -> Option<Bytes> {
        let Some(events) = self.events.as_mut() else {
            if self.held.len() + data.len() > MAX_JSON_METER_BYTES {
                self.too_large = true;
                self.held = BytesMut::new();
            } else if !self.too_large {
                self.held.extend_from_slice(data);
            }
            return None;
        };
        // one buffer for the client's frames of many upstream ones (each frame
        // is split off it), not a growing allocation per frame
        if self.out.capacity() < OUT_LOW {
            self.out.reserve(OUT_BLOCK);
        }
        let mut capture = capture;
        if let Some(decoder) = self.eventstream.as_mut() {
            let out = &mut self.out;
            let fed = decoder.feed(data, |data| {
                if let Some(c) = capture.as_deref_mut().filter(|c| c.wants_stream()) {
                    c.stream_event(data);
                }
                events.event(data, read, out);
            });
            if let Err(broken) = fed {
                tracing::warn!(error = %broken, "upstream eventstream cannot be decoded: stream ended");
                events.event(&broken.data(), read, out);
            }
            return Some(self.out.split().freeze()).filter(|b| !b.is_empty());
        }
        if self.held.len() + data.len() > MAX_EVENT_BYTES {
            // not SSE as we know it: nothing of it can be translated
            self.held = BytesMut::new();
            return None;
        }
        let mut each = |ev: &[u8], out: &mut BytesMut| {
            let data = data_of(ev);
            if !data.is_empty() {
                if let Some(c) = capture.as_deref_mut().filter(|c| c.wants_stream()) {
                    c.stream_event(&data);
                }
                events.event(&data, read, out);
            }
        };
        if self.held.is_empty() {
            // (the common case: the frame starts at an event; only a partial
            // last event is copied)
            let mut start = 0;
            while let Some(end) = event_end(data, start) {
                each(&data[start..end], &mut self.out);
                start = end;
            }
            self.held.extend_from_slice(&data[start..]);
        } else {
            self.held.extend_from_slice(data);
            let mut start = 0;
            while let Some(end) = event_end(&self.held, start) {
                each(&self.held[start..end], &mut self.out);
                start = end;
            }
            let _ = self.held.split_to(start);
        }
        Some(self.out.split().freeze()).filter(|b| !b.is_empty())
    }

    /// At the end of the upstream's body: the rest of the client's answer.
    pub(super) fn finish(
        &mut self,
        read: &mut Read,
        capture: Option<&mut Collected>,
    ) -> Option<Bytes> {
        let held = std::mem::take(&mut self.held);
        match self.events.as_mut() {
            Some(events) => {
                // (an eventstream cut inside a frame: the answer is left cut,
                // as an SSE stream cut inside an event)
                if self.eventstream.is_none() {
                    let data = data_of(&held);
                    if !data.is_empty() {
                        events.event(&data, read, &mut self.out);
                    }
                }
                events.end(read, &mut self.out);
            }
            None if self.too_large => {
                let e = crate::error::GatewayError::upstream_failed(
                    "upstream",
                    "its answer is larger than the gateway translates (16 MiB)",
                );
                return Some(e.body_in(self.seam.client_shape()));
            }
            None => {
                if let Some(c) = capture.filter(|c| c.wants_response_body()) {
                    c.response_body(&held);
                }
                return self.seam.translate_answer(read, &held);
            }
        }
        Some(self.out.split().freeze()).filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::protocol::bedrock::eventstream::frames;
    use crate::protocol::bedrock::ConverseToChat;
    use crate::protocol::{Dialect, Inbound};

    /// Makes each upstream event `X` the client's `data: <X>!`, and one `end`.
    struct Shout;
    impl Events for Shout {
        fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
            read.output_bytes += data.len();
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(data);
            out.extend_from_slice(b"!\n\n");
        }
        fn end(&mut self, _: &mut Read, out: &mut BytesMut) {
            out.extend_from_slice(b"data: end\n\n");
        }
    }

    const SEAM: Seam = Seam {
        inbound: Inbound::OpenAi(Endpoint::ChatCompletions),
        dialect: Dialect::Anthropic,
    };

    #[test]
    fn events_are_translated_as_they_complete_across_frames() {
        let mut t = Translating::new(SEAM, Some(Box::new(Shout)), Framing::Sse);
        let mut read = Read::default();
        let mut out = Vec::new();
        for frame in ["event: a\ndata: one\n\nda", "ta: two\n", "\ndata: three"] {
            if let Some(b) = t.on_frame(frame.as_bytes(), &mut read, None) {
                out.push(String::from_utf8(b.to_vec()).unwrap());
            }
        }
        assert_eq!(out, ["data: one!\n\n", "data: two!\n\n"]);
        let rest = t.finish(&mut read, None).unwrap();
        // the unterminated last event still counts, then the end
        assert_eq!(&rest[..], b"data: three!\n\ndata: end\n\n");
        assert_eq!(read.output_bytes, "onetwothree".len());
    }

    /// A ConverseStream answer as Bedrock frames it: text, a tool call, the
    /// stop and the usage.
    fn converse_stream() -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, payload) in [
            ("messageStart", r#"{"role":"assistant"}"#),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"f"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{}"}}}"#,
            ),
            ("messageStop", r#"{"stopReason":"tool_use"}"#),
            (
                "metadata",
                r#"{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":9,"cacheReadInputTokens":2}}"#,
            ),
        ] {
            body.extend(frames::event(kind, payload));
        }
        body
    }

    /// The client's bytes of `reads` of an eventstream body, through `events`.
    fn run_eventstream(events: Box<dyn Events>, reads: &[&[u8]], read: &mut Read) -> Vec<u8> {
        let mut t = Translating::new(SEAM, Some(events), Framing::EventStream);
        let mut out = Vec::new();
        for r in reads {
            if let Some(b) = t.on_frame(r, read, None) {
                out.extend_from_slice(&b);
            }
        }
        if let Some(b) = t.finish(read, None) {
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn eventstream_messages_are_events_of_their_type_and_payload() {
        let out = run_eventstream(
            Box::new(Shout),
            &[&frames::event(
                "messageStop",
                r#"{"stopReason":"end_turn"}"#,
            )],
            &mut Read::default(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"messageStop\":{\"stopReason\":\"end_turn\"}}!\n\ndata: end\n\n"
        );
    }

    #[test]
    fn eventstream_frames_split_at_every_byte_offset_give_the_same_client_bytes() {
        let body = converse_stream();
        let whole = run_eventstream(Box::new(Shout), &[&body], &mut Read::default());
        assert!(!whole.is_empty());
        for at in 1..body.len() {
            let (a, b) = body.split_at(at);
            let got = run_eventstream(Box::new(Shout), &[a, b], &mut Read::default());
            assert_eq!(got, whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let got = run_eventstream(Box::new(Shout), &bytes, &mut Read::default());
        assert_eq!(got, whole, "byte by byte");
    }

    #[test]
    fn a_conversestream_becomes_openai_chunks_with_usage() {
        let mut read = Read {
            chat_id: Some("chatcmpl-1".into()),
            model: Some("m".into()),
            ..Read::default()
        };
        let body = converse_stream();
        let (a, b) = body.split_at(body.len() / 2);
        let out = run_eventstream(Box::new(ConverseToChat::new(true)), &[a, b], &mut read);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""delta":{"content":"Hi"}"#), "{text}");
        assert!(text.contains(r#""finish_reason":"tool_calls""#), "{text}");
        assert!(text.contains(r#""usage":{"prompt_tokens":5,"#), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(read.usage.unwrap().total_tokens, 9);
        assert!(read.done);
    }

    #[test]
    fn a_corrupt_eventstream_ends_in_an_error_event() {
        let mut body = converse_stream();
        let n = body.len();
        body[n / 2] ^= 0xff;
        let mut read = Read::default();
        let out = run_eventstream(Box::new(ConverseToChat::new(true)), &[&body], &mut read);
        let text = String::from_utf8(out).unwrap();
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        assert!(
            last.starts_with(
                r#"data: {"error":{"message":"the upstream's event stream is corrupt"#
            ),
            "{text}"
        );
        assert!(last.contains(r#""code":"InvalidEventStream""#), "{last}");
        assert!(!text.contains("[DONE]"), "{text}");
        assert!(!read.done);
    }

    #[test]
    fn bytes_after_a_corrupt_frame_are_dropped() {
        let mut body = converse_stream();
        body[20] ^= 0xff; // inside the first frame
        let out = run_eventstream(
            Box::new(Shout),
            &[&body, &converse_stream()],
            &mut Read::default(),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("data: ").count(),
            2,
            "the error, then the end: {text}"
        );
        assert!(
            text.starts_with("data: {\"error\":{\"code\":\"InvalidEventStream\""),
            "{text}"
        );
    }

    #[test]
    fn an_exception_frame_is_an_error_event_for_the_client() {
        let mut body = frames::event("messageStart", r#"{"role":"assistant"}"#);
        body.extend(frames::exception(
            "serviceUnavailableException",
            r#"{"message":"try later"}"#,
        ));
        let out = run_eventstream(
            Box::new(ConverseToChat::new(false)),
            &[&body],
            &mut Read::default(),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(
                "data: {\"error\":{\"message\":\"try later\",\"type\":\"server_error\",\"code\":\"serviceUnavailableException\"}}\n\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_json_answer_is_held_until_whole() {
        let mut t = Translating::new(SEAM, None, Framing::Sse);
        let mut read = Read::default();
        assert!(t.on_frame(b"{\"a\":", &mut read, None).is_none());
        assert!(t.on_frame(b"1}", &mut read, None).is_none());
        assert_eq!(&t.held[..], b"{\"a\":1}", "the whole answer is held");
    }

    #[test]
    fn an_answer_too_large_to_translate_ends_in_an_error_body() {
        let mut t = Translating::new(SEAM, None, Framing::Sse);
        let mut read = Read::default();
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..17 {
            assert!(t.on_frame(&chunk, &mut read, None).is_none());
        }
        let body = t.finish(&mut read, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "upstream_error", "{v}");
        assert!(t.held.is_empty(), "nothing kept");
    }
}
