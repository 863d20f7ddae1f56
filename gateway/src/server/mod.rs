//! Listeners: the data plane (HTTP/1.1 and h2c, or TLS with ALPN h2/http1.1) and the
//! admin listener. Each connection: TCP_NODELAY, optional TLS handshake, the first
//! request head within `header_read_timeout_ms` (408 otherwise), then hyper. On
//! shutdown the listeners close and open connections get the grace period to finish.

pub mod preread;
pub mod tls;

use crate::app::App;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use preread::{Head, Rewind};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

type Builder = Arc<auto::Builder<TokioExecutor>>;

fn builder(header_timeout: Duration) -> Builder {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(header_timeout))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024);
    Arc::new(b)
}

/// Accepts data-plane connections until `stop` fires, then drains within the grace.
pub async fn serve_data(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let builder = builder(app.config().server.header_read_timeout);
    // connection tasks, so the ones still open after the grace are ended (and their
    // requests finished: quotas settled, ai_log written) before the process exits
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    while conns.try_join_next().is_some() {}
                    conns.spawn(data_conn(app.clone(), stream, remote, builder.clone(), graceful.watcher()));
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
    let grace = app.config().server.shutdown_grace;
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        grace_s = grace.as_secs(),
        "draining data-plane connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining connections");
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn data_conn(
    app: Arc<App>,
    stream: TcpStream,
    remote: SocketAddr,
    builder: Builder,
    watcher: Watcher,
) {
    let _ = stream.set_nodelay(true);
    let cfg = app.config();
    let timeout = cfg.server.header_read_timeout;
    let tls = cfg.server.tls.clone();
    drop(cfg);
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(crate::pipeline::handle(app, req, remote).await) }
    });
    match tls {
        None => serve(stream, timeout, svc, &builder, watcher).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => serve(s, timeout, svc, &builder, watcher).await,
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve<IO, S, B>(mut io: IO, timeout: Duration, svc: S, builder: &Builder, watcher: Watcher)
where
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
    match preread::read_head(&mut io, timeout).await {
        Ok(Head::Ready(prefix)) => {
            let io = TokioIo::new(Rewind::new(prefix, io));
            let conn = builder.serve_connection(io, svc).into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        Ok(Head::Nothing) | Ok(Head::TimedOut) => {}
        Err(e) => tracing::debug!(error = %e, "reading the request head failed"),
    }
}

/// Accepts admin connections (plain HTTP/1.1) until `stop` fires.
pub async fn serve_admin(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let builder = builder(Duration::from_secs(10));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let builder = builder.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let app = app.clone();
                            async move { Ok::<_, Infallible>(crate::admin::handle(app, req).await) }
                        });
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
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
