//! A TCP proxy on loopback that puts network faults between a client (the
//! gateway) and a server (Redis): latency added to every byte each way, every
//! open connection cut at once, new connections refused. Bytes keep their order
//! and nothing is throttled: a chunk read at `t` is written at `t + latency`
//! (the latency in force when it was read).
//!
//! ```ignore
//! let proxy = FaultyProxy::start(redis_addr).await;   // gateway -> proxy.addr() -> redis
//! proxy.set_latency(Duration::from_millis(500));      // every reply arrives late
//! proxy.cut_all();                                    // connections reset now
//! proxy.refuse(true);                                 // new ones closed on accept
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Connecting to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

struct Shared {
    target: SocketAddr,
    latency_us: AtomicU64,
    refuse: AtomicBool,
    /// bumped by [`FaultyProxy::cut_all`]: every connection of an older
    /// generation closes
    cut: watch::Sender<u64>,
    accepted: AtomicU64,
    open: AtomicU64,
    cuts: AtomicU64,
}

/// The proxy; stops accepting (open connections end with their tasks) when
/// dropped.
pub struct FaultyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultyProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy local_addr: {e}"));
        let shared = Arc::new(Shared {
            target,
            latency_us: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            cut: watch::channel(0).0,
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        FaultyProxy {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Latency added to every chunk, each way (0 = none).
    pub fn set_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_us.store(us, Ordering::SeqCst);
    }

    /// Closes every open connection now (both sides see it end).
    pub fn cut_all(&self) {
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        self.shared.cut.send_modify(|g| *g += 1);
    }

    /// While on, new connections are accepted and closed at once.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Back to a plain proxy: no latency, new connections accepted.
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.refuse(false);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, shared.clone()));
    }
}

/// One proxied connection: two pumps until either side ends or a cut.
async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    cut.borrow_and_update();
    let server =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.target)).await {
            Ok(Ok(s)) => s,
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    shared.open.fetch_add(1, Ordering::SeqCst);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut up = Pump::spawn(cr, sw, shared.clone());
    let mut down = Pump::spawn(sr, cw, shared.clone());
    tokio::select! {
        _ = up.done() => {}
        _ = down.done() => {}
        _ = cut.changed() => {}
    }
    up.abort();
    down.abort();
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

/// One direction: a reader stamping chunks, a writer sending each at its time.
struct Pump {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Pump {
    fn spawn(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: Arc<Shared>) -> Pump {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let delay = Duration::from_micros(shared.latency_us.load(Ordering::SeqCst));
                        if tx
                            .send((Instant::now() + delay, buf[..n].to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let writer = tokio::spawn(async move {
            while let Some((at, chunk)) = rx.recv().await {
                tokio::time::sleep_until(at).await;
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        });
        Pump { reader, writer }
    }

    /// Ends when the writer has sent everything the reader got before its
    /// side closed (or failed).
    async fn done(&mut self) {
        let _ = (&mut self.writer).await;
    }

    fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}
