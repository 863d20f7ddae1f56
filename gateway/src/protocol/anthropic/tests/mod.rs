//! The translation tables, one row per mapped field (each row fails when its
//! mapping goes), and the streams, answers and errors both ways.

mod answers;
mod dropped;
mod requests;
mod streams;

use super::super::testing::{chat_events, json, named_events, run};
use super::super::Read;
use super::RequestOpts;
use serde_json::value::RawValue;

/// The default `max_tokens` the tests' translations use.
const DEFAULT_MAX: u32 = 4096;

fn opts<'a>(options: &'a [(String, Box<RawValue>)]) -> RequestOpts<'a> {
    RequestOpts {
        model: "upstream-model",
        default_max_tokens: DEFAULT_MAX,
        options,
    }
}

fn read() -> Read {
    Read::default()
}
