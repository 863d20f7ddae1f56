//! The eventstream framing: messages as event data, frames split anywhere,
//! and what breaks a stream.

use super::super::eventstream::frames::{event, exception, frame};
use super::super::eventstream::{Decoder, MAX_MESSAGE_BYTES};
use super::json;
use serde_json::Value;

/// The event data `reads` decode to, and how the decoding ended.
fn decode(reads: &[&[u8]]) -> (Vec<Value>, Result<(), String>) {
    let mut d = Decoder::new();
    let mut got = Vec::new();
    let mut result = Ok(());
    for r in reads {
        let fed = d.feed(r, |data| got.push(json(std::str::from_utf8(data).unwrap())));
        if let Err(b) = fed {
            result = Err(b.to_string());
        }
    }
    (got, result)
}

fn three() -> Vec<u8> {
    let mut body = event("messageStart", r#"{"role":"assistant"}"#);
    body.extend(event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
    ));
    body.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
    body
}

#[test]
fn an_event_message_is_its_type_over_its_payload() {
    let (got, r) = decode(&[&event(
        "contentBlockDelta",
        r#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#,
    )]);
    assert_eq!(
        got,
        [json(
            r#"{"contentBlockDelta":{"delta":{"text":"Hi"},"contentBlockIndex":0}}"#
        )]
    );
    assert_eq!(r, Ok(()));
}

#[test]
fn an_exception_message_is_its_type_over_its_payload() {
    let (got, _) = decode(&[&exception(
        "throttlingException",
        r#"{"message":"slow down"}"#,
    )]);
    assert_eq!(
        got,
        [json(r#"{"throttlingException":{"message":"slow down"}}"#)]
    );
}

#[test]
fn an_exception_payload_that_is_not_json_is_its_message() {
    let (got, _) = decode(&[&exception("internalServerException", "plain text")]);
    assert_eq!(
        got,
        [json(
            r#"{"internalServerException":{"message":"plain text"}}"#
        )]
    );
}

#[test]
fn an_error_message_is_an_error_with_its_code_and_message() {
    let (got, _) = decode(&[&frame(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "it \"broke\""),
        ],
        "",
    )]);
    assert_eq!(
        got,
        [json(
            r#"{"error":{"code":"InternalFailure","message":"it \"broke\""}}"#
        )]
    );
}

#[test]
fn an_empty_payload_is_an_empty_object() {
    let (got, _) = decode(&[&event("contentBlockStop", "")]);
    assert_eq!(got, [json(r#"{"contentBlockStop":{}}"#)]);
}

#[test]
fn messages_of_unknown_kinds_are_skipped() {
    let mut body = frame(&[(":message-type", "ping")], "{}");
    body.extend(frame(&[(":message-type", "event")], "{}"));
    body.extend(event("messageStop", "{}"));
    let (got, r) = decode(&[&body]);
    assert_eq!(got, [json(r#"{"messageStop":{}}"#)]);
    assert_eq!(r, Ok(()));
}

#[test]
fn frames_in_one_read_all_decode() {
    let (got, _) = decode(&[&three()]);
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn frames_split_at_every_byte_offset_decode_the_same() {
    let body = three();
    let (whole, _) = decode(&[&body]);
    for at in 1..body.len() {
        let (a, b) = body.split_at(at);
        let (got, r) = decode(&[a, b]);
        assert_eq!(got, whole, "split at {at}");
        assert_eq!(r, Ok(()), "split at {at}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(decode(&bytes).0, whole, "byte by byte");
}

#[test]
fn a_cut_frame_is_pending() {
    let body = three();
    let mut d = Decoder::new();
    let mut n = 0;
    d.feed(&body[..body.len() - 3], |_| n += 1).unwrap();
    assert_eq!(n, 2);
    assert!(d.pending() > 0);
}

#[test]
fn a_corrupt_crc_breaks_the_stream_and_later_bytes_are_ignored() {
    let mut body = three();
    let first = event("messageStart", r#"{"role":"assistant"}"#).len();
    // the second frame's last byte: its message CRC
    let second_end = first
        + event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        )
        .len();
    body[second_end - 1] ^= 0xff;
    let (got, r) = decode(&[&body, &event("messageStop", "{}")]);
    assert_eq!(got.len(), 1, "only the frame before: {got:?}");
    assert!(r.unwrap_err().contains("checksum"));
}

#[test]
fn a_corrupt_prelude_breaks_the_stream() {
    let mut body = three();
    body[9] ^= 0x01; // the prelude CRC
    let (got, r) = decode(&[&body]);
    assert!(got.is_empty());
    assert!(r.is_err());
}

#[test]
fn a_message_longer_than_the_bound_breaks_the_stream_at_its_head() {
    let head = u32::try_from(MAX_MESSAGE_BYTES + 1).unwrap().to_be_bytes();
    let (_, r) = decode(&[&head]);
    assert!(
        r.unwrap_err().contains("more than"),
        "refused before its bytes arrive"
    );
}

#[test]
fn a_message_at_the_bound_is_taken() {
    let overhead = event("x", "").len();
    let payload = "a".repeat(MAX_MESSAGE_BYTES - overhead - 2);
    let (got, r) = decode(&[&event("x", &format!("\"{payload}\""))]);
    assert_eq!(r, Ok(()));
    assert_eq!(got.len(), 1);
}

#[test]
fn a_length_shorter_than_a_frame_breaks_the_stream() {
    let (_, r) = decode(&[&[0, 0, 0, 4, 0, 0, 0, 0]]);
    assert!(r.is_err());
}

#[test]
fn the_broken_streams_data_is_an_error_event() {
    let mut body = three();
    body[20] ^= 0xff;
    let mut d = Decoder::new();
    let b = d.feed(&body, |_| {}).unwrap_err();
    let data = json(std::str::from_utf8(&b.data()).unwrap());
    assert_eq!(data["error"]["code"], "InvalidEventStream");
    assert!(data["error"]["message"]
        .as_str()
        .unwrap()
        .contains("corrupt"));
}
