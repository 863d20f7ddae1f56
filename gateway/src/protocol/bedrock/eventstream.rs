//! The AWS eventstream framing of a ConverseStream body
//! (`application/vnd.amazon.eventstream`), decoded incrementally: frames may
//! be split across reads at any byte and several may come in one read.
//!
//! Each message becomes the data of one event for [`super::ConverseToChat`]:
//!
//! | `:message-type` | event data |
//! |---|---|
//! | `event` | `{"<:event-type>": <payload>}` |
//! | `exception` | `{"<:exception-type>": <payload>}` |
//! | `error` | `{"error": {"code": <:error-code>, "message": <:error-message>}}` |
//!
//! Messages of other types (none are defined) are skipped. The frames' CRCs
//! and structure are checked by `aws-smithy-eventstream`; here only the total
//! length at the head of each frame is read, to bound a message to
//! [`MAX_MESSAGE_BYTES`] and to hand the decoder whole frames. A frame that
//! fails the checks (or is too long) breaks the stream: [`Decoder::feed`]
//! reports it once ([`Broken::data`] is the error event the client gets) and
//! ignores every later byte.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Buf, BytesMut};
use serde::Serialize;

/// Longest message taken, prelude and CRCs included.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The shortest frame: the prelude (total length, headers length, CRC) and
/// the message CRC.
const MIN_MESSAGE_BYTES: usize = 16;

/// An eventstream body being decoded.
#[derive(Default)]
pub struct Decoder {
    frames: MessageFrameDecoder,
    /// bytes of a frame not complete yet
    held: BytesMut,
    /// the event data being made (one buffer for every message)
    data: Vec<u8>,
    /// a frame failed its checks: nothing more is decoded
    broken: bool,
}

/// Why an eventstream body cannot be decoded further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken(String);

impl Broken {
    /// The event data that tells the client (an `error` message, as the
    /// framing makes of one).
    pub fn data(&self) -> Vec<u8> {
        let message = format!("the upstream's event stream is corrupt: {}", self.0);
        let mut out = b"{\"error\":".to_vec();
        // Writing strings into a Vec cannot fail.
        let _ = serde_json::to_writer(
            &mut out,
            &ErrorOut {
                code: "InvalidEventStream",
                message: &message,
            },
        );
        out.push(b'}');
        out
    }
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Takes the next bytes of the body; `each` gets the event data of every
    /// message they complete, in order. `Err` when a frame breaks the stream
    /// (`each` got the messages before it); from then on, bytes are ignored.
    pub fn feed(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), Broken> {
        if self.broken {
            return Ok(());
        }
        let result = if self.held.is_empty() {
            // (the common case: the read starts at a frame; only a partial
            // last frame is copied)
            let r = decode(&mut self.frames, &mut self.data, bytes, &mut each);
            if let Ok(end) = r {
                self.held.extend_from_slice(&bytes[end..]);
            }
            r
        } else {
            self.held.extend_from_slice(bytes);
            let r = decode(&mut self.frames, &mut self.data, &self.held, &mut each);
            if let Ok(end) = r {
                self.held.advance(end);
            }
            r
        };
        if result.is_err() {
            self.broken = true;
            self.held = BytesMut::new();
        }
        result.map(|_| ())
    }

    /// Bytes of a frame not complete yet (at the end of the body: the stream
    /// was cut inside a frame).
    pub fn pending(&self) -> usize {
        self.held.len()
    }
}

/// Decodes the whole frames at the start of `buf`; returns where the first
/// incomplete one starts.
fn decode(
    frames: &mut MessageFrameDecoder,
    data: &mut Vec<u8>,
    buf: &[u8],
    each: &mut impl FnMut(&[u8]),
) -> Result<usize, Broken> {
    let mut start = 0;
    while let Some(head) = buf.get(start..start + 4) {
        let total = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if total > MAX_MESSAGE_BYTES {
            return Err(Broken(format!(
                "a message of {total} bytes (more than {MAX_MESSAGE_BYTES})"
            )));
        }
        if total < MIN_MESSAGE_BYTES {
            return Err(Broken(format!("a message length of {total} bytes")));
        }
        let Some(mut frame) = buf.get(start..start + total) else {
            break;
        };
        let message = match frames.decode_frame(&mut frame) {
            Ok(DecodedFrame::Complete(m)) => m,
            // (a whole frame was given: not reached)
            Ok(DecodedFrame::Incomplete) => {
                return Err(Broken("a frame shorter than its length".into()))
            }
            Err(e) => return Err(Broken(e.to_string())),
        };
        start += total;
        if event_data(&message, data) {
            each(data);
        }
    }
    Ok(start)
}

/// The event data of one message into `out`; false for a message that is
/// not an event, an exception or an error.
fn event_data(m: &Message, out: &mut Vec<u8>) -> bool {
    let header = |name: &str| {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
    };
    out.clear();
    let (key, payload) = match header(":message-type") {
        Some("event") => match header(":event-type") {
            Some(kind) => (kind, Payload::Json(m.payload())),
            None => return false,
        },
        Some("exception") => (
            header(":exception-type").unwrap_or("unknownException"),
            Payload::Exception(m.payload()),
        ),
        Some("error") => (
            "error",
            Payload::Error(ErrorOut {
                code: header(":error-code").unwrap_or("unknown"),
                message: header(":error-message").unwrap_or_default(),
            }),
        ),
        _ => return false,
    };
    out.push(b'{');
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    match payload {
        Payload::Json([]) => out.extend_from_slice(b"{}"),
        Payload::Json(p) => out.extend_from_slice(p),
        Payload::Exception(p) if is_object(p) => out.extend_from_slice(p),
        Payload::Exception(p) => {
            // not JSON: its text as the message, bounded
            let text = String::from_utf8_lossy(&p[..p.len().min(512)]);
            let _ = serde_json::to_writer(
                &mut *out,
                &MessageOut {
                    message: text.trim(),
                },
            );
        }
        Payload::Error(e) => {
            let _ = serde_json::to_writer(&mut *out, &e);
        }
    }
    out.push(b'}');
    true
}

/// The payload is a JSON object.
fn is_object(p: &[u8]) -> bool {
    serde_json::from_slice::<&serde_json::value::RawValue>(p)
        .is_ok_and(|v| v.get().starts_with('{'))
}

enum Payload<'a> {
    Json(&'a [u8]),
    Exception(&'a [u8]),
    Error(ErrorOut<'a>),
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    message: &'a str,
}

/// Frames as Bedrock writes them, by the crate's encoder (for tests).
#[cfg(test)]
pub(crate) mod frames {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

    /// A frame of `headers` (string values) and `payload`.
    pub(crate) fn frame(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
        let mut m = Message::new(payload.as_bytes().to_vec());
        for (k, v) in headers {
            m = m.add_header(Header::new(
                k.to_string(),
                HeaderValue::String(v.to_string().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    /// An `event` message of type `kind`.
    pub(crate) fn event(kind: &str, payload: &str) -> Vec<u8> {
        frame(
            &[
                (":message-type", "event"),
                (":event-type", kind),
                (":content-type", "application/json"),
            ],
            payload,
        )
    }

    /// An `exception` message of type `kind`.
    pub(crate) fn exception(kind: &str, payload: &str) -> Vec<u8> {
        frame(
            &[
                (":message-type", "exception"),
                (":exception-type", kind),
                (":content-type", "application/json"),
            ],
            payload,
        )
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// What decoding `reads` gives: each event's data, then the error that
    /// broke the stream (if any) and the bytes of a frame still pending.
    fn decode_all(reads: &[&[u8]]) -> (Vec<Vec<u8>>, Option<Broken>, usize) {
        let mut d = Decoder::new();
        let mut events = Vec::new();
        let mut broken = None;
        for r in reads {
            if let Err(e) = d.feed(r, |data| events.push(data.to_vec())) {
                broken.get_or_insert(e);
            }
        }
        (events, broken, d.pending())
    }

    fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.extend([0, bytes.len()]);
        at.sort_unstable();
        at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
    }

    /// Frames of events, exceptions and messages of no known type.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let frame =
            (0..3u8, "[a-zA-Z]{1,12}", "[ -~é]{0,40}").prop_map(
                |(kind, name, payload)| match kind {
                    0 => frames::event(&name, &payload),
                    1 => frames::exception(&name, &payload),
                    _ => frames::frame(&[(":message-type", "odd")], &payload),
                },
            );
        prop::collection::vec(frame, 0..6).prop_map(|f| f.concat())
    }

    proptest! {
        #![proptest_config(crate::prop::cases(256))]

        /// Any split of a body into reads gives the same events, in order.
        #[test]
        fn any_split_gives_the_same_events(b in body(), cuts in prop::collection::vec(any::<Index>(), 0..10)) {
            let whole = decode_all(&[&b]);
            prop_assert!(whole.1.is_none() && whole.2 == 0);
            prop_assert_eq!(decode_all(&split(&b, &cuts)), whole);
        }

        /// A body with bytes changed or cut anywhere, split anyhow: no panic,
        /// the same events and the same verdict as in one read.
        #[test]
        fn a_damaged_body_breaks_the_same_way_whatever_the_reads(
            b in body(),
            damage in prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
            cut in any::<Index>(),
            cuts in prop::collection::vec(any::<Index>(), 0..10),
        ) {
            let mut b = b;
            for (at, v) in damage {
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] = v;
                }
            }
            b.truncate(cut.index(b.len() + 1));
            let whole = decode_all(&[&b]);
            prop_assert_eq!(decode_all(&split(&b, &cuts)), whole);
        }
    }
}
