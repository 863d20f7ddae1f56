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
//! Today both sides speak the OpenAI API (Azure's URLs and auth are a dialect
//! of it): a request changes only where the model map, the provider's options
//! or the usage chunk ask for it, and answers and events pass to the client as
//! the bytes the upstream sent (the usage chunk the client did not ask for
//! aside).

pub mod anthropic;
pub mod openai;

use crate::endpoint::Endpoint;
use crate::request_body::ClientBody;
use crate::telemetry::attributes::Collected;
use bytes::Bytes;
use http::HeaderName;
use serde_json::value::RawValue;
use shared::usage::Usage;

/// The API a client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// chat/completions, completions, embeddings, responses, models
    OpenAi(Endpoint),
}

/// The API a provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI and the OpenAI-compatible providers: `{base_url}/chat/completions`,
    /// `Authorization: Bearer <token>`
    OpenAi,
    /// Azure OpenAI: the deployment and `api-version` in the URL, `api-key: <token>`
    Azure,
}

impl Dialect {
    /// The URL of `endpoint` under `base` (no trailing slash) for upstream model
    /// `model` (`api_version`: Azure's).
    pub fn url(self, base: &str, endpoint: Endpoint, model: &str, api_version: &str) -> String {
        openai::url(self == Dialect::Azure, base, endpoint, model, api_version)
    }

    /// The model is part of the URL (and must be a name URLs allow).
    pub fn model_in_url(self, endpoint: Endpoint) -> bool {
        self == Dialect::Azure && !matches!(endpoint, Endpoint::Responses | Endpoint::Models)
    }

    /// The value of the token header for API token `token`.
    pub fn token_value(self, token: &str) -> String {
        match self {
            Dialect::OpenAi => format!("Bearer {token}"),
            Dialect::Azure => token.to_string(),
        }
    }

    /// The header a provider's API token goes in.
    pub fn token_header(self) -> HeaderName {
        match self {
            Dialect::OpenAi => http::header::AUTHORIZATION,
            Dialect::Azure => HeaderName::from_static("api-key"),
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

/// One client API and one provider dialect, and what goes between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seam {
    pub inbound: Inbound,
    pub dialect: Dialect,
}

impl Seam {
    /// The client's body as the upstream takes it: `model` set, the provider's
    /// `options` over the client's fields, and `stream_options.include_usage`
    /// added when `add_usage` (the same bytes when nothing changes).
    pub fn request(
        self,
        client: &ClientBody<'_>,
        raw: &Bytes,
        model: &str,
        options: &[(String, Box<RawValue>)],
        add_usage: bool,
    ) -> Bytes {
        match (self.inbound, self.dialect) {
            (Inbound::OpenAi(_), Dialect::OpenAi | Dialect::Azure) => {
                client.rewrite(raw, Some(model), options, add_usage)
            }
        }
    }

    /// Reads a whole JSON answer (which the client gets as it came).
    pub fn answer(self, read: &mut Read, body: &[u8]) {
        match (self.inbound, self.dialect) {
            (Inbound::OpenAi(_), Dialect::OpenAi | Dialect::Azure) => openai::answer(read, body),
        }
    }

    /// Reads the data of one SSE event (`capture`: the route's attributes that
    /// read stream events); true when the client does not get the event (the
    /// usage-only chunk, when `strip_usage`).
    pub fn event(
        self,
        read: &mut Read,
        data: &[u8],
        capture: Option<&mut Collected>,
        strip_usage: bool,
    ) -> bool {
        match (self.inbound, self.dialect) {
            (Inbound::OpenAi(_), Dialect::OpenAi | Dialect::Azure) => {
                openai::event(read, data, capture) && strip_usage
            }
        }
    }
}
