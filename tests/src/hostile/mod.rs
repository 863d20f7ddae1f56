//! Raw-protocol tools for hostile-input tests: HTTP/1.1 bytes written exactly as
//! given (whole, or trickled piece by piece), the answers parsed off the wire with
//! the time they arrived and how the connection ended, chunked bodies, uploads
//! that stream megabytes while reading the answer, and a listener that counts who
//! connects to it (a tripwire). HTTP/2 in [`http2`].

mod http2;

pub use http2::{h2_idle_connections, h2_rapid_reset, ByHand, H2ByHand, H2Conn, RapidReset};

use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the peer ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// FIN: an orderly close.
    Closed,
    /// RST (or another read error): an abortive close.
    Reset,
}

/// One HTTP/1.1 response as read from the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Names lowercased, in arrival order; values lossily decoded.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// When it was read whole.
    pub at: Instant,
}

impl RawResponse {
    /// First value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body's first 300 bytes, for messages.
    pub fn excerpt(&self) -> String {
        lossy(&self.body)
    }

    /// `error.code` of an OpenAI-shaped error body.
    pub fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.pointer("/error/code")?.as_str().map(str::to_string)
    }

    /// Asserts this status and, when `code` is given, this `error.code`.
    pub fn assert_error(&self, status: u16, code: Option<&str>, what: &str) {
        assert_eq!(
            (self.status, self.error_code().as_deref()),
            (status, code),
            "{what}: got {} {}",
            self.status,
            self.excerpt()
        );
    }
}

/// Parses one complete response off the front of `buf`: the response and how
/// many bytes it took, or `None` while incomplete. A response without a framing
/// header takes what is left (it ends with the connection).
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(RawResponse, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP response ({e}): {:?}", lossy(buf))),
    };
    let status = r.code.unwrap_or(0);
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.trim());
    let rest = &buf[head_len..];
    let (body, used) = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let (start, size) = match httparse::parse_chunk_size(&rest[at..]) {
                Ok(httparse::Status::Complete(c)) => c,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(format!("bad chunk: {:?}", lossy(&rest[at..]))),
            };
            let size = usize::try_from(size).map_err(|e| e.to_string())?;
            let end = at + start + size + 2;
            if rest.len() < end {
                return Ok(None);
            }
            body.extend_from_slice(&rest[at + start..at + start + size]);
            at = end;
            if size == 0 {
                break;
            }
        }
        (Bytes::from(body), at)
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| format!("content-length {len:?}"))?;
        if rest.len() < len {
            return Ok(None);
        }
        (Bytes::copy_from_slice(&rest[..len]), len)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        (Bytes::new(), 0)
    } else if eof {
        (Bytes::copy_from_slice(rest), rest.len())
    } else {
        return Ok(None);
    };
    let resp = RawResponse {
        status,
        headers,
        body,
        at: Instant::now(),
    };
    Ok(Some((resp, head_len + used)))
}

fn lossy(b: &[u8]) -> String {
    let b = &b[..b.len().min(300)];
    String::from_utf8_lossy(b).into_owned()
}

/// A TCP connection speaking HTTP/1.1 as raw bytes.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    ended: Option<Ended>,
}

impl RawConn {
    pub async fn connect(addr: &str) -> RawConn {
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => panic!("connect {addr}: {e}"),
        };
        let _ = stream.set_nodelay(true);
        RawConn {
            stream,
            buf: Vec::new(),
            ended: None,
        }
    }

    /// A connection whose receive buffer is `bytes` (the kernel's minimum at
    /// least): a client that stops reading stalls its sender sooner.
    pub async fn connect_small(addr: &str, bytes: u32) -> RawConn {
        let socket = match tokio::net::TcpSocket::new_v4() {
            Ok(s) => s,
            Err(e) => panic!("socket: {e}"),
        };
        if let Err(e) = socket.set_recv_buffer_size(bytes) {
            panic!("SO_RCVBUF: {e}");
        }
        let to: std::net::SocketAddr = match addr.parse() {
            Ok(a) => a,
            Err(e) => panic!("{addr}: {e}"),
        };
        match socket.connect(to).await {
            Ok(stream) => RawConn {
                stream,
                buf: Vec::new(),
                ended: None,
            },
            Err(e) => panic!("connect {addr}: {e}"),
        }
    }

    /// Writes `data` whole; an error when the peer has gone.
    pub async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data).await
    }

    /// Writes `data` in pieces of `piece` bytes, one every `every` (a slowloris
    /// client), watching for an answer meanwhile: the first response within
    /// `wait`, or `None` when the connection ended or `wait` passed first. The
    /// writing stops at the first write error (the peer gave up on us).
    pub async fn trickle(
        &mut self,
        data: &[u8],
        piece: usize,
        every: Duration,
        wait: Duration,
    ) -> Option<RawResponse> {
        let deadline = Instant::now() + wait;
        let mut parts = data.chunks(piece.max(1));
        let mut sending = true;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if sending {
                match parts.next() {
                    Some(p) => sending = self.send(p).await.is_ok(),
                    None => sending = false,
                }
            }
            let step = if sending { every.min(left) } else { left };
            if let Some(r) = self.response(step).await {
                return Some(r);
            }
            if self.ended.is_some() {
                return None;
            }
        }
    }

    /// Reads once (up to `deadline`); false when nothing more can come.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => false,
            Ok(Ok(0)) => {
                self.ended = Some(Ended::Closed);
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(_)) => {
                self.ended = Some(Ended::Reset);
                false
            }
        }
    }

    /// The next complete response, waiting up to `wait`; `None` when the
    /// connection ended or `wait` passed first. Panics on bytes that are not a
    /// response.
    pub async fn response(&mut self, wait: Duration) -> Option<RawResponse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match parse_response(&self.buf, self.ended.is_some()) {
                Ok(Some((r, used))) => {
                    self.buf.drain(..used);
                    return Some(r);
                }
                Ok(None) => {}
                Err(e) => panic!("{e}"),
            }
            if !self.fill(deadline).await {
                if self.ended.is_some() && !self.buf.is_empty() {
                    // a last response framed by the close
                    if let Ok(Some((r, used))) = parse_response(&self.buf, true) {
                        self.buf.drain(..used);
                        return Some(r);
                    }
                }
                return None;
            }
        }
    }

    /// Waits up to `wait` for the peer to end the connection: how it ended, or
    /// `None` while it is still open. Bytes arriving meanwhile stay readable
    /// with [`RawConn::response`].
    pub async fn ended(&mut self, wait: Duration) -> Option<Ended> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.fill(deadline).await {}
        self.ended
    }

    /// Reads until `done(bytes not yet taken)` holds, the peer ends the
    /// connection, or `wait` passes; whether `done` held.
    pub async fn read_until(&mut self, wait: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !done(&self.buf) {
            if !self.fill(deadline).await {
                return done(&self.buf);
            }
        }
        true
    }

    /// The status of the next response once its status line is in (nothing is
    /// taken: [`RawConn::response`] still reads it whole), within `wait`.
    pub async fn status(&mut self, wait: Duration) -> Option<u16> {
        self.read_until(wait, |b| status_line(b).is_some()).await;
        status_line(&self.buf)
    }

    /// The bytes received and not yet taken as a response.
    pub fn received(&self) -> &[u8] {
        &self.buf
    }

    /// How the peer ended the connection, if it did (as far as read so far).
    pub fn state(&self) -> Option<Ended> {
        self.ended
    }

    /// Bytes received and not yet taken as a response.
    pub fn unread(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// The status code of an HTTP/1 response whose status line is in `got`.
pub fn status_line(got: &[u8]) -> Option<u16> {
    let end = got.windows(2).position(|w| w == b"\r\n")?;
    std::str::from_utf8(&got[..end])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// What one connection carried back: every response, and how it ended.
#[derive(Debug)]
pub struct Exchange {
    pub responses: Vec<RawResponse>,
    /// `None`: still open when the wait ended.
    pub ended: Option<Ended>,
}

impl Exchange {
    /// The only response; panics (naming `what`) unless there is exactly one.
    pub fn only(&self, what: &str) -> &RawResponse {
        match self.responses.as_slice() {
            [r] => r,
            rs => panic!(
                "{what}: expected exactly one response, got {}: {:?}",
                rs.len(),
                rs.iter()
                    .map(|r| (r.status, r.excerpt()))
                    .collect::<Vec<_>>()
            ),
        }
    }
}

/// Writes `data` on a fresh connection to `addr` and collects the responses until
/// the peer ends the connection or `wait` has passed.
pub async fn exchange(addr: &str, data: &[u8], wait: Duration) -> Exchange {
    let mut c = RawConn::connect(addr).await;
    // the peer may close before reading it all: what it answered still counts
    let _ = c.send(data).await;
    let deadline = Instant::now() + wait;
    let mut responses = Vec::new();
    while let Some(r) = c
        .response(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        responses.push(r);
    }
    Exchange {
        responses,
        ended: c.ended,
    }
}

/// A request: `METHOD target HTTP/1.1`, then `headers` (raw lines, each ending
/// in CRLF, written exactly as given), `Host: gateway` unless they set a host,
/// `Content-Length` of `body` unless they set the framing, the blank line and
/// `body`.
pub fn request(method: &str, target: &[u8], headers: &[u8], body: &[u8]) -> Vec<u8> {
    let lower = headers.to_ascii_lowercase();
    let has = |name: &[u8]| lower.split(|&b| b == b'\n').any(|l| l.starts_with(name));
    let mut out = Vec::with_capacity(body.len() + headers.len() + 128);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out.extend_from_slice(headers);
    if !has(b"host:") {
        out.extend_from_slice(b"Host: gateway\r\n");
    }
    if !has(b"content-length") && !has(b"transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `body` as a chunked body of chunks of at most `chunk` bytes, with the
/// terminating chunk.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 8 + 8);
    for part in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// How a big upload went.
#[derive(Debug)]
pub struct Upload {
    /// Body bytes written (chunk framing included) before the peer stopped us.
    pub written: u64,
    /// The body was written whole.
    pub completed: bool,
    /// The first response, if one came within the wait.
    pub response: Option<RawResponse>,
    /// How the connection ended (after the response), if it did within the wait.
    pub ended: Option<Ended>,
}

/// Sends `head` then streams `total` bytes of body (`x`s; as 64 KiB chunks and a
/// terminating chunk when `chunked`) while reading the answer: returns once the
/// first response came and the connection ended, or `wait` passed.
pub async fn upload(addr: &str, head: &[u8], total: u64, chunked: bool, wait: Duration) -> Upload {
    const CHUNK: usize = 64 * 1024;
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let head = head.to_vec();
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        if wr.write_all(&head).await.is_err() {
            return (0, false);
        }
        let block = vec![b'x'; CHUNK];
        let mut framed = Vec::with_capacity(CHUNK + 16);
        if chunked {
            framed.extend_from_slice(format!("{CHUNK:x}\r\n").as_bytes());
            framed.extend_from_slice(&block);
            framed.extend_from_slice(b"\r\n");
        }
        while written < total {
            let r = if chunked {
                wr.write_all(&framed).await
            } else {
                let n = usize::try_from((total - written).min(CHUNK as u64)).unwrap_or(CHUNK);
                wr.write_all(&block[..n]).await
            };
            if r.is_err() {
                return (written, false);
            }
            written += if chunked { framed.len() } else { CHUNK } as u64;
        }
        if chunked && wr.write_all(b"0\r\n\r\n").await.is_err() {
            return (written, false);
        }
        (written, true)
    });
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let mut response = None;
    let mut ended = None;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if response.is_none() {
            if let Ok(Some((r, used))) = parse_response(&buf, false) {
                buf.drain(..used);
                response = Some(r);
            }
        }
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) => {
                ended = Some(Ended::Closed);
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => {
                ended = Some(Ended::Reset);
                break;
            }
        }
    }
    if response.is_none() {
        if let Ok(Some((r, _))) = parse_response(&buf, true) {
            response = Some(r);
        }
    }
    drop(rd);
    // the writer stops at its next write once the connection is gone
    let (written, completed) = match tokio::time::timeout(Duration::from_secs(10), writer).await {
        Ok(Ok(w)) => w,
        _ => (u64::MAX, false),
    };
    Upload {
        written,
        completed,
        response,
        ended,
    }
}

/// A loopback listener that accepts and counts connections and never answers:
/// the address of a host the gateway must never reach.
pub struct Tripwire {
    addr: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tripwire {
    pub async fn start() -> Tripwire {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind a tripwire: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a.to_string(),
            Err(e) => panic!("tripwire address: {e}"),
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        Tripwire {
            addr,
            accepted,
            task,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}
