//! The translation tables, one row per mapped field (each row fails when its
//! mapping goes), the refusals and warnings, and the answers, streams, errors
//! and embeddings.

mod answers;
mod composed;
mod embeddings;
mod refused;
mod requests;
mod streams;

use super::super::{Read, RequestOpts};
use serde_json::value::RawValue;
use serde_json::Value;

fn opts<'a>(options: &'a [(String, Box<RawValue>)]) -> RequestOpts<'a> {
    RequestOpts {
        model: "gemini-x",
        default_max_tokens: 4096,
        options,
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The OpenAI SSE events in `out` (`[DONE]` as a string).
fn events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| {
            let d = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an OpenAI event: {e:?}"));
            assert!(!d.contains('\n'), "one line of data: {e:?}");
            match d {
                "[DONE]" => Value::String(d.into()),
                d => json(d),
            }
        })
        .collect()
}

fn read() -> Read {
    Read::default()
}
