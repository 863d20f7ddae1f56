//! Reads the first request head of a connection within `header_read_timeout_ms`, so a
//! slow client gets a real `408` (hyper's own header timeout only closes the
//! connection). The bytes read are replayed to hyper through [`Rewind`].

use bytes::{Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Past this many bytes without a blank line hyper takes over (and rejects it).
const MAX_HEAD: usize = 64 * 1024;

pub enum Head {
    /// The head (or the start of an HTTP/2 preface) arrived; replay these bytes.
    Ready(Bytes),
    /// The client closed or sent nothing at all before the timeout.
    Nothing,
    /// Some bytes but no complete head in time: answered 408.
    TimedOut,
}

pub async fn read_head<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    timeout: Duration,
) -> io::Result<Head> {
    let mut buf = BytesMut::with_capacity(4096);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) => {
                return Ok(if buf.is_empty() {
                    Head::Nothing
                } else {
                    Head::Ready(buf.freeze())
                })
            }
            Ok(Ok(_)) => {
                if memchr::memmem::find(&buf, b"\r\n\r\n").is_some() || buf.len() >= MAX_HEAD {
                    return Ok(Head::Ready(buf.freeze()));
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) if buf.is_empty() => return Ok(Head::Nothing),
            Err(_) => {
                let body =
                    crate::error::GatewayError::header_timeout(timeout.as_millis() as u64).body();
                let _ = io.write_all(&timeout_answer(&body)).await;
                let _ = io.shutdown().await;
                return Ok(Head::TimedOut);
            }
        }
    }
}

/// The whole 408 answer with `body`, closing the connection.
pub fn timeout_answer(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Longest PROXY protocol header accepted (v1 is at most 107 bytes; v2 carries
/// TLVs, which the gateway does not use).
const MAX_PROXY_HEADER: usize = 4096;

/// Reads a PROXY protocol (v1 or v2) header within `timeout`: the source address
/// it names (None for `UNKNOWN`/`LOCAL`) and the bytes read after it. An error
/// when the connection does not start with a valid header.
pub async fn read_proxy_header<IO: AsyncRead + Unpin>(
    io: &mut IO,
    timeout: Duration,
) -> io::Result<(Option<std::net::SocketAddr>, Bytes)> {
    use ppp::PartialResult;
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let mut buf = BytesMut::with_capacity(256);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) => return Err(invalid("closed before a PROXY header")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(invalid("no PROXY header in time")),
        }
        let parsed = ppp::HeaderResult::parse(&buf);
        if parsed.is_incomplete() {
            if buf.len() >= MAX_PROXY_HEADER {
                return Err(invalid("PROXY header too long"));
            }
            continue;
        }
        let (len, source) = match parsed {
            ppp::HeaderResult::V1(Ok(h)) => (
                h.header.len(),
                match h.addresses {
                    ppp::v1::Addresses::Tcp4(a) => Some((a.source_address.into(), a.source_port)),
                    ppp::v1::Addresses::Tcp6(a) => Some((a.source_address.into(), a.source_port)),
                    ppp::v1::Addresses::Unknown => None,
                },
            ),
            ppp::HeaderResult::V2(Ok(h)) => (
                h.header.len(),
                match (h.command, h.addresses) {
                    (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                        Some((a.source_address.into(), a.source_port))
                    }
                    (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                        Some((a.source_address.into(), a.source_port))
                    }
                    _ => None,
                },
            ),
            _ => return Err(invalid("not a PROXY protocol header")),
        };
        let source = source.map(|(ip, port): (std::net::IpAddr, u16)| (ip, port).into());
        let rest = buf.split_off(len.min(buf.len())).freeze();
        return Ok((source, rest));
    }
}

/// An IO that first yields `prefix`, then reads from `inner`.
pub struct Rewind<IO> {
    prefix: Bytes,
    inner: IO,
}

impl<IO> Rewind<IO> {
    pub fn new(prefix: Bytes, inner: IO) -> Self {
        Rewind { prefix, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn complete_head_is_replayed() {
        let (mut client, mut server) = duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let Head::Ready(b) = read_head(&mut server, Duration::from_secs(1))
            .await
            .unwrap()
        else {
            panic!()
        };
        let mut r = Rewind::new(b, server);
        let mut s = vec![0u8; 27];
        r.read_exact(&mut s).await.unwrap();
        assert_eq!(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn partial_head_gets_408() {
        let (mut client, mut server) = duplex(4096);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let h = read_head(&mut server, Duration::from_millis(100))
            .await
            .unwrap();
        assert!(matches!(h, Head::TimedOut));
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
        assert!(out.contains("\"code\":\"request_timeout\""));
    }

    #[tokio::test]
    async fn proxy_headers_name_the_source_and_keep_what_follows() {
        let (mut client, mut server) = duplex(1024);
        client
            .write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\nGET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let (src, rest) = read_proxy_header(&mut server, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(src, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");

        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 4, 10, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        v2.extend(b"PRI");
        let (mut client, mut server) = duplex(1024);
        client.write_all(&v2).await.unwrap();
        let (src, rest) = read_proxy_header(&mut server, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(src, Some("198.51.100.4:8080".parse().unwrap()));
        assert_eq!(&rest[..], b"PRI");

        let (mut client, mut server) = duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_proxy_header(&mut server, Duration::from_secs(1))
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connection_is_closed_quietly() {
        let (_client, mut server) = duplex(64);
        let h = read_head(&mut server, Duration::from_millis(100))
            .await
            .unwrap();
        assert!(matches!(h, Head::Nothing));
    }
}
