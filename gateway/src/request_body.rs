//! The client's JSON body (read by `body_read.rs`), parsed as a flat list of
//! top-level fields that borrow the original bytes. Rewriting (model mapping,
//! provider options, `include_usage`) re-emits the fields untouched except those
//! it changes; when nothing changes the original bytes go upstream as they came.

use crate::error::GatewayError;
use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

pub struct ClientBody<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: Option<String>,
    pub stream: bool,
    /// the client asked for `stream_options.include_usage` itself
    pub include_usage: bool,
}

impl<'a> ClientBody<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<ClientBody<'a>, GatewayError> {
        let fields = crate::json::from_bytes::<Fields<'a>>(bytes)
            .map_err(GatewayError::bad_json)?
            .0;
        refuse_duplicates(&fields)?;
        if too_deep(bytes) {
            // (serde_json limits the depth of what it parses; the fields kept
            // raw are only skipped over, at any depth)
            return Err(GatewayError::bad_json(format_args!(
                "arrays and objects are nested deeper than {MAX_DEPTH}"
            )));
        }
        let mut body = ClientBody {
            fields,
            model: None,
            stream: false,
            include_usage: false,
        };
        if let Some(m) = body.get("model") {
            let model: String = serde_json::from_str(m.get()).map_err(|_| {
                GatewayError::bad_request("invalid_model", "\"model\" must be a string")
            })?;
            if model.len() > MAX_MODEL_LEN || model.chars().any(char::is_control) {
                return Err(GatewayError::bad_request(
                    "invalid_model",
                    format!("\"model\" must be at most {MAX_MODEL_LEN} bytes, without control characters"),
                ));
            }
            body.model = Some(model).filter(|m| !m.is_empty());
        }
        body.stream = body.get("stream").is_some_and(|v| v.get() == "true");
        if let Some(v) = body.get("stream_options") {
            // a duplicate inside is refused like one at the top level (serde's
            // derive reports it); another shape is the upstream's to judge
            // (serde's derive also reads a struct from a list: `[true]` is
            // not the client asking for usage)
            let object = v.get().starts_with('{');
            body.include_usage = match serde_json::from_str::<StreamOptions>(v.get()) {
                Ok(o) => object && o.include_usage == Some(true),
                Err(e) if e.to_string().starts_with("duplicate field") => {
                    return Err(duplicate_key("stream_options.include_usage"))
                }
                Err(_) => false,
            };
        }
        Ok(body)
    }

    /// The last value of a top-level field (JSON parsers keep the last duplicate).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// The body for one upstream: `model` set to `model`, `options` overriding the
    /// client's fields, and `stream_options.include_usage` added when asked.
    pub fn rewrite(
        &self,
        original: &Bytes,
        model: Option<&str>,
        options: &[(String, Box<RawValue>)],
        add_include_usage: bool,
    ) -> Bytes {
        let model_changes = model.is_some_and(|m| self.model.as_deref() != Some(m));
        if !model_changes && options.is_empty() && !add_include_usage {
            return original.clone();
        }
        let mut out = Vec::with_capacity(original.len() + 64);
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        for (k, v) in &self.fields {
            if options.iter().any(|(ok, _)| ok == k) {
                continue;
            }
            sep(&mut out);
            write_key(&mut out, k);
            match (k.as_ref(), model) {
                ("model", Some(m)) => write_str(&mut out, m),
                ("stream_options", _) if add_include_usage => write_stream_options(&mut out, v),
                _ => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        for (k, v) in options {
            sep(&mut out);
            write_key(&mut out, k);
            out.extend_from_slice(v.get().as_bytes());
        }
        if add_include_usage && self.get("stream_options").is_none() {
            sep(&mut out);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        }
        out.push(b'}');
        Bytes::from(out)
    }

    /// Bytes of prompt text (messages / prompt / input), for estimating prompt tokens
    /// when the upstream reports no usage.
    pub fn prompt_bytes(&self) -> usize {
        ["messages", "prompt", "input", "instructions", "system"]
            .iter()
            .filter_map(|k| self.get(k))
            .filter_map(|v| serde_json::from_str::<serde_json::Value>(v.get()).ok())
            .map(|v| text_len(&v))
            .sum()
    }
}

/// Longest `model` accepted: ids of real models are far shorter, and the name
/// travels into logs, spans and upstream URLs.
pub const MAX_MODEL_LEN: usize = 256;

/// Top-level fields the gateway reads (routing, auth, quotas, usage) or rewrites.
/// A duplicate of one of them is ambiguous: the gateway would act on one copy
/// while an upstream that keeps the first duplicate acts on another.
const READ_FIELDS: [&str; 11] = [
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "messages",
    "prompt",
    "input",
    "instructions",
];

fn refuse_duplicates(fields: &[(Cow<'_, str>, &RawValue)]) -> Result<(), GatewayError> {
    let mut seen = 0u16;
    for (k, _) in fields {
        let i = match k.as_ref() {
            "model" => 0,
            "stream" => 1,
            "stream_options" => 2,
            "max_tokens" => 3,
            "max_completion_tokens" => 4,
            "max_output_tokens" => 5,
            "n" => 6,
            "messages" => 7,
            "prompt" => 8,
            "input" => 9,
            "instructions" => 10,
            _ => continue,
        };
        if seen & (1 << i) != 0 {
            return Err(duplicate_key(READ_FIELDS[i]));
        }
        seen |= 1 << i;
    }
    Ok(())
}

/// Deepest nesting of arrays and objects accepted: what serde_json and most
/// upstreams' parsers accept; deeper bodies are refused before they go upstream.
const MAX_DEPTH: usize = 128;

/// Whether `json` (already parsed as a valid object) nests arrays and objects
/// deeper than [`MAX_DEPTH`]. A body with at most that many brackets cannot
/// (one SIMD count, the usual answer); otherwise one pass over the structure,
/// strings skipped by search (they hold most of a chat body's bytes).
fn too_deep(json: &[u8]) -> bool {
    if memchr::memchr2_iter(b'[', b'{', json)
        .take(MAX_DEPTH + 1)
        .count()
        <= MAX_DEPTH
    {
        return false;
    }
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&b) = json.get(at) {
        at += 1;
        match b {
            b'"' => {
                // to the closing quote: the next `"` not escaped
                while let Some(i) = memchr::memchr2(b'"', b'\\', &json[at..]) {
                    let found = json[at + i];
                    at += i + if found == b'\\' { 2 } else { 1 };
                    if found == b'"' {
                        break;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn duplicate_key(name: &str) -> GatewayError {
    GatewayError::bad_request(
        "duplicate_key",
        format!("the request body has more than one {name:?}: send each field once"),
    )
}

fn text_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(a) => a.iter().map(text_len).sum(),
        serde_json::Value::Object(o) => o
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "content" | "text" | "input" | "arguments" | "output"
                )
            })
            .map(|(_, v)| text_len(v))
            .sum(),
        _ => 0,
    }
}

fn write_key(out: &mut Vec<u8>, k: &str) {
    write_str(out, k);
    out.push(b':');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_stream_options(out: &mut Vec<u8>, v: &RawValue) {
    let mut map = match serde_json::from_str::<serde_json::Value>(v.get()) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    map.insert("include_usage".into(), serde_json::Value::Bool(true));
    let _ = serde_json::to_writer(&mut *out, &map);
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A JSON object's top-level fields in order, keys and values borrowed (also
/// what the protocol translations read bodies with).
pub(crate) struct Fields<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, val)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    v.push((k.0, val));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(
        body: &str,
        model: Option<&str>,
        opts: &[(&str, &str)],
        usage: bool,
    ) -> serde_json::Value {
        let original = Bytes::copy_from_slice(body.as_bytes());
        let parsed = ClientBody::parse(&original).unwrap();
        let opts: Vec<(String, Box<RawValue>)> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), RawValue::from_string(v.to_string()).unwrap()))
            .collect();
        serde_json::from_slice(&parsed.rewrite(&original, model, &opts, usage)).unwrap()
    }

    #[test]
    fn parses_fields() {
        let b = ClientBody::parse(br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"x":{"y":[1]}}"#).unwrap();
        assert_eq!(b.model.as_deref(), Some("gpt-4o"));
        assert!(b.stream && b.include_usage);
        assert_eq!(b.get("x").unwrap().get(), r#"{"y":[1]}"#);
        assert!(ClientBody::parse(b"[1]").is_err());
        assert!(ClientBody::parse(b"{bad").is_err());
        assert!(ClientBody::parse(br#"{"model":5}"#).is_err());
        assert!(ClientBody::parse(br#"{"model":""}"#)
            .unwrap()
            .model
            .is_none());
    }

    /// Found by `duplicates_are_refused_and_the_rest_is_read`: serde's derive
    /// read `[true]` as `{"include_usage": true}`, and the gateway took the
    /// client for one that asked for the usage chunk (and passed it on).
    #[test]
    fn stream_options_that_are_not_an_object_ask_for_nothing() {
        for v in ["[true]", "[true, 1]", "true", "\"include_usage\""] {
            let body = format!(r#"{{"model":"m","stream":true,"stream_options":{v}}}"#);
            let b = ClientBody::parse(body.as_bytes()).unwrap();
            assert!(!b.include_usage, "{v}");
        }
    }

    #[test]
    fn duplicates_of_fields_the_gateway_reads_are_refused() {
        for body in [
            r#"{"model":"allowed","messages":[],"model":"forbidden"}"#,
            r#"{"model":"m","stream":false,"stream":true}"#,
            r#"{"model":"m","max_tokens":1,"max_tokens":100000}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_usage":true}}"#,
        ] {
            let e = ClientBody::parse(body.as_bytes()).err().unwrap();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "duplicate_key"),
                "{body}"
            );
        }
        // fields the gateway neither reads nor rewrites are the upstream's business
        let b = ClientBody::parse(br#"{"model":"m","user":"a","user":"b"}"#).unwrap();
        assert_eq!(b.model.as_deref(), Some("m"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let nested =
            |n: usize| format!(r#"{{"model":"m","x":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(ClientBody::parse(nested(MAX_DEPTH - 1).as_bytes()).is_ok());
        let e = ClientBody::parse(nested(100_000).as_bytes()).err().unwrap();
        assert_eq!(e.code, "invalid_json");
        // brackets inside strings do not count (escaped quotes do not end them)
        let text = format!(r#"{{"model":"m","x":"\\\"{}"}}"#, "[".repeat(1000));
        assert!(ClientBody::parse(text.as_bytes()).is_ok());
        // many brackets, none deep
        let wide = format!(r#"{{"model":"m","x":[{}[]]}}"#, "[],".repeat(1000));
        assert!(ClientBody::parse(wide.as_bytes()).is_ok());
        let deep_after_strings = format!(
            r#"{{"model":"m","s":"a\\\"b[[","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(ClientBody::parse(deep_after_strings.as_bytes()).is_err());
    }

    #[test]
    fn model_names_are_bounded() {
        let ok = format!(r#"{{"model":"{}"}}"#, "m".repeat(MAX_MODEL_LEN));
        assert!(ClientBody::parse(ok.as_bytes()).is_ok());
        let long = format!(r#"{{"model":"{}"}}"#, "m".repeat(MAX_MODEL_LEN + 1));
        let e = ClientBody::parse(long.as_bytes()).err().unwrap();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_model"));
        assert!(
            e.message.len() < 100,
            "the name is not echoed: {}",
            e.message
        );
        for name in [r"gpt\u0000", r"gpt\r\nX: 1", r"\u001b[31m", r"gpt\u0085"] {
            let body = format!(r#"{{"model":"{name}"}}"#);
            let e = ClientBody::parse(body.as_bytes()).err().unwrap();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "invalid_model"),
                "{name}"
            );
        }
    }

    #[test]
    fn unchanged_body_is_the_same_bytes() {
        let original = Bytes::from_static(br#"{"model":"m",  "unknown_field": 1.000}"#);
        let parsed = ClientBody::parse(&original).unwrap();
        let out = parsed.rewrite(&original, Some("m"), &[], false);
        assert_eq!(out.as_ptr(), original.as_ptr());
    }

    #[test]
    fn maps_model_and_overrides_options() {
        let v = rewrite(
            r#"{"model":"gpt-4","temperature":0.7,"keep":{"deep":[1,2]},"big":12345678901234567890123}"#,
            Some("gpt-4o"),
            &[("temperature", "0"), ("max_tokens", "1024")],
            false,
        );
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["temperature"], 0);
        assert_eq!(v["max_tokens"], 1024);
        assert_eq!(v["keep"]["deep"][1], 2);
        assert!(v["big"].is_number());
    }

    #[test]
    fn adds_include_usage() {
        let v = rewrite(r#"{"model":"m","stream":true}"#, None, &[], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        let v = rewrite(
            r#"{"model":"m","stream":true,"stream_options":{"other":1}}"#,
            None,
            &[],
            true,
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["other"], 1);
    }

    #[test]
    fn escaped_keys_and_values_survive() {
        let v = rewrite(r#"{"model":"m","we\"ird":"va\nl"}"#, Some("n"), &[], false);
        assert_eq!(v["we\"ird"], "va\nl");
    }

    #[test]
    fn prompt_size() {
        let b = ClientBody::parse(br#"{"model":"m","messages":[{"role":"user","content":"12345678"},{"role":"user","content":[{"type":"text","text":"abcd"}]}]}"#).unwrap();
        assert_eq!(b.prompt_bytes(), 12);
    }
}

#[cfg(test)]
#[path = "request_body_proptests.rs"]
mod proptests;
