//! A connection's IO with the timeouts hyper does not keep: a client that
//! accepts no bytes for `client_write_timeout_ms` is cut (its request ends as a
//! client that left: settled and logged `DC`), and on HTTP/1 a later request on a
//! kept-alive connection whose head does not arrive within
//! `header_read_timeout_ms` gets the same 408 as a first one (`preread.rs`).

use super::drain::ConnState;
use crate::stall::ConnAbort;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub struct Guarded<IO> {
    inner: IO,
    state: Arc<ConnState>,
    write_timeout: Duration,
    /// set while a write waits: when it may wait no longer
    write_stall: Option<Pin<Box<Sleep>>>,
    write_stalled: bool,
    /// bytes written and not flushed yet (a 408 may not be mixed in)
    unflushed: bool,
    /// HTTP/1 only: the head timeout of requests after the first
    head_timeout: Option<Duration>,
    /// requests started when bytes of the next one began to arrive
    head_of: Option<u64>,
    head_timer: Option<Pin<Box<Sleep>>>,
    /// the 408 on its way out, then the connection ends
    answer: Option<(Vec<u8>, usize)>,
    /// HTTP/1: ended from outside (its answer was cut, see `stall.rs`)
    abort: Option<Arc<ConnAbort>>,
}

impl<IO> Guarded<IO> {
    /// `head_timeout`: Some for HTTP/1 connections.
    pub fn new(
        inner: IO,
        state: Arc<ConnState>,
        write_timeout: Duration,
        head_timeout: Option<Duration>,
        abort: Option<Arc<ConnAbort>>,
    ) -> Self {
        Guarded {
            inner,
            state,
            write_timeout,
            write_stall: None,
            write_stalled: false,
            unflushed: false,
            head_timeout,
            head_of: None,
            head_timer: None,
            answer: None,
            abort,
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl<IO> Guarded<IO> {
    /// The connection was ended from outside.
    fn aborted(&self) -> bool {
        self.abort.as_ref().is_some_and(|a| a.is_aborted())
    }
}

fn aborted_error<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the connection's answer was cut short",
    )))
}

impl<IO: AsyncWrite + Unpin> Guarded<IO> {
    /// What a write that could not go out now means: wait, or give up once the
    /// client has accepted nothing for the write timeout.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if let Some(a) = &self.abort {
            a.register(cx.waker());
            if a.is_aborted() {
                return aborted_error();
            }
        }
        let deadline = Instant::now() + self.write_timeout;
        let timer = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.write_stalled {
            self.write_stalled = true;
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out(
                "the client accepted no bytes within client_write_timeout_ms",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        r: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.write_stalled = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    /// Writes what is left of the 408, then shuts the connection down.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // (written with the same stall limit as any answer)
        loop {
            let Some((bytes, sent)) = &self.answer else {
                return Poll::Ready(Ok(()));
            };
            let r = if *sent == bytes.len() {
                Pin::new(&mut self.inner).poll_shutdown(cx).map_ok(|()| 0)
            } else {
                Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..])
            };
            let done = *sent == bytes.len();
            let n = ready!(self.progressed(r, cx))?;
            if done {
                self.answer = None;
                return Poll::Ready(Err(timed_out("the request head did not arrive in time")));
            }
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, sent)) = &mut self.answer {
                *sent += n;
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.aborted() {
            return aborted_error();
        }
        if this.answer.is_some() {
            return this.poll_answer(cx);
        }
        let Some(limit) = this.head_timeout else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let started = this.state.started();
        if this.head_of.is_some_and(|at| at != started) {
            // the request whose head was arriving has started
            this.head_of = None;
        }
        match r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                // bytes while no request is in flight: the head of the next one
                if this.head_of.is_none() && this.state.busy() == 0 {
                    this.head_of = Some(started);
                    let deadline = Instant::now() + limit;
                    match &mut this.head_timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => {
                            this.head_timer = Some(Box::pin(tokio::time::sleep_until(deadline)))
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.head_of.is_some() => {
                let Some(t) = this.head_timer.as_mut() else {
                    return Poll::Pending;
                };
                ready!(t.as_mut().poll(cx));
                if this.unflushed || this.state.busy() > 0 {
                    return Poll::Ready(Err(timed_out("the request head did not arrive in time")));
                }
                let body =
                    crate::error::GatewayError::header_timeout(limit.as_millis() as u64).body();
                this.answer = Some((super::preread::timeout_answer(&body), 0));
                this.poll_answer(cx)
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.aborted() {
            return aborted_error();
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.unflushed |= n > 0;
        }
        this.progressed(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.aborted() {
            return aborted_error();
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.unflushed |= n > 0;
        }
        this.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.aborted() {
            return aborted_error();
        }
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            this.unflushed = false;
        }
        this.progressed(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_is_cut() {
        let (_client, server) = duplex(64);
        let state = Arc::new(ConnState::default());
        let mut io = Guarded::new(server, state, Duration::from_secs(5), None, None);
        let t = Instant::now();
        let e = io.write_all(&[b'x'; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_connection_fails_at_once() {
        let (_client, server) = duplex(64);
        let state = Arc::new(ConnState::default());
        let abort = Arc::new(ConnAbort::default());
        let mut io = Guarded::new(
            server,
            state,
            Duration::from_secs(600),
            None,
            Some(abort.clone()),
        );
        let a = abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            a.abort();
        });
        let t = Instant::now();
        let e = io.write_all(&[b'x'; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_not_cut() {
        let (mut client, server) = duplex(64);
        let state = Arc::new(ConnState::default());
        let mut io = Guarded::new(server, state, Duration::from_secs(5), None, None);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 1024 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                got += client.read(&mut buf).await.unwrap();
            }
        });
        io.write_all(&[b'x'; 1024]).await.unwrap();
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_later_head_gets_408() {
        let (mut client, server) = duplex(4096);
        let state = Arc::new(ConnState::default());
        let mut io = Guarded::new(
            server,
            state.clone(),
            Duration::from_secs(30),
            Some(Duration::from_secs(2)),
            None,
        );
        // a first request came and went
        drop(state.start(http::Version::HTTP_11));
        client
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0);
        let t = Instant::now();
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t.elapsed(), Duration::from_secs(2));
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_becomes_a_request_is_not_timed() {
        let (mut client, server) = duplex(4096);
        let state = Arc::new(ConnState::default());
        let mut io = Guarded::new(
            server,
            state.clone(),
            Duration::from_secs(30),
            Some(Duration::from_secs(2)),
            None,
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 1024];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let busy = state.start(http::Version::HTTP_11);
        // a long request: its body or the client's silence are not a head timeout
        let read = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting, no 408");
        drop(busy);
    }
}
