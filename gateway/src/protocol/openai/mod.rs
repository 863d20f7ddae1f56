//! The OpenAI API, as clients send it and OpenAI-compatible providers (Azure
//! among them) answer it: the request made the upstream's, and usage, ids,
//! text size and finish reason read from a JSON answer or an SSE event.

pub(crate) mod scan;

use super::Read;
use crate::endpoint::Endpoint;
use crate::telemetry::attributes::Collected;
use scan::{finish_reason, is_plain_delta, text_bytes};
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::wire::openai::Usage as WireUsage;
use std::borrow::Cow;

/// The URL of `endpoint` under `base` (no trailing slash) for upstream model
/// `model`: Azure puts the deployment (the model) and `api-version` in it.
pub fn url(azure: bool, base: &str, endpoint: Endpoint, model: &str, api_version: &str) -> String {
    if !azure {
        return format!("{base}{}", endpoint.suffix());
    }
    match endpoint {
        Endpoint::Responses | Endpoint::Models => format!(
            "{base}/openai{}?api-version={api_version}",
            endpoint.suffix()
        ),
        _ => format!(
            "{base}/openai/deployments/{model}{}?api-version={api_version}",
            endpoint.suffix()
        ),
    }
}

/// Reads one SSE event's data; true when it is the usage-only chunk (which the
/// client gets only when it asked for it).
pub fn event(read: &mut Read, data: &[u8], capture: Option<&mut Collected>) -> bool {
    if data == b"[DONE]" {
        read.done = true;
        return false;
    }
    if let Some(c) = capture.filter(|c| c.wants_stream()) {
        c.stream_event(data);
    }
    if read.chat_id.is_some() && is_plain_delta(data) {
        // The common chunk of a stream: only its text size matters here.
        read.output_bytes += text_bytes(data);
        if let Some(f) = finish_reason(data) {
            read.finish_reason = Some(f);
        }
        return false;
    }
    let Ok(chunk) = crate::json::from_bytes::<Chunk<'_>>(data) else {
        return false;
    };
    note_ids(read, chunk.id.as_deref(), chunk.model.as_deref());
    let mut usage_only = false;
    if let Some(choices) = &chunk.choices {
        for c in choices {
            note_choice(read, c);
        }
        usage_only = choices.is_empty() && chunk.usage.is_some();
    }
    if let Some(u) = &chunk.usage {
        read.usage = Some(u.normalised());
    }
    // Responses API stream events.
    if let Some(delta) = &chunk.delta {
        read.output_bytes += delta.len();
    }
    if let Some(resp) = &chunk.response {
        note_ids(read, resp.id.as_deref(), resp.model.as_deref());
        if let Some(u) = &resp.usage {
            read.usage = Some(u.normalised());
        }
        if chunk.kind.as_deref() == Some("response.completed") {
            read.done = true;
        }
    }
    usage_only
}

/// Reads a whole JSON answer: its ids and usage; its choices (text size,
/// finish reason) when `choices` asks for them, or when it has no usage (its
/// text size is then what the estimate is made of). The choices, most of an
/// answer, are otherwise only skipped over.
pub fn answer(read: &mut Read, body: &[u8], choices: bool) {
    let Ok(b) = crate::json::from_bytes::<Top<'_>>(body) else {
        return;
    };
    note_ids(read, b.id.as_deref(), b.model.as_deref());
    if let Some(u) = &b.usage {
        read.usage = Some(u.normalised());
    }
    if choices || read.usage.is_none() {
        let parsed = b
            .choices
            .map(|c| serde_json::from_str::<Vec<Choice<'_>>>(c.get()));
        for c in parsed.iter().flatten().flatten() {
            note_choice(read, c);
        }
    }
    if let Some(out) = b.output {
        read.output_bytes += out.get().len();
    }
}

/// Text size and finish reason of one choice (a stream delta or a whole message).
fn note_choice(read: &mut Read, c: &Choice<'_>) {
    for m in [&c.delta, &c.message].into_iter().flatten() {
        read.output_bytes += m.content.as_deref().map_or(0, str::len)
            + m.reasoning_content.as_deref().map_or(0, str::len)
            + m.tool_calls.map_or(0, |t| t.get().len());
    }
    read.output_bytes += c.text.as_deref().map_or(0, str::len);
    if let Some(f) = &c.finish_reason {
        read.finish_reason = Some(f.to_string());
    }
}

fn note_ids(read: &mut Read, id: Option<&str>, model: Option<&str>) {
    if read.chat_id.is_none() {
        read.chat_id = id.map(str::to_string);
    }
    if read.model.is_none() {
        read.model = model.map(str::to_string);
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    response: Option<Box<Top<'a>>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Message<'a>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// A whole JSON answer (chat, completion, embeddings, or a Responses object,
/// also as a stream event carries it) as [`answer`] reads it: the choices and
/// output kept as they came, read only when wanted.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(borrow, default)]
    choices: Option<&'a RawValue>,
    #[serde(borrow, default)]
    output: Option<&'a RawValue>,
}
