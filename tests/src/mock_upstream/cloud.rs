//! The run-time switches and counters of the Gemini, Vertex AI and Bedrock sides
//! of the mock ([`super::gemini`], [`super::vertex`], [`super::bedrock`]), and
//! their setters on [`MockUpstream`].

use super::bedrock::sigv4::SigV4Config;
use super::bedrock::{AWS_TEST_ACCESS_KEY_ID, AWS_TEST_REGION, AWS_TEST_SECRET_ACCESS_KEY};
use super::vertex::{self, IssuedToken, DEFAULT_TOKEN_EXPIRES_IN};
use super::{lock, MockUpstream, NO_CUT};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The switches and counters of the three cloud dialects.
#[derive(Debug)]
pub(super) struct CloudState {
    pub(super) gemini_cached: AtomicBool,
    pub(super) gemini_thoughts: AtomicBool,
    pub(super) gemini_block_prompt: AtomicBool,
    pub(super) gemini_block_answer: AtomicBool,
    pub(super) token_requests: AtomicU64,
    pub(super) token_expires_in: AtomicU64,
    /// the status of every token answer (0: answer normally)
    pub(super) token_fail: AtomicU16,
    pub(super) token_delay_ms: AtomicU64,
    pub(super) tokens: Mutex<Vec<IssuedToken>>,
    pub(super) bedrock_cache: AtomicBool,
    pub(super) bedrock_exception_after: AtomicUsize,
    pub(super) bedrock_tiny_writes: AtomicBool,
    pub(super) aws: Mutex<SigV4Config>,
    pub(super) sigv4_refusals: AtomicU64,
    /// the decoded model ids of the Bedrock requests, in arrival order
    pub(super) bedrock_models: Mutex<Vec<String>>,
}

impl Default for CloudState {
    fn default() -> Self {
        CloudState {
            gemini_cached: AtomicBool::new(false),
            gemini_thoughts: AtomicBool::new(false),
            gemini_block_prompt: AtomicBool::new(false),
            gemini_block_answer: AtomicBool::new(false),
            token_requests: AtomicU64::new(0),
            token_expires_in: AtomicU64::new(DEFAULT_TOKEN_EXPIRES_IN),
            token_fail: AtomicU16::new(0),
            token_delay_ms: AtomicU64::new(0),
            tokens: Mutex::new(Vec::new()),
            bedrock_cache: AtomicBool::new(false),
            bedrock_exception_after: AtomicUsize::new(NO_CUT),
            bedrock_tiny_writes: AtomicBool::new(false),
            aws: Mutex::new(SigV4Config {
                access_key_id: AWS_TEST_ACCESS_KEY_ID.into(),
                secret_access_key: AWS_TEST_SECRET_ACCESS_KEY.into(),
                session_token: None,
                region: AWS_TEST_REGION.into(),
            }),
            sigv4_refusals: AtomicU64::new(0),
            bedrock_models: Mutex::new(Vec::new()),
        }
    }
}

impl CloudState {
    /// What `set_normal` clears: the blocks, the stream exception and the token
    /// endpoint's failure and delay.
    pub(super) fn set_normal(&self) {
        self.gemini_block_prompt.store(false, Ordering::SeqCst);
        self.gemini_block_answer.store(false, Ordering::SeqCst);
        self.bedrock_exception_after.store(NO_CUT, Ordering::SeqCst);
        self.token_fail.store(0, Ordering::SeqCst);
        self.token_delay_ms.store(0, Ordering::SeqCst);
    }
}

/// The bytes of every string in `v` (a tool result's content, however nested).
pub(super) fn string_leaves_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(string_leaves_bytes).sum(),
        Value::Object(o) => o.values().map(string_leaves_bytes).sum(),
        _ => 0,
    }
}

/// `%XX` sequences of a path segment decoded (`None` when malformed or not UTF-8).
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl MockUpstream {
    /// `http://127.0.0.1:PORT/v1beta`: the `base_url` of a `gemini` provider.
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr())
    }

    /// `http://127.0.0.1:PORT/v1`: the `base_url` of a `vertex-ai` provider.
    pub fn vertex_base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// `http://127.0.0.1:PORT/token`: the token endpoint (`auth.gcp.token_url`), the
    /// only `aud` its assertions may have.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr())
    }

    /// `http://127.0.0.1:PORT`: the `base_url` of a `bedrock` provider.
    pub fn bedrock_base_url(&self) -> String {
        self.root_url()
    }

    // ---------------------------------------------------------------- Gemini

    /// Report `cachedContentTokenCount` (P / 2) on every Gemini answer.
    pub fn gemini_cached(&self, on: bool) {
        self.state.cloud.gemini_cached.store(on, Ordering::SeqCst);
    }

    /// Report `thoughtsTokenCount` (N) on every Gemini answer.
    pub fn gemini_thoughts(&self, on: bool) {
        self.state.cloud.gemini_thoughts.store(on, Ordering::SeqCst);
    }

    /// Answer Gemini requests with `promptFeedback.blockReason: SAFETY` and no
    /// candidates.
    pub fn gemini_block_prompt(&self, on: bool) {
        self.state
            .cloud
            .gemini_block_prompt
            .store(on, Ordering::SeqCst);
    }

    /// Cut Gemini answers in half with `finishReason: SAFETY`.
    pub fn gemini_block_answer(&self, on: bool) {
        self.state
            .cloud
            .gemini_block_answer
            .store(on, Ordering::SeqCst);
    }

    // ---------------------------------------------------------------- Vertex AI

    /// Requests to `/token` so far (counted on arrival, whatever their answer).
    pub fn token_requests(&self) -> u64 {
        self.state.cloud.token_requests.load(Ordering::SeqCst)
    }

    /// `expires_in` of the tokens issued from now on (default 3600).
    pub fn set_token_expires_in(&self, secs: u64) {
        self.state
            .cloud
            .token_expires_in
            .store(secs, Ordering::SeqCst);
    }

    /// Answer `/token` with `status` (0: normally again).
    pub fn fail_token_with(&self, status: u16) {
        self.state.cloud.token_fail.store(status, Ordering::SeqCst);
    }

    /// Hold each `/token` answer `ms` (0 = off).
    pub fn delay_token(&self, ms: u64) {
        self.state.cloud.token_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The access tokens issued so far, oldest first (`ya29.mock-1`, ...).
    pub fn issued_tokens(&self) -> Vec<String> {
        vertex::issued(&self.state)
    }

    /// The Vertex requests accepted with access token `token`.
    pub fn token_uses(&self, token: &str) -> u64 {
        vertex::uses_of(&self.state, token)
    }

    /// Makes every token issued so far expired (refused with 401 from now on).
    pub fn expire_tokens(&self) {
        vertex::expire_all(&self.state);
    }

    // ---------------------------------------------------------------- Bedrock

    /// Non-zero cache figures on Bedrock answers without a `cachePoint` (K = P / 2).
    pub fn bedrock_cache_figures(&self, on: bool) {
        self.state.cloud.bedrock_cache.store(on, Ordering::SeqCst);
    }

    /// Bedrock streams send `k` events, then a `modelStreamErrorException` frame.
    pub fn bedrock_exception_after(&self, k: usize) {
        self.state
            .cloud
            .bedrock_exception_after
            .store(k, Ordering::SeqCst);
    }

    /// Send Bedrock streams in writes of 1 to 7 bytes, across frame boundaries.
    pub fn bedrock_tiny_writes(&self, on: bool) {
        self.state
            .cloud
            .bedrock_tiny_writes
            .store(on, Ordering::SeqCst);
    }

    /// The session token signed requests must carry (`None`: none may).
    pub fn set_aws_session_token(&self, token: Option<&str>) {
        lock(&self.state.cloud.aws).session_token = token.map(str::to_string);
    }

    /// The region of the credential scope (default [`AWS_TEST_REGION`]).
    pub fn set_aws_region(&self, region: &str) {
        lock(&self.state.cloud.aws).region = region.to_string();
    }

    /// Requests refused by the SigV4 verifier so far.
    pub fn sigv4_refusals(&self) -> u64 {
        self.state.cloud.sigv4_refusals.load(Ordering::SeqCst)
    }

    /// The model ids of the Bedrock requests, decoded from their paths, in order.
    pub fn bedrock_models(&self) -> Vec<String> {
        lock(&self.state.cloud.bedrock_models).clone()
    }
}
