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
//! chat <-> Anthropic Messages, `anthropic/`), the request is translated, the
//! stream translated event by event ([`Events`]), a JSON answer and an error
//! body translated whole, all read into the same [`Read`].

pub mod anthropic;
pub mod openai;
mod seam;

pub use seam::Seam;

use crate::endpoint::Endpoint;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use shared::usage::Usage;

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
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

impl Dialect {
    /// The URL of `endpoint` under `base` (no trailing slash) for upstream model
    /// `model` (`api_version`: Azure's).
    pub fn url(self, base: &str, endpoint: Endpoint, model: &str, api_version: &str) -> String {
        match self {
            Dialect::Anthropic => format!("{base}{}", endpoint.suffix()),
            _ => openai::url(self == Dialect::Azure, base, endpoint, model, api_version),
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
            Dialect::OpenAi | Dialect::Azure => {
                h.remove(ANTHROPIC_VERSION);
                h.remove(ANTHROPIC_BETA);
            }
        }
    }

    /// The model is part of the URL (and must be a name URLs allow).
    pub fn model_in_url(self, endpoint: Endpoint) -> bool {
        self == Dialect::Azure && !matches!(endpoint, Endpoint::Responses | Endpoint::Models)
    }

    /// The value of the token header for API token `token`.
    pub fn token_value(self, token: &str) -> String {
        match self {
            Dialect::OpenAi => format!("Bearer {token}"),
            Dialect::Azure | Dialect::Anthropic => token.to_string(),
        }
    }

    /// The header a provider's API token goes in.
    pub fn token_header(self) -> HeaderName {
        match self {
            Dialect::OpenAi => http::header::AUTHORIZATION,
            Dialect::Azure => HeaderName::from_static("api-key"),
            Dialect::Anthropic => HeaderName::from_static("x-api-key"),
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
    /// fields of the client's request that had no counterpart upstream
    pub warnings: Vec<String>,
}
