//! The chaos load: client tasks, each speaking for one consumer, sending chat
//! requests through the balancer one after another (half of them streamed,
//! prompts of 40 to 400 bytes, `max_tokens` [`MAX_TOKENS`]), each with its own
//! `x-request-id` and the accounting label in force when it was sent
//! ([`ACCT_HEADER`]). Every request leaves a [`Record`]: when it was sent, when
//! its head and its end came, its status and error code, the usage the answer
//! reported, and whether a stream ended with `[DONE]`. Meanwhile a sampler
//! reads the pressing quotas' windows from `/admin/usage` every second.

use super::spec::{quotas, ACCT_HEADER, CONSUMERS, MAX_TOKENS};
use crate::client::TestClient;
use crate::harness::ADMIN_TOKEN;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// One request, as its client saw it. Times are µs since the run's start.
#[derive(Debug, Clone)]
pub struct Record {
    /// the `x-request-id` is `chaos-<seq>`
    pub seq: u64,
    /// index into [`Load::labels`]
    pub label: u16,
    /// index into [`CONSUMERS`]
    pub consumer: u8,
    pub stream: bool,
    pub sent: u64,
    /// the response head (status known); the end for a transport failure
    pub head: u64,
    pub end: u64,
    /// 0: no answer (connection refused, reset, closed)
    pub status: u16,
    /// `error.code` of an error answer
    pub code: Option<Arc<str>>,
    /// `usage.total_tokens` the answer reported
    pub usage: Option<u64>,
    /// a 200 whose body arrived whole (JSON parsed; a stream ended with `[DONE]`)
    pub complete: bool,
}

/// The request id of record `seq`.
pub fn request_id(seq: u64) -> String {
    format!("chaos-{seq}")
}

/// One sample of a pressing quota's window in `/admin/usage`.
#[derive(Debug, Clone)]
pub struct UsageSample {
    pub at: u64,
    pub quota: String,
    pub used: u64,
}

struct Shared {
    base: Instant,
    url: String,
    think: Duration,
    stop: AtomicBool,
    label: AtomicUsize,
    labels: RwLock<Vec<Arc<str>>>,
    next_seq: AtomicU64,
}

/// The running load.
pub struct Load {
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<Vec<Record>>>,
    sampler: JoinHandle<Vec<UsageSample>>,
}

impl Load {
    /// Starts `clients` tasks sending to `url` (the balancer), labelled
    /// `first_label`, and the usage sampler on `admins`.
    pub fn start(
        base: Instant,
        url: String,
        clients: usize,
        think: Duration,
        first_label: &str,
        admins: Arc<Mutex<Vec<String>>>,
    ) -> Load {
        let shared = Arc::new(Shared {
            base,
            url,
            think,
            stop: AtomicBool::new(false),
            label: AtomicUsize::new(0),
            labels: RwLock::new(vec![Arc::from(first_label)]),
            next_seq: AtomicU64::new(0),
        });
        let clients = (0..clients)
            .map(|i| tokio::spawn(client(i, shared.clone())))
            .collect();
        let sampler = tokio::spawn(sample_usage(shared.clone(), admins));
        Load {
            shared,
            clients,
            sampler,
        }
    }

    /// Requests sent from now on carry `label`.
    pub fn set_label(&self, label: &str) {
        let mut labels = match self.shared.labels.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let i = match labels.iter().position(|l| &**l == label) {
            Some(i) => i,
            None => {
                labels.push(Arc::from(label));
                labels.len() - 1
            }
        };
        self.shared.label.store(i, Ordering::SeqCst);
    }

    /// µs since the run's start.
    pub fn now(&self) -> u64 {
        micros(self.shared.base.elapsed())
    }

    /// Stops the clients (each finishes the request it is in) and the
    /// sampler; every record, the labels, and the samples.
    pub async fn stop(self) -> (Vec<Record>, Vec<Arc<str>>, Vec<UsageSample>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut records = Vec::new();
        for c in self.clients {
            records.extend(c.await.unwrap_or_default());
        }
        let samples = self.sampler.await.unwrap_or_default();
        let labels = match self.shared.labels.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        (records, labels, samples)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A small deterministic generator (xorshift64*): no two clients alike, every
/// run the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &str =
    "the gateway keeps every promise it makes about quotas while redis comes and goes ";

fn body(rng: &mut Rng, stream: bool) -> Value {
    let bytes = 40 + rng.below(361) as usize;
    let text: String = WORDS
        .chars()
        .cycle()
        .skip(rng.below(WORDS.len() as u64) as usize)
        .take(bytes)
        .collect();
    let mut b = json!({
        "model": "gpt-4o-mini",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": text}],
    });
    if stream {
        b["stream"] = true.into();
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

async fn client(i: usize, s: Arc<Shared>) -> Vec<Record> {
    let c = TestClient::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1000_0000_01b3));
    let consumer = i % CONSUMERS.len();
    let auth = format!("Bearer {}", CONSUMERS[consumer].key);
    let url = format!("{}/v1/chat/completions", s.url);
    let mut codes: HashMap<String, Arc<str>> = HashMap::new();
    let mut out = Vec::new();
    // clients start spread over one pause, not all at once
    tokio::time::sleep(s.think.mul_f64(rng.below(1000) as f64 / 1000.0)).await;
    while !s.stop.load(Ordering::Relaxed) {
        let stream = rng.below(2) == 0;
        let body = body(&mut rng, stream);
        let seq = s.next_seq.fetch_add(1, Ordering::Relaxed);
        let rid = request_id(seq);
        let label_i = s.label.load(Ordering::SeqCst);
        let label = {
            let labels = match s.labels.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            labels[label_i].clone()
        };
        let headers = [
            ("authorization", auth.as_str()),
            ("x-request-id", rid.as_str()),
            (ACCT_HEADER, &*label),
        ];
        let sent = micros(s.base.elapsed());
        let mut r = Record {
            seq,
            label: u16::try_from(label_i).unwrap_or(u16::MAX),
            consumer: consumer as u8,
            stream,
            sent,
            head: sent,
            end: sent,
            status: 0,
            code: None,
            usage: None,
            complete: false,
        };
        match c.try_open_sse(&url, &body, &headers).await {
            Err(_) => {
                r.head = micros(s.base.elapsed());
                r.end = r.head;
            }
            Ok(sse) => {
                r.head = micros(s.base.elapsed());
                r.status = sse.status;
                let answer = sse.collect().await;
                r.end = micros(s.base.elapsed());
                read_answer(&mut r, &answer, &mut codes);
            }
        }
        out.push(r);
        let pause = s.think.mul_f64(0.5 + rng.below(1000) as f64 / 1000.0);
        tokio::time::sleep(pause).await;
    }
    out
}

/// Fills in status details, usage and completeness from the answer.
fn read_answer(
    r: &mut Record,
    a: &crate::client::SseResponse,
    codes: &mut HashMap<String, Arc<str>>,
) {
    if r.status != 200 {
        let code = serde_json::from_str::<Value>(&a.raw)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        let interned = codes
            .entry(code.clone())
            .or_insert_with(|| Arc::from(code.as_str()))
            .clone();
        r.code = Some(interned);
        return;
    }
    if r.stream {
        r.usage = a.events.iter().rev().find_map(|e| {
            serde_json::from_str::<Value>(&e.data).ok()?["usage"]["total_tokens"].as_u64()
        });
        r.complete = a.done && a.clean_end;
    } else {
        r.usage = serde_json::from_str::<Value>(&a.raw)
            .ok()
            .and_then(|v| v["usage"]["total_tokens"].as_u64());
        r.complete = a.clean_end && r.usage.is_some();
    }
}

/// Every second: each pressing quota's `used` in `/admin/usage`, read from
/// the first replica in service that answers.
async fn sample_usage(s: Arc<Shared>, admins: Arc<Mutex<Vec<String>>>) -> Vec<UsageSample> {
    let c = TestClient::new();
    let names: Vec<&str> = quotas().iter().map(|q| q.name).collect();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut out = Vec::new();
    while !s.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let urls = match admins.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for admin in urls {
            let mut got = false;
            for tenant in ["acme", "beta"] {
                let url = format!("{admin}/admin/usage?tenant={tenant}");
                let Ok(Ok(r)) = tokio::time::timeout(
                    Duration::from_secs(1),
                    c.try_request(
                        http::Method::GET,
                        &url,
                        &[("authorization", auth.as_str())],
                        "",
                    ),
                )
                .await
                else {
                    continue;
                };
                let Ok(Value::Array(rows)) = serde_json::from_slice::<Value>(&r.body) else {
                    continue;
                };
                let at = micros(s.base.elapsed());
                for row in rows {
                    let (Some(q), Some(used)) = (row["quota"].as_str(), row["used"].as_u64())
                    else {
                        continue;
                    };
                    if names.contains(&q) {
                        got = true;
                        out.push(UsageSample {
                            at,
                            quota: q.to_string(),
                            used,
                        });
                    }
                }
            }
            if got {
                break;
            }
        }
    }
    out
}
