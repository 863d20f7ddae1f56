//! Translations through OpenAI chat, the seam's hub: an Anthropic Messages
//! client reaches a provider of a third API (Gemini, Bedrock) by the two
//! translations it is made of (Messages <-> chat, chat <-> the provider's), and
//! Anthropic's Messages body made the one Vertex AI takes.

use super::anthropic::ChatToMessages;
use super::{Events, Read, Refused};
use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;

/// What Vertex AI's `rawPredict` wants in the body instead of the model.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// A stream in a third API made OpenAI chat chunks by `first`, and those made
/// Anthropic Messages events. `read` is filled by `first` (what the upstream
/// said); the second step reads into a scratch copy, whose usage is `read`'s
/// whenever there is one: the events carry the upstream's figures, not what
/// survived the chat chunk (which has no field for cache writes).
pub struct ViaChat {
    first: Box<dyn Events>,
    then: ChatToMessages,
    /// chat chunks not yet handed on
    mid: BytesMut,
    scratch: Read,
}

impl ViaChat {
    /// `first` must write the usage chunk (made with `include_usage`): the
    /// Messages events carry usage.
    pub fn new(first: Box<dyn Events>) -> ViaChat {
        ViaChat {
            first,
            then: ChatToMessages::new(),
            mid: BytesMut::new(),
            scratch: Read::default(),
        }
    }

    /// Hands the complete chat events in `mid` to the second step.
    fn pass(&mut self, read: &Read, out: &mut BytesMut) {
        while let Some(end) = memchr::memmem::find(&self.mid, b"\n\n") {
            let event = self.mid.split_to(end + 2);
            let mut data = Vec::new();
            for line in event[..].split(|&b| b == b'\n') {
                if let Some(d) = line.strip_prefix(b"data:") {
                    if !data.is_empty() {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
                }
            }
            if !data.is_empty() {
                self.upstream_usage(read);
                self.then.event(&data, &mut self.scratch, out);
            }
        }
    }

    /// The usage the second step writes: the upstream's, as `first` read it.
    fn upstream_usage(&mut self, read: &Read) {
        if read.usage.is_some() {
            self.scratch.usage = read.usage;
        }
    }
}

impl Events for ViaChat {
    fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        self.first.event(data, read, &mut self.mid);
        self.pass(read, out);
    }

    fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        self.first.end(read, &mut self.mid);
        self.pass(read, out);
        self.upstream_usage(read);
        self.then.end(&mut self.scratch, out);
    }
}

/// A whole answer made OpenAI chat by `first` (which read the upstream's
/// answer into `read`), then an Anthropic Message with the upstream's usage.
pub fn answer_via_chat(chat: Bytes, read: &Read) -> Bytes {
    let mut scratch = Read::default();
    super::anthropic::chat_answer_as_message(&chat, &mut scratch, read.usage)
}

/// Anthropic's Messages body as Vertex AI's `rawPredict` takes it: no `model`
/// (it is in the URL) and `anthropic_version` (the client's when it set one).
pub fn vertex_messages(body: &[u8]) -> Result<Bytes, Refused> {
    let fields: indexmap::IndexMap<String, &RawValue> = serde_json::from_slice(body)
        .map_err(|e| Refused::new("(body)", format!("not a JSON object: {e}")))?;
    let mut out = Vec::with_capacity(body.len() + 48);
    out.push(b'{');
    if !fields.contains_key("anthropic_version") {
        out.extend_from_slice(b"\"anthropic_version\":\"");
        out.extend_from_slice(VERTEX_ANTHROPIC_VERSION.as_bytes());
        out.extend_from_slice(b"\",");
    }
    for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "model") {
        if out.len() > 1 && out.last() != Some(&b',') {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).map_err(|e| Refused::new("(body)", e.to_string()))?;
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    if out.last() == Some(&b',') {
        out.pop();
    }
    out.push(b'}');
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use shared::usage::Usage;

    #[test]
    fn vertex_body_drops_the_model_and_names_the_version() {
        let b =
            vertex_messages(br#"{"model":"claude-x","max_tokens":5,"stream":true,"messages":[]}"#)
                .unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            json!({"anthropic_version":"vertex-2023-10-16","max_tokens":5,"stream":true,"messages":[]})
        );
        let b = vertex_messages(br#"{"anthropic_version":"vertex-2099","model":"m"}"#).unwrap();
        assert_eq!(&b[..], br#"{"anthropic_version":"vertex-2099"}"#);
        assert!(vertex_messages(b"[1]").is_err());
    }

    /// Makes each upstream event a chat chunk with that text.
    struct Chunks;
    impl Events for Chunks {
        fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
            read.output_bytes += data.len();
            let chunk = json!({"id":"c1","object":"chat.completion.chunk","model":"m",
                "choices":[{"index":0,"delta":{"content":String::from_utf8_lossy(data)},"finish_reason":null}]});
            out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
        }
        fn end(&mut self, _: &mut Read, out: &mut BytesMut) {
            let last = json!({"id":"c1","object":"chat.completion.chunk","model":"m",
                "choices":[{"index":0,"delta":{},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}});
            out.extend_from_slice(format!("data: {last}\n\ndata: [DONE]\n\n").as_bytes());
        }
    }

    #[test]
    fn a_stream_is_translated_through_chat_chunks() {
        let mut via = ViaChat::new(Box::new(Chunks));
        let (mut read, mut out) = (Read::default(), BytesMut::new());
        via.event(b"Hel", &mut read, &mut out);
        via.event(b"lo", &mut read, &mut out);
        via.end(&mut read, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(
            text.contains(r#""text":"Hel""#) && text.contains(r#""text":"lo""#),
            "{text}"
        );
        assert!(text.contains(r#""stop_reason":"end_turn""#), "{text}");
        assert!(
            text.trim_end()
                .ends_with(r#"data: {"type":"message_stop"}"#),
            "{text}"
        );
        assert_eq!(
            read.output_bytes, 5,
            "the first step reads into the request's record"
        );
    }

    /// The upstream's figures as the first step reads them: 12 prompt tokens,
    /// 3 read from a cache and 4 written to it (Bedrock's cache writes, which
    /// the chat usage between the steps has no field for).
    fn cached_usage() -> Usage {
        Usage {
            prompt_tokens: 12,
            completion_tokens: 2,
            total_tokens: 14,
            cached_tokens: 3,
            cache_creation_tokens: 4,
            ..Usage::default()
        }
    }

    /// [`Chunks`] that reads [`cached_usage`] at the end, as a first step does.
    struct CachedChunks;
    impl Events for CachedChunks {
        fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
            Chunks.event(data, read, out);
        }
        fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
            read.usage = Some(cached_usage());
            let last = json!({"id":"c1","object":"chat.completion.chunk","model":"m",
                "choices":[{"index":0,"delta":{},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,
                    "prompt_tokens_details":{"cached_tokens":3}}});
            out.extend_from_slice(format!("data: {last}\n\ndata: [DONE]\n\n").as_bytes());
        }
    }

    const UPSTREAM_USAGE: &str = r#"{"input_tokens":5,"output_tokens":2,"cache_read_input_tokens":3,"cache_creation_input_tokens":4}"#;

    #[test]
    fn a_stream_through_chat_carries_the_upstreams_cache_writes() {
        let mut via = ViaChat::new(Box::new(CachedChunks));
        let (mut read, mut out) = (Read::default(), BytesMut::new());
        via.event(b"Hi", &mut read, &mut out);
        via.end(&mut read, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let delta = text
            .split("\n\n")
            .find(|e| e.starts_with("event: message_delta"))
            .unwrap_or_else(|| panic!("no message_delta: {text}"));
        let data: Value = serde_json::from_str(delta.split_once("data: ").unwrap().1).unwrap();
        let want: Value = serde_json::from_str(UPSTREAM_USAGE).unwrap();
        assert_eq!(data["usage"], want, "{text}");
    }

    #[test]
    fn an_answer_through_chat_carries_the_upstreams_cache_writes() {
        let chat = json!({"id":"c1","object":"chat.completion","model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,
                "prompt_tokens_details":{"cached_tokens":3}}});
        let read = Read {
            usage: Some(cached_usage()),
            ..Read::default()
        };
        let msg = answer_via_chat(Bytes::from(chat.to_string()), &read);
        let v: Value = serde_json::from_slice(&msg).unwrap();
        let want: Value = serde_json::from_str(UPSTREAM_USAGE).unwrap();
        assert_eq!(v["usage"], want, "{v}");
        assert_eq!(v["content"][0]["text"], "Hi", "{v}");
    }
}
