//! The pooled upstream HTTP client (hyper-util legacy client over rustls, TCP_NODELAY,
//! connect timeout), one request sent and bounded by the first-byte timeout, and
//! the body an upstream answers with.

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Clients keyed by connect timeout, kept across config reloads so a reload does not
/// throw away warm upstream connections.
#[derive(Clone, Default)]
pub struct ClientCache {
    inner: Arc<Mutex<HashMap<Duration, HttpClient>>>,
}

impl ClientCache {
    pub fn get(&self, connect_timeout: Duration) -> HttpClient {
        let mut map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(connect_timeout)
            .or_insert_with(|| new_client(connect_timeout))
            .clone()
    }
}

fn new_client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        // reads of at most 16 KiB: a frame passed on to a slow client keeps the
        // read buffer it points into alive, so larger ones would multiply what
        // each stalled answer holds
        .http1_max_buf_size(16 * 1024)
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .timer(TokioTimer::new())
        .build(https)
}

/// Why an upstream attempt produced no response.
#[derive(Debug)]
pub enum AttemptError {
    Connect(String),
    Timeout,
    Other(String),
    /// the provider's credentials could not be had (its token endpoint failed)
    Auth(String),
}

/// Sends one request; waits at most `first_byte` for the response headers.
pub async fn send(
    client: &HttpClient,
    req: http::Request<Full<Bytes>>,
    first_byte: Duration,
) -> Result<http::Response<Incoming>, AttemptError> {
    match tokio::time::timeout(first_byte, client.request(req)).await {
        Err(_) => Err(AttemptError::Timeout),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() => Err(AttemptError::Connect(crate::error::error_chain(&e))),
        Ok(Err(e)) => Err(AttemptError::Other(crate::error::error_chain(&e))),
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What an upstream answered with: a real HTTP body or the built-in mock's frames.
pub enum UpstreamBody {
    Http(Incoming),
    Frames(VecDeque<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Http(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Frames(f) => Poll::Ready(f.pop_front().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http(b) => b.is_end_stream(),
            UpstreamBody::Frames(f) => f.is_empty(),
        }
    }
}

impl UpstreamBody {
    /// The next data frame (trailers skipped), None at the end.
    pub async fn next_data(&mut self) -> Option<Result<Bytes, BoxError>> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await?;
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
