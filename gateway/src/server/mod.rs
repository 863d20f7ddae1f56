//! Listeners: the data plane (HTTP/1.1 and h2c, or TLS with ALPN h2/http1.1) and the
//! admin listener. At most `max_connections` at once (more wait in the backlog).
//! Each connection: TCP_NODELAY, the PROXY header when configured, optional TLS
//! handshake, the first request head within `header_read_timeout_ms` (408
//! otherwise), then hyper, with the timeouts of `timeouts.rs` (client writes,
//! later HTTP/1 heads) and closed after `idle_timeout_ms` without a request. On
//! shutdown the listeners close and each connection drains (see `drain`); what is
//! left when the answers are cut (end of the grace) gets a moment to send its last
//! bytes, then is closed.

pub mod drain;
pub mod preread;
pub mod timeouts;

use crate::app::App;
use crate::config::validate::ConnLimits;
use crate::response::ResponseBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use preread::{Head, Rewind};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

type Builder = Arc<auto::Builder<TokioExecutor>>;

/// hyper's per-connection HTTP/1 buffer (the request head, and the answer bytes
/// queued for a slow client) and HTTP/2 send buffer per stream.
const CONN_BUFFER: usize = 64 * 1024;

fn builder(limits: &ConnLimits) -> Builder {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // heads after the first are timed by `timeouts::Guarded` (with a 408)
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(CONN_BUFFER)
        .keep_alive(true);
    let mut h2 = b.http2();
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_send_buf_size(CONN_BUFFER);
    if let Some((every, within)) = limits.http2_keepalive {
        h2.keep_alive_interval(every).keep_alive_timeout(within);
    }
    Arc::new(b)
}

/// What bounds one connection, read from the config when it is accepted.
#[derive(Debug, Clone, Copy)]
struct ConnOpts {
    head_timeout: Duration,
    write_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnOpts {
    fn of(cfg: &crate::runtime::Runtime) -> ConnOpts {
        ConnOpts {
            head_timeout: cfg.server.header_read_timeout,
            write_timeout: cfg.server.conn.client_write_timeout,
            idle_timeout: cfg.server.conn.idle_timeout,
        }
    }
}

/// Connections the admin listener serves at once.
const ADMIN_CONNECTIONS: usize = 256;

/// Waits for a free connection slot (logging, at most once a minute, that the
/// listener is full), or None once `stop` fires.
async fn slot(
    slots: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    listener: &'static str,
    last_full: &mut Option<Instant>,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = slots.clone().try_acquire_owned() {
        return Some(p);
    }
    if last_full.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last_full = Some(Instant::now());
        tracing::warn!(
            listener,
            "connection limit reached: new connections wait in the listen backlog"
        );
    }
    tokio::select! {
        p = slots.clone().acquire_owned() => p.ok(),
        _ = stop.changed() => None,
    }
}

/// How long an idle connection gets to close by itself after GOAWAY.
const IDLE_GOODBYE: Duration = Duration::from_secs(1);

/// After the answers are cut, how long their connections get to send the final bytes.
const AFTER_CUT: Duration = Duration::from_secs(2);

/// Accepts data-plane connections until `stop` fires, then drains until they are all
/// done or, once the answers are cut, [`AFTER_CUT`] more.
pub async fn serve_data(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let limits = app.config().server.conn;
    let builder = builder(&limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_full = None;
    // connection tasks, so the ones still open after the grace are ended (and their
    // requests finished: quotas settled, ai_log written) before the process exits
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Some(permit) = slot(&slots, &mut stop, "data", &mut last_full).await else {
            break;
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    while conns.try_join_next().is_some() {}
                    let conn = data_conn(app.clone(), stream, remote, builder.clone(), stop.clone());
                    conns.spawn(async move {
                        conn.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(
        open_connections = conns.len(),
        "draining data-plane connections"
    );
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            _ = app.shutdown.cut_done() => {
                let after = tokio::time::sleep(AFTER_CUT);
                tokio::pin!(after);
                loop {
                    tokio::select! {
                        next = conns.join_next() => if next.is_none() { break },
                        _ = &mut after => {
                            tracing::warn!(
                                open_connections = conns.len(),
                                "connections still open after the answers were cut: closing them"
                            );
                            break;
                        }
                    }
                }
                break;
            }
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn data_conn(
    app: Arc<App>,
    mut stream: TcpStream,
    peer: SocketAddr,
    builder: Builder,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let state = Arc::new(drain::ConnState::default());
    let conn_state = state.clone();
    let cfg = app.config();
    let timeout = cfg.server.header_read_timeout;
    let opts = ConnOpts::of(&cfg);
    let tls = cfg.tls.clone();
    let (remote, stream) = if cfg.server.proxy_protocol {
        match preread::read_proxy_header(&mut stream, timeout).await {
            // the header's address is believed from a trusted proxy only
            Ok((source, rest)) => {
                let trusted = cfg.server.trusted_proxies.contains(peer.ip());
                let remote = source.filter(|_| trusted).unwrap_or(peer);
                (remote, Rewind::new(rest, stream))
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "connection without a valid PROXY header closed");
                return;
            }
        }
    } else {
        (peer, Rewind::new(bytes::Bytes::new(), stream))
    };
    drop(cfg);
    let abort = Arc::new(crate::stall::ConnAbort::default());
    let conn_abort = abort.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let busy = conn_state.start(req.version());
        let h1 = req.version() < http::Version::HTTP_2;
        let abort = h1.then(|| conn_abort.clone());
        async move {
            let engines = crate::pipeline::Engines {
                auth: &app.auth,
                quotas: &app.quotas,
                health: &app.health,
                bodies: &app.bodies,
                access_log: &app.access_log,
                metrics: app.metrics.as_ref(),
                otlp: app.otlp.as_ref(),
                shutdown: &app.shutdown,
                stalls: &app.stalls,
                views: &app.views,
            };
            let cfg = app.config(); // the request finishes on the config it started with
            let mut resp = crate::pipeline::handle(&cfg, &engines, req, remote, abort).await;
            // a replica on its way out: HTTP/1 clients reconnect (through the
            // balancer, to another replica) instead of reusing this connection
            if h1 && app.shutdown.is_draining() {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            // an upstream answer keeps its request counted until it ends, also
            // when it is ended from outside while hyper still holds a stream of
            // it (HTTP/2), so the connection can still go idle and be closed
            let resp = resp.map(|b| match b {
                ResponseBody::Upstream(w) => {
                    w.hold_until_end(Box::new(busy));
                    drain::Tracked::new(ResponseBody::Upstream(w), None)
                }
                local => drain::Tracked::new(local, Some(busy)),
            });
            Ok::<_, Infallible>(resp)
        }
    });
    match tls {
        None => serve(stream, opts, svc, &builder, &state, Some(abort), stop).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let mut stopped = stop.clone();
            let handshake = tokio::select! {
                biased;
                h = tokio::time::timeout(timeout, acceptor.accept(stream)) => h,
                _ = stopped_a_while(&mut stopped) => return,
            };
            match handshake {
                Ok(Ok(s)) => serve(s, opts, svc, &builder, &state, Some(abort), stop).await,
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve<IO, S, B>(
    mut io: IO,
    opts: ConnOpts,
    svc: S,
    builder: &Builder,
    state: &Arc<drain::ConnState>,
    abort: Option<Arc<crate::stall::ConnAbort>>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // a connection that has sent no request by [`drain::LINGER`] after the listener
    // stopped is closed (one accepted just before may have its request on the way)
    let head = tokio::select! {
        biased;
        head = preread::read_head(&mut io, opts.head_timeout) => head,
        _ = stopped_a_while(&mut stop) => return,
    };
    match head {
        Ok(Head::Ready(prefix)) => {
            let h1 = !prefix.starts_with(H2_PREFACE);
            let io = timeouts::Guarded::new(
                Rewind::new(prefix, io),
                state.clone(),
                opts.write_timeout,
                h1.then_some(opts.head_timeout),
                abort.filter(|_| h1),
            );
            let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
            tokio::pin!(conn);
            let result = 'ended: {
                let idle = tokio::select! {
                    r = conn.as_mut() => break 'ended r,
                    _ = stop.wait_for(|stopped| *stopped) => false,
                    _ = state.idle_for(opts.idle_timeout) => true,
                };
                // HTTP/2: GOAWAY now; HTTP/1 at once when idle (no request for
                // a while), else once quiet (hyper closes an idle one)
                if !idle && !state.is_h2() {
                    tokio::select! {
                        r = conn.as_mut() => break 'ended r,
                        _ = state.quiet() => {}
                    }
                }
                conn.as_mut().graceful_shutdown();
                if !idle {
                    break 'ended conn.await;
                }
                // an idle connection gets a moment to take its GOAWAY (HTTP/2
                // waits for the client's PING answer, which a client that
                // ignores us never sends), then it is dropped
                match tokio::time::timeout(IDLE_GOODBYE, conn.as_mut()).await {
                    Ok(r) => r,
                    Err(_) => Ok(()),
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        Ok(Head::Nothing) | Ok(Head::TimedOut) => {}
        Err(e) => tracing::debug!(error = %e, "reading the request head failed"),
    }
}

/// Completes [`drain::LINGER`] after `stop` fired.
async fn stopped_a_while(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
    tokio::time::sleep(drain::LINGER).await;
}

/// The first bytes of an HTTP/2 connection (prior knowledge, or after ALPN).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Accepts admin connections until `stop` fires: at most [`ADMIN_CONNECTIONS`]
/// at once, with the data plane's timeouts.
pub async fn serve_admin(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let builder = builder(&app.config().server.conn);
    let slots = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
    let mut last_full = None;
    loop {
        let Some(permit) = slot(&slots, &mut stop, "admin", &mut last_full).await else {
            break;
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let builder = builder.clone();
                    let stop = stop.clone();
                    let opts = ConnOpts::of(&app.config());
                    tokio::spawn(async move {
                        let state = Arc::new(drain::ConnState::default());
                        let conn_state = state.clone();
                        let svc = service_fn(move |req| {
                            let app = app.clone();
                            let busy = conn_state.start(http::Version::HTTP_11);
                            async move {
                                let resp = crate::admin::handle(app, req).await;
                                Ok::<_, Infallible>(resp.map(|b| drain::Tracked::new(b, Some(busy))))
                            }
                        });
                        serve(stream, opts, svc, &builder, &state, None, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}
