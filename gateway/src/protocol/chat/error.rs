//! OpenAI's error body, `{"error":{"message","type","code"}}`, as the
//! translations write it from another dialect's error (or stream event), and
//! the upstream's own text, quoted and bounded, when its error has no shape
//! they know.

use bytes::Bytes;
use serde::Serialize;
use std::borrow::Cow;

/// Longest upstream text quoted when an error body is not of the expected shape.
const MAX_QUOTED: usize = 512;

/// The upstream's text, bounded, when it is not JSON of the expected shape.
pub(crate) fn quoted(body: &[u8]) -> Cow<'static, str> {
    // (a few bytes more than are kept: a character cut at the end of the
    // slice is past the cut below)
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_QUOTED + 4)]);
    let mut end = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(text[..end].trim().to_string())
}

/// The error body (or stream event data) with `message`, `type` `kind` and
/// `code`.
pub(crate) fn error_body(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    let body = OpenAiError {
        error: OpenAiDetail {
            message,
            kind,
            code,
        },
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .unwrap_or_default()
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
