//! The one error type at the HTTP boundary: it knows its status, its OpenAI error
//! `type`/`code`, whether another upstream may be tried, and renders itself as the
//! OpenAI-shaped JSON body.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use shared::error::ErrorBody;
use std::fmt;

#[derive(Debug, Clone)]
pub struct GatewayError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    /// Another upstream instance may be tried for this failure.
    pub retryable: bool,
    /// Short access-log flag (Envoy style): UF, UT, NR, ...
    pub flag: &'static str,
    /// seconds, sent as `Retry-After`
    pub retry_after: Option<u64>,
}

impl GatewayError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        GatewayError {
            status,
            kind,
            code,
            message,
            retryable: false,
            flag: "",
            retry_after: None,
        }
    }

    /// 429: a quota is exhausted (`retry_after_ms` None: this request can never fit).
    pub fn rate_limited(
        strategy_kind: &'static str,
        message: String,
        retry_after_ms: Option<u64>,
    ) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            strategy_kind,
            "rate_limit_exceeded",
            message,
        );
        e.flag = "RL";
        e.retry_after = retry_after_ms.map(|ms| ms.div_ceil(1000).max(1));
        e
    }

    /// 503: quotas cannot be checked and `on_redis_error` is `fail_closed`.
    pub fn quota_unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "quota_unavailable",
            "quotas cannot be checked right now (the state backend is unreachable and \
             state.on_redis_error is fail_closed); retry shortly"
                .to_string(),
        );
        e.flag = "RLSE";
        e.retry_after = Some(1);
        e
    }

    pub fn bad_json(detail: impl fmt::Display) -> Self {
        // the parser's message may quote the body (a whole string value): cut it
        let mut message = format!("request body is not valid JSON: {detail}");
        crate::text::cut(&mut message, 300);
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            message,
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message.into(),
        )
    }

    pub fn missing_model() -> Self {
        Self::bad_request("missing_model", "you must provide a model parameter")
    }

    pub fn no_route(message: String) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no_route",
            message,
        );
        e.flag = "NR";
        e
    }

    pub fn unknown_endpoint(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_endpoint",
            format!(
                "unknown endpoint {path:?}: this gateway serves /v1/chat/completions, /v1/completions, \
                 /v1/embeddings, /v1/responses and /v1/models"
            ),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("method {method} is not allowed on {path}"),
        )
    }

    pub fn body_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "body_too_large",
            format!("request body is larger than the gateway's limit of {limit} bytes"),
        )
    }

    pub fn header_timeout(ms: u64) -> Self {
        Self::request_timeout(format!("request headers were not received within {ms} ms"))
    }

    pub fn request_timeout(message: String) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            message,
        )
    }

    /// 503: the gateway's budget of buffered request bodies is used up.
    pub fn overloaded() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "overloaded",
            "the gateway is receiving too many request bodies at once; retry shortly".to_string(),
        );
        e.retry_after = Some(1);
        e
    }

    pub fn body_read(detail: impl fmt::Display) -> Self {
        Self::bad_request(
            "body_read_error",
            format!("could not read the request body: {detail}"),
        )
    }

    /// A 502 for an upstream that gave no answer; another instance may be tried.
    fn no_answer(code: &'static str, message: String) -> Self {
        let mut e = Self::new(StatusCode::BAD_GATEWAY, "upstream_error", code, message);
        e.retryable = true;
        e.flag = "UF";
        e
    }

    pub fn upstream_unreachable(provider: &str, detail: impl fmt::Display) -> Self {
        Self::no_answer(
            "upstream_unreachable",
            format!("upstream {provider} is unreachable: {detail}"),
        )
    }

    pub fn upstream_failed(provider: &str, detail: impl fmt::Display) -> Self {
        Self::no_answer(
            "upstream_error",
            format!("the connection to upstream {provider} failed before an answer: {detail}"),
        )
    }

    /// A 503: the provider's credentials could not be had (a service account's
    /// token endpoint failed); another instance may be tried, and the next
    /// request asks for a token again.
    pub fn upstream_auth_failed(provider: &str, detail: impl fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_error",
            "upstream_auth_failed",
            format!("could not authenticate to upstream {provider}: {detail}"),
        );
        e.retryable = true;
        e.flag = "UAF";
        e
    }

    pub fn upstream_timeout(provider: &str, what: &str, ms: u64) -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            format!("upstream {provider} did not send {what} within {ms} ms"),
        );
        e.retryable = true;
        e.flag = "UT";
        e
    }

    pub fn no_upstream(route: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_error",
            "no_upstream",
            format!("route {route} has no upstream instance left to try"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "unauthorized",
            message.into(),
        )
    }

    /// 401: no key, or a key that does not authenticate.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            code,
            message.into(),
        )
    }

    /// 403: authenticated, but not allowed to do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            code,
            message.into(),
        )
    }

    /// 404 for admin objects (tenant, consumer, key).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message.into(),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "conflict",
            message.into(),
        )
    }

    /// 503: the state backend (Redis) cannot be reached.
    pub fn state_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "state_unavailable",
            message.into(),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message.into(),
        )
    }

    pub fn body(&self) -> Bytes {
        self.body_in(Shape::OpenAi)
    }

    /// The error body in `shape`.
    pub fn body_in(&self, shape: Shape) -> Bytes {
        // Serializing a struct of strings cannot fail; fall back to a fixed body anyway.
        let written = match shape {
            Shape::OpenAi => {
                serde_json::to_vec(&ErrorBody::new(self.message.clone(), self.kind, self.code))
            }
            Shape::Anthropic => serde_json::to_vec(&serde_json::json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.message},
            })),
        };
        written.map(Bytes::from).unwrap_or_else(|_| match shape {
            Shape::OpenAi => Bytes::from_static(
                br#"{"error":{"message":"internal error","type":"server_error","code":"internal_error"}}"#,
            ),
            Shape::Anthropic => Bytes::from_static(
                br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#,
            ),
        })
    }

    /// Anthropic's error type for this error's status (what its SDKs expect).
    fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The response parts every error answer carries (OpenAI's shape).
    pub fn response(&self) -> http::Response<Bytes> {
        self.response_in(Shape::OpenAi)
    }

    /// The error answer in `shape`, with `retry-after` when the client may retry later.
    pub fn response_in(&self, shape: Shape) -> http::Response<Bytes> {
        let mut resp = http::Response::new(self.body_in(shape));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// The API whose error shape an answer takes: the one the client called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// `{"error": {"message", "type", "code"}}`
    #[default]
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`
    Anthropic,
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

/// "outer: inner: innermost" for an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_shape() {
        let e = GatewayError::body_too_large(10);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "body_too_large");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("10 bytes"));
        assert_eq!(e.response().status(), 413);
    }
}
