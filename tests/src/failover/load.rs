//! The load of a failover run: each pressed consumer has a few clients, each
//! bound to one replica of its fleet, sending at a steady pace (JSON or
//! streamed chat; a slow answer delays the next request, it never piles up)
//! whatever the answers are, and recording every answer as a [`Sample`] with
//! times on the run's clock.

use crate::client::TestClient;
use crate::harness::fresh_request_id;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every request's prompt: 368 bytes, 92 tokens at the mock (and in the
/// gateway's estimate).
const PROMPT: &str = "Count the words of this sentence and then count them again please. ";
const PROMPT_BYTES: usize = 368;
/// `max_tokens` of every request (the mock answers 8 completion tokens).
pub const MAX_TOKENS: u64 = 8;
/// What one request costs in tokens: the mock's usage of it (92 + 8).
pub const REQUEST_TOKENS: u64 = 100;

/// One request and what its client saw.
#[derive(Debug, Clone)]
pub struct Sample {
    /// index into the run's consumers
    pub consumer: usize,
    /// which replica of its fleet it was sent to
    pub replica: usize,
    pub stream: bool,
    /// when it was sent, since the run's start
    pub sent: Duration,
    /// when its status arrived
    pub answered: Duration,
    /// 0 when the exchange failed (`error`)
    pub status: u16,
    /// `error.code` of an error answer
    pub code: Option<String>,
    /// `usage.total_tokens` the client received (a 200 answer)
    pub tokens: Option<u64>,
    /// the `x-request-id` it was sent with (the access log's `request_id`)
    pub request_id: String,
    /// the transport failure, if any
    pub error: Option<String>,
    /// `x-ratelimit-limit-requests` and `-tokens`: the limit of the tightest
    /// quota of each kind (during an outage under `local`, this replica's share)
    pub limit_requests: Option<u64>,
    pub limit_tokens: Option<u64>,
}

impl Sample {
    /// How long the client waited for the status.
    pub fn latency(&self) -> Duration {
        self.answered.saturating_sub(self.sent)
    }
}

/// One client of the load.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub consumer: usize,
    pub replica: usize,
    /// `http://127.0.0.1:PORT/v1/chat/completions` of its replica
    pub url: String,
    pub key: String,
    pub stream: bool,
    /// time between two requests
    pub period: Duration,
    /// delay before its first request (spreads the clients of a consumer)
    pub phase: Duration,
}

fn prompt() -> String {
    PROMPT.repeat(PROMPT_BYTES / PROMPT.len() + 1)[..PROMPT_BYTES].to_string()
}

fn body(stream: bool) -> Value {
    let mut b = json!({"model": "gpt-4o", "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt()}]});
    if stream {
        b["stream"] = json!(true);
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

/// Sends one request as `spec` says and records what came back.
pub async fn send(c: &TestClient, spec: &ClientSpec, epoch: Instant) -> Sample {
    let id = fresh_request_id();
    let auth = format!("Bearer {}", spec.key);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-request-id", id.as_str()),
    ];
    let sent = epoch.elapsed();
    let mut s = Sample {
        consumer: spec.consumer,
        replica: spec.replica,
        stream: spec.stream,
        sent,
        answered: sent,
        status: 0,
        code: None,
        tokens: None,
        request_id: id.clone(),
        error: None,
        limit_requests: None,
        limit_tokens: None,
    };
    let limits = |s: &mut Sample, h: &http::HeaderMap| {
        let num = |name: &str| h.get(name)?.to_str().ok()?.parse().ok();
        s.limit_requests = num("x-ratelimit-limit-requests");
        s.limit_tokens = num("x-ratelimit-limit-tokens");
    };
    let error_code = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_string)
    };
    if spec.stream {
        match c.try_open_sse(&spec.url, &body(true), &headers).await {
            Err(e) => s.error = Some(e),
            Ok(open) => {
                s.answered = epoch.elapsed();
                s.status = open.status;
                limits(&mut s, &open.headers);
                let r = open.collect().await;
                if r.status == 200 {
                    s.tokens = r
                        .usage_chunks()
                        .last()
                        .and_then(|u| u.pointer("/usage/total_tokens")?.as_u64());
                    s.error = r.error;
                } else {
                    s.code = error_code(r.raw.as_bytes());
                }
            }
        }
    } else {
        let b = body(false).to_string();
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(&headers);
        match c.try_request(http::Method::POST, &spec.url, &h, b).await {
            Err(e) => s.error = Some(e),
            Ok(r) => {
                s.answered = epoch.elapsed();
                s.status = r.status;
                limits(&mut s, &r.headers);
                if r.status == 200 {
                    s.tokens = serde_json::from_slice::<Value>(&r.body)
                        .ok()
                        .and_then(|v| v.pointer("/usage/total_tokens")?.as_u64());
                } else {
                    s.code = error_code(&r.body);
                }
            }
        }
    }
    s
}

/// Sends a request every `spec.period` until `stop`, recording each in `out`.
pub async fn client(
    spec: ClientSpec,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Sample>>>,
) {
    let c = TestClient::new();
    tokio::time::sleep(spec.phase).await;
    let mut tick = tokio::time::interval(spec.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let s = send(&c, &spec, epoch).await;
        out.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }
}
