//! Reading the client's body: at most `server.max_body_bytes` (413 beyond),
//! within `server.body_read_timeout_ms` (408), and within the process-wide
//! budget of buffered request bytes `server.max_buffered_body_bytes` (503
//! `overloaded` beyond it), so many slow or large uploads at once cannot take the
//! process's memory. The budget is taken as bytes arrive (an announced length
//! holds nothing); a request holds its share until its upstream answered.

use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body::Body;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Request-body bytes buffered by every request in flight.
#[derive(Debug, Default)]
pub struct Budget {
    used: AtomicU64,
}

impl Budget {
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` more bytes into `held` if they fit under `limit`.
    fn take(self: &Arc<Self>, held: &mut Held, n: u64, limit: u64) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(n);
            if next > limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        held.n += n;
        if held.budget.is_none() {
            held.budget = Some(self.clone());
        }
        true
    }
}

/// A request's share of the [`Budget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    budget: Option<Arc<Budget>>,
    n: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.n, Ordering::Relaxed);
        }
    }
}

/// The bounds of one body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_body_bytes`
    pub max: u64,
    /// `body_read_timeout_ms`: the whole body
    pub timeout: Duration,
    /// `max_buffered_body_bytes`: every body at once
    pub budget: u64,
}

/// Reads the client's body within `limits`; the bytes and their share of `budget`.
pub async fn read<B>(
    body: B,
    headers: &HeaderMap,
    limits: Limits,
    budget: &Arc<Budget>,
) -> Result<(Bytes, Held), GatewayError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max) {
        return Err(GatewayError::body_too_large(limits.max));
    }
    // the budget is taken as bytes arrive: announcing a length costs a client
    // nothing, so it holds nothing
    let mut held = Held::default();
    let read = collect(body, declared, limits, budget, &mut held);
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(r) => r.map(|b| (b, held)),
        Err(_) => Err(GatewayError::request_timeout(format!(
            "the request body was not received within {} ms",
            limits.timeout.as_millis()
        ))),
    }
}

async fn collect<B>(
    mut body: B,
    declared: Option<u64>,
    limits: Limits,
    budget: &Arc<Budget>,
    held: &mut Held,
) -> Result<Bytes, GatewayError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut all = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(GatewayError::body_read)?.into_data() else {
            continue;
        };
        let total = (all.len() + first.as_ref().map_or(0, Bytes::len) + data.len()) as u64;
        if total > limits.max {
            return Err(GatewayError::body_too_large(limits.max));
        }
        if total > held.n && !budget.take(held, total - held.n, limits.budget) {
            return Err(GatewayError::overloaded());
        }
        // one frame (the usual case) is kept as it came, without a copy; a
        // second starts a buffer of the announced size
        match first.take() {
            None if all.is_empty() => first = Some(data),
            f => {
                if let Some(f) = f {
                    let cap = usize::try_from(declared.map_or(0, |d| d.min(limits.max)))
                        .unwrap_or(0)
                        .max(f.len() + data.len());
                    all.reserve(cap);
                    all.extend_from_slice(&f);
                }
                all.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| all.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    const LIMITS: Limits = Limits {
        max: 100,
        timeout: Duration::from_secs(1),
        budget: 150,
    };

    fn with_length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.into());
        h
    }

    #[tokio::test]
    async fn bodies_share_one_budget_until_their_requests_end() {
        let budget = Arc::new(Budget::default());
        let body = || Full::new(Bytes::from(vec![b'x'; 80]));
        let (b1, held1) = read(body(), &with_length(80), LIMITS, &budget)
            .await
            .unwrap();
        assert_eq!((b1.len(), budget.used()), (80, 80));
        let e = read(body(), &with_length(80), LIMITS, &budget)
            .await
            .err()
            .unwrap();
        assert_eq!((e.status.as_u16(), e.code), (503, "overloaded"));
        // an announced length alone holds nothing
        let empty = Full::new(Bytes::new());
        let (_, held) = read(empty, &with_length(90), LIMITS, &budget)
            .await
            .unwrap();
        assert_eq!((held.n, budget.used()), (0, 80));
        // chunked bodies are counted as they arrive, like announced ones
        let e = read(body(), &HeaderMap::new(), LIMITS, &budget)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, "overloaded");
        assert_eq!(budget.used(), 80, "a refused body gives its share back");
        drop(held1);
        assert_eq!(budget.used(), 0);
        let (_, _held) = read(body(), &HeaderMap::new(), LIMITS, &budget)
            .await
            .unwrap();
        assert_eq!(budget.used(), 80);
    }

    #[tokio::test]
    async fn too_large_is_refused_declared_or_not() {
        let budget = Arc::new(Budget::default());
        let big = || Full::new(Bytes::from(vec![b'x'; 101]));
        let e = read(big(), &with_length(101), LIMITS, &budget)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, "body_too_large");
        let e = read(big(), &HeaderMap::new(), LIMITS, &budget)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, "body_too_large");
        assert_eq!(budget.used(), 0);
    }
}
