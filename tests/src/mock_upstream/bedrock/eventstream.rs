//! The AWS eventstream framing of the mock's ConverseStream answers: an encoder
//! written here, apart from the gateway's decoder (`aws-smithy-eventstream`), so
//! that each checks the other.
//!
//! A frame (all integers big-endian):
//!
//! | bytes | what |
//! |---|---|
//! | 4 | total length of the frame, these 4 bytes and the final CRC included |
//! | 4 | length of the headers |
//! | 4 | CRC32 of the 8 bytes before it (the prelude CRC) |
//! | .. | headers: each a 1-byte name length, the name, a value type (7 = string), a 2-byte value length, the value |
//! | .. | the payload |
//! | 4 | CRC32 of every byte before it (the message CRC) |
//!
//! Every frame of the mock has string headers only: an event has `:event-type`,
//! `:content-type: application/json` and `:message-type: event`; an exception
//! `:exception-type`, `:content-type` and `:message-type: exception`.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

/// The value type of a string header.
const STRING: u8 = 7;

/// One frame with `headers` (all strings) and `payload`. Panics when a header
/// name is over 255 bytes or a value over 65,535 (the format's limits; the mock
/// writes only short ones).
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = BytesMut::new();
    for (name, value) in headers {
        let name_len = u8::try_from(name.len()).expect("header name of at most 255 bytes");
        let value_len = u16::try_from(value.len()).expect("header value of at most 65535 bytes");
        h.put_u8(name_len);
        h.put_slice(name.as_bytes());
        h.put_u8(STRING);
        h.put_u16(value_len);
        h.put_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(u32::try_from(total).expect("a frame under 4 GiB"));
    out.put_u32(u32::try_from(h.len()).expect("headers under 4 GiB"));
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    out.put_slice(&h);
    out.put_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.put_u32(message_crc);
    out.freeze()
}

/// An event frame of type `event_type` with a JSON payload.
pub fn event(event_type: &str, payload: &Value) -> Bytes {
    encode_frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// An exception frame of type `exception_type` with a JSON payload.
pub fn exception(exception_type: &str, payload: &Value) -> Bytes {
    encode_frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// `frames` cut into pieces of 1, 2, .., 7, 1, 2, .. bytes, regardless of where a
/// frame ends: what the tiny-writes switch sends, one write each.
pub fn tiny_pieces(frames: impl IntoIterator<Item = Bytes>) -> Vec<Bytes> {
    let mut all = BytesMut::new();
    for f in frames {
        all.put_slice(&f);
    }
    let mut all = all.freeze();
    let mut out = Vec::new();
    let mut size = 1;
    while !all.is_empty() {
        out.push(all.split_to(size.min(all.len())));
        size = size % 7 + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_has_its_lengths_and_both_crcs() {
        let f = encode_frame(&[("a", "bc")], b"{}");
        let u32_at = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
        // headers: 1 + 1 + 1 + 2 + 2 = 7 bytes
        assert_eq!(u32_at(4), 7);
        assert_eq!(u32_at(0) as usize, f.len());
        assert_eq!(f.len(), 12 + 7 + 2 + 4);
        assert_eq!(u32_at(8), crc32fast::hash(&f[..8]));
        assert_eq!(u32_at(f.len() - 4), crc32fast::hash(&f[..f.len() - 4]));
        assert_eq!(&f[12..19], b"\x01a\x07\x00\x02bc");
        assert_eq!(&f[19..21], b"{}");
    }

    #[test]
    fn tiny_pieces_keep_every_byte_in_order() {
        let frames = [
            Bytes::from_static(b"0123456789"),
            Bytes::from_static(b"abcdefghij"),
        ];
        let pieces = tiny_pieces(frames);
        let sizes: Vec<usize> = pieces.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [1, 2, 3, 4, 5, 5]);
        assert_eq!(pieces.concat(), b"0123456789abcdefghij");
    }
}
