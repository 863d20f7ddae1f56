//! The translation tables, one row per mapped field (each row fails when its
//! mapping goes), and the streams, answers and errors both ways.

mod answers;
mod dropped;
mod requests;
mod streams;

use super::super::Read;
use super::RequestOpts;
use serde_json::value::RawValue;
use serde_json::Value;

/// The default `max_tokens` the tests' translations use.
const DEFAULT_MAX: u32 = 4096;

fn opts<'a>(options: &'a [(String, Box<RawValue>)]) -> RequestOpts<'a> {
    RequestOpts {
        model: "upstream-model",
        default_max_tokens: DEFAULT_MAX,
        options,
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The SSE events in `out`: (event name, data) with `[DONE]` as a string.
fn events(out: &[u8]) -> Vec<(Option<String>, Value)> {
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
                    data = Some(if d == "[DONE]" {
                        Value::String(d.into())
                    } else {
                        json(d)
                    });
                } else {
                    panic!("not SSE: {line:?}");
                }
            }
            (name, data.unwrap())
        })
        .collect()
}

fn read() -> Read {
    Read::default()
}
