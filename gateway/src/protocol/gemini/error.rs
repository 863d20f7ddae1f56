//! Gemini's error bodies (`{"error":{"code","message","status"}}`, on Vertex
//! AI sometimes inside a one-element array) in OpenAI's shape,
//! `{"error":{"message","type","code"}}` (the status is the caller's).

use super::super::chat::error::{error_body, quoted};
use bytes::Bytes;
use serde::Deserialize;
use std::borrow::Cow;

/// A Gemini error body -> OpenAI's error shape (`status`: the upstream's
/// HTTP status, which names the error's type unless the body's `code` does).
pub fn error_to_chat(body: &[u8], status: u16) -> Bytes {
    let parsed = serde_json::from_slice::<Body<'_>>(body)
        .ok()
        .and_then(|b| match b {
            Body::One(e) => e.error,
            Body::Many(mut v) => v.pop().and_then(|e| e.error),
        });
    let (message, code, status) = match parsed {
        Some(e) => (
            e.message.unwrap_or_default(),
            e.status.map(|s| s.to_ascii_lowercase()),
            e.code
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c))
                .unwrap_or(status),
        ),
        None => (quoted(body), None, status),
    };
    error_body(&message, error_type(status), code.as_deref())
}

/// The body has Google's error shape (a numeric `code` and a `status`), not
/// another API's: what Vertex AI answers itself (auth, quota, unknown model)
/// before a request reaches the model's own API.
pub fn is_google_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Body<'_>>(body)
        .ok()
        .and_then(|b| match b {
            Body::One(e) => e.error,
            Body::Many(mut v) => v.pop().and_then(|e| e.error),
        })
        .is_some_and(|e| e.code.is_some() && e.status.is_some())
}

/// OpenAI's error `type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body<'a> {
    // (first: an array would be read as a struct of its elements)
    Many(#[serde(borrow)] Vec<Envelope<'a>>),
    One(#[serde(borrow)] Envelope<'a>),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    #[serde(default)]
    code: Option<i64>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_errors_are_told_from_anthropic_ones() {
        assert!(is_google_error(
            br#"{"error":{"code":401,"message":"no","status":"UNAUTHENTICATED"}}"#
        ));
        assert!(is_google_error(
            br#"[{"error":{"code":404,"message":"no","status":"NOT_FOUND"}}]"#
        ));
        assert!(!is_google_error(
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"no"}}"#
        ));
        assert!(!is_google_error(b"not json"));
    }
}
