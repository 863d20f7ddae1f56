//! The translation tables, one row per mapped field (each row fails when its
//! mapping goes), the refusals and warnings, and the answers, streams, errors
//! and embeddings.

mod answers;
mod composed;
mod embeddings;
mod refused;
mod requests;
mod streams;

use super::super::testing::{chat_events, json, run};
use super::super::{Read, RequestOpts};
use serde_json::value::RawValue;

fn opts<'a>(options: &'a [(String, Box<RawValue>)]) -> RequestOpts<'a> {
    RequestOpts {
        model: "gemini-x",
        default_max_tokens: 4096,
        options,
    }
}

fn read() -> Read {
    Read::default()
}
