//! Anthropic Messages API wire types that more than one crate reads or writes:
//! the `usage` object (read by the gateway's meter, written by the tests' mock
//! upstream and by the gateway when it answers in Anthropic's shape) and the
//! error body.

use serde::{Deserialize, Serialize};

/// Anthropic's `usage`: `input_tokens` counts only the prompt tokens that were
/// neither read from nor written to the prompt cache, unlike OpenAI's
/// `prompt_tokens`, which counts them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
}

impl Usage {
    /// The figures in the gateway's normalised form (OpenAI's convention:
    /// `prompt_tokens` includes cache reads and writes).
    pub fn normalised(&self) -> crate::usage::Usage {
        self.over(None)
    }

    /// The figures of a later event of the same stream (`message_delta`, whose
    /// counts are cumulative) over what `earlier` said: a field the event
    /// carries replaces the earlier one, the others stay.
    pub fn over(&self, earlier: Option<&crate::usage::Usage>) -> crate::usage::Usage {
        let e = earlier.copied().unwrap_or_default();
        let cached = self.cache_read_input_tokens.unwrap_or(e.cached_tokens);
        let created = self
            .cache_creation_input_tokens
            .unwrap_or(e.cache_creation_tokens);
        let earlier_input = e
            .prompt_tokens
            .saturating_sub(e.cached_tokens)
            .saturating_sub(e.cache_creation_tokens);
        let input = self.input_tokens.unwrap_or(earlier_input);
        let prompt = input.saturating_add(cached).saturating_add(created);
        let completion = self.output_tokens.unwrap_or(e.completion_tokens);
        crate::usage::Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: cached,
            cache_creation_tokens: created,
            // (Anthropic counts thinking in output_tokens and reports no split)
            reasoning_tokens: e.reasoning_tokens,
            estimated: false,
        }
    }

    /// Normalised figures in Anthropic's form: cache reads and writes taken out
    /// of the prompt count.
    pub fn from_normalised(u: &crate::usage::Usage) -> Usage {
        Usage {
            input_tokens: Some(
                u.prompt_tokens
                    .saturating_sub(u.cached_tokens)
                    .saturating_sub(u.cache_creation_tokens),
            ),
            output_tokens: Some(u.completion_tokens),
            cache_read_input_tokens: Some(u.cached_tokens),
            cache_creation_input_tokens: Some(u.cache_creation_tokens),
        }
    }
}

/// Anthropic's error body: `{"type":"error","error":{"type":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody<S = String> {
    /// always `"error"`
    #[serde(rename = "type")]
    pub kind: S,
    pub error: ErrorDetail<S>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail<S = String> {
    /// `invalid_request_error`, `rate_limit_error`... ([`error_type`])
    #[serde(rename = "type")]
    pub kind: S,
    pub message: S,
}

impl<'a> ErrorBody<&'a str> {
    /// An error body of type `kind` saying `message`.
    pub fn new(kind: &'a str, message: &'a str) -> Self {
        ErrorBody {
            kind: "error",
            error: ErrorDetail { kind, message },
        }
    }
}

/// The error `type` Anthropic's API gives an HTTP status (what its SDKs map
/// to their typed exceptions).
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// A whole answer: `{"type":"message",...}` (owned, for writing one, e.g. the
/// tests' mock; the gateway reads answers with borrowed types of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    /// always `"message"`
    #[serde(rename = "type")]
    pub kind: String,
    /// always `"assistant"`
    pub role: String,
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

/// A content block of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
}

/// One event of a stream (its SSE `event:` name is [`StreamEvent::name`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: usize,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: Usage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
    },
}

impl StreamEvent {
    /// The SSE event name: the data's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// A `content_block_delta`'s delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BlockDelta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "signature_delta")]
    Signature { signature: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
}

/// A `message_delta`'s delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDelta {
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(json: &str) -> Usage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn input_tokens_exclude_cache_reads_and_writes_normalised_include_them() {
        let n = wire(
            r#"{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}"#,
        )
        .normalised();
        assert_eq!(n.prompt_tokens, 130);
        assert_eq!(n.cached_tokens, 100);
        assert_eq!(n.cache_creation_tokens, 20);
        assert_eq!(n.completion_tokens, 5);
        assert_eq!(n.total_tokens, 135);
        assert!(!n.estimated);
    }

    #[test]
    fn absent_cache_fields_count_zero() {
        let n = wire(r#"{"input_tokens":7,"output_tokens":3}"#).normalised();
        assert_eq!(
            (n.prompt_tokens, n.cached_tokens, n.total_tokens),
            (7, 0, 10)
        );
    }

    #[test]
    fn a_later_event_replaces_only_the_fields_it_carries() {
        let start = wire(
            r#"{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}"#,
        )
        .normalised();
        let n = wire(r#"{"output_tokens":42}"#).over(Some(&start));
        assert_eq!(
            (n.prompt_tokens, n.cached_tokens, n.cache_creation_tokens),
            (130, 100, 20)
        );
        assert_eq!((n.completion_tokens, n.total_tokens), (42, 172));
        // a message_delta with cumulative input figures replaces them
        let n = wire(r#"{"input_tokens":12,"output_tokens":42,"cache_read_input_tokens":90}"#)
            .over(Some(&start));
        assert_eq!(
            (n.prompt_tokens, n.cached_tokens, n.cache_creation_tokens),
            (122, 90, 20)
        );
    }

    #[test]
    fn normalised_figures_convert_back() {
        let w = wire(
            r#"{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}"#,
        );
        assert_eq!(Usage::from_normalised(&w.normalised()), w);
    }

    #[test]
    fn written_without_absent_fields() {
        let u = Usage {
            output_tokens: Some(3),
            ..Usage::default()
        };
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"output_tokens":3}"#);
    }

    #[test]
    fn stream_events_read_and_write_as_the_api_sends_them() {
        for json in [
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ] {
            let e: StreamEvent = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&e).unwrap(), json);
            assert!(json.starts_with(&format!(r#"{{"type":"{}""#, e.name())));
        }
    }

    #[test]
    fn error_body_shape() {
        let e = ErrorBody::<&str>::new(error_type(429), "slow down");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
        );
        let back: ErrorBody = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back.error.message, "slow down");
        assert_eq!(error_type(401), "authentication_error");
        assert_eq!(error_type(500), "api_error");
    }
}
