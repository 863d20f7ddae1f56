//! Protobuf writing into one reusable buffer: fields through `prost`'s encoding
//! primitives, nested messages written in place with their length filled in after
//! (no intermediate message structs, no allocation per field).

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

#[derive(Default)]
pub struct Pb {
    pub buf: Vec<u8>,
}

impl Pb {
    pub fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    /// A string field holding `a` followed by `b`.
    pub fn string_pair(&mut self, field: u32, a: &str, b: &str) {
        encode_key(field, WireType::LengthDelimited, &mut self.buf);
        encode_varint((a.len() + b.len()) as u64, &mut self.buf);
        self.buf.extend_from_slice(a.as_bytes());
        self.buf.extend_from_slice(b.as_bytes());
    }

    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        encode_key(field, WireType::LengthDelimited, &mut self.buf);
        encode_varint(b.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(b);
    }

    /// A varint field, written even when 0 (a oneof member must be present).
    pub fn varint(&mut self, field: u32, v: u64) {
        encode_key(field, WireType::Varint, &mut self.buf);
        encode_varint(v, &mut self.buf);
    }

    pub fn fixed64(&mut self, field: u32, v: u64) {
        encode_key(field, WireType::SixtyFourBit, &mut self.buf);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn fixed32(&mut self, field: u32, v: u32) {
        encode_key(field, WireType::ThirtyTwoBit, &mut self.buf);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn double(&mut self, field: u32, v: f64) {
        self.fixed64(field, v.to_bits());
    }

    /// A nested message: `body` writes its fields, then its length goes in front.
    /// For the small ones (attributes, values: under 128 bytes).
    pub fn msg(&mut self, field: u32, body: impl FnOnce(&mut Pb)) {
        self.msg_sized(field, 1, body);
    }

    /// A nested message whose length is expected to take `guess` bytes as a
    /// varint (2: up to 16 KiB, a span or log record; 3: up to 2 MiB, a whole
    /// request). A wrong guess costs moving the body once.
    pub fn msg_sized(&mut self, field: u32, guess: usize, body: impl FnOnce(&mut Pb)) {
        encode_key(field, WireType::LengthDelimited, &mut self.buf);
        let at = self.buf.len();
        self.buf.resize(at + guess, 0);
        body(self);
        let end = self.buf.len();
        let len = end - at - guess;
        let n = encoded_len_varint(len as u64);
        if n > guess {
            self.buf.resize(end + n - guess, 0);
            self.buf.copy_within(at + guess..end, at + n);
        } else if n < guess {
            self.buf.copy_within(at + guess..end, at + n);
            self.buf.truncate(end - (guess - n));
        }
        let mut dst = &mut self.buf[at..at + n];
        encode_varint(len as u64, &mut dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Inner {
        #[prost(string, tag = "1")]
        s: String,
        #[prost(fixed64, tag = "2")]
        t: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Outer {
        #[prost(message, repeated, tag = "3")]
        inner: Vec<Inner>,
        #[prost(int64, tag = "4")]
        n: i64,
    }

    #[test]
    fn nested_lengths_decode_with_prost() {
        for (size, guess) in [0, 5, 126, 127, 128, 300, 20_000, 3_000_000]
            .into_iter()
            .flat_map(|s| [(s, 1), (s, 2), (s, 3)])
        {
            let mut pb = Pb::default();
            let long = "x".repeat(size);
            pb.msg_sized(3, guess, |pb| {
                pb.string(1, &long);
                pb.fixed64(2, 7);
            });
            pb.msg(3, |pb| pb.string(1, "b"));
            pb.varint(4, -3i64 as u64);
            let d = Outer::decode(pb.buf.as_slice()).unwrap();
            assert_eq!(d.inner.len(), 2, "{size}");
            assert_eq!(d.inner[0].s.len(), size);
            assert_eq!(d.inner[0].t, 7);
            assert_eq!(d.inner[1].s, "b");
            assert_eq!(d.n, -3);
        }
    }
}
