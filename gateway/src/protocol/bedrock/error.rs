//! Bedrock's errors in OpenAI's shape, `{"error":{"message","type","code"}}`:
//! an error body (`{"message": ..}`, its type in the `x-amzn-ErrorType`
//! header or the body's `__type`), and a stream's exception event (the status
//! of an error answer is the caller's).

use super::super::chat::error::{error_body, quoted};
use super::read::ExceptionIn;
use bytes::Bytes;
use serde::Deserialize;
use std::borrow::Cow;

/// A Bedrock error body as OpenAI's (`status`: the answer's; `error_type`: the
/// `x-amzn-ErrorType` header's value, e.g. `ValidationException`, when known).
/// `code` is Bedrock's error type, `type` OpenAI's for the status.
pub fn error_to_chat(body: &[u8], status: u16, error_type: Option<&str>) -> Bytes {
    let parsed = serde_json::from_slice::<BodyIn<'_>>(body).ok();
    let (message, kind) = match parsed {
        Some(b) => (b.message.unwrap_or_else(|| quoted(body)), b.kind),
        None => (quoted(body), None),
    };
    let code = error_type.or(kind.as_deref()).map(short_type);
    let message = match message.is_empty() {
        true => Cow::Owned(format!("Bedrock answered {status}")),
        false => message,
    };
    error_body(&message, openai_type(status), code)
}

/// The OpenAI error body (or stream event data) for a stream's exception
/// event `name` (`internalServerException`...) with payload `e`.
pub(super) fn exception(name: &str, e: &ExceptionIn<'_>) -> Bytes {
    let message = match (&e.message, &e.original_message) {
        (Some(m), Some(o)) => Cow::Owned(format!("{m} ({o})")),
        (Some(m), None) => Cow::Borrowed(m.as_ref()),
        (None, Some(o)) => Cow::Borrowed(o.as_ref()),
        (None, None) => Cow::Owned(format!("the upstream's stream failed: {name}")),
    };
    let code = e.code.as_deref().unwrap_or(name);
    error_body(&message, openai_type(exception_status(name)), Some(code))
}

/// The HTTP status Bedrock documents for a ConverseStream exception.
fn exception_status(name: &str) -> u16 {
    match name {
        "validationException" => 400,
        "throttlingException" => 429,
        "modelStreamErrorException" => 424,
        "serviceUnavailableException" => 503,
        // internalServerException, the framing's errors, later additions
        _ => 500,
    }
}

/// OpenAI's error `type` for a status.
fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        // (424: the model failed, not the request)
        424 | 500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// An AWS error type without its namespace or trailing URL
/// (`aws.protocols#ValidationException:http://..` -> `ValidationException`).
fn short_type(t: &str) -> &str {
    let t = t.rsplit('#').next().unwrap_or(t);
    t.split(':').next().unwrap_or(t).trim()
}

/// An AWS JSON error body: `{"message": ..}` (some services `Message`), with
/// the error type in `__type` when the header did not carry it.
#[derive(Deserialize)]
struct BodyIn<'a> {
    #[serde(borrow, default, alias = "Message")]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "__type")]
    kind: Option<Cow<'a, str>>,
}
