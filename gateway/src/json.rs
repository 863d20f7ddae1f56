//! JSON read from bytes as `serde_json::from_slice` reads it, UTF-8 checked once.

use serde::Deserialize;

/// What `serde_json::from_slice` gives, at less cost: the bytes are checked to
/// be UTF-8 once, and then parsed as text, where `serde_json` does not check
/// again each string it reads (about 100 instructions per string). Bytes that
/// are not UTF-8 go to `from_slice`, so its error, with the position, stays.
pub fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::from_bytes;
    use serde_json::Value;
    use std::borrow::Cow;

    fn same(bytes: &[u8]) {
        let ours = from_bytes::<Value>(bytes).map_err(|e| e.to_string());
        let theirs = serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(bytes));
    }

    #[test]
    fn reads_what_from_slice_reads_and_fails_where_it_fails() {
        for b in [
            &br#"{"a":"x\u00e9y","b":[1,2.5,null,true],"c":{"d":"\ud83d\ude00"}}"#[..],
            "{\"é\":\"ü\"}".as_bytes(),
            b"{bad",
            b"[1,2",
            b"\"\\ud800\"",
            b"{\"a\":\"\xff\"}",
            b"\xff{}",
            b"{\"a\":1}\xc3",
            b"",
        ] {
            same(b);
        }
    }

    #[test]
    fn borrows_strings_from_the_bytes() {
        let b = br#"{"id":"chatcmpl-1"}"#.to_vec();
        #[derive(serde::Deserialize)]
        struct Top<'a> {
            #[serde(borrow)]
            id: Cow<'a, str>,
        }
        let t: Top<'_> = from_bytes(&b).unwrap();
        assert!(matches!(t.id, Cow::Borrowed("chatcmpl-1")));
    }
}
