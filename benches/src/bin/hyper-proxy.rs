//! The floor of the gateway's HTTP stack: a reverse proxy with nothing but hyper
//! in it (no routing, auth, metering, logging), to measure what hyper itself costs
//! per request next to nginx and the gateway on the load rig (`run-load.sh`'s
//! "hyper alone" row; `BENCH_HYPER=0` skips it).
//!
//! `--client pool`: hyper-util's pooled legacy client, as the gateway uses it (its
//! connection task and pool); `--client paired`: each client connection gets its
//! own upstream connection driven in the same task (`hyper::client::conn::http1`),
//! what a client without a pool and its per-connection task would cost.
//! `--runtime multi` (the gateway's) or `current` (one thread).

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, ValueEnum)]
enum ClientKind {
    Pool,
    Paired,
}

#[derive(Clone, Copy, ValueEnum)]
enum RuntimeKind {
    Multi,
    Current,
}

#[derive(Parser)]
struct Args {
    /// address to listen on (port 0: any; the address is printed as `LISTENING addr`)
    #[arg(long)]
    listen: SocketAddr,
    /// the upstream, host:port (plain HTTP/1.1)
    #[arg(long)]
    upstream: SocketAddr,
    #[arg(long, value_enum, default_value = "pool")]
    client: ClientKind,
    #[arg(long, value_enum, default_value = "multi")]
    runtime: RuntimeKind,
}

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = match args.runtime {
        RuntimeKind::Multi => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        RuntimeKind::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    println!("LISTENING {}", listener.local_addr()?);
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let pool: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(http);
    let authority: Arc<str> = args.upstream.to_string().into();
    loop {
        let (io, _) = listener.accept().await?;
        io.set_nodelay(true)?;
        let authority = authority.clone();
        match args.client {
            ClientKind::Pool => {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let pool = pool.clone();
                        let authority = authority.clone();
                        async move {
                            let req = upstream_request(req, &authority);
                            let res = pool.request(req).await?;
                            Ok::<_, anyhow::Error>(res.map(|b| b.boxed_unsync()))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc)
                        .await;
                });
            }
            ClientKind::Paired => {
                let upstream = args.upstream;
                tokio::spawn(async move {
                    let _ = paired(io, upstream, authority).await;
                });
            }
        }
    }
}

fn upstream_request(req: hyper::Request<Incoming>, authority: &str) -> hyper::Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if let Ok(uri) = format!("http://{authority}{pq}").parse() {
        parts.uri = uri;
    }
    hyper::Request::from_parts(parts, body)
}

/// One client connection and its own upstream connection, both driven here.
async fn paired(io: TcpStream, upstream: SocketAddr, authority: Arc<str>) -> anyhow::Result<()> {
    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let sender = sender.clone();
        let authority = authority.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            let pq = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            parts.uri = pq.parse()?;
            parts
                .headers
                .insert(hyper::header::HOST, authority.parse()?);
            let mut s = sender.lock().await;
            s.ready().await?;
            let res = s
                .send_request(hyper::Request::from_parts(parts, body))
                .await?;
            Ok::<_, anyhow::Error>(res.map(|b| -> BoxBody { b.boxed_unsync() }))
        }
    });
    let server = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        r = server => r?,
        r = conn => r?,
    }
    Ok(())
}
