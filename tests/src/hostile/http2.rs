//! HTTP/2 (h2c, prior knowledge) for hostile-input tests: clients of the `h2`
//! crate that reset every stream right after opening it (rapid reset), open many
//! connections and sit idle on them, or send requests whose body never ends;
//! and connections made by hand that answer nothing, ignore GOAWAY or never
//! finish a header block.

use super::RawConn;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// An HTTP/2 (h2c, prior knowledge) connection: the `h2` client handle and the
/// task driving the connection, which ends when the server ends it.
pub struct H2Conn {
    pub send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
    /// Just before the TCP connect: the server's idle timer cannot start
    /// earlier, and a stall of this task after the handshake (a loaded
    /// machine) cannot make a connection look shorter-lived than it was.
    pub opened: Instant,
    /// When the connection task ended (set by the task).
    closed_at: Arc<Mutex<Option<Instant>>>,
}

impl H2Conn {
    /// Connects to `addr` and completes the HTTP/2 handshake.
    pub async fn connect(addr: &str) -> Result<H2Conn, String> {
        let opened = Instant::now();
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (send, conn) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("h2 handshake with {addr}: {e}"))?;
        let closed_at = Arc::new(Mutex::new(None));
        let mark = closed_at.clone();
        let driver = tokio::spawn(async move {
            let r = conn.await;
            if let Ok(mut g) = mark.lock() {
                *g = Some(Instant::now());
            }
            r
        });
        Ok(H2Conn {
            send,
            driver,
            opened,
            closed_at,
        })
    }

    /// Sends `req` with `body` (END_STREAM on the HEADERS when it is empty) and
    /// reads the answer: its status and body.
    pub async fn request(
        &mut self,
        req: http::Request<()>,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        self.exchange(req, body, true).await
    }

    /// Sends `req` and the start of its body, `part`, never the rest (no
    /// END_STREAM), and reads the answer: its status and body.
    pub async fn unfinished_request(
        &mut self,
        req: http::Request<()>,
        part: Bytes,
    ) -> Result<(u16, Bytes), String> {
        self.exchange(req, part, false).await
    }

    async fn exchange(
        &mut self,
        req: http::Request<()>,
        body: Bytes,
        end: bool,
    ) -> Result<(u16, Bytes), String> {
        let mut send = tokio::time::timeout(Duration::from_secs(5), self.send.clone().ready())
            .await
            .map_err(|_| "no stream capacity for 5 s".to_string())?
            .map_err(|e| describe_h2(&e))?;
        let (resp, mut stream) = send
            .send_request(req, end && body.is_empty())
            .map_err(|e| describe_h2(&e))?;
        if !body.is_empty() {
            stream.send_data(body, end).map_err(|e| describe_h2(&e))?;
        }
        let resp = tokio::time::timeout(Duration::from_secs(30), resp)
            .await
            .map_err(|_| "no answer within 30 s".to_string())?
            .map_err(|e| describe_h2(&e))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| describe_h2(&e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        // the request's stream stays open (for an unfinished body) until here
        drop(stream);
        Ok((status, Bytes::from(out)))
    }

    /// How long the connection lived, once the server ended it.
    pub fn lifetime(&self) -> Option<Duration> {
        let at = (*self.closed_at.lock().ok()?)?;
        Some(at.saturating_duration_since(self.opened))
    }

    /// Waits up to `wait` for the connection to end: `Ok` on an orderly end
    /// (GOAWAY without error, or close), the error otherwise; `None` while it
    /// is still open.
    pub async fn ended(&mut self, wait: Duration) -> Option<Result<(), String>> {
        match tokio::time::timeout(wait, &mut self.driver).await {
            Err(_) => None,
            Ok(Ok(Ok(()))) => Some(Ok(())),
            Ok(Ok(Err(e))) => Some(Err(describe_h2(&e))),
            Ok(Err(e)) => Some(Err(format!("connection task: {e}"))),
        }
    }
}

impl Drop for H2Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn describe_h2(e: &h2::Error) -> String {
    match e.reason() {
        Some(r) if e.is_go_away() => format!("GOAWAY {r:?}"),
        Some(r) => format!("{r:?}"),
        None => e.to_string(),
    }
}

/// What a rapid-reset flood did.
#[derive(Debug)]
pub struct RapidReset {
    /// Streams opened (HEADERS sent) and reset at once.
    pub reset: usize,
    /// Why the flood stopped early: the server's GOAWAY or the connection's end.
    pub stopped_by: Option<String>,
}

/// Opens up to `n` streams on one HTTP/2 connection to `addr`, each a
/// `POST path` whose body never comes, resetting (`RST_STREAM CANCEL`) each one
/// right after its HEADERS (CVE-2023-44487). Stops early when the server refuses
/// more (GOAWAY, connection closed).
pub async fn h2_rapid_reset(addr: &str, path: &str, n: usize) -> RapidReset {
    let conn = match H2Conn::connect(addr).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let mut send = conn.send.clone();
    let uri = format!("http://{addr}{path}");
    let mut reset = 0;
    let mut stopped_by = None;
    while reset < n {
        send = match tokio::time::timeout(Duration::from_secs(5), send.ready()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                stopped_by = Some(describe_h2(&e));
                break;
            }
            Err(_) => {
                stopped_by = Some("no stream capacity for 5 s".into());
                break;
            }
        };
        let req = match http::Request::post(&uri)
            .header("content-type", "application/json")
            .body(())
        {
            Ok(r) => r,
            Err(e) => panic!("request: {e}"),
        };
        match send.send_request(req, false) {
            Ok((_response, mut body)) => {
                body.send_reset(h2::Reason::CANCEL);
                reset += 1;
            }
            Err(e) => {
                stopped_by = Some(describe_h2(&e));
                break;
            }
        }
        // let the connection task write the frames now and then
        if reset % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    RapidReset { reset, stopped_by }
}

/// What an HTTP/2 connection made by hand does after its preface and empty
/// SETTINGS. A GOAWAY is ignored in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByHand {
    /// Nothing more, and nothing the server sends is acknowledged.
    Silent,
    /// Acknowledges the server's SETTINGS and PINGs (keep-alive pings find
    /// it alive), opens no stream.
    AnswersPings,
    /// Sends the start of a request's header block (HEADERS without
    /// END_HEADERS) and never the rest, a slowloris in HTTP/2 terms; it can
    /// acknowledge nothing (any frame but CONTINUATION is a protocol error).
    UnfinishedHeaders,
}

/// An HTTP/2 connection made by hand (see [`ByHand`]), its frames read by a task.
pub struct H2ByHand {
    task: tokio::task::JoinHandle<()>,
    ended: Arc<Mutex<Option<Instant>>>,
}

impl H2ByHand {
    pub async fn open(addr: &str, how: ByHand) -> H2ByHand {
        let mut c = RawConn::connect(addr).await;
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        if how == ByHand::UnfinishedHeaders {
            // HEADERS on stream 1, no flags (CONTINUATION should follow); HPACK
            // :method POST, :scheme http, :path / (static table 3, 6, 4)
            out.extend_from_slice(&[0, 0, 3, 0x1, 0, 0, 0, 0, 1, 0x83, 0x86, 0x84]);
        }
        if let Err(e) = c.send(&out).await {
            panic!("write to {addr}: {e}");
        }
        let ended = Arc::new(Mutex::new(None));
        let mark = ended.clone();
        let task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match c.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                // whole frames: 3 bytes length, type, flags, 4 bytes stream id
                while buf.len() >= 9 {
                    let len =
                        usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
                    if buf.len() < 9 + len {
                        break;
                    }
                    let (kind, flags) = (buf[3], buf[4]);
                    let payload = buf[9..9 + len].to_vec();
                    buf.drain(..9 + len);
                    let ack = match (kind, flags & 1) {
                        (0x4, 0) => vec![0, 0, 0, 0x4, 1, 0, 0, 0, 0],
                        (0x6, 0) => [&[0, 0, 8, 0x6, 1, 0, 0, 0, 0][..], &payload].concat(),
                        _ => continue,
                    };
                    if how == ByHand::AnswersPings && c.send(&ack).await.is_err() {
                        break;
                    }
                }
            }
            if let Ok(mut g) = mark.lock() {
                *g = Some(Instant::now());
            }
        });
        H2ByHand { task, ended }
    }

    /// Waits up to `wait` for the server to end the connection: when it did.
    pub async fn ended(&mut self, wait: Duration) -> Option<Instant> {
        let _ = tokio::time::timeout(wait, &mut self.task).await;
        *self.ended.lock().ok()?
    }
}

impl Drop for H2ByHand {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens `n` HTTP/2 connections to `addr` (`parallel` handshakes at a time) and
/// keeps them idle: no stream, only what the protocol itself needs (SETTINGS
/// and PING acknowledgements, which the `h2` client sends).
pub async fn h2_idle_connections(addr: &str, n: usize, parallel: usize) -> Vec<H2Conn> {
    let mut conns = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while conns.len() < n {
        while started < n && pending.len() < parallel.max(1) {
            let addr = addr.to_string();
            pending.spawn(async move { H2Conn::connect(&addr).await });
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(c))) => conns.push(c),
            Some(Ok(Err(e))) => panic!("idle connection {}: {e}", conns.len()),
            Some(Err(e)) => panic!("idle connection task: {e}"),
            None => break,
        }
    }
    conns
}
