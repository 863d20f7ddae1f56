//! OpenAI chat, the hub every other dialect is translated to and from: what
//! the translations share to read a chat request ([`request`]: its messages,
//! tools and tool choice) and to write a chat answer ([`answer`]: a whole
//! `chat.completion`; [`chunks`]: a stream's `chat.completion.chunk` events;
//! [`error`]: an error body).

pub(crate) mod answer;
pub(crate) mod chunks;
pub(crate) mod error;
pub(crate) mod request;
#[cfg(test)]
mod tests;
pub(crate) mod turns;
