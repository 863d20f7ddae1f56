//! A mock OpenAI upstream on hyper 1.x (HTTP/1.1, TCP_NODELAY), started in-process
//! on `127.0.0.1:0` or wrapped by the `mock-upstream` binary.
//!
//! # Endpoints
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1/chat/completions` | `chat.completion` JSON, or SSE when `"stream": true` |
//! | `POST /v1/completions` | `text_completion` JSON, or SSE when `"stream": true` |
//! | `POST /v1/embeddings` | one 8-dimensional vector per input |
//! | `POST /v1/responses` | a minimal Responses-API object (SSE events when `"stream": true`) |
//! | `GET /v1/models` | `mock-small`, `mock-large` |
//! | `POST /openai/deployments/{d}/chat/completions?api-version=..` | Azure shape of the chat endpoint; `model` in the answer is `{d}` |
//! | `POST /openai/deployments/{d}/completions?api-version=..` | Azure completions |
//! | `POST /openai/deployments/{d}/embeddings?api-version=..` | Azure embeddings |
//!
//! Anything else is a 404 with an OpenAI error body (code `unknown_url`); an Azure
//! path without `api-version` is a 404 too (code `missing_api_version`), and a body
//! that is not JSON is a 400 (code `invalid_json`). Every answer carries
//! `x-request-id: req_mock<n>` like OpenAI does.
//!
//! # Deterministic usage figures
//!
//! Let `N` be the number of content chunks (`stream_chunks`, default 8) and
//! `tokens(b) = ceil(b / 4)` for a byte count `b` (see [`text_tokens`]).
//!
//! * chat: `prompt_tokens = tokens(B)` where `B` is the sum of the UTF-8 byte
//!   lengths of every `messages[].content` (a string, or for an array of parts the
//!   `text` of each part); `completion_tokens = N` (the answer is `"word "` N
//!   times, one token per word); `total_tokens = prompt + completion`;
//!   `prompt_tokens_details.cached_tokens = prompt / 2` (floor);
//!   `completion_tokens_details.reasoning_tokens = completion / 4` (floor).
//!   [`chat_usage`] computes these from a request body.
//! * completions: as chat with `B` = bytes of `prompt` (a string or an array of
//!   strings, summed).
//! * embeddings: `prompt_tokens = total_tokens = sum over inputs of tokens(bytes)`
//!   (an input given as a token array counts its length). [`embeddings_usage`].
//! * responses: `input_tokens = tokens(B)` with `B` = bytes of `input` (a string,
//!   or items whose `content` is a string or parts with `text`), `output_tokens =
//!   N`, `total_tokens` = sum; `input_tokens_details.cached_tokens = input / 2`,
//!   `output_tokens_details.reasoning_tokens = output / 4`.
//!
//! Ids: chat answers are `chatcmpl-mock<n>`, completions `cmpl-mock<n>`, responses
//! `resp_mock<n>`, where `<n>` counts requests from 1 per mock instance. `created`
//! is always [`CREATED`].
//!
//! # Chat stream shape
//!
//! Events, each written as its own body frame `data: <json>\n\n`:
//! 1. a role chunk (`delta: {"role":"assistant","content":""}`),
//! 2. `N` content chunks (`delta: {"content":"word "}`, `finish_reason: null`),
//! 3. a finish chunk (`delta: {}`, `finish_reason: "stop"`),
//! 4. only when the request had `stream_options.include_usage: true`: a usage chunk
//!    with `"choices": []` and `"usage": {...}` (figures as above),
//! 5. `data: [DONE]`.
//!
//! # Behaviour (switchable at run time through [`MockUpstream`]'s setters)
//!
//! * `fail_with(status)`: every request is answered `status` with
//!   [`MOCK_ERROR_BODY`]; `fail_with_body(status, body)` with that body.
//! * `delay_headers(ms)`: sleep before sending the response head (any endpoint).
//! * `cut_stream_after(k)`: a stream sends its first `k` events (counting the role
//!   chunk as event 1) and then the connection is aborted: the chunked body ends
//!   with an error, neither the terminating chunk nor `data: [DONE]` is sent.
//! * `set_chunk_delay(ms)`: sleep between stream events.
//! * `set_stream_chunks(n)`: number of content chunks (and completion tokens).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

/// `created` timestamp of every answer.
pub const CREATED: u64 = 1_700_000_000;
/// Default number of content chunks of a stream (= completion tokens).
pub const DEFAULT_STREAM_CHUNKS: usize = 8;
/// Body of every answer while `fail_with` is set.
pub const MOCK_ERROR_BODY: &str =
    r#"{"error":{"message":"mock failure","type":"server_error","code":"mock_500"}}"#;
/// Models listed by `GET /v1/models`.
pub const MOCK_MODELS: [&str; 2] = ["mock-small", "mock-large"];
/// Text of one content chunk.
pub const CHUNK_TEXT: &str = "word ";

/// `ceil(bytes / 4)`: the mock's token count of a text of `bytes` bytes.
pub fn text_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// Usage figures the mock reports (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MockUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl MockUsage {
    fn new(prompt: u64, completion: u64) -> Self {
        MockUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cached_tokens: prompt / 2,
            reasoning_tokens: completion / 4,
        }
    }

    /// The chat/completions `usage` object, as OpenAI writes it (the type the
    /// gateway reads it with).
    fn chat_json(&self) -> String {
        use shared::wire::openai::{CompletionDetails, PromptDetails, Usage};
        let usage = Usage {
            prompt_tokens: Some(self.prompt_tokens),
            completion_tokens: Some(self.completion_tokens),
            total_tokens: Some(self.total_tokens),
            prompt_tokens_details: Some(PromptDetails {
                cached_tokens: Some(self.cached_tokens),
            }),
            completion_tokens_details: Some(CompletionDetails {
                reasoning_tokens: Some(self.reasoning_tokens),
            }),
            ..Usage::default()
        };
        serde_json::to_string(&usage).unwrap_or_default()
    }

    fn responses_json(&self) -> String {
        format!(
            r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":{}}},"output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{}}},"total_tokens":{}}}"#,
            self.prompt_tokens,
            self.cached_tokens,
            self.completion_tokens,
            self.reasoning_tokens,
            self.total_tokens
        )
    }
}

fn content_bytes(content: &Value) -> usize {
    match content {
        Value::String(s) => s.len(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.len(),
                other => other
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, str::len),
            })
            .sum(),
        _ => 0,
    }
}

/// Usage the mock reports for a chat request `body` with `chunks` content chunks.
pub fn chat_usage(body: &Value, chunks: usize) -> MockUsage {
    let bytes: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|msgs| {
            msgs.iter()
                .map(|m| m.get("content").map_or(0, content_bytes))
                .sum()
        })
        .unwrap_or(0);
    MockUsage::new(text_tokens(bytes), chunks as u64)
}

/// Usage the mock reports for a legacy completions request.
pub fn completions_usage(body: &Value, chunks: usize) -> MockUsage {
    let bytes = body.get("prompt").map_or(0, content_bytes);
    MockUsage::new(text_tokens(bytes), chunks as u64)
}

/// Usage the mock reports for a Responses-API request.
pub fn responses_usage(body: &Value, chunks: usize) -> MockUsage {
    let bytes = match body.get("input") {
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.len(),
                other => other.get("content").map_or(0, content_bytes),
            })
            .sum(),
        _ => 0,
    };
    MockUsage::new(text_tokens(bytes), chunks as u64)
}

fn embedding_inputs(body: &Value) -> Vec<u64> {
    match body.get("input") {
        Some(Value::String(s)) => vec![text_tokens(s.len())],
        Some(Value::Array(items)) => {
            if items.iter().all(Value::is_number) && !items.is_empty() {
                // one input given as a token array
                return vec![items.len() as u64];
            }
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => text_tokens(s.len()),
                    Value::Array(tokens) => tokens.len() as u64,
                    _ => 0,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Usage the mock reports for an embeddings request (`completion_tokens` is 0,
/// `total_tokens == prompt_tokens`).
pub fn embeddings_usage(body: &Value) -> MockUsage {
    let prompt: u64 = embedding_inputs(body).iter().sum();
    MockUsage {
        prompt_tokens: prompt,
        completion_tokens: 0,
        total_tokens: prompt,
        cached_tokens: 0,
        reasoning_tokens: 0,
    }
}

/// Start-up options of a mock.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Content chunks per stream (and completion tokens). Default 8.
    pub stream_chunks: usize,
    /// Delay between stream events, ms. Default 0.
    pub chunk_delay_ms: u64,
    /// Bytes of padding (a field `x_pad` the gateway passes on) in every content
    /// event of a chat stream: a lot of bytes in few events. Default 0.
    pub chunk_pad: usize,
    /// Keep a log of every request (default true; the binary turns it off).
    pub record_requests: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            stream_chunks: DEFAULT_STREAM_CHUNKS,
            chunk_delay_ms: 0,
            chunk_pad: 0,
            record_requests: true,
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Header names lowercased, in arrival order (values decoded lossily).
    pub headers: Vec<(String, String)>,
    /// Names of the headers whose value was not valid UTF-8.
    pub non_utf8_headers: Vec<String>,
    /// The body parsed as JSON, `Value::Null` when it is not JSON.
    pub body: Value,
    /// The body as received.
    pub raw_body: Bytes,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }
}

/// The run-time switches and counters of a mock, shared with its server tasks.
#[derive(Debug)]
pub struct MockState {
    fail_status: AtomicU16,
    /// the body of failed answers, when not [`MOCK_ERROR_BODY`]
    fail_body: Mutex<Option<String>>,
    header_delay_ms: AtomicU64,
    cut_after: AtomicUsize,
    chunk_delay_ms: AtomicU64,
    stream_chunks: AtomicUsize,
    chunk_pad: usize,
    record: AtomicBool,
    hits: AtomicU64,
    /// `GET /v1/models` requests (what health probes ask)
    model_hits: AtomicU64,
    /// api tokens answered with a fixed status: (token, status)
    rejected_tokens: Mutex<Vec<(String, u16)>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

const NO_CUT: usize = usize::MAX;

impl MockState {
    pub fn new(opts: &MockOptions) -> Self {
        MockState {
            fail_status: AtomicU16::new(0),
            fail_body: Mutex::new(None),
            header_delay_ms: AtomicU64::new(0),
            cut_after: AtomicUsize::new(NO_CUT),
            chunk_delay_ms: AtomicU64::new(opts.chunk_delay_ms),
            stream_chunks: AtomicUsize::new(opts.stream_chunks),
            chunk_pad: opts.chunk_pad,
            record: AtomicBool::new(opts.record_requests),
            hits: AtomicU64::new(0),
            model_hits: AtomicU64::new(0),
            rejected_tokens: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        }
    }
}

/// A mock upstream running on its own thread and tokio runtime, so that it keeps
/// answering whatever the test's runtime is doing. Stopped on drop.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockUpstream {
    /// Binds `127.0.0.1:0` and starts serving. Panics if that fails (test support).
    pub fn start(opts: MockOptions) -> MockUpstream {
        match Self::try_start(opts) {
            Ok(m) => m,
            Err(e) => panic!("mock upstream failed to start: {e}"),
        }
    }

    /// A mock with the default options.
    pub fn start_default() -> MockUpstream {
        Self::start(MockOptions::default())
    }

    pub fn try_start(opts: MockOptions) -> io::Result<MockUpstream> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(MockState::new(&opts));
        let (tx, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("mock-upstream")
            .build()?;
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("mock-upstream".into())
            .spawn(move || {
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => serve(listener, st, rx).await,
                        Err(e) => eprintln!("mock upstream: {e}"),
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(MockUpstream {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT` (the Azure base URL shape)
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<MockState> {
        &self.state
    }

    /// Every request received so far (when recording is on).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self.state.requests.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The last request received, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.requests().pop()
    }

    pub fn clear_requests(&self) {
        match self.state.requests.lock() {
            Ok(mut g) => g.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// Number of requests received (recorded or not).
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Number of `GET /v1/models` requests received (health probes ask this).
    pub fn model_hits(&self) -> u64 {
        self.state.model_hits.load(Ordering::SeqCst)
    }

    /// Answer requests carrying `Authorization: Bearer <token>` with `status` (and
    /// [`MOCK_ERROR_BODY`]); `set_normal` does not clear it, `accept_all_tokens` does.
    pub fn reject_token(&self, token: &str, status: u16) {
        let mut g = match self.state.rejected_tokens.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.retain(|(t, _)| t != token);
        g.push((token.to_string(), status));
    }

    pub fn accept_all_tokens(&self) {
        match self.state.rejected_tokens.lock() {
            Ok(mut g) => g.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// Back to normal answers (clears fail, header delay and cut; keeps chunk settings).
    pub fn set_normal(&self) {
        self.state.fail_status.store(0, Ordering::SeqCst);
        *lock(&self.state.fail_body) = None;
        self.state.header_delay_ms.store(0, Ordering::SeqCst);
        self.state.cut_after.store(NO_CUT, Ordering::SeqCst);
    }

    /// Answer every request with `status` and [`MOCK_ERROR_BODY`].
    pub fn fail_with(&self, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
    }

    /// Answer every request with `status` and `body` (JSON).
    pub fn fail_with_body(&self, status: u16, body: &str) {
        *lock(&self.state.fail_body) = Some(body.to_string());
        self.state.fail_status.store(status, Ordering::SeqCst);
    }

    /// Sleep `ms` before sending response headers (0 = off).
    pub fn delay_headers(&self, ms: u64) {
        self.state.header_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Abort streams after `k` events (see the module doc).
    pub fn cut_stream_after(&self, k: usize) {
        self.state.cut_after.store(k, Ordering::SeqCst);
    }

    /// Sleep `ms` between stream events (0 = off).
    pub fn set_chunk_delay(&self, ms: u64) {
        self.state.chunk_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Content chunks per stream (= completion tokens).
    pub fn set_stream_chunks(&self, n: usize) {
        self.state.stream_chunks.store(n, Ordering::SeqCst);
    }

    pub fn stream_chunks(&self) -> usize {
        self.state.stream_chunks.load(Ordering::SeqCst)
    }

    pub fn set_recording(&self, on: bool) {
        self.state.record.store(on, Ordering::SeqCst);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections on `listener` until `shutdown` turns true (or its sender is
/// dropped). Each connection is served by hyper's HTTP/1.1 server with keep-alive.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<MockState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(_) => {
                        // e.g. EMFILE under load: back off a little, keep serving
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let st = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

// ------------------------------------------------------------------ body

/// The response body of the mock: a queue of frames, optionally spaced by a delay
/// and optionally ending in an error (abrupt cut) instead of a clean end.
pub struct MockBody {
    frames: VecDeque<Bytes>,
    delay: Option<Duration>,
    cut: bool,
    sent_any: bool,
    exact_len: Option<u64>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl MockBody {
    fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        let len = b.len() as u64;
        MockBody {
            frames: VecDeque::from([b]),
            delay: None,
            cut: false,
            sent_any: false,
            exact_len: Some(len),
            sleep: None,
        }
    }

    fn stream(frames: VecDeque<Bytes>, delay_ms: u64, cut: bool) -> Self {
        MockBody {
            frames,
            delay: (delay_ms > 0).then(|| Duration::from_millis(delay_ms)),
            cut,
            sent_any: false,
            exact_len: None,
            sleep: None,
        }
    }
}

/// Pause before the abort, so that frames already handed to hyper are flushed.
const CUT_PAUSE: Duration = Duration::from_millis(30);

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.frames.is_empty() && !this.cut {
            return Poll::Ready(None);
        }
        let pause = if this.frames.is_empty() {
            Some(this.delay.map_or(CUT_PAUSE, |d| d.max(CUT_PAUSE)))
        } else if this.sent_any {
            this.delay
        } else {
            None
        };
        if let Some(d) = pause {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if let Some(b) = this.frames.pop_front() {
            this.sent_any = true;
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        this.cut = false;
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "mock upstream cut the stream",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.cut
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

// ------------------------------------------------------------------ handler

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: MockBody,
    n: u64,
) -> Response<MockBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock{n}")) {
        h.insert("x-request-id", v);
    }
    if content_type == "text/event-stream" {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    resp
}

fn json_response(status: StatusCode, body: impl Into<Bytes>, n: u64) -> Response<MockBody> {
    response(status, "application/json", MockBody::full(body), n)
}

fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: &str,
    n: u64,
) -> Response<MockBody> {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "code": code}});
    json_response(status, body.to_string(), n)
}

fn sse_response(frames: VecDeque<Bytes>, st: &MockState, n: u64) -> Response<MockBody> {
    let delay = st.chunk_delay_ms.load(Ordering::Relaxed);
    let cut_after = st.cut_after.load(Ordering::Relaxed);
    let mut frames = frames;
    let cut = cut_after != NO_CUT;
    if cut {
        frames.truncate(cut_after);
    }
    response(
        StatusCode::OK,
        "text/event-stream",
        MockBody::stream(frames, delay, cut),
        n,
    )
}

fn sse(json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 8);
    s.push_str("data: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

fn sse_event(event: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

const DONE: &str = "data: [DONE]\n\n";

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn include_usage(body: &Value) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn is_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

async fn handle(
    state: Arc<MockState>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let n = state.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let (parts, body) = req.into_parts();
    let raw = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let json: Option<Value> = if raw.is_empty() {
        None
    } else {
        serde_json::from_slice(&raw).ok()
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    if state.record.load(Ordering::Relaxed) {
        let rec = RecordedRequest {
            method: parts.method.to_string(),
            path_and_query: path_and_query.clone(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            non_utf8_headers: parts
                .headers
                .iter()
                .filter(|(_, v)| std::str::from_utf8(v.as_bytes()).is_err())
                .map(|(k, _)| k.as_str().to_string())
                .collect(),
            body: json.clone().unwrap_or(Value::Null),
            raw_body: raw.clone(),
        };
        match state.requests.lock() {
            Ok(mut g) => g.push(rec),
            Err(p) => p.into_inner().push(rec),
        }
    }

    if parts.method == Method::GET && parts.uri.path() == "/v1/models" {
        state.model_hits.fetch_add(1, Ordering::SeqCst);
    }
    let token = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let rejected = token.and_then(|t| {
        let g = match state.rejected_tokens.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.iter().find(|(x, _)| x == t).map(|(_, s)| *s)
    });
    if let Some(status) = rejected {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        return Ok(json_response(status, MOCK_ERROR_BODY, n));
    }
    let delay = state.header_delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = state.fail_status.load(Ordering::Relaxed);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = lock(&state.fail_body)
            .clone()
            .unwrap_or_else(|| MOCK_ERROR_BODY.to_string());
        return Ok(json_response(status, body, n));
    }

    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");

    // Azure: /openai/deployments/{d}/{op}
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let Some((deployment, op)) = rest.split_once('/') else {
            return Ok(not_found(&parts.method, path, n));
        };
        if !query
            .split('&')
            .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
        {
            return Ok(error_response(
                StatusCode::NOT_FOUND,
                "api-version query parameter is required",
                "invalid_request_error",
                "missing_api_version",
                n,
            ));
        }
        if parts.method != Method::POST {
            return Ok(not_found(&parts.method, path, n));
        }
        let Some(body) = json else {
            return Ok(invalid_json(n));
        };
        let model = deployment.to_string();
        return Ok(match op {
            "chat/completions" => chat(&state, &body, &model, n),
            "completions" => completions(&state, &body, &model, n),
            "embeddings" => embeddings(&body, &model, n),
            _ => not_found(&parts.method, path, n),
        });
    }

    if parts.method == Method::GET && path == "/v1/models" {
        return Ok(json_response(StatusCode::OK, models_body(), n));
    }
    if parts.method != Method::POST {
        return Ok(not_found(&parts.method, path, n));
    }
    let op = match path {
        "/v1/chat/completions" => 1,
        "/v1/completions" => 2,
        "/v1/embeddings" => 3,
        "/v1/responses" => 4,
        _ => return Ok(not_found(&parts.method, path, n)),
    };
    let Some(body) = json else {
        return Ok(invalid_json(n));
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(match op {
        1 => chat(&state, &body, &model, n),
        2 => completions(&state, &body, &model, n),
        3 => embeddings(&body, &model, n),
        _ => responses(&state, &body, &model, n),
    })
}

fn not_found(method: &Method, path: &str, n: u64) -> Response<MockBody> {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("mock: no such endpoint {method} {path}"),
        "invalid_request_error",
        "unknown_url",
        n,
    )
}

fn invalid_json(n: u64) -> Response<MockBody> {
    error_response(
        StatusCode::BAD_REQUEST,
        "mock: body is not JSON",
        "invalid_request_error",
        "invalid_json",
        n,
    )
}

fn models_body() -> String {
    let data: Vec<String> = MOCK_MODELS
        .iter()
        .map(|m| {
            format!(r#"{{"id":"{m}","object":"model","created":{CREATED},"owned_by":"mock"}}"#)
        })
        .collect();
    format!(r#"{{"object":"list","data":[{}]}}"#, data.join(","))
}

fn chat(st: &MockState, body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let usage = chat_usage(body, chunks);
    let id = format!("chatcmpl-mock{n}");
    let m = json_str(model);
    if !is_stream(body) {
        let content = CHUNK_TEXT.repeat(chunks);
        let out = format!(
            r#"{{"id":"{id}","object":"chat.completion","created":{CREATED},"model":{m},"choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{},"system_fingerprint":"fp_mock"}}"#,
            usage.chat_json()
        );
        return json_response(StatusCode::OK, out, n);
    }
    let head = format!(
        r#"{{"id":"{id}","object":"chat.completion.chunk","created":{CREATED},"model":{m},"#
    );
    let mut frames = VecDeque::with_capacity(chunks + 4);
    frames.push_back(sse(&format!(
        r#"{head}"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]}}"#
    )));
    let pad = match st.chunk_pad {
        0 => String::new(),
        n => format!(r#","x_pad":"{}""#, "x".repeat(n)),
    };
    let content = sse(&format!(
        r#"{head}"choices":[{{"index":0,"delta":{{"content":"{CHUNK_TEXT}"}},"finish_reason":null}}]{pad}}}"#
    ));
    for _ in 0..chunks {
        frames.push_back(content.clone());
    }
    frames.push_back(sse(&format!(
        r#"{head}"choices":[{{"index":0,"delta":{{}},"finish_reason":"stop"}}]}}"#
    )));
    if include_usage(body) {
        frames.push_back(sse(&format!(
            r#"{head}"choices":[],"usage":{}}}"#,
            usage.chat_json()
        )));
    }
    frames.push_back(Bytes::from_static(DONE.as_bytes()));
    sse_response(frames, st, n)
}

fn completions(st: &MockState, body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let usage = completions_usage(body, chunks);
    let id = format!("cmpl-mock{n}");
    let m = json_str(model);
    if !is_stream(body) {
        let text = CHUNK_TEXT.repeat(chunks);
        let out = format!(
            r#"{{"id":"{id}","object":"text_completion","created":{CREATED},"model":{m},"choices":[{{"text":"{text}","index":0,"logprobs":null,"finish_reason":"stop"}}],"usage":{}}}"#,
            usage.chat_json()
        );
        return json_response(StatusCode::OK, out, n);
    }
    let head =
        format!(r#"{{"id":"{id}","object":"text_completion","created":{CREATED},"model":{m},"#);
    let mut frames = VecDeque::with_capacity(chunks + 3);
    let content = sse(&format!(
        r#"{head}"choices":[{{"text":"{CHUNK_TEXT}","index":0,"logprobs":null,"finish_reason":null}}]}}"#
    ));
    for _ in 0..chunks {
        frames.push_back(content.clone());
    }
    frames.push_back(sse(&format!(
        r#"{head}"choices":[{{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}}]}}"#
    )));
    if include_usage(body) {
        frames.push_back(sse(&format!(
            r#"{head}"choices":[],"usage":{}}}"#,
            usage.chat_json()
        )));
    }
    frames.push_back(Bytes::from_static(DONE.as_bytes()));
    sse_response(frames, st, n)
}

const VECTOR: &str = "[0.0123,-0.0456,0.0789,-0.1011,0.1213,-0.1415,0.1617,-0.1819]";

fn embeddings(body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let inputs = embedding_inputs(body);
    let usage = embeddings_usage(body);
    let data: Vec<String> = (0..inputs.len())
        .map(|i| format!(r#"{{"object":"embedding","index":{i},"embedding":{VECTOR}}}"#))
        .collect();
    let out = format!(
        r#"{{"object":"list","data":[{}],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}}"#,
        data.join(","),
        json_str(model),
        usage.prompt_tokens,
        usage.total_tokens
    );
    json_response(StatusCode::OK, out, n)
}

fn responses(st: &MockState, body: &Value, model: &str, n: u64) -> Response<MockBody> {
    let chunks = st.stream_chunks.load(Ordering::Relaxed);
    let usage = responses_usage(body, chunks);
    let id = format!("resp_mock{n}");
    let m = json_str(model);
    let text = CHUNK_TEXT.repeat(chunks);
    let completed = format!(
        r#"{{"id":"{id}","object":"response","created_at":{CREATED},"status":"completed","model":{m},"output":[{{"type":"message","id":"msg_mock{n}","status":"completed","role":"assistant","content":[{{"type":"output_text","text":"{text}","annotations":[]}}]}}],"usage":{}}}"#,
        usage.responses_json()
    );
    if !is_stream(body) {
        return json_response(StatusCode::OK, completed, n);
    }
    let mut frames = VecDeque::with_capacity(chunks + 2);
    frames.push_back(sse_event(
        "response.created",
        &format!(
            r#"{{"type":"response.created","response":{{"id":"{id}","object":"response","created_at":{CREATED},"status":"in_progress","model":{m},"output":[],"usage":null}}}}"#
        ),
    ));
    let delta = sse_event(
        "response.output_text.delta",
        &format!(
            r#"{{"type":"response.output_text.delta","item_id":"msg_mock{n}","output_index":0,"content_index":0,"delta":"{CHUNK_TEXT}"}}"#
        ),
    );
    for _ in 0..chunks {
        frames.push_back(delta.clone());
    }
    frames.push_back(sse_event(
        "response.completed",
        &format!(r#"{{"type":"response.completed","response":{completed}}}"#),
    ));
    sse_response(frames, st, n)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
