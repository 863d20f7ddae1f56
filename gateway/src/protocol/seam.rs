//! One client API and one provider dialect, and the operations between them:
//! the same bytes where both speak the same API, the translations of
//! `anthropic/` where they do not.

use super::anthropic::{self, ChatToMessages, MessagesToChat, RequestOpts};
use super::{openai, Dialect, Events, Inbound, Read, Upstream};
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
    /// OpenAI chat from the client, Anthropic's Messages API upstream
    ChatToMessages,
    /// Anthropic Messages from the client, OpenAI chat upstream
    MessagesToChat,
    /// the gateway answers itself (Anthropic's token count, no Anthropic upstream)
    Here,
    /// no counterpart
    None,
}

impl Seam {
    fn pair(self) -> Pair {
        use Dialect as D;
        match (self.inbound, self.dialect) {
            (Inbound::OpenAi(_), D::OpenAi | D::Azure) | (Inbound::Anthropic(_), D::Anthropic) => {
                Pair::Same
            }
            (Inbound::OpenAi(Endpoint::ChatCompletions), D::Anthropic) => Pair::ChatToMessages,
            (Inbound::Anthropic(Endpoint::Messages), D::OpenAi | D::Azure) => Pair::MessagesToChat,
            (Inbound::Anthropic(Endpoint::CountTokens), D::OpenAi | D::Azure) => Pair::Here,
            _ => Pair::None,
        }
    }

    /// The gateway answers itself: Anthropic's token count on a provider of
    /// another API (an estimate, as the built-in mock gives).
    pub fn answered_here(self) -> bool {
        matches!(self.pair(), Pair::Here)
    }

    /// Client and provider speak the same API: no translation.
    pub fn same_api(self) -> bool {
        matches!(self.pair(), Pair::Same)
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
        let same = |endpoint, add_usage| Upstream {
            body: client.rewrite(raw, Some(opts.model), opts.options, add_usage),
            endpoint,
            warnings: Vec::new(),
        };
        let translated = |t: Result<anthropic::Translated, anthropic::Refused>, endpoint| {
            t.map(|t| Upstream {
                body: t.body,
                endpoint,
                warnings: t.warnings,
            })
            .map_err(|r| {
                GatewayError::bad_request(
                    "unsupported_field",
                    format!("{r} (the provider speaks another API)"),
                )
            })
        };
        match (self.pair(), self.inbound) {
            (Pair::Same, Inbound::OpenAi(e)) => Ok(same(e, add_usage)),
            (Pair::Same, Inbound::Anthropic(e)) => Ok(same(e, false)),
            (Pair::ChatToMessages, _) => {
                translated(anthropic::chat_to_messages(raw, opts), Endpoint::Messages)
            }
            (Pair::MessagesToChat, _) => translated(
                anthropic::messages_to_chat(raw, opts),
                Endpoint::ChatCompletions,
            ),
            (Pair::Here | Pair::None, _) => Err(self.unserved()),
        }
    }

    /// Reads a whole JSON answer in the client's API (which gets it as it came).
    pub fn answer(self, read: &mut Read, body: &[u8]) {
        match self.inbound {
            Inbound::OpenAi(_) => openai::answer(read, body),
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
            Pair::ChatToMessages => Some(Box::new(MessagesToChat::new(include_usage))),
            Pair::MessagesToChat => Some(Box::new(ChatToMessages::new())),
            Pair::Same | Pair::Here | Pair::None => None,
        }
    }

    /// A whole JSON answer in the client's API, read into `read` (None: the
    /// client gets the upstream's bytes, read by [`Seam::answer`]).
    pub fn translate_answer(self, read: &mut Read, body: &[u8]) -> Option<Bytes> {
        match self.pair() {
            Pair::ChatToMessages => Some(anthropic::messages_answer_to_chat(body, read)),
            Pair::MessagesToChat => Some(anthropic::chat_answer_to_messages(body, read)),
            Pair::Same | Pair::Here | Pair::None => None,
        }
    }

    /// An upstream error body in the shape of the client's API.
    pub fn error(self, body: Bytes, status: u16) -> Bytes {
        match self.pair() {
            Pair::ChatToMessages => anthropic::error_to_chat(&body),
            Pair::MessagesToChat => anthropic::error_to_messages(&body, status),
            Pair::Same | Pair::Here | Pair::None => body,
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
                "the {api} endpoint {} cannot be served by this route's {:?} provider",
                endpoint.suffix(),
                self.dialect
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
