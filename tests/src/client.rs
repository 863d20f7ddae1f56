//! Small HTTP client helpers for the tests: JSON requests returning status, headers
//! and body, an SSE reader that reports the events received and whether the
//! stream ended cleanly, and a raw-TCP exchange for malformed/slow requests.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest any single helper call waits before failing the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete (non-streamed) response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// HTTP version the response came with.
    pub version: http::Version,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (failing the test) with the body text when it is not.
    pub fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            ),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All values of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// Asserts an OpenAI-shaped error: this status, non-empty `error.message` and
    /// `error.type`, and `error.code` equal to `code`. Returns the body.
    pub fn assert_openai_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}: {}",
            self.text()
        );
        let v = self.json();
        let e = &v["error"];
        for f in ["message", "type"] {
            assert!(
                e[f].as_str().is_some_and(|m| !m.is_empty()),
                "error.{f}: {v}"
            );
        }
        assert_eq!(e["code"], code, "error.code: {v}");
        v
    }

    /// `error.code` of an OpenAI-shaped error body, if there is one.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.pointer("/error/code")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// When it arrived, from the moment the request was sent.
    pub at: Duration,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.data) {
            Ok(v) => v,
            Err(e) => panic!("SSE data is not JSON ({e}): {}", self.data),
        }
    }
}

/// A whole SSE exchange.
#[derive(Debug, Clone)]
pub struct SseResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// Events in arrival order, `data: [DONE]` excluded.
    pub events: Vec<SseEvent>,
    /// `data: [DONE]` was received.
    pub done: bool,
    /// The body ended without a transport error (for HTTP/1.1 chunked: the
    /// terminating chunk arrived).
    pub clean_end: bool,
    /// The transport error that ended the body, if any.
    pub error: Option<String>,
    /// Everything received, as text.
    pub raw: String,
    /// Time from sending the request to the end of the body.
    pub total: Duration,
}

impl SseResponse {
    /// The JSON payload of every event ([DONE] excluded).
    pub fn json_events(&self) -> Vec<Value> {
        self.events.iter().map(SseEvent::json).collect()
    }

    /// Concatenated `choices[0].delta.content` of the chat chunks.
    pub fn content(&self) -> String {
        self.json_events()
            .iter()
            .filter_map(|e| {
                e.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    /// Chunks whose `choices` is an empty array (usage-only chunks).
    pub fn usage_chunks(&self) -> Vec<Value> {
        self.json_events()
            .into_iter()
            .filter(|e| {
                e.get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An open SSE response, read event by event.
pub struct SseStream {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    buf: BytesMut,
    raw: Vec<u8>,
    started: Instant,
    pending: std::collections::VecDeque<SseEvent>,
    pub done: bool,
    finished: bool,
    pub error: Option<String>,
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(block: &str, at: Duration) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        } else if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_string());
        }
    }
    if data.is_empty() && event.is_none() {
        return None; // comment / keep-alive
    }
    Some(SseEvent {
        event,
        data: data.join("\n"),
        at,
    })
}

impl SseStream {
    fn drain_buffer(&mut self) {
        while let Some((pos, sep)) = find_event_end(&self.buf) {
            let block = self.buf.split_to(pos + sep);
            let text = String::from_utf8_lossy(&block[..pos]).into_owned();
            if let Some(ev) = parse_event(&text, self.started.elapsed()) {
                if ev.data == "[DONE]" {
                    self.done = true;
                } else {
                    self.pending.push_back(ev);
                }
            }
        }
    }

    /// The next event (`[DONE]` is not returned, it sets `done`); `None` once the
    /// body has ended (cleanly or not — see `error`).
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(ev);
            }
            if self.finished {
                return None;
            }
            match tokio::time::timeout(DEFAULT_TIMEOUT, self.body.frame()).await {
                Err(_) => {
                    self.error = Some("timed out waiting for the next SSE frame".into());
                    self.finished = true;
                }
                Ok(None) => self.finished = true,
                Ok(Some(Err(e))) => {
                    self.error = Some(format!("{e:?}"));
                    self.finished = true;
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.raw.extend_from_slice(&data);
                        self.buf.extend_from_slice(&data);
                        self.drain_buffer();
                    }
                }
            }
        }
    }

    /// Reads to the end and returns the whole exchange; `first` are events already
    /// taken with [`SseStream::next_event`], kept at the front.
    pub async fn collect_with(mut self, first: Vec<SseEvent>) -> SseResponse {
        let mut events = first;
        while let Some(ev) = self.next_event().await {
            events.push(ev);
        }
        SseResponse {
            status: self.status,
            headers: self.headers,
            events,
            done: self.done,
            clean_end: self.error.is_none(),
            error: self.error,
            raw: String::from_utf8_lossy(&self.raw).into_owned(),
            total: self.started.elapsed(),
        }
    }

    pub async fn collect(self) -> SseResponse {
        self.collect_with(Vec::new()).await
    }
}

/// A hyper-util legacy client with helpers; `C` is the connector (plain HTTP by
/// default; tests pass an HTTPS connector for TLS).
#[derive(Clone)]
pub struct TestClient<C = HttpConnector> {
    inner: Client<C, Full<Bytes>>,
}

impl Default for TestClient<HttpConnector> {
    fn default() -> Self {
        Self::new()
    }
}

fn http_connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.enforce_http(false);
    c
}

impl TestClient<HttpConnector> {
    /// HTTP/1.1 over plain TCP.
    pub fn new() -> Self {
        TestClient {
            inner: Client::builder(TokioExecutor::new()).build(http_connector()),
        }
    }

    /// HTTP/2 with prior knowledge over plain TCP (h2c).
    pub fn h2c() -> Self {
        TestClient {
            inner: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(http_connector()),
        }
    }
}

impl<C> TestClient<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    pub fn from_client(inner: Client<C, Full<Bytes>>) -> Self {
        TestClient { inner }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<hyper::Response<Incoming>, String> {
        let mut builder = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        match tokio::time::timeout(DEFAULT_TIMEOUT, self.inner.request(req)).await {
            Err(_) => Err(format!("timed out waiting for the response head of {url}")),
            Ok(Err(e)) => Err(format!("request to {url} failed: {e:?}")),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Any request; `Err` only for transport failures.
    pub async fn try_request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<HttpResponse, String> {
        let resp = self.send(method, url, headers, body.into()).await?;
        let status = resp.status().as_u16();
        let version = resp.version();
        let (parts, body) = resp.into_parts();
        let body = match tokio::time::timeout(DEFAULT_TIMEOUT, body.collect()).await {
            Err(_) => return Err(format!("timed out reading the body of {url}")),
            Ok(Err(e)) => return Err(format!("reading the body of {url} failed: {e:?}")),
            Ok(Ok(c)) => c.to_bytes(),
        };
        Ok(HttpResponse {
            status,
            headers: parts.headers,
            body,
            version,
        })
    }

    /// Any request; panics on transport failures.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> HttpResponse {
        match self.try_request(method, url, headers, body).await {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    pub async fn get(&self, url: &str) -> HttpResponse {
        self.request(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request(Method::GET, url, headers, Bytes::new()).await
    }

    pub async fn post_json(&self, url: &str, body: &Value) -> HttpResponse {
        self.post_json_with(url, body, &[]).await
    }

    pub async fn post_json_with(
        &self,
        url: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.request(Method::POST, url, &h, body.to_string()).await
    }

    /// POST of raw bytes (content-type application/json).
    pub async fn post_raw(
        &self,
        url: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.request(Method::POST, url, &h, body).await
    }

    /// POSTs `body` and returns the open event stream (status and headers known).
    pub async fn open_sse(&self, url: &str, body: &Value, headers: &[(&str, &str)]) -> SseStream {
        match self.try_open_sse(url, body, headers).await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`TestClient::open_sse`]; `Err` for transport failures instead of a panic.
    pub async fn try_open_sse(
        &self,
        url: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<SseStream, String> {
        let mut h: Vec<(&str, &str)> = vec![
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ];
        h.extend_from_slice(headers);
        let started = Instant::now();
        let resp = self
            .send(Method::POST, url, &h, Bytes::from(body.to_string()))
            .await?;
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        Ok(SseStream {
            status,
            headers: parts.headers,
            body,
            buf: BytesMut::new(),
            raw: Vec::new(),
            started,
            pending: Default::default(),
            done: false,
            finished: false,
            error: None,
        })
    }

    /// POSTs `body` and reads the whole event stream.
    pub async fn post_sse(&self, url: &str, body: &Value, headers: &[(&str, &str)]) -> SseResponse {
        self.open_sse(url, body, headers).await.collect().await
    }
}

/// Free-function shorthands on a fresh HTTP/1.1 client.
pub async fn get(url: &str) -> HttpResponse {
    TestClient::new().get(url).await
}

pub async fn post_json(url: &str, body: &Value) -> HttpResponse {
    TestClient::new().post_json(url, body).await
}

pub async fn post_json_with(url: &str, body: &Value, headers: &[(&str, &str)]) -> HttpResponse {
    TestClient::new().post_json_with(url, body, headers).await
}

pub async fn post_sse(url: &str, body: &Value, headers: &[(&str, &str)]) -> SseResponse {
    TestClient::new().post_sse(url, body, headers).await
}

/// Writes `data` on a fresh TCP connection to `addr`, then reads whatever comes back
/// until the peer closes or `wait` has passed. Returns what was read.
pub async fn raw_tcp_exchange(addr: &str, data: &[u8], wait: Duration) -> String {
    let mut stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    if let Err(e) = stream.write_all(data).await {
        panic!("write to {addr}: {e}");
    }
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A chat request body with one user message.
pub fn chat_body(model: &str, content: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
    })
}

/// A streaming chat request body with one user message.
pub fn chat_stream_body(model: &str, content: &str) -> Value {
    serde_json::json!({
        "model": model,
        "stream": true,
        "messages": [{"role": "user", "content": content}],
    })
}
