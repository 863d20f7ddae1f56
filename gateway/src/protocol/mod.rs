//! The protocol seam. What the client speaks is the [`Inbound`] API, what the
//! provider speaks its upstream [`Dialect`]; a [`Seam`] is one pair of them,
//! with the four operations a translation between them needs:
//!
//! 1. [`Seam::request`]: the client's body as the upstream takes it;
//! 2. [`Seam::answer`]: a whole JSON answer, read;
//! 3. [`Seam::event`]: one SSE event, read, and whether the client gets it;
//! 4. [`Read`]: what the answer said (ids, text size, finish reason) and its
//!    usage in normalised form, which the meter, the quotas and the telemetry
//!    use.
//!
//! When both sides speak the same API (OpenAI's, of which Azure's URLs and auth
//! are a dialect, or Anthropic's Messages API), a request changes only where
//! the model map, the provider's options or the usage chunk ask for it, and
//! answers and events pass to the client as the bytes the upstream sent (the
//! usage chunk the client did not ask for aside). Where they differ (OpenAI
//! chat <-> Anthropic Messages, `anthropic/`; OpenAI chat -> Gemini,
//! `gemini/`, and -> Bedrock's Converse, `bedrock/`), the request is
//! translated, the stream translated event by event ([`Events`]), a JSON
//! answer and an error body translated whole, all read into the same [`Read`].
//! What every translation to and from OpenAI chat takes (a chat request's
//! messages and tools read, a `chat.completion`, its chunks and an error body
//! written) is `chat/`'s; the helpers any translation uses, `fields` (reading)
//! and `write` (writing).

pub mod anthropic;
pub mod bedrock;
pub(crate) mod chat;
pub(crate) mod fields;
pub mod gemini;
pub mod openai;
mod seam;
#[cfg(test)]
pub(crate) mod testing;
pub mod via;
pub(crate) mod write;

pub use seam::Seam;

use crate::endpoint::Endpoint;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::value::RawValue;
use shared::usage::Usage;

/// A request body made the upstream's, with the fields that had no
/// counterpart (dropped).
#[derive(Debug)]
pub struct Translated {
    pub body: bytes::Bytes,
    pub warnings: Vec<String>,
}

/// A request the target dialect cannot serve: the field (JSON path, e.g.
/// `messages[2].content[0].type`) and why. Becomes a 400 naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub reason: String,
}

impl Refused {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Refused {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What a translation needs besides the body.
pub struct RequestOpts<'a> {
    /// the upstream model (after the model map)
    pub model: &'a str,
    /// `max_tokens` when an OpenAI request has neither `max_tokens` nor
    /// `max_completion_tokens` (Anthropic requires it)
    pub default_max_tokens: u32,
    /// the provider's `options`, set over the translated body's top-level fields
    pub options: &'a [(String, Box<RawValue>)],
}

/// The API a client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// chat/completions, completions, embeddings, responses, models
    OpenAi(Endpoint),
    /// messages, messages/count_tokens
    Anthropic(Endpoint),
}

impl Inbound {
    pub fn of(endpoint: Endpoint) -> Inbound {
        match endpoint.is_anthropic() {
            true => Inbound::Anthropic(endpoint),
            false => Inbound::OpenAi(endpoint),
        }
    }

    /// The dialect that speaks this API as it is (the built-in mock answers in it).
    pub fn native(self) -> Dialect {
        match self {
            Inbound::OpenAi(_) => Dialect::OpenAi,
            Inbound::Anthropic(_) => Dialect::Anthropic,
        }
    }
}

/// The API a provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI and the OpenAI-compatible providers: `{base_url}/chat/completions`,
    /// `Authorization: Bearer <token>`
    OpenAi,
    /// Azure OpenAI: the deployment and `api-version` in the URL, `api-key: <token>`
    Azure,
    /// Anthropic's Messages API: `{base_url}/messages`, `x-api-key: <token>`,
    /// `anthropic-version`
    Anthropic,
    /// Gemini's `generateContent` (Google AI Studio's URLs and `x-goog-api-key`,
    /// or Vertex AI's URLs and OAuth tokens: the same bodies)
    Gemini,
    /// Anthropic's Messages body on Vertex AI (`rawPredict`): the model in the
    /// URL, `anthropic_version` in the body
    VertexAnthropic,
    /// Amazon Bedrock's Converse API (SigV4-signed; streams in AWS eventstream
    /// framing)
    Bedrock,
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

impl Dialect {
    /// The URL of `endpoint` under `base` (no trailing slash) for upstream model
    /// `model` (`api_version`: Azure's).
    pub fn url(self, base: &str, endpoint: Endpoint, model: &str, api_version: &str) -> String {
        match self {
            Dialect::Anthropic => format!("{base}{}", endpoint.suffix()),
            // (their URLs are the provider's: `providers/`)
            Dialect::Gemini | Dialect::VertexAnthropic | Dialect::Bedrock => base.to_string(),
            Dialect::OpenAi | Dialect::Azure => {
                openai::url(self == Dialect::Azure, base, endpoint, model, api_version)
            }
        }
    }

    /// Sets the headers this dialect needs on an upstream request (`version`: the
    /// provider's `api_version`), and drops the client's that belong to another.
    pub fn headers(self, version: &str, h: &mut HeaderMap) {
        match self {
            Dialect::Anthropic => {
                if let Ok(v) = HeaderValue::from_str(version) {
                    h.insert(ANTHROPIC_VERSION, v);
                }
            }
            // (on Vertex AI the version is in the body; a beta header passes)
            Dialect::VertexAnthropic => {
                h.remove(ANTHROPIC_VERSION);
            }
            Dialect::OpenAi | Dialect::Azure | Dialect::Gemini | Dialect::Bedrock => {
                h.remove(ANTHROPIC_VERSION);
                h.remove(ANTHROPIC_BETA);
            }
        }
    }

    /// The model is part of the URL (and must be a name URLs allow).
    pub fn model_in_url(self, endpoint: Endpoint) -> bool {
        match self {
            Dialect::Azure => !matches!(endpoint, Endpoint::Responses | Endpoint::Models),
            Dialect::Gemini | Dialect::VertexAnthropic | Dialect::Bedrock => true,
            Dialect::OpenAi | Dialect::Anthropic => false,
        }
    }

    /// The value of the token header for API token `token`.
    pub fn token_value(self, token: &str) -> String {
        match self {
            Dialect::OpenAi | Dialect::VertexAnthropic => format!("Bearer {token}"),
            Dialect::Azure | Dialect::Anthropic | Dialect::Gemini | Dialect::Bedrock => {
                token.to_string()
            }
        }
    }

    /// The name the config and errors use.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::OpenAi => "OpenAI",
            Dialect::Azure => "Azure OpenAI",
            Dialect::Anthropic => "Anthropic",
            Dialect::Gemini => "Gemini",
            Dialect::VertexAnthropic => "Vertex AI (Anthropic)",
            Dialect::Bedrock => "Bedrock",
        }
    }

    /// The header a provider's API token goes in.
    pub fn token_header(self) -> HeaderName {
        match self {
            Dialect::OpenAi | Dialect::VertexAnthropic | Dialect::Bedrock => {
                http::header::AUTHORIZATION
            }
            Dialect::Azure => HeaderName::from_static("api-key"),
            Dialect::Anthropic => HeaderName::from_static("x-api-key"),
            Dialect::Gemini => HeaderName::from_static("x-goog-api-key"),
        }
    }
}

/// What an answer said, read as it passed: the normalised form every dialect's
/// answers are read into.
#[derive(Debug, Default)]
pub struct Read {
    /// the answer's id (`chat_id` in the record)
    pub chat_id: Option<String>,
    /// the model that answered
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// bytes of generated text seen, for estimating when no usage arrives
    pub output_bytes: usize,
    pub finish_reason: Option<String>,
    /// the stream's end marker was seen (`data: [DONE]`, `response.completed`)
    pub done: bool,
    /// the gateway's estimate of the prompt's tokens, for a translated answer
    /// whose API reports none (Gemini's embeddings)
    pub prompt_estimate: u64,
}

/// A stream in another API, translated event by event into the client's.
pub trait Events: Send {
    /// One upstream event's data (its `data:` lines joined): read into `read`,
    /// and the client's events it makes appended to `out`.
    fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut);
    /// The upstream stream ended (or was cut): what the client is still owed.
    fn end(&mut self, read: &mut Read, out: &mut BytesMut);
}

/// The upstream's request: its body, and the endpoint it goes to.
pub struct Upstream {
    pub body: Bytes,
    pub endpoint: Endpoint,
    /// the answer streams (Gemini's, Vertex AI's and Bedrock's URLs say so)
    pub stream: bool,
    /// Gemini's embeddings: several inputs (`batchEmbedContents`)
    pub batch: bool,
    /// fields of the client's request that had no counterpart upstream
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod proptests;
