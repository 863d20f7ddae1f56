//! A mock upstream speaking OpenAI's API, Anthropic's Messages API, Gemini's
//! native API, Vertex AI's and Bedrock Runtime's Converse API, on hyper 1.x
//! (HTTP/1.1, TCP_NODELAY), started in-process on `127.0.0.1:0` or wrapped by the
//! `mock-upstream` binary. What each side answers, with its deterministic usage
//! figures, is specified in the doc of [`openai`], [`anthropic`], [`gemini`],
//! [`vertex`] and [`bedrock`]; [`MockUpstream::answered_usage`] gives the usage
//! a recorded generate request of the last four was answered with.
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
//! | `POST /v1/messages`, `POST /v1/messages/count_tokens` | Anthropic's Messages API ([`anthropic`]) |
//! | `GET /v1/models` with `anthropic-version` | the models in Anthropic's shape |
//! | `POST /v1beta/models/{m}:generateContent`, `:streamGenerateContent?alt=sse`, `:embedContent`, `:batchEmbedContents`; `GET /v1beta/models` | Gemini ([`gemini`]; `x-goog-api-key`) |
//! | `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`, `:streamGenerateContent?alt=sse` | Vertex AI, Gemini's bodies ([`vertex`]; a Bearer token from `/token`) |
//! | `POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`, `:streamRawPredict` | Vertex AI, the Messages API without `model`, with `anthropic_version` ([`vertex`]) |
//! | `POST /token` | Vertex AI's OAuth 2.0 token endpoint (JWT bearer grant, RS256 checked against the test service account) |
//! | `POST /model/{modelId}/converse`, `/converse-stream` | Bedrock Runtime ([`bedrock`]; SigV4-verified; the stream in eventstream frames) |
//!
//! A request to `/v1/messages` or below (or to `/v1/models` with an
//! `anthropic-version` header) speaks Anthropic: its answers and errors have
//! Anthropic's shapes; `/v1beta/` and `/v1/projects/` speak Google's (errors
//! `{"error":{"code","message","status"}}`), `/model/` Bedrock's (`{"message"}`
//! and `x-amzn-ErrorType`). Anything else is a 404 with an OpenAI error body (code
//! `unknown_url`); an Azure path without `api-version` is a 404 too (code
//! `missing_api_version`), and a body that is not JSON is a 400 (code
//! `invalid_json`). Every answer carries `x-request-id: req_mock<n>` like OpenAI
//! does, where `<n>` counts requests from 1 per mock instance.
//!
//! Gemini, Vertex AI and Bedrock requests have their credentials checked before
//! the switches below apply (an api key, an unexpired issued token, a SigV4
//! signature); their own switches and counters are in `cloud.rs`:
//! `gemini_cached`, `gemini_thoughts`, `gemini_block_prompt`, `gemini_block_answer`;
//! `token_requests`, `set_token_expires_in`, `fail_token_with`, `delay_token`,
//! `issued_tokens`, `token_uses`, `expire_tokens`; `bedrock_cache_figures`,
//! `bedrock_exception_after`, `bedrock_tiny_writes`, `set_aws_session_token`,
//! `set_aws_region`, `sigv4_refusals`, `bedrock_models`.
//!
//! # Behaviour (switchable at run time through [`MockUpstream`]'s setters)
//!
//! The switches apply to every dialect (Anthropic's events are counted the same
//! way, one per `event:` block, see [`anthropic`]; Gemini's one per SSE chunk,
//! Bedrock's one per eventstream frame), but not to `/token`.
//!
//! * `fail_with(status)`: every request is answered `status` with
//!   [`MOCK_ERROR_BODY`] (another dialect with its own error body for that status,
//!   message "mock failure"); `fail_with_body(status, body)` with that body.
//! * `reject_token(token, status)`: requests whose `Authorization: Bearer` token
//!   (Anthropic: the api key, `x-api-key` or Bearer; Gemini: `x-goog-api-key`;
//!   Vertex AI: the access token; Bedrock: the access key id) is `token` are
//!   answered `status`.
//! * `error_stream_after(k)`: an Anthropic stream sends its first `k` events, then
//!   an `error` event, and ends cleanly.
//! * `set_tool_use_on_auto(on)`: Anthropic requests with `tools` and `tool_choice`
//!   `auto` (or none) get a `tool_use` block too.
//! * `delay_headers(ms)`: sleep before sending the response head (any endpoint).
//! * `cut_stream_after(k)`: a stream sends its first `k` events (counting the role
//!   chunk as event 1) and then the connection is aborted: the chunked body ends
//!   with an error, neither the terminating chunk nor `data: [DONE]` is sent.
//! * `set_chunk_delay(ms)`: sleep between stream events.
//! * `set_stream_chunks(n)`: number of content chunks (and completion tokens).
//!
//! The same for one request only, through its headers (`x-mock-delay-ms`,
//! `x-mock-status`, `x-mock-cut-after`, `x-mock-chunk-delay-ms`): [`directives`].

use bytes::Bytes;
use cloud::CloudState;
use dialect::{rejected_status, Dialect};
use directives::Directives;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

pub mod anthropic;
pub mod bedrock;
mod body;
mod cloud;
mod dialect;
pub mod directives;
mod figures;
pub mod gemini;
pub mod openai;
mod recorded;
pub mod vertex;

pub use anthropic::{
    anthropic_error_type, count_tokens_input, messages_body, messages_usage, MessagesAnswer,
    MessagesUsage, ANTHROPIC_HEADERS, ANTHROPIC_VERSION, MOCK_TOOL_INPUT, RETRY_AFTER_SECS,
    SIGNATURE, THINKING_TEXT, TOOL_INPUT_PIECES,
};
pub use bedrock::{
    bedrock_error_type, converse_body, converse_usage, ConverseAnswer, ConverseReply,
    ConverseUsage, AWS_TEST_ACCESS_KEY_ID, AWS_TEST_REGION, AWS_TEST_SECRET_ACCESS_KEY,
    AWS_TEST_SESSION_TOKEN, BEDROCK_LATENCY_MS, BEDROCK_TOOL_USE_TOKENS,
};
pub use body::MockBody;
pub use figures::{AnsweredUsage, GenerateApi};
pub use gemini::{
    gemini_body, gemini_usage, google_error_body, google_status, tool_result_text, GeminiAnswer,
    GeminiReply, GeminiSwitches, GeminiUsage, GEMINI_API_KEY, GEMINI_TOOL_CALL_TOKENS,
};
pub use openai::{chat_usage, completions_usage, embeddings_usage, responses_usage, MockUsage};
pub use recorded::RecordedRequest;
pub use vertex::{
    gcp_test_private_key_id, gcp_test_private_key_pem, gcp_test_service_account_file,
    DEFAULT_TOKEN_EXPIRES_IN, GCP_CLOUD_PLATFORM_SCOPE, GCP_TEST_CLIENT_EMAIL, GCP_TEST_PROJECT,
    JWT_BEARER_GRANT, VERTEX_ANTHROPIC_VERSION,
};

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

/// The run-time switches and counters of a mock, shared with its server tasks.
#[derive(Debug)]
pub struct MockState {
    fail_status: AtomicU16,
    /// the body of failed answers, when not [`MOCK_ERROR_BODY`]
    fail_body: Mutex<Option<String>>,
    header_delay_ms: AtomicU64,
    cut_after: AtomicUsize,
    /// Anthropic streams: an `error` event after this many events
    stream_error_after: AtomicUsize,
    chunk_delay_ms: AtomicU64,
    stream_chunks: AtomicUsize,
    chunk_pad: usize,
    /// answer a Messages request with tools and `tool_choice` auto with a tool_use
    tool_use_on_auto: AtomicBool,
    record: AtomicBool,
    hits: AtomicU64,
    /// `GET /v1/models` requests (what health probes ask)
    model_hits: AtomicU64,
    /// api tokens answered with a fixed status: (token, status)
    rejected_tokens: Mutex<Vec<(String, u16)>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// the Gemini, Vertex AI and Bedrock switches and counters
    cloud: CloudState,
    /// where [`serve`] listens (the token endpoint's own URL, its assertions' `aud`)
    local_addr: OnceLock<SocketAddr>,
}

const NO_CUT: usize = usize::MAX;

impl MockState {
    pub fn new(opts: &MockOptions) -> Self {
        MockState {
            fail_status: AtomicU16::new(0),
            fail_body: Mutex::new(None),
            header_delay_ms: AtomicU64::new(0),
            cut_after: AtomicUsize::new(NO_CUT),
            stream_error_after: AtomicUsize::new(NO_CUT),
            chunk_delay_ms: AtomicU64::new(opts.chunk_delay_ms),
            stream_chunks: AtomicUsize::new(opts.stream_chunks),
            chunk_pad: opts.chunk_pad,
            tool_use_on_auto: AtomicBool::new(false),
            record: AtomicBool::new(opts.record_requests),
            hits: AtomicU64::new(0),
            model_hits: AtomicU64::new(0),
            rejected_tokens: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            cloud: CloudState::default(),
            local_addr: OnceLock::new(),
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

    /// Back to normal answers (clears fail, header delay, cut and stream error, the
    /// Gemini blocks, the Bedrock stream exception, the token endpoint's failure and
    /// delay; keeps chunk settings and the other cloud switches).
    pub fn set_normal(&self) {
        self.state.fail_status.store(0, Ordering::SeqCst);
        *lock(&self.state.fail_body) = None;
        self.state.header_delay_ms.store(0, Ordering::SeqCst);
        self.state.cut_after.store(NO_CUT, Ordering::SeqCst);
        self.state
            .stream_error_after
            .store(NO_CUT, Ordering::SeqCst);
        self.state.cloud.set_normal();
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

    /// Anthropic streams send their first `k` events, then an `error` event
    /// (`overloaded_error`) and end cleanly, as the API does when it fails mid-stream.
    pub fn error_stream_after(&self, k: usize) {
        self.state.stream_error_after.store(k, Ordering::SeqCst);
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

    /// Answer Messages requests that carry `tools` with `tool_choice` `auto` (or
    /// none) with a `tool_use` block too, as `any` does (default off).
    pub fn set_tool_use_on_auto(&self, on: bool) {
        self.state.tool_use_on_auto.store(on, Ordering::SeqCst);
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
    if let Ok(addr) = listener.local_addr() {
        let _ = state.local_addr.set(addr);
    }
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

fn sse_event(event: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
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

    if parts.method == Method::GET && matches!(parts.uri.path(), "/v1/models" | "/v1beta/models") {
        state.model_hits.fetch_add(1, Ordering::SeqCst);
    }
    let dialect = Dialect::of(&parts);
    if dialect == Dialect::Token {
        return Ok(vertex::token(&state, &parts, &raw, n).await);
    }
    if let Some(status) = rejected_status(&state, dialect, &parts.headers) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        return Ok(dialect.error(status, "mock: this api key is rejected", n));
    }
    if let Some(refusal) = dialect.authenticate(&state, &parts, &raw, n) {
        return Ok(refusal);
    }
    let directives = Directives::of(&parts.headers);
    let delay = state.header_delay_ms.load(Ordering::Relaxed) + directives.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(status) = directives.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        return Ok(dialect.failure(status, None, n));
    }
    let fail = state.fail_status.load(Ordering::Relaxed);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = lock(&state.fail_body).clone();
        return Ok(dialect.failure(status, body, n));
    }
    let mut resp = dialect.route(&state, &parts, json, n);
    directives.apply(resp.body_mut());
    Ok(resp)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
