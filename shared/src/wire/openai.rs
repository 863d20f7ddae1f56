//! OpenAI's `usage` object as chat/completions, completions, embeddings and
//! the Responses API send it (and what OpenAI-compatible providers add), read
//! by the gateway's meter and written by the tests' mock upstream.

use serde::{Deserialize, Serialize};

/// Chat/completions (`prompt_tokens`...) and Responses (`input_tokens`...) usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// the Responses API's names
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(
        default,
        alias = "input_tokens_details",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(
        default,
        alias = "output_tokens_details",
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// The figures in the gateway's normalised form.
    pub fn normalised(&self) -> crate::usage::Usage {
        let prompt = self.prompt_tokens.or(self.input_tokens).unwrap_or(0);
        let completion = self.completion_tokens.or(self.output_tokens).unwrap_or(0);
        crate::usage::Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_tokens
                .unwrap_or(prompt.saturating_add(completion)),
            cached_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .or(self.prompt_cache_hit_tokens)
                .unwrap_or(0),
            // (OpenAI-compatible providers report no cache writes)
            cache_creation_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_names_read_as_chat_names() {
        let u: Usage = serde_json::from_str(
            r#"{"input_tokens":5,"output_tokens":2,"input_tokens_details":{"cached_tokens":1}}"#,
        )
        .unwrap();
        let n = u.normalised();
        assert_eq!(
            (n.prompt_tokens, n.completion_tokens, n.total_tokens),
            (5, 2, 7)
        );
        assert_eq!(n.cached_tokens, 1);
    }

    #[test]
    fn written_without_absent_fields() {
        let u = Usage {
            prompt_tokens: Some(3),
            ..Usage::default()
        };
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"prompt_tokens":3}"#);
    }
}
