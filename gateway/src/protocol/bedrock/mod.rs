//! Amazon Bedrock's Converse API upstream of OpenAI chat clients: requests
//! made Converse requests ([`chat_to_converse`]), whole answers, error bodies
//! and ConverseStream streams translated back, each read into
//! [`Read`](super::Read) on the way, and the AWS eventstream framing those
//! streams come in ([`eventstream`]). One translation serves every model
//! Converse serves (Claude, Llama, Mistral, Nova...).
//!
//! As in `anthropic/`: fields with no counterpart are dropped and named in
//! [`Translated::warnings`]; a request Converse cannot serve is [`Refused`],
//! naming the field. Translation parses into borrowed, typed structs (texts
//! stay raw JSON strings) and writes Converse's JSON straight out of them.

mod answer;
mod error;
pub mod eventstream;
mod from_chat;
mod read;
mod stream;
#[cfg(test)]
mod tests;
mod wire;

pub use answer::answer_to_chat;
pub use error::error_to_chat;
pub use from_chat::chat_to_converse;
pub use read::finish_reason;
pub use stream::ConverseToChat;

pub use super::{Refused, RequestOpts, Translated};
