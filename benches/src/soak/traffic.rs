//! The soak's clients: workers that each send requests at a steady pace to the
//! replicas in turn, every request one of [`Kind`] drawn by weight, and count
//! what came back in a [`Tally`].

use super::fleet::{KEY_APP, KEY_TIGHT, USER_HEADER};
use super::Tally;
use gateway_tests::client::TestClient;
use http::Method;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What a request does. The mock's directives (request headers the gateway
/// passes on) make the upstream stall, cut or fail that one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Stream,
    ClientCut,
    ClientGone,
    UpstreamCut,
    UpstreamError,
    UpstreamStall,
    Tight,
    RotatingKey,
    UnknownKey,
}

/// Every kind with its weight (parts of 100) and what it does.
pub const MIX: [(Kind, u32, &str); 10] = [
    (Kind::Json, 30, "chat completion, JSON answer read whole"),
    (Kind::Stream, 20, "chat completion streamed (SSE), read to `[DONE]`; half ask for usage"),
    (Kind::ClientCut, 10, "stream spaced 30 ms per event; the client reads 2 events and closes the connection"),
    (Kind::ClientGone, 7, "the upstream waits 1.5 s before answering; the client gives up after 300 ms"),
    (Kind::UpstreamCut, 8, "stream the upstream aborts after 4 events (`x-mock-cut-after`)"),
    (Kind::UpstreamError, 4, "the upstream answers 503 (`x-mock-status`)"),
    (Kind::UpstreamStall, 3, "the upstream waits 3 s, past the first-byte timeout (2-2.5 s): 504"),
    (Kind::Tight, 8, "JSON as `soak/tight`, whose request quota (50 or 80 per 10 s) refuses part of it: 429"),
    (Kind::RotatingKey, 6, "JSON with one of the churn consumer's recent keys: created, rotated (5 s grace), revoked, consumer deleted"),
    (Kind::UnknownKey, 4, "JSON with a key nobody holds, a new one each time: 401"),
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Stream => "stream",
            Kind::ClientCut => "client-cut stream",
            Kind::ClientGone => "client gone before the answer",
            Kind::UpstreamCut => "upstream-cut stream",
            Kind::UpstreamError => "upstream 503",
            Kind::UpstreamStall => "upstream stall",
            Kind::Tight => "tight quota",
            Kind::RotatingKey => "rotating key",
            Kind::UnknownKey => "unknown key",
        }
    }

    fn draw(rng: &mut fastrand::Rng) -> Kind {
        let total: u32 = MIX.iter().map(|(_, w, _)| w).sum();
        let mut x = rng.u32(0..total);
        for (kind, w, _) in MIX {
            if x < w {
                return kind;
            }
            x -= w;
        }
        Kind::Json
    }
}

/// The churn consumer's recent keys (newest last), which [`Kind::RotatingKey`]
/// requests use; the churn adds and retires them.
#[derive(Default)]
pub struct KeyPool(Mutex<VecDeque<(String, String)>>);

/// Keys the pool keeps: enough that some are revoked or past their grace
/// when a request picks them.
const POOL_KEEP: usize = 6;

impl KeyPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String)>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Adds a key (id, plaintext), forgetting the oldest beyond [`POOL_KEEP`].
    pub fn add(&self, id: String, key: String) {
        let mut g = self.lock();
        g.push_back((id, key));
        while g.len() > POOL_KEEP {
            g.pop_front();
        }
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The id of the `i`-th key from the oldest, if there is one.
    pub fn id_at(&self, i: usize) -> Option<String> {
        self.lock().get(i).map(|(id, _)| id.clone())
    }

    /// The id of the `i`-th key from the newest (0: the newest), if there is one.
    pub fn id_from_newest(&self, i: usize) -> Option<String> {
        let g = self.lock();
        let at = g.len().checked_sub(i + 1)?;
        g.get(at).map(|(id, _)| id.clone())
    }

    /// How many keys the pool holds.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Option<String> {
        let g = self.lock();
        if g.is_empty() {
            return None;
        }
        g.get(rng.usize(0..g.len())).map(|(_, k)| k.clone())
    }
}

/// What every worker shares.
pub struct Shared {
    pub urls: Vec<String>,
    pub keys: Arc<KeyPool>,
    pub tally: Tally,
    /// requests finished (whatever their outcome)
    pub done: AtomicU64,
    /// distinct values of [`USER_HEADER`]
    pub users: u32,
}

/// One worker: a request every `interval` (later when one takes longer) until
/// `end`, to the replicas in turn.
pub async fn worker(id: usize, shared: Arc<Shared>, interval: Duration, end: Instant, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(id as u64));
    let client = TestClient::new();
    // spread the workers' first requests over one interval
    let mut next = Instant::now() + interval.mul_f64(rng.f64());
    let mut turn = id;
    while next < end {
        tokio::time::sleep_until(next).await;
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        let Some(url) = shared.urls.get(turn % shared.urls.len().max(1)) else {
            return;
        };
        turn += 1;
        let kind = Kind::draw(&mut rng);
        let outcome = one(&client, url, kind, &shared, &mut rng).await;
        shared.tally.add(kind.name(), &outcome);
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends one request of `kind`; its outcome as a short text (the status, and
/// for streams how they ended).
async fn one(
    client: &TestClient,
    url: &str,
    kind: Kind,
    shared: &Shared,
    rng: &mut fastrand::Rng,
) -> String {
    let key = match kind {
        Kind::Tight => KEY_TIGHT.to_string(),
        Kind::RotatingKey => match shared.keys.pick(rng) {
            Some(k) => k,
            None => return "no key yet (not sent)".into(),
        },
        Kind::UnknownKey => format!("sk-soak-unknown-{:016x}", rng.u64(..)),
        _ => KEY_APP.to_string(),
    };
    let auth = format!("Bearer {key}");
    let user = format!("u{}", rng.u32(0..shared.users.max(1)));
    let mut headers: Vec<(&str, &str)> = vec![
        ("authorization", auth.as_str()),
        (USER_HEADER, user.as_str()),
        ("content-type", "application/json"),
    ];
    let content = format!("soak request {}", rng.u32(..));
    match kind {
        Kind::Stream | Kind::ClientCut | Kind::UpstreamCut => {
            match kind {
                Kind::ClientCut => headers.push(("x-mock-chunk-delay-ms", "30")),
                Kind::UpstreamCut => headers.push(("x-mock-cut-after", "4")),
                _ => {}
            }
            let body = json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 64,
                "stream": true,
                "stream_options": {"include_usage": rng.bool()},
            });
            stream(client, url, &body, &headers, kind == Kind::ClientCut).await
        }
        _ => {
            let give_up = match kind {
                Kind::ClientGone => {
                    headers.push(("x-mock-delay-ms", "1500"));
                    Some(Duration::from_millis(300))
                }
                Kind::UpstreamError => {
                    headers.push(("x-mock-status", "503"));
                    None
                }
                Kind::UpstreamStall => {
                    headers.push(("x-mock-delay-ms", "3000"));
                    None
                }
                _ => None,
            };
            let body = json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 64,
            })
            .to_string();
            let call = client.try_request(Method::POST, url, &headers, body);
            let answer = match give_up {
                Some(after) => match tokio::time::timeout(after, call).await {
                    Ok(r) => r,
                    Err(_) => return "closed by the client before the answer".into(),
                },
                None => call.await,
            };
            match answer {
                Ok(r) => r.status.to_string(),
                Err(e) => format!("transport error: {}", short(&e)),
            }
        }
    }
}

/// A streamed request: read to the end, or (`cut`) two events and then the
/// connection is dropped.
async fn stream(
    client: &TestClient,
    url: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
    cut: bool,
) -> String {
    let mut s = match client.try_open_sse(url, body, headers).await {
        Ok(s) => s,
        Err(e) => return format!("transport error: {}", short(&e)),
    };
    if s.status != 200 {
        return s.status.to_string();
    }
    if cut {
        for _ in 0..2 {
            if s.next_event().await.is_none() {
                return "200, ended before the client cut it".into();
            }
        }
        return "200, cut by the client after 2 events".into();
    }
    let r = s.collect().await;
    match (r.done, r.clean_end) {
        (true, true) => "200, [DONE]".into(),
        (false, true) => "200, ended without [DONE]".into(),
        (_, false) => "200, ended abruptly".into(),
    }
}

/// The first words of a transport error (no addresses or ports, so equal
/// errors are counted together).
fn short(e: &str) -> String {
    let kind = [
        "timed out",
        "connection refused",
        "connection reset",
        "IncompleteMessage",
        "ChannelClosed",
    ]
    .into_iter()
    .find(|k| e.contains(k));
    kind.map_or_else(
        || {
            let after = e.rsplit("failed: ").next().unwrap_or(e);
            after.chars().take(60).collect()
        },
        str::to_string,
    )
}
