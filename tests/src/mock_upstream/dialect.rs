//! Which API a request to the mock speaks (from its path and headers), and so how
//! its credentials are checked, the shape of its errors and who answers it.

use super::body::MockBody;
use super::MOCK_ERROR_BODY;
use super::{anthropic, bedrock, gemini, json_response, lock, openai, vertex, MockState};
use http::{Response, StatusCode};
use serde_json::Value;

/// The API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    OpenAi,
    /// `/v1/messages` and below, and `GET /v1/models` with `anthropic-version`.
    Anthropic,
    /// `/v1beta/` and below.
    Gemini,
    /// `/v1/projects/` and below.
    Vertex,
    /// `/token`: Vertex AI's OAuth token endpoint.
    Token,
    /// `/model/` and below.
    Bedrock,
}

impl Dialect {
    pub(super) fn of(parts: &http::request::Parts) -> Dialect {
        let path = parts.uri.path();
        let messages = path == "/v1/messages" || path.starts_with("/v1/messages/");
        let models = path == "/v1/models" && parts.headers.contains_key("anthropic-version");
        if messages || models {
            Dialect::Anthropic
        } else if path.starts_with("/v1beta/") {
            Dialect::Gemini
        } else if path.starts_with("/v1/projects/") {
            Dialect::Vertex
        } else if path == "/token" {
            Dialect::Token
        } else if path.starts_with("/model/") {
            Dialect::Bedrock
        } else {
            Dialect::OpenAi
        }
    }

    /// The credential [`super::MockUpstream::reject_token`] is matched against: the
    /// OpenAI `Authorization: Bearer` token, Anthropic's api key, Gemini's
    /// `x-goog-api-key`, Vertex AI's access token, Bedrock's access key id.
    pub(super) fn credential(self, headers: &http::HeaderMap) -> Option<&str> {
        match self {
            Dialect::OpenAi | Dialect::Vertex => vertex::bearer(headers),
            Dialect::Anthropic => anthropic::api_key(headers),
            Dialect::Gemini => headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()),
            Dialect::Bedrock => bedrock::sigv4::access_key_id(headers),
            Dialect::Token => None,
        }
    }

    /// An error answer of this dialect's shape (OpenAI: [`MOCK_ERROR_BODY`]).
    pub(super) fn error(self, status: StatusCode, message: &str, n: u64) -> Response<MockBody> {
        match self {
            Dialect::OpenAi | Dialect::Token => json_response(status, MOCK_ERROR_BODY, n),
            Dialect::Anthropic => anthropic::error(status, message, n),
            Dialect::Gemini | Dialect::Vertex => gemini::error(status, message, n),
            Dialect::Bedrock => bedrock::error(status, message, n),
        }
    }

    /// The answer of `fail_with` / `fail_with_body`.
    pub(super) fn failure(
        self,
        status: StatusCode,
        body: Option<String>,
        n: u64,
    ) -> Response<MockBody> {
        match (self, body) {
            (_, None) => self.error(status, "mock failure", n),
            (Dialect::Anthropic, Some(body)) => anthropic::error_with_body(status, body, n),
            (Dialect::Bedrock, Some(body)) => bedrock::error_with_body(status, body, n),
            (_, Some(body)) => json_response(status, body, n),
        }
    }

    /// The cloud dialects' credential check, before the shared switches (OpenAI and
    /// Anthropic check theirs when answering): the refusal to send, if any.
    pub(super) fn authenticate(
        self,
        state: &MockState,
        parts: &http::request::Parts,
        raw: &[u8],
        n: u64,
    ) -> Option<Response<MockBody>> {
        match self {
            Dialect::Gemini => gemini::check_api_key(parts, n),
            Dialect::Vertex => vertex::authenticate(state, parts, n),
            Dialect::Bedrock => bedrock::authenticate(state, parts, raw, n),
            Dialect::OpenAi | Dialect::Anthropic | Dialect::Token => None,
        }
    }

    /// The answer (after the shared switches; not for [`Dialect::Token`]).
    pub(super) fn route(
        self,
        state: &MockState,
        parts: &http::request::Parts,
        json: Option<Value>,
        n: u64,
    ) -> Response<MockBody> {
        match self {
            Dialect::OpenAi | Dialect::Token => openai::route(state, parts, json, n),
            Dialect::Anthropic => anthropic::route(state, parts, json, n),
            Dialect::Gemini => gemini::route(state, parts, json, n),
            Dialect::Vertex => vertex::route(state, parts, json, n),
            Dialect::Bedrock => bedrock::route(state, parts, json, n),
        }
    }
}

/// The status [`super::MockUpstream::reject_token`] set for the request's
/// credential ([`Dialect::credential`]).
pub(super) fn rejected_status(
    state: &MockState,
    dialect: Dialect,
    headers: &http::HeaderMap,
) -> Option<u16> {
    let token = dialect.credential(headers)?;
    lock(&state.rejected_tokens)
        .iter()
        .find(|(x, _)| x == token)
        .map(|(_, s)| *s)
}
