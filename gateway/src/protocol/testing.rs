//! What the translations' tests share: JSON from text, the SSE events a
//! translation wrote, a stream run through a translation, and usage.

use super::{Events, Read};
use bytes::BytesMut;
use serde_json::Value;
use shared::usage::Usage;

pub(crate) fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The SSE events in `out`: (event name, data), `[DONE]` as a string.
pub(crate) fn named_events(out: &[u8]) -> Vec<(Option<String>, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line: {e:?}");
                    data = Some(match d {
                        "[DONE]" => Value::String(d.into()),
                        d => json(d),
                    });
                } else {
                    panic!("not SSE: {line:?}");
                }
            }
            (name, data.unwrap())
        })
        .collect()
}

/// The OpenAI SSE events in `out` (one data line each, no names), each
/// event's data (`[DONE]` as a string).
pub(crate) fn chat_events(out: &[u8]) -> Vec<Value> {
    named_events(out)
        .into_iter()
        .map(|(name, data)| {
            assert_eq!(name, None, "OpenAI events have no names: {data}");
            data
        })
        .collect()
}

/// The first choice's `delta` of each chunk of `chunks` that has one.
pub(crate) fn deltas(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta").cloned())
        .collect()
}

/// What `t` writes for the upstream events `stream` (and, when `end`, for
/// the upstream stream's end), read into `read`.
pub(crate) fn run(t: &mut dyn Events, stream: &[&str], read: &mut Read, end: bool) -> BytesMut {
    let mut out = BytesMut::new();
    for e in stream {
        t.event(e.as_bytes(), read, &mut out);
    }
    if end {
        t.end(read, &mut out);
    }
    out
}

/// Usage of `prompt` tokens (`cached` of them read from the prompt cache,
/// `written` written to it), `completion` and `total` tokens, counted by the
/// upstream.
pub(crate) fn usage(prompt: u64, cached: u64, written: u64, completion: u64, total: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        cached_tokens: cached,
        cache_creation_tokens: written,
        completion_tokens: completion,
        total_tokens: total,
        ..Usage::default()
    }
}
