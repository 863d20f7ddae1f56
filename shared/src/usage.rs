//! Token usage of one request, as read from the upstream answer or estimated.

use serde::{Deserialize, Serialize};

/// The gateway's normalised form, OpenAI's convention: `prompt_tokens` counts
/// every prompt token, those read from and written to a prompt cache included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// prompt tokens read from the provider's prompt cache
    pub cached_tokens: u64,
    /// prompt tokens written to the provider's prompt cache
    #[serde(default)]
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
    /// true when the figures are the gateway's estimate (no usage from upstream,
    /// e.g. a stream that was cut off), not the provider's count.
    pub estimated: bool,
}

/// Rough token count of a text: about four bytes of English per token, at least one
/// token for any non-empty text. Used only where the upstream gave no usage.
pub fn estimate_tokens(byte_len: usize) -> u64 {
    if byte_len == 0 {
        0
    } else {
        (byte_len as u64).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_rounds_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
    }
}
