//! The translations to and from Converse, one scenario per test: requests
//! (each mapped field, what is dropped, what is refused), answers, streams,
//! errors, and the eventstream framing.

mod answers;
mod errors;
mod eventstream;
mod requests;
mod streams;
mod unserved;

use super::super::testing::{chat_events, json, run};
use super::super::Read;
use super::{chat_to_converse, RequestOpts};
use serde_json::value::RawValue;
use serde_json::Value;

/// `body` translated (with provider `options`): the Converse request and the
/// warnings.
fn converse_with(body: &str, options: &[(String, Box<RawValue>)]) -> (Value, Vec<String>) {
    let opts = RequestOpts {
        model: "anthropic.claude-x",
        default_max_tokens: 4096,
        options,
    };
    let t = chat_to_converse(body.as_bytes(), &opts).unwrap_or_else(|r| panic!("{r}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.warnings)
}

/// `body` translated: the Converse request and the warnings.
fn converse(body: &str) -> (Value, Vec<String>) {
    converse_with(body, &[])
}

/// A `Read` as the caller sets it up: the upstream model known.
fn read() -> Read {
    Read {
        model: Some("anthropic.claude-x".into()),
        ..Read::default()
    }
}
