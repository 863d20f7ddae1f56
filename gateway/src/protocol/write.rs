//! What the translations write, for every dialect: SSE events straight into
//! the output buffer, OpenAI's usage from the normalised figures, texts that
//! are the upstream's raw JSON strings or made here, and the time answers
//! carry.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::value::RawValue;
use shared::usage::Usage;
use shared::wire::openai::{PromptDetails, Usage as OpenAiUsage};
use std::borrow::Cow;

/// Appends `data: <json>\n\n` (an OpenAI stream event).
pub(crate) fn data(out: &mut BytesMut, v: &impl Serialize) {
    out.put_slice(b"data: ");
    // Writing into a BytesMut cannot fail; a value that does not serialize
    // (none here) would leave a truncated event rather than a panic.
    let _ = serde_json::to_writer(out.writer(), v);
    out.put_slice(b"\n\n");
}

/// Appends `event: <name>\ndata: <json>\n\n` (an Anthropic stream event).
pub(crate) fn event(out: &mut BytesMut, name: &str, v: &impl Serialize) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\n");
    data(out, v);
}

/// Normalised usage as OpenAI's `usage` (cache reads in
/// `prompt_tokens_details.cached_tokens`; cache writes only in `prompt_tokens`).
pub(crate) fn openai_usage(u: &Usage) -> OpenAiUsage {
    OpenAiUsage {
        prompt_tokens: Some(u.prompt_tokens),
        completion_tokens: Some(u.completion_tokens),
        total_tokens: Some(u.total_tokens),
        prompt_tokens_details: Some(PromptDetails {
            cached_tokens: Some(u.cached_tokens),
        }),
        ..OpenAiUsage::default()
    }
}

/// A text that is a raw JSON string from the upstream, or one made here.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum TextOut<'a> {
    Raw(&'a RawValue),
    Owned(String),
    Str(&'a str),
}

impl<'a> TextOut<'a> {
    /// The raw JSON strings `parts` as one text: the one part as it came, more
    /// of them decoded and joined with `sep`.
    pub fn join(parts: &[&'a RawValue], sep: &str) -> Option<TextOut<'a>> {
        match parts {
            [] => None,
            [one] => Some(TextOut::Raw(one)),
            more => {
                let mut text = String::new();
                for (i, p) in more.iter().enumerate() {
                    if i > 0 {
                        text.push_str(sep);
                    }
                    text.push_str(
                        &serde_json::from_str::<Cow<'_, str>>(p.get()).unwrap_or_default(),
                    );
                }
                Some(TextOut::Owned(text))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            TextOut::Raw(r) => r.get() == "\"\"",
            TextOut::Owned(s) => s.is_empty(),
            TextOut::Str(s) => s.is_empty(),
        }
    }
}

/// Unix seconds now (`created` of OpenAI answers).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
