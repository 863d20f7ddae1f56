//! The API endpoints the gateway serves (OpenAI's, and Anthropic's Messages
//! API), recognised by path suffix (a route then requires the exact path under
//! its prefix, `route.rs`).

/// One served endpoint. The upstream path is the provider's base URL + `suffix()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Models,
    /// Anthropic's Messages API
    Messages,
    /// Anthropic's token count of a Messages request
    CountTokens,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
        Endpoint::Models,
        Endpoint::Messages,
        Endpoint::CountTokens,
    ];

    /// Position in [`Endpoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Recognises `.../chat/completions`, `.../completions`, `.../embeddings`,
    /// `.../responses`, `.../models`, `.../messages`, `.../messages/count_tokens`
    /// (query string already removed).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/messages") {
            Some(Endpoint::Messages)
        } else if path.ends_with("/messages/count_tokens") {
            Some(Endpoint::CountTokens)
        } else if path.ends_with("/chat/completions") {
            Some(Endpoint::ChatCompletions)
        } else if path.ends_with("/completions") {
            Some(Endpoint::Completions)
        } else if path.ends_with("/embeddings") {
            Some(Endpoint::Embeddings)
        } else if path.ends_with("/responses") {
            Some(Endpoint::Responses)
        } else if path.ends_with("/models") {
            Some(Endpoint::Models)
        } else {
            None
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
            Endpoint::Models => "/models",
            Endpoint::Messages => "/messages",
            Endpoint::CountTokens => "/messages/count_tokens",
        }
    }

    /// Anthropic's Messages API (errors in its shape, keys also in `x-api-key`).
    pub fn is_anthropic(self) -> bool {
        matches!(self, Endpoint::Messages | Endpoint::CountTokens)
    }

    pub fn method(self) -> http::Method {
        match self {
            Endpoint::Models => http::Method::GET,
            _ => http::Method::POST,
        }
    }

    /// `ai_log.request_type`.
    pub fn request_type(self, stream: bool) -> &'static str {
        match self {
            Endpoint::Embeddings => "ai_embeddings",
            Endpoint::Models | Endpoint::CountTokens => "traditional_http",
            _ if stream => "ai_stream",
            _ => "ai_chat",
        }
    }

    /// `gen_ai.operation.name` (OpenTelemetry GenAI conventions).
    pub fn operation_name(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Messages => "chat",
            Endpoint::Completions => "text_completion",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Models => "list_models",
            Endpoint::CountTokens => "count_tokens",
        }
    }

    /// Whether an answer costs tokens (a model list or a token count does not).
    pub fn uses_tokens(self) -> bool {
        !matches!(self, Endpoint::Models | Endpoint::CountTokens)
    }

    /// Whether the endpoint can stream and accepts `stream_options.include_usage`.
    pub fn takes_stream_options(self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Completions)
    }
}

/// Whether `path` has a `.` or `..` segment, also percent-encoded (`%2e`):
/// such paths are refused rather than resolved, so no two spellings of one
/// path exist for route matching.
pub fn has_dot_segment(path: &str) -> bool {
    // (most paths have neither a dot nor an escape)
    if memchr::memchr2(b'.', b'%', path.as_bytes()).is_none() {
        return false;
    }
    path.split('/').any(|seg| {
        let mut rest = seg;
        let mut dots = 0;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                rest = r;
            } else if rest
                .as_bytes()
                .get(..3)
                .is_some_and(|b| b.eq_ignore_ascii_case(b"%2e"))
            {
                // (three ASCII bytes: the slice below is on a char boundary)
                rest = &rest[3..];
            } else {
                return false;
            }
            dots += 1;
        }
        matches!(dots, 1 | 2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_suffix() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/openai/v1/chat/completions/"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/completions"),
            Some(Endpoint::Completions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/embeddings"),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(
            Endpoint::from_path("/v1/responses"),
            Some(Endpoint::Responses)
        );
        assert_eq!(Endpoint::from_path("/v1/models"), Some(Endpoint::Models));
        assert_eq!(Endpoint::from_path("/v1/files"), None);
    }

    #[test]
    fn dot_segments() {
        for p in [
            "/v1/../chat/completions",
            "/v1/./x",
            "/v1/%2e%2E/x",
            "/v1/.%2e/x",
            "/..",
            "/v1/.",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "/v1/chat/completions",
            "/v1/.../x",
            "/v1/.x/y",
            "/v1/a.b",
            "/",
            "",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }
}
