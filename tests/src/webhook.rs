//! A receiver of webhook POSTs (budget alerts): an HTTP/1.1 server on
//! `127.0.0.1:0` that records every request it reads (path, headers, body as
//! JSON) and either answers `200` ([`WebhookReceiver::start`]) or never
//! answers at all, holding each request open ([`WebhookReceiver::hanging`]).
//! It runs on the test's runtime (use the multi-thread flavour) and stops on
//! drop.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the receiver read it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    /// the body parsed as JSON (`Value::Null` when it is not JSON)
    pub json: Value,
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
}

pub struct WebhookReceiver {
    addr: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Answers every request `200` with an empty body.
    pub async fn start() -> WebhookReceiver {
        Self::serve(true).await
    }

    /// Accepts connections and reads requests, but never answers one.
    pub async fn hanging() -> WebhookReceiver {
        Self::serve(false).await
    }

    async fn serve(answer: bool) -> WebhookReceiver {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind the webhook receiver: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a.to_string(),
            Err(e) => panic!("webhook receiver address: {e}"),
        };
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                let svc = hyper::service::service_fn(move |req| record(st.clone(), req, answer));
                conns.spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        WebhookReceiver { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/hooks/budget`
    pub fn url(&self) -> String {
        format!("http://{}/hooks/budget", self.addr)
    }

    /// Every request read so far, in order.
    pub fn received(&self) -> Vec<Received> {
        match self.state.received.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Waits until at least `n` requests were read; returns them, or panics
    /// with what was read after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                let bodies: Vec<&Value> = got.iter().map(|r| &r.json).collect();
                panic!(
                    "the webhook received {} request(s) within {timeout:?}, expected {n}: {bodies:?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    state: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
    answer: bool,
) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let received = Received {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    match state.received.lock() {
        Ok(mut g) => g.push(received),
        Err(p) => p.into_inner().push(received),
    }
    if !answer {
        std::future::pending::<()>().await;
    }
    Ok(http::Response::new(Full::new(Bytes::new())))
}
