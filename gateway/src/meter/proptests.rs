//! Properties of the meter, for every stream it reads: an upstream stream
//! split into reads anywhere gives the client the same bytes and reads the
//! same (ids, text size, finish, usage) as the stream in one read; the usage
//! read is the usage sent; an OpenAI stream passes unchanged (the usage chunk
//! the gateway asked for aside); and any bytes, split anyhow, never panic.
//! Streams: OpenAI chat and Anthropic Messages as they pass, and translated:
//! Anthropic, Gemini (SSE) and Bedrock (AWS eventstream) to OpenAI chat,
//! OpenAI chat, Gemini and Bedrock to Anthropic.

use super::*;
use crate::endpoint::Endpoint;
use crate::protocol::bedrock::eventstream::frames;
use crate::protocol::{Dialect, Inbound};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

const CHAT: Inbound = Inbound::OpenAi(Endpoint::ChatCompletions);
const MESSAGES: Inbound = Inbound::Anthropic(Endpoint::Messages);

/// What a generated answer says: its text in pieces, its usage.
#[derive(Debug, Clone)]
struct Answer {
    pieces: Vec<String>,
    prompt: u64,
    completion: u64,
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::collection::vec("[a-z \"\\\\\n\t{}\\[\\]:,é€😀]{0,12}", 0..6),
        0u64..100_000,
        0u64..100_000,
    )
        .prop_map(|(pieces, prompt, completion)| Answer {
            pieces,
            prompt,
            completion,
        })
}

/// How the upstream writes SSE: the line end, and whether it adds comments,
/// `id:` lines and `event:` names the reader must skip.
#[derive(Debug, Clone, Copy)]
struct Style {
    crlf: bool,
    comments: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (any::<bool>(), any::<bool>()).prop_map(|(crlf, comments)| Style { crlf, comments })
}

/// One SSE event of `data` (named `name`), after a comment (an event of
/// its own) when the style has them.
fn sse(out: &mut Vec<u8>, s: Style, name: Option<&str>, data: &Value) {
    let nl = if s.crlf { "\r\n" } else { "\n" };
    if s.comments {
        out.extend_from_slice(format!(": keep-alive{nl}{nl}").as_bytes());
    }
    event(out, s, name, data);
}

fn event(out: &mut Vec<u8>, s: Style, name: Option<&str>, data: &Value) {
    let nl = if s.crlf { "\r\n" } else { "\n" };
    if let Some(n) = name {
        out.extend_from_slice(format!("event: {n}{nl}").as_bytes());
    }
    if s.comments {
        out.extend_from_slice(format!("id: 7{nl}").as_bytes());
    }
    out.extend_from_slice(format!("data: {data}{nl}{nl}").as_bytes());
}

/// The OpenAI chat stream of `a` (`usage`: with the usage-only chunk); the
/// second value is the usage chunk's event.
fn openai_stream(a: &Answer, s: Style, usage: bool) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-x",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    sse(
        &mut out,
        s,
        None,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    );
    for p in &a.pieces {
        sse(
            &mut out,
            s,
            None,
            &chunk(json!({"content": p}), Value::Null),
        );
    }
    sse(&mut out, s, None, &chunk(json!({}), json!("stop")));
    let mut usage_event = Vec::new();
    if usage {
        let u = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-x", "choices": [],
                       "usage": {"prompt_tokens": a.prompt, "completion_tokens": a.completion,
                                 "total_tokens": a.prompt + a.completion}});
        event(&mut usage_event, s, None, &u);
        out.extend_from_slice(&usage_event);
    }
    let nl = if s.crlf { "\r\n" } else { "\n" };
    out.extend_from_slice(format!("data: [DONE]{nl}{nl}").as_bytes());
    (out, usage_event)
}

fn anthropic_stream(a: &Answer, s: Style) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ev = |name: &str, data: Value| sse(&mut out, s, Some(name), &data);
    ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
        "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
        "usage": {"input_tokens": a.prompt, "output_tokens": 1}}}),
    );
    ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}}),
    );
    ev("ping", json!({"type": "ping"}));
    for p in &a.pieces {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": p}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": a.completion}}),
    );
    ev("message_stop", json!({"type": "message_stop"}));
    out
}

fn gemini_stream(a: &Answer, s: Style) -> Vec<u8> {
    let mut out = Vec::new();
    for p in &a.pieces {
        sse(
            &mut out,
            s,
            None,
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]},
            "index": 0}], "modelVersion": "gemini-x", "responseId": "r1"}),
        );
    }
    sse(
        &mut out,
        s,
        None,
        &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": a.prompt, "candidatesTokenCount": a.completion,
                          "totalTokenCount": a.prompt + a.completion},
        "modelVersion": "gemini-x", "responseId": "r1"}),
    );
    out
}

fn bedrock_stream(a: &Answer) -> Vec<u8> {
    let mut out = frames::event("messageStart", r#"{"role":"assistant"}"#);
    for p in &a.pieces {
        let d = json!({"contentBlockIndex": 0, "delta": {"text": p}});
        out.extend(frames::event("contentBlockDelta", &d.to_string()));
    }
    out.extend(frames::event(
        "contentBlockStop",
        r#"{"contentBlockIndex":0}"#,
    ));
    out.extend(frames::event("messageStop", r#"{"stopReason":"end_turn"}"#));
    let u = json!({"usage": {"inputTokens": a.prompt, "outputTokens": a.completion,
                             "totalTokens": a.prompt + a.completion}});
    out.extend(frames::event("metadata", &u.to_string()));
    out
}

/// One upstream stream and how the meter is set up for it.
#[derive(Debug, Clone)]
struct Case {
    seam: Seam,
    framing: Framing,
    strip_usage: bool,
    include_usage: bool,
    bytes: Vec<u8>,
    answer: Answer,
}

fn case() -> impl Strategy<Value = Case> {
    (answer(), style(), 0..8u8, any::<bool>(), any::<bool>()).prop_map(
        |(answer, s, kind, strip_usage, include_usage)| {
            let a = &answer;
            let (inbound, dialect, framing, bytes) = match kind {
                0 => (
                    CHAT,
                    Dialect::OpenAi,
                    Framing::Sse,
                    openai_stream(a, s, true).0,
                ),
                1 => (
                    MESSAGES,
                    Dialect::Anthropic,
                    Framing::Sse,
                    anthropic_stream(a, s),
                ),
                2 => (
                    CHAT,
                    Dialect::Anthropic,
                    Framing::Sse,
                    anthropic_stream(a, s),
                ),
                3 => (
                    MESSAGES,
                    Dialect::OpenAi,
                    Framing::Sse,
                    openai_stream(a, s, true).0,
                ),
                4 => (CHAT, Dialect::Gemini, Framing::Sse, gemini_stream(a, s)),
                5 => (MESSAGES, Dialect::Gemini, Framing::Sse, gemini_stream(a, s)),
                6 => (
                    CHAT,
                    Dialect::Bedrock,
                    Framing::EventStream,
                    bedrock_stream(a),
                ),
                _ => (
                    MESSAGES,
                    Dialect::Bedrock,
                    Framing::EventStream,
                    bedrock_stream(a),
                ),
            };
            Case {
                seam: Seam { inbound, dialect },
                framing,
                strip_usage,
                include_usage,
                bytes,
                answer,
            }
        },
    )
}

/// `bytes` cut at `cuts` (any order, repeats: empty reads).
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// `text` with what a translation makes afresh for each answer (ids,
/// `created`) made the same.
fn steady(text: &str) -> String {
    static FRESH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(chatcmpl-|msg_|call_|toolu_)[0-9A-Za-z]{8,}|"created":[0-9]+"#)
            .unwrap()
    });
    FRESH.replace_all(text, "<fresh>").into_owned()
}

/// The client's bytes and what the meter read, for `reads` of the stream
/// (ids and times the translation makes afresh made the same).
fn meter(c: &Case, reads: &[&[u8]]) -> (String, String, Option<Usage>) {
    let mut m = Meter::framed(c.seam, true, c.framing, c.strip_usage, c.include_usage);
    let mut out = Vec::new();
    for r in reads {
        if let Some(b) = m.on_frame(Bytes::copy_from_slice(r)) {
            out.extend_from_slice(&b);
        }
    }
    if let Some(b) = m.finish() {
        out.extend_from_slice(&b);
    }
    let out = steady(&String::from_utf8_lossy(&out));
    (out, steady(&format!("{:?}", m.read)), m.read.usage)
}

use shared::usage::Usage;

proptest! {
    #![proptest_config(crate::prop::cases(128))]

    /// Any split of a stream into reads: the same client bytes and the same
    /// reading as the stream in one read; the usage read is the usage sent.
    #[test]
    fn any_split_gives_the_same_answer_and_usage(c in case(), cuts in prop::collection::vec(any::<Index>(), 0..12)) {
        let whole = meter(&c, &[&c.bytes]);
        let parts = meter(&c, &split(&c.bytes, &cuts));
        prop_assert_eq!(&parts.0, &whole.0, "the client's bytes");
        prop_assert_eq!(&parts.1, &whole.1);
        let u = whole.2.unwrap_or_default();
        prop_assert_eq!(
            (u.prompt_tokens, u.completion_tokens),
            (c.answer.prompt, c.answer.completion),
            "{}", whole.1
        );
    }

    /// An OpenAI stream reaches an OpenAI client as it came, byte for byte,
    /// but for the usage chunk when the gateway asked for it; the same byte by
    /// byte.
    #[test]
    fn an_openai_stream_passes_unchanged(a in answer(), s in style(), strip: bool, cuts in prop::collection::vec(any::<Index>(), 0..12)) {
        let (bytes, usage_event) = openai_stream(&a, s, true);
        let c = Case {
            seam: Seam { inbound: CHAT, dialect: Dialect::OpenAi },
            framing: Framing::Sse,
            strip_usage: strip,
            include_usage: false,
            bytes: bytes.clone(),
            answer: a,
        };
        let mut m = Meter::new(c.seam, true, strip, false);
        let mut out = Vec::new();
        for r in split(&bytes, &cuts) {
            out.extend_from_slice(&m.on_frame(Bytes::copy_from_slice(r)).unwrap_or_default());
        }
        out.extend_from_slice(&m.finish().unwrap_or_default());
        let want = match strip {
            false => bytes,
            true => {
                let at = bytes.windows(usage_event.len()).position(|w| w == usage_event).unwrap();
                [&bytes[..at], &bytes[at + usage_event.len()..]].concat()
            }
        };
        prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
    }

    /// Any bytes, as a stream of any seam and framing, split anyhow: no
    /// panic, and the same answer as in one read.
    #[test]
    fn any_bytes_never_panic(
        c in case(),
        bytes in prop::collection::vec(prop_oneof![
            6 => prop::sample::select(b"data: {}[]\":,\r\n\n event:message_stop[DONE]".to_vec()),
            1 => any::<u8>(),
        ], 0..400),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let whole = meter(&c, &[&bytes]);
        let parts = meter(&c, &split(&bytes, &cuts));
        prop_assert_eq!((parts.0, parts.1), (whole.0, whole.1));
    }

    /// A valid stream with bytes changed anywhere: no panic, and the same
    /// answer whatever the reads.
    #[test]
    fn a_damaged_stream_never_panics(
        c in case(),
        damage in prop::collection::vec((any::<Index>(), any::<u8>()), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let mut bytes = c.bytes.clone();
        for (at, b) in damage {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
        }
        let whole = meter(&c, &[&bytes]);
        let parts = meter(&c, &split(&bytes, &cuts));
        prop_assert_eq!((parts.0, parts.1), (whole.0, whole.1));
    }
}
