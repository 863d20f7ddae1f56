//! One client API and one provider dialect, and the operations between them:
//! the same bytes where both speak the same API, the translations of
//! `anthropic/`, `gemini/` and `bedrock/` where they do not (an Anthropic
//! client reaches Gemini and Bedrock through OpenAI chat, `via.rs`).

use super::anthropic::{self, ChatToMessages, MessagesToChat};
use super::{bedrock, gemini, openai, via, Dialect, Events, Inbound, Read, Upstream};
use super::{Refused, RequestOpts, Translated};
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, Shape};
use crate::request_body::ClientBody;
use crate::telemetry::attributes::Collected;
use bytes::{Bytes, BytesMut};

/// One client API and one provider dialect, and what goes between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seam {
    pub inbound: Inbound,
    pub dialect: Dialect,
}

/// The pairs of the seam.
enum Pair {
    /// the same API on both sides
    Same,
    /// Anthropic Messages to Claude on Vertex AI: the same API, the body made
    /// the one `rawPredict` takes
    SameVertex,
    /// OpenAI chat from the client, Anthropic's Messages API upstream (on
    /// Vertex AI when `vertex`)
    ChatToMessages { vertex: bool },
    /// Anthropic Messages from the client, OpenAI chat upstream
    MessagesToChat,
    /// OpenAI chat from the client, Gemini's generateContent upstream
    ChatToGemini,
    /// OpenAI embeddings from the client, Gemini's embedContent upstream
    EmbedToGemini,
    /// OpenAI chat from the client, Bedrock's Converse upstream
    ChatToConverse,
    /// Anthropic Messages from the client, through OpenAI chat to a third API
    MessagesVia(Hub),
    /// the gateway answers itself (Anthropic's token count, no Anthropic upstream)
    Here,
    /// no counterpart
    None,
}

/// A third API reached through OpenAI chat.
#[derive(Clone, Copy)]
enum Hub {
    Gemini,
    Converse,
}

impl Seam {
    fn pair(self) -> Pair {
        use Dialect as D;
        use Endpoint as E;
        match (self.inbound, self.dialect) {
            (Inbound::OpenAi(_), D::OpenAi | D::Azure) | (Inbound::Anthropic(_), D::Anthropic) => {
                Pair::Same
            }
            (Inbound::Anthropic(E::Messages), D::VertexAnthropic) => Pair::SameVertex,
            (Inbound::OpenAi(E::ChatCompletions), D::Anthropic) => {
                Pair::ChatToMessages { vertex: false }
            }
            (Inbound::OpenAi(E::ChatCompletions), D::VertexAnthropic) => {
                Pair::ChatToMessages { vertex: true }
            }
            (Inbound::Anthropic(E::Messages), D::OpenAi | D::Azure) => Pair::MessagesToChat,
            (Inbound::OpenAi(E::ChatCompletions), D::Gemini) => Pair::ChatToGemini,
            (Inbound::OpenAi(E::Embeddings), D::Gemini) => Pair::EmbedToGemini,
            (Inbound::OpenAi(E::ChatCompletions), D::Bedrock) => Pair::ChatToConverse,
            (Inbound::Anthropic(E::Messages), D::Gemini) => Pair::MessagesVia(Hub::Gemini),
            (Inbound::Anthropic(E::Messages), D::Bedrock) => Pair::MessagesVia(Hub::Converse),
            (Inbound::Anthropic(E::CountTokens), _) => Pair::Here,
            _ => Pair::None,
        }
    }

    /// The gateway answers itself: Anthropic's token count on a provider of
    /// another API (an estimate, as the built-in mock gives).
    pub fn answered_here(self) -> bool {
        matches!(self.pair(), Pair::Here)
    }

    /// Client and provider speak the same API: answers pass as they come.
    pub fn same_api(self) -> bool {
        matches!(self.pair(), Pair::Same | Pair::SameVertex)
    }

    /// An error answer is put in the client's shape (the provider's errors
    /// may have another, as Vertex AI's own have Google's).
    pub fn translates_errors(self) -> bool {
        !matches!(self.pair(), Pair::Same)
    }

    /// The error shape of the client's API.
    pub fn client_shape(self) -> Shape {
        match self.inbound {
            Inbound::OpenAi(_) => Shape::OpenAi,
            Inbound::Anthropic(_) => Shape::Anthropic,
        }
    }

    /// The client's body as the upstream takes it: `opts.model` set, the
    /// provider's `options` over the client's fields, and (OpenAI)
    /// `stream_options.include_usage` added when `add_usage` (the same bytes when
    /// nothing changes); translated when the upstream speaks another API. A
    /// request the provider's API cannot serve is a 400 naming the field.
    pub fn request(
        self,
        client: &ClientBody<'_>,
        raw: &Bytes,
        opts: &RequestOpts<'_>,
        add_usage: bool,
    ) -> Result<Upstream, GatewayError> {
        let up = |body, endpoint, warnings| Upstream {
            body,
            endpoint,
            stream: client.stream,
            batch: false,
            warnings,
        };
        let same = |add_usage| client.rewrite(raw, Some(opts.model), opts.options, add_usage);
        let translated = |t: Result<Translated, Refused>, endpoint| {
            t.map(|t| up(t.body, endpoint, t.warnings))
                .map_err(Self::refused)
        };
        match (self.pair(), self.inbound) {
            (Pair::Same, Inbound::OpenAi(e)) => Ok(up(same(add_usage), e, Vec::new())),
            (Pair::Same, Inbound::Anthropic(e)) => Ok(up(same(false), e, Vec::new())),
            (Pair::SameVertex, _) => translated(
                via::vertex_messages(&same(false)).map(|body| Translated {
                    body,
                    warnings: Vec::new(),
                }),
                Endpoint::Messages,
            ),
            (Pair::ChatToMessages { vertex }, _) => {
                let t = anthropic::chat_to_messages(raw, opts);
                let t = match vertex {
                    true => t.and_then(|t| {
                        Ok(Translated {
                            body: via::vertex_messages(&t.body)?,
                            warnings: t.warnings,
                        })
                    }),
                    false => t,
                };
                translated(t, Endpoint::Messages)
            }
            (Pair::MessagesToChat, _) => translated(
                anthropic::messages_to_chat(raw, opts),
                Endpoint::ChatCompletions,
            ),
            (Pair::ChatToGemini, _) => {
                translated(gemini::chat_to_gemini(raw, opts), Endpoint::ChatCompletions)
            }
            (Pair::EmbedToGemini, _) => {
                let (t, batch) = gemini::embeddings_to_gemini(raw, opts).map_err(Self::refused)?;
                let mut u = up(t.body, Endpoint::Embeddings, t.warnings);
                u.batch = batch;
                Ok(u)
            }
            (Pair::ChatToConverse, _) => translated(
                bedrock::chat_to_converse(raw, opts),
                Endpoint::ChatCompletions,
            ),
            (Pair::MessagesVia(hub), _) => {
                // the provider's options apply to its own body, not the middle one
                let first = RequestOpts {
                    options: &[],
                    ..*opts
                };
                let chat = anthropic::messages_to_chat(raw, &first).map_err(Self::refused)?;
                let mut t = match hub {
                    Hub::Gemini => gemini::chat_to_gemini(&chat.body, opts),
                    Hub::Converse => bedrock::chat_to_converse(&chat.body, opts),
                }
                .map_err(Self::refused)?;
                let mut warnings = chat.warnings;
                warnings.append(&mut t.warnings);
                Ok(up(t.body, Endpoint::Messages, warnings))
            }
            (Pair::Here | Pair::None, _) => Err(self.unserved()),
        }
    }

    fn refused(r: Refused) -> GatewayError {
        GatewayError::bad_request(
            "unsupported_field",
            format!("{r} (the provider speaks another API)"),
        )
    }

    /// Reads a whole JSON answer in the client's API (which gets it as it
    /// came); `choices`: its text size and finish reason too, also when it
    /// reports its usage.
    pub fn answer(self, read: &mut Read, body: &[u8], choices: bool) {
        match self.inbound {
            Inbound::OpenAi(_) => openai::answer(read, body, choices),
            Inbound::Anthropic(_) => anthropic::read_answer(read, body),
        }
    }

    /// Reads the data of one SSE event in the client's API (`capture`: the
    /// route's attributes that read stream events); true when the client does
    /// not get the event (OpenAI's usage-only chunk, when `strip_usage`).
    pub fn event(
        self,
        read: &mut Read,
        data: &[u8],
        capture: Option<&mut Collected>,
        strip_usage: bool,
    ) -> bool {
        match self.inbound {
            Inbound::OpenAi(_) => openai::event(read, data, capture) && strip_usage,
            Inbound::Anthropic(_) => {
                if let Some(c) = capture.filter(|c| c.wants_stream()) {
                    c.stream_event(data);
                }
                anthropic::read_event(read, data);
                false
            }
        }
    }

    /// The translator of this seam's streams (None: the client gets the
    /// upstream's events; `include_usage`: an OpenAI client asked for the usage
    /// chunk).
    pub fn events(self, include_usage: bool) -> Option<Box<dyn Events>> {
        match self.pair() {
            Pair::ChatToMessages { .. } => Some(Box::new(MessagesToChat::new(include_usage))),
            Pair::MessagesToChat => Some(Box::new(ChatToMessages::new())),
            Pair::ChatToGemini => Some(Box::new(gemini::GeminiToChat::new(include_usage))),
            Pair::ChatToConverse => Some(Box::new(bedrock::ConverseToChat::new(include_usage))),
            Pair::MessagesVia(hub) => {
                let first: Box<dyn Events> = match hub {
                    Hub::Gemini => Box::new(gemini::GeminiToChat::new(true)),
                    Hub::Converse => Box::new(bedrock::ConverseToChat::new(true)),
                };
                Some(Box::new(via::ViaChat::new(first)))
            }
            Pair::Same | Pair::SameVertex | Pair::EmbedToGemini | Pair::Here | Pair::None => None,
        }
    }

    /// A whole JSON answer in the client's API, read into `read` (None: the
    /// client gets the upstream's bytes, read by [`Seam::answer`]).
    pub fn translate_answer(self, read: &mut Read, body: &[u8]) -> Option<Bytes> {
        Some(match self.pair() {
            Pair::ChatToMessages { .. } => anthropic::messages_answer_to_chat(body, read),
            Pair::MessagesToChat => anthropic::chat_answer_to_messages(body, read),
            Pair::ChatToGemini => gemini::answer_to_chat(body, read),
            Pair::EmbedToGemini => gemini::embeddings_to_openai(body, read),
            Pair::ChatToConverse => bedrock::answer_to_chat(body, read),
            Pair::MessagesVia(Hub::Gemini) => {
                via::answer_via_chat(gemini::answer_to_chat(body, read), read)
            }
            Pair::MessagesVia(Hub::Converse) => {
                via::answer_via_chat(bedrock::answer_to_chat(body, read), read)
            }
            Pair::Same | Pair::SameVertex | Pair::Here | Pair::None => return None,
        })
    }

    /// An upstream error body in the shape of the client's API (`error_type`:
    /// Bedrock's `x-amzn-ErrorType`).
    pub fn error(self, body: Bytes, status: u16, error_type: Option<&str>) -> Bytes {
        // Vertex AI's own errors (auth, quota, unknown model) have Google's shape
        let google = || gemini::is_google_error(&body);
        match self.pair() {
            Pair::ChatToMessages { vertex: true } if google() => {
                gemini::error_to_chat(&body, status)
            }
            Pair::SameVertex if google() => {
                anthropic::error_to_messages(&gemini::error_to_chat(&body, status), status)
            }
            Pair::ChatToMessages { .. } => anthropic::error_to_chat(&body),
            Pair::MessagesToChat => anthropic::error_to_messages(&body, status),
            Pair::ChatToGemini | Pair::EmbedToGemini => gemini::error_to_chat(&body, status),
            Pair::ChatToConverse => bedrock::error_to_chat(&body, status, error_type),
            Pair::MessagesVia(hub) => {
                let chat = match hub {
                    Hub::Gemini => gemini::error_to_chat(&body, status),
                    Hub::Converse => bedrock::error_to_chat(&body, status, error_type),
                };
                anthropic::error_to_messages(&chat, status)
            }
            Pair::Same | Pair::SameVertex | Pair::Here | Pair::None => body,
        }
    }

    /// The 400 for a request the provider's API has no counterpart of.
    fn unserved(self) -> GatewayError {
        let (api, endpoint) = match self.inbound {
            Inbound::OpenAi(e) => ("OpenAI", e),
            Inbound::Anthropic(e) => ("Anthropic", e),
        };
        GatewayError::bad_request(
            "unsupported_endpoint",
            format!(
                "the {api} endpoint {} cannot be served by this route's {} provider",
                endpoint.suffix(),
                self.dialect.name()
            ),
        )
    }
}

impl Events for MessagesToChat {
    fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        MessagesToChat::event(self, data, read, out);
    }
    fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        MessagesToChat::end(self, read, out);
    }
}

impl Events for ChatToMessages {
    fn event(&mut self, data: &[u8], read: &mut Read, out: &mut BytesMut) {
        ChatToMessages::event(self, data, read, out);
    }
    fn end(&mut self, read: &mut Read, out: &mut BytesMut) {
        ChatToMessages::end(self, read, out);
    }
}
