//! Anthropic's Messages API on either side of the seam: OpenAI chat requests
//! made Messages requests and back ([`chat_to_messages`], [`messages_to_chat`]),
//! whole answers, error bodies and streams translated both ways, and the
//! reading of Anthropic answers that pass through unchanged.
//!
//! Fields with no counterpart in the target dialect are dropped and named in
//! [`Translated::warnings`]; a request the target dialect cannot serve is
//! [`Refused`], naming the field. Translation parses into borrowed, typed
//! structs (the parts that pass along unchanged stay raw JSON) and writes the
//! target's JSON straight out of them.

pub(super) mod answer;
pub(super) mod error;
pub(super) mod from_chat;
pub(super) mod read;
mod stream_from_chat;
pub(super) mod stream_to_chat;
#[cfg(test)]
mod tests;
mod to_chat;

pub(crate) use answer::chat_answer_as_message;
pub use answer::{chat_answer_to_messages, messages_answer_to_chat};
pub use error::{error_to_chat, error_to_messages};
pub use from_chat::chat_to_messages;
pub use read::{finish_reason, read_answer, read_event};
pub use stream_from_chat::ChatToMessages;
pub use stream_to_chat::MessagesToChat;
pub use to_chat::messages_to_chat;

pub use super::{Refused, RequestOpts, Translated};
