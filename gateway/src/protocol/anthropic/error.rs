//! Upstream error bodies in the client's shape: OpenAI's
//! `{"error":{"message","type","code"}}` and Anthropic's
//! `{"type":"error","error":{"type","message"}}` (the status is the caller's).

use super::read::ErrorIn;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::wire::anthropic::{error_type, ErrorBody};
use std::borrow::Cow;

/// Longest upstream text quoted when an error body is not of the expected shape.
const MAX_QUOTED: usize = 512;

/// An Anthropic error body as OpenAI's.
pub fn error_to_chat(body: &[u8]) -> Bytes {
    let (kind, message) = match serde_json::from_slice::<AnthropicError<'_>>(body) {
        Ok(AnthropicError { error: Some(e) }) => (
            e.kind.unwrap_or(Cow::Borrowed("api_error")),
            e.message.unwrap_or_default(),
        ),
        _ => (Cow::Borrowed("api_error"), quoted(body)),
    };
    json(&OpenAiError {
        error: OpenAiDetail {
            message: &message,
            kind: &kind,
            code: None,
        },
    })
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

/// The upstream's text, bounded, when it is not JSON of the expected shape.
pub(crate) fn quoted(body: &[u8]) -> Cow<'static, str> {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(text[..end].trim().to_string())
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

#[derive(Serialize)]
pub(crate) struct OpenAiError<'a> {
    pub error: OpenAiDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct OpenAiDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub code: Option<&'a str>,
}
