//! A small TCP load balancer for the tests, like a Kubernetes Service whose
//! endpoints follow readiness: it listens on a loopback port, polls every
//! backend's admin `/readyz` every [`POLL_INTERVAL`], and hands each accepted
//! client connection to the next ready backend (round robin), copying bytes both
//! ways until either side closes. A connection stays on the backend it was given
//! for its whole life (as with a Service's connection-level balancing); only new
//! connections follow readiness.
//!
//! Backends are added and removed at run time. A backend starts as not ready
//! until its first `/readyz` answers 200. When no backend is ready, a client
//! connection waits up to [`NO_BACKEND_WAIT`] for one, then is closed (counted in
//! [`Balancer::unrouted`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How often each backend's `/readyz` is asked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long one readiness probe may take before it counts as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Connecting to a backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a client connection waits for a ready backend before it is closed.
pub const NO_BACKEND_WAIT: Duration = Duration::from_secs(3);

/// One backend: a data-plane address and the admin address whose `/readyz` says
/// whether it gets new connections.
#[derive(Debug)]
pub struct Backend {
    pub data: String,
    pub admin: String,
    ready: AtomicBool,
    removed: AtomicBool,
    connections: AtomicU64,
}

/// What the balancer did with one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    pub data: String,
    /// still in the list (not removed)
    pub active: bool,
    pub ready: bool,
    /// client connections handed to it
    pub connections: u64,
}

#[derive(Default)]
struct Shared {
    /// the current list, in the order added
    backends: Mutex<Vec<Arc<Backend>>>,
    /// every backend ever added (for the stats)
    history: Mutex<Vec<Arc<Backend>>>,
    pollers: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
    accepted: AtomicU64,
    unrouted: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The balancer; stops listening, polling and copying when dropped.
pub struct Balancer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Balancer {
    /// Listens on `127.0.0.1:0` with no backends.
    pub async fn start() -> Balancer {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("balancer: bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("balancer: local_addr: {e}"),
        };
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Balancer {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a backend (`data` and `admin` as `127.0.0.1:PORT`); it gets
    /// connections once its `/readyz` answered 200.
    pub fn add(&self, data: &str, admin: &str) {
        let b = Arc::new(Backend {
            data: data.to_string(),
            admin: admin.to_string(),
            ready: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            connections: AtomicU64::new(0),
        });
        lock(&self.shared.backends).push(b.clone());
        lock(&self.shared.history).push(b.clone());
        let poller = tokio::spawn(poll_ready(b));
        lock(&self.shared.pollers).push(poller);
    }

    /// Takes the backend with data address `data` out of the list (connections it
    /// already has keep going).
    pub fn remove(&self, data: &str) {
        let mut list = lock(&self.shared.backends);
        for b in list.iter().filter(|b| b.data == data) {
            b.removed.store(true, Ordering::SeqCst);
            b.ready.store(false, Ordering::SeqCst);
        }
        list.retain(|b| b.data != data);
    }

    /// Is the backend `data` in the list and ready?
    pub fn is_ready(&self, data: &str) -> bool {
        lock(&self.shared.backends)
            .iter()
            .any(|b| b.data == data && b.ready.load(Ordering::SeqCst))
    }

    /// Waits until backend `data` is ready (true) or `timeout` passed (false).
    pub async fn wait_ready(&self, data: &str, timeout: Duration) -> bool {
        self.wait_for(data, true, timeout).await
    }

    /// Waits until backend `data` is not ready (true) or `timeout` passed (false).
    pub async fn wait_not_ready(&self, data: &str, timeout: Duration) -> bool {
        self.wait_for(data, false, timeout).await
    }

    async fn wait_for(&self, data: &str, ready: bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_ready(data) == ready {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The data addresses of the ready backends.
    pub fn ready_backends(&self) -> Vec<String> {
        lock(&self.shared.backends)
            .iter()
            .filter(|b| b.ready.load(Ordering::SeqCst))
            .map(|b| b.data.clone())
            .collect()
    }

    /// Every backend ever added, in the order added.
    pub fn stats(&self) -> Vec<BackendStats> {
        lock(&self.shared.history)
            .iter()
            .map(|b| BackendStats {
                data: b.data.clone(),
                active: !b.removed.load(Ordering::SeqCst),
                ready: b.ready.load(Ordering::SeqCst),
                connections: b.connections.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Client connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Client connections closed because no backend was ready (or none could be
    /// connected to) within [`NO_BACKEND_WAIT`].
    pub fn unrouted(&self) -> u64 {
        self.shared.unrouted.load(Ordering::SeqCst)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // the accept task owns the connection tasks: aborting it ends them too
        self.accept.abort();
        for p in lock(&self.shared.pollers).drain(..) {
            p.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                while conns.try_join_next().is_some() {}
                conns.spawn(proxy(client, shared.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Connects to the next ready backend in round-robin order (trying the others
/// when one refuses).
async fn connect_next(shared: &Shared) -> Option<(Arc<Backend>, TcpStream)> {
    let ready: Vec<Arc<Backend>> = lock(&shared.backends)
        .iter()
        .filter(|b| b.ready.load(Ordering::SeqCst))
        .cloned()
        .collect();
    if ready.is_empty() {
        return None;
    }
    let start = shared.next.fetch_add(1, Ordering::SeqCst);
    for k in 0..ready.len() {
        let b = &ready[(start + k) % ready.len()];
        if let Ok(Ok(s)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(b.data.as_str())).await
        {
            return Some((b.clone(), s));
        }
    }
    None
}

async fn proxy(mut client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let deadline = Instant::now() + NO_BACKEND_WAIT;
    let (backend, mut upstream) = loop {
        if let Some(found) = connect_next(&shared).await {
            break found;
        }
        if Instant::now() > deadline {
            shared.unrouted.fetch_add(1, Ordering::SeqCst);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = upstream.set_nodelay(true);
    backend.connections.fetch_add(1, Ordering::SeqCst);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Polls `backend`'s `/readyz` until it is removed.
async fn poll_ready(backend: Arc<Backend>) {
    while !backend.removed.load(Ordering::SeqCst) {
        let ok = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, readyz_status(&backend.admin)).await,
            Ok(Some(200))
        );
        if !backend.removed.load(Ordering::SeqCst) {
            backend.ready.store(ok, Ordering::SeqCst);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Status code of `GET /readyz` on `admin` over a fresh connection, `None` when
/// it could not be asked.
async fn readyz_status(admin: &str) -> Option<u16> {
    let mut s = TcpStream::connect(admin).await.ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: balancer\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    // the status line is all we need
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1)?.parse().ok()
}
