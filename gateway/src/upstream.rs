//! The pooled upstream HTTP client (hyper-util legacy client over rustls, TCP_NODELAY,
//! connect timeout), the request of one attempt, and the attempt bounded by the
//! first-byte timeout.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
}

/// The request for one attempt: the provider's URL for `endpoint` and `model`, the
/// client's headers without secrets and hop-by-hop ones, the request id and the
/// caller's `tenant/consumer` (the api token is added by the caller).
pub fn request(
    prov: &crate::providers::Provider,
    endpoint: crate::endpoint::Endpoint,
    model: &str,
    body: Bytes,
    client_headers: &http::HeaderMap,
    cfg: &crate::runtime::Runtime,
    ctx: &crate::ctx::RequestCtx,
) -> Result<http::Request<Full<Bytes>>, crate::error::GatewayError> {
    let uri = prov.uri(endpoint, model).map_err(|e| {
        crate::error::GatewayError::bad_request(
            "invalid_model",
            format!("cannot build the upstream URL for model {model:?}: {e}"),
        )
    })?;
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = endpoint.method();
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    crate::headers::copy_to_upstream(client_headers, h, &cfg.secret_headers, ctx.traced());
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::HeaderName::from_static("x-request-id"),
        ctx.request_id.clone(),
    );
    // the client's copy of the consumer header was dropped with the secret headers
    if let Some(v) = ctx.identity.as_ref().and_then(|i| i.header_value.clone()) {
        h.insert(cfg.consumer_header.clone(), v);
    }
    Ok(req)
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
        Ok(Err(e)) if e.is_connect() => Err(AttemptError::Connect(error_chain(&e))),
        Ok(Err(e)) => Err(AttemptError::Other(error_chain(&e))),
    }
}

/// "outer: inner: innermost" for an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}
