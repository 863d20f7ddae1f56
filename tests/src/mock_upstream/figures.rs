//! The usage the mock answered a recorded generate request with, whatever API it
//! spoke, in one convention, so a test compares what a client was told (in its
//! own API's words) with what the upstream counted.

use super::{gemini, ConverseAnswer, GeminiAnswer, MessagesAnswer, MockUpstream, RecordedRequest};
use std::sync::atomic::Ordering;

/// The usage of one answer of the mock, in OpenAI's convention: `prompt_tokens`
/// counts every prompt token (cache reads and writes included),
/// `completion_tokens` every generated one (thoughts included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnsweredUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// prompt tokens read from the cache (part of `prompt_tokens`)
    pub cache_read_tokens: u64,
    /// prompt tokens written to the cache (part of `prompt_tokens`)
    pub cache_write_tokens: u64,
    /// generated tokens spent thinking (part of `completion_tokens`)
    pub reasoning_tokens: u64,
}

impl AnsweredUsage {
    /// Anthropic's `input_tokens`: the prompt without cache reads and writes.
    pub fn anthropic_input_tokens(&self) -> u64 {
        self.prompt_tokens - self.cache_read_tokens - self.cache_write_tokens
    }
}

/// Which API a generate request spoke, by its path (None: not a generate request
/// of the Gemini, Vertex AI, Bedrock or Anthropic side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerateApi {
    /// `generateContent` / `streamGenerateContent` (Gemini, and Vertex AI's
    /// `publishers/google`)
    Gemini,
    /// `POST /v1/messages`, and Vertex AI's `publishers/anthropic` `rawPredict` /
    /// `streamRawPredict`
    Messages,
    /// Bedrock's `converse` / `converse-stream`
    Converse,
}

impl GenerateApi {
    /// The API of `req`, when it is a generate request.
    pub fn of(req: &RecordedRequest) -> Option<GenerateApi> {
        let path = req.path();
        let method = path.rsplit_once(':').map(|(_, m)| m);
        match method {
            Some("generateContent" | "streamGenerateContent") => Some(GenerateApi::Gemini),
            Some("rawPredict" | "streamRawPredict") => Some(GenerateApi::Messages),
            _ if path == "/v1/messages" => Some(GenerateApi::Messages),
            _ if path.starts_with("/model/")
                && (path.ends_with("/converse") || path.ends_with("/converse-stream")) =>
            {
                Some(GenerateApi::Converse)
            }
            _ => None,
        }
    }
}

impl MockUpstream {
    /// The usage this mock answered generate request `req` with (None: `req` is
    /// no generate request, [`GenerateApi::of`]), computed from its recorded body
    /// with the switches and `stream_chunks` as they are now: set them before the
    /// requests and leave them.
    pub fn answered_usage(&self, req: &RecordedRequest) -> Option<AnsweredUsage> {
        let st = self.state();
        let chunks = self.stream_chunks();
        Some(match GenerateApi::of(req)? {
            GenerateApi::Gemini => {
                let u = GeminiAnswer::plan(&req.body, chunks, gemini::switches(st)).usage;
                AnsweredUsage {
                    prompt_tokens: u.prompt_token_count,
                    completion_tokens: u.candidates_token_count + u.thoughts_token_count,
                    cache_read_tokens: u.cached_content_token_count,
                    cache_write_tokens: 0,
                    reasoning_tokens: u.thoughts_token_count,
                }
            }
            GenerateApi::Messages => {
                let on_auto = st.tool_use_on_auto.load(Ordering::SeqCst);
                let u = MessagesAnswer::plan(&req.body, chunks, on_auto).usage;
                AnsweredUsage {
                    prompt_tokens: u.prompt_total(),
                    completion_tokens: u.output_tokens,
                    cache_read_tokens: u.cache_read_input_tokens,
                    cache_write_tokens: u.cache_creation_input_tokens,
                    reasoning_tokens: u.thinking_tokens.unwrap_or(0),
                }
            }
            GenerateApi::Converse => {
                let cache = st.cloud.bedrock_cache.load(Ordering::SeqCst);
                let u = ConverseAnswer::plan(&req.body, chunks, cache).usage;
                AnsweredUsage {
                    prompt_tokens: u.prompt_total(),
                    completion_tokens: u.output_tokens,
                    cache_read_tokens: u.cache_read_input_tokens,
                    cache_write_tokens: u.cache_write_input_tokens,
                    reasoning_tokens: 0,
                }
            }
        })
    }
}
