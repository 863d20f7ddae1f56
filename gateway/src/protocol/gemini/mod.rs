//! Gemini's `generateContent` API (Google AI Studio's and Vertex AI's: the
//! same bodies) behind the protocol seam, OpenAI chat being the hub: OpenAI
//! chat requests made `generateContent` requests ([`chat_to_gemini`]), whole
//! answers ([`answer_to_chat`]), streams ([`GeminiToChat`]) and error bodies
//! ([`error_to_chat`]) made OpenAI's, each read into [`Read`](super::Read);
//! OpenAI embeddings requests made `embedContent` / `batchEmbedContents`
//! requests and back ([`embeddings_to_gemini`], [`embeddings_to_openai`]).
//!
//! Fields with no counterpart in Gemini's API are dropped and named in
//! [`Translated::warnings`](super::Translated); a request Gemini cannot serve
//! is [`Refused`](super::Refused), naming the field. Translation parses into
//! borrowed, typed structs (texts and schemas pass along as the raw JSON the
//! client wrote) and writes the target's JSON straight out of them.

mod answer;
mod embeddings;
mod error;
mod read;
mod request;
mod stream;
#[cfg(test)]
mod tests;

pub use answer::answer_to_chat;
pub use embeddings::{embeddings_to_gemini, embeddings_to_openai};
pub use error::{error_to_chat, is_google_error};
pub use read::finish_reason;
pub use request::chat_to_gemini;
pub use stream::GeminiToChat;
