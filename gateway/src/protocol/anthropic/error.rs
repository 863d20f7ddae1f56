//! Upstream error bodies in the client's shape: OpenAI's
//! `{"error":{"message","type","code"}}` and Anthropic's
//! `{"type":"error","error":{"type","message"}}` (the status is the caller's).

use super::super::chat::error::{error_body, quoted};
use super::read::ErrorIn;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::wire::anthropic::{error_type, ErrorBody};
use std::borrow::Cow;

/// An Anthropic error body as OpenAI's.
pub fn error_to_chat(body: &[u8]) -> Bytes {
    let (kind, message) = match serde_json::from_slice::<AnthropicError<'_>>(body) {
        Ok(AnthropicError { error: Some(e) }) => (
            e.kind.unwrap_or(Cow::Borrowed("api_error")),
            e.message.unwrap_or_default(),
        ),
        _ => (Cow::Borrowed("api_error"), quoted(body)),
    };
    error_body(&message, &kind, None)
}

/// An OpenAI(-compatible) error body as Anthropic's, its type from `status`.
pub fn error_to_messages(body: &[u8], status: u16) -> Bytes {
    let message = match serde_json::from_slice::<OpenAiIn<'_>>(body) {
        Ok(e) => match (e.error, e.message) {
            (Some(d), _) if d.get().starts_with('{') => {
                serde_json::from_str::<DetailIn<'_>>(d.get())
                    .ok()
                    .and_then(|d| d.message)
                    .unwrap_or_default()
            }
            (Some(d), _) if d.get().starts_with('"') => {
                serde_json::from_str::<Cow<'_, str>>(d.get()).unwrap_or_default()
            }
            (_, Some(m)) => m,
            _ => quoted(body),
        },
        Err(_) => quoted(body),
    };
    json(&ErrorBody::<&str>::new(error_type(status), &message))
}

fn json(v: &impl Serialize) -> Bytes {
    serde_json::to_vec(v).map(Bytes::from).unwrap_or_default()
}

#[derive(Deserialize)]
struct AnthropicError<'a> {
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
struct OpenAiIn<'a> {
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    /// vLLM and others: `{"object":"error","message":..}`
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DetailIn<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}
