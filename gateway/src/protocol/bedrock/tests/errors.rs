//! Bedrock error bodies in OpenAI's shape.

use super::super::error_to_chat;
use super::json;
use serde_json::Value;

fn to_chat(body: &str, status: u16, error_type: Option<&str>) -> Value {
    serde_json::from_slice(&error_to_chat(body.as_bytes(), status, error_type)).unwrap()
}

#[test]
fn a_validation_error_with_its_type_from_the_header() {
    let got = to_chat(
        r#"{"message":"The model returned the following errors: messages: roles must alternate"}"#,
        400,
        Some("ValidationException"),
    );
    assert_eq!(
        got,
        json(
            r#"{"error":{"message":"The model returned the following errors: messages: roles must alternate",
                         "type":"invalid_request_error","code":"ValidationException"}}"#
        )
    );
}

#[test]
fn the_type_from_the_body_when_the_header_has_none() {
    let got = to_chat(
        r#"{"__type":"com.amazon.bedrock#ThrottlingException","message":"Too many requests"}"#,
        429,
        None,
    );
    assert_eq!(got["error"]["code"], "ThrottlingException");
    assert_eq!(got["error"]["type"], "rate_limit_error");
}

#[test]
fn the_header_type_without_its_trailing_url() {
    let got = to_chat(
        r#"{"message":"denied"}"#,
        403,
        Some("AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
    );
    assert_eq!(got["error"]["code"], "AccessDeniedException");
    assert_eq!(got["error"]["type"], "permission_error");
}

#[test]
fn a_capitalised_message_is_read() {
    let got = to_chat(
        r#"{"Message":"The security token included in the request is invalid."}"#,
        403,
        Some("UnrecognizedClientException"),
    );
    assert_eq!(
        got["error"]["message"],
        "The security token included in the request is invalid."
    );
}

#[test]
fn a_body_that_is_not_json_is_quoted() {
    let got = to_chat("<html>Bad Gateway</html>", 502, None);
    assert_eq!(got["error"]["message"], "<html>Bad Gateway</html>");
    assert_eq!(got["error"]["type"], "server_error");
    assert!(got["error"]["code"].is_null());
}

#[test]
fn an_empty_body_names_the_status() {
    let got = to_chat("", 503, Some("ServiceUnavailableException"));
    assert_eq!(got["error"]["message"], "Bedrock answered 503");
}
