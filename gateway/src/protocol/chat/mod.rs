//! OpenAI chat, the hub every other dialect is translated to and from: what
//! the translations share to read a chat request ([`request`]: its fields,
//! messages, tools and tool choice; [`turns`]: the messages as turns of
//! content blocks, for Anthropic's and Converse's shape) and to write a chat
//! answer ([`answer`]: a whole `chat.completion`; [`chunks`]: a stream's
//! `chat.completion.chunk` events; [`error`]: an error body).

pub(crate) mod answer;
pub(crate) mod chunks;
pub(crate) mod error;
pub(crate) mod request;
#[cfg(test)]
mod tests;
pub(crate) mod turns;
