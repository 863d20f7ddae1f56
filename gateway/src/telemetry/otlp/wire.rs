//! Protobuf writing into one reusable buffer: fields through `prost`'s encoding
//! primitives, nested messages written in place with their length filled in after
//! (no intermediate message structs, no allocation per field).

use prost::encoding::{encode_varint, encoded_len_varint, WireType};

#[derive(Default)]
pub struct Pb {
    pub buf: Vec<u8>,
}

impl Pb {
    pub fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    /// A string field holding `parts` one after the other.
    pub fn string_parts(&mut self, field: u32, parts: &[&str]) {
        self.key(field, WireType::LengthDelimited);
        self.raw_varint(parts.iter().map(|p| p.len()).sum::<usize>() as u64);
        for p in parts {
            self.buf.extend_from_slice(p.as_bytes());
        }
    }

    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, WireType::LengthDelimited);
        self.raw_varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A varint field, written even when 0 (a oneof member must be present).
    pub fn varint(&mut self, field: u32, v: u64) {
        self.key(field, WireType::Varint);
        self.raw_varint(v);
    }

    pub fn fixed64(&mut self, field: u32, v: u64) {
        self.key(field, WireType::SixtyFourBit);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn fixed32(&mut self, field: u32, v: u32) {
        self.key(field, WireType::ThirtyTwoBit);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn double(&mut self, field: u32, v: f64) {
        self.fixed64(field, v.to_bits());
    }

    /// A KeyValue `{key, value: AnyValue{string_value}}` as field `field`. The
    /// attribute writers compute their lengths up front and write straight
    /// through: a request carries some 70 of them.
    #[inline(always)]
    pub fn kv_str(&mut self, field: u32, key: &str, v: &str) {
        let any = 1 + len_varint(v.len()) + v.len();
        self.kv_head(field, key, any);
        self.buf.push(0x0a); // string_value = 1
        self.raw_varint(v.len() as u64);
        self.buf.extend_from_slice(v.as_bytes());
    }

    /// A KeyValue holding an int_value (field 3 of AnyValue).
    #[inline(always)]
    pub fn kv_int(&mut self, field: u32, key: &str, v: i64) {
        let v = v as u64;
        self.kv_head(field, key, 1 + encoded_len_varint(v));
        self.buf.push(0x18);
        self.raw_varint(v);
    }

    /// A KeyValue holding a bool_value (field 2 of AnyValue).
    pub fn kv_bool(&mut self, field: u32, key: &str, v: bool) {
        self.kv_head(field, key, 2);
        self.buf.push(0x10);
        self.buf.push(u8::from(v));
    }

    /// A KeyValue's tag, length, key and the head of its AnyValue of `any` bytes.
    #[inline(always)]
    fn kv_head(&mut self, field: u32, key: &str, any: usize) {
        let kv = 1 + len_varint(key.len()) + key.len() + 1 + len_varint(any) + any;
        self.buf.reserve(kv + 6);
        self.key(field, WireType::LengthDelimited);
        self.raw_varint(kv as u64);
        self.buf.push(0x0a); // key = 1
        self.raw_varint(key.len() as u64);
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(0x12); // value = 2
        self.raw_varint(any as u64);
    }

    #[inline(always)]
    fn key(&mut self, field: u32, wire: WireType) {
        self.raw_varint(u64::from(field << 3 | wire as u32));
    }

    /// A varint, with the common one-byte case inline.
    #[inline(always)]
    fn raw_varint(&mut self, v: u64) {
        if v < 0x80 {
            self.buf.push(v as u8);
        } else {
            encode_varint(v, &mut self.buf);
        }
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
        let open = self.open(field, guess);
        body(self);
        self.close(open);
    }

    /// Starts a nested message whose fields are written next (by any number of
    /// calls); `close` puts its length in front. For `msg_sized` and the export
    /// requests records are added to as they arrive.
    pub fn open(&mut self, field: u32, guess: usize) -> Open {
        self.key(field, WireType::LengthDelimited);
        let at = self.buf.len();
        self.buf.resize(at + guess, 0);
        Open { at, guess }
    }

    pub fn close(&mut self, Open { at, guess }: Open) {
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

/// A nested message being written: where its length goes, and the room left.
#[must_use]
pub struct Open {
    at: usize,
    guess: usize,
}

fn len_varint(n: usize) -> usize {
    encoded_len_varint(n as u64)
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

    #[derive(Clone, PartialEq, prost::Message)]
    struct Any {
        #[prost(string, optional, tag = "1")]
        s: Option<String>,
        #[prost(bool, optional, tag = "2")]
        b: Option<bool>,
        #[prost(int64, optional, tag = "3")]
        i: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Kv {
        #[prost(string, tag = "1")]
        key: String,
        #[prost(message, optional, tag = "2")]
        value: Option<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Attrs {
        #[prost(message, repeated, tag = "9")]
        kv: Vec<Kv>,
        #[prost(string, tag = "5")]
        name: String,
    }

    #[test]
    fn attributes_decode_with_prost() {
        let long_key = "k".repeat(200);
        let long_val = "v".repeat(20_000);
        let mut pb = Pb::default();
        pb.kv_str(9, "a", "");
        pb.kv_str(9, &long_key, &long_val);
        pb.kv_int(9, "n", -1);
        pb.kv_int(9, "big", i64::MAX);
        pb.kv_int(9, "zero", 0);
        pb.kv_bool(9, "t", true);
        pb.kv_bool(9, "f", false);
        pb.string_parts(5, &["POST", " ", "/v1/chat/completions"]);
        let d = Attrs::decode(pb.buf.as_slice()).unwrap();
        let v = |i: usize| d.kv[i].value.clone().unwrap();
        assert_eq!(d.kv.len(), 7);
        assert_eq!((d.kv[0].key.as_str(), v(0).s.as_deref()), ("a", Some("")));
        assert_eq!(d.kv[1].key, long_key);
        assert_eq!(v(1).s.as_deref(), Some(long_val.as_str()));
        assert_eq!(v(2).i, Some(-1));
        assert_eq!(v(3).i, Some(i64::MAX));
        assert_eq!(v(4).i, Some(0));
        assert_eq!((v(5).b, v(6).b), (Some(true), Some(false)));
        assert_eq!(d.name, "POST /v1/chat/completions");
    }
}
