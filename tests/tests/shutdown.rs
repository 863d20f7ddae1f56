//! Graceful shutdown of one gateway process (SIGTERM, a second signal, SIGINT),
//! with small graces and accept delays so that each test takes a few seconds:
//!
//! 1. SIGTERM: `/readyz` 503 at once; during `shutdown_delay_ms` a new connection
//!    is accepted and answered 200 with `Connection: close`; after it new
//!    connections are refused; exit status 0.
//! 2. An idle keep-alive HTTP/1 connection and a connection that never sent a
//!    byte are both closed when accepting stops (not at `header_read_timeout_ms`),
//!    and the process exits right after.
//!    A keep-alive connection busy with a stream when accepting stops: the request
//!    its client sends on it right after the stream is answered, not dropped.
//! 3. h2c: a stream in flight at SIGTERM completes; the connection gets GOAWAY: a
//!    new request on it after the drain started is not served, and it closes.
//! 4. A slow SSE stream still running at the end of the grace ends with the final
//!    `gateway_shutdown` error event; its access-log line has `SD`; exit 0 soon
//!    after the grace.
//! 5. A request still waiting for its upstream's answer at the end of the grace is
//!    ended too, and logged as cut by the shutdown (`SD`), not as a client that
//!    went away.
//! 6. A second SIGTERM during the drain (grace 30 s) cuts the streams at once.
//! 7. SIGINT: no accept delay, new connections refused at once; a stream in
//!    flight still completes.
//! 8. The official `openai` SDK reading a stream cut by the shutdown raises an
//!    `APIError` carrying the `gateway_shutdown` error (not a silent clean end).
//! 9. `gateway --probe URL` (when the binary has it): exit 0 on a 2xx, 1 on a 503,
//!    a refused connection or no answer within 2 s.

use bytes::Bytes;
use gateway_tests::client::{chat_body, chat_stream_body, SseEvent, TestClient};
use gateway_tests::config::{Config, Provider, Route, Server, Timeouts};
use gateway_tests::harness::{gateway_bin, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{MockOptions, MockUpstream, DEFAULT_STREAM_CHUNKS};
use gateway_tests::python::{python, PyScript};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The data of the final event of an SSE answer cut by the shutdown (the contract).
const CUT_JSON: &str = r#"{"error":{"message":"the gateway is shutting down: the answer was cut","type":"server_error","code":"gateway_shutdown"}}"#;

/// Longer than any test here needs: connections the gateway should close are
/// closed long before this (it would show as a close after 10 s).
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// One provider at `base_url`, one open route, the given grace and accept delay,
/// access log to a file.
fn config(base_url: &str, grace_s: u64, delay_ms: u64) -> String {
    Config::new()
        .server(
            Server::new()
                .admin_token(ADMIN_TOKEN)
                .header_read_timeout_ms(HEADER_READ_TIMEOUT_MS)
                .shutdown_grace_s(grace_s)
                .shutdown_delay_ms(delay_ms)
                .config_poll_ms(0),
        )
        .provider(
            Provider::openai("up1", base_url)
                .token("sk-upstream-secret-1")
                .timeouts(Timeouts::all(1000, 60_000, 60_000, 120_000)),
        )
        .route(Route::new("chat", "/v1").upstream("up1"))
        .access_log()
        .yaml()
}

async fn start(mock: &MockUpstream, grace_s: u64, delay_ms: u64) -> Gateway {
    Gateway::start(&config(&mock.base_url(), grace_s, delay_ms)).await
}

/// A mock whose streams wait `chunk_delay_ms` between events (a chat stream is
/// 8 content chunks and 4 other events).
fn slow_mock(chunk_delay_ms: u64) -> MockUpstream {
    MockUpstream::start(MockOptions {
        chunk_delay_ms,
        ..MockOptions::default()
    })
}

fn chat_url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

/// Status of `GET /readyz` on a fresh connection, `None` when it cannot be asked.
async fn readyz(gw: &Gateway) -> Option<u16> {
    let url = format!("{}/readyz", gw.admin_url());
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        TestClient::new().try_request(http::Method::GET, &url, &[], Bytes::new()),
    )
    .await;
    match r {
        Ok(Ok(r)) => Some(r.status),
        _ => None,
    }
}

/// Does a TCP connect to `addr` get refused right now? (`false`: it was accepted;
/// the connection is dropped at once.)
async fn refused(addr: &str) -> bool {
    match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
        Ok(Ok(_)) => false,
        Ok(Err(e)) => {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "connect {addr}: {e}"
            );
            true
        }
        Err(_) => panic!("connect {addr} hangs"),
    }
}

/// Connects to `addr` every 20 ms until a connection is refused; returns when
/// the last connection was accepted and when the first was refused (since `t0`),
/// or panics after `within`.
async fn wait_refused(addr: &str, t0: Instant, within: Duration) -> (Option<Duration>, Duration) {
    let mut last_accepted = None;
    loop {
        let at = t0.elapsed();
        if refused(addr).await {
            return (last_accepted, at);
        }
        last_accepted = Some(at);
        assert!(
            t0.elapsed() < within,
            "{addr} still accepts connections {:?} after the signal",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the gateway to exit; panics (with its stderr) when it still runs
/// after `within`. Returns the status and when it exited (since `t0`).
async fn exit_of(gw: &mut Gateway, t0: Instant, within: Duration) -> (ExitStatus, Duration) {
    let left = within.saturating_sub(t0.elapsed());
    match gw.wait_exit(left).await {
        Some(status) => (status, t0.elapsed()),
        None => panic!(
            "gateway (pid {}) still runs {:?} after the signal; stderr:\n{}",
            gw.pid(),
            t0.elapsed(),
            gw.stderr()
        ),
    }
}

fn assert_exit_0(status: ExitStatus, gw: &Gateway) {
    assert!(
        status.success(),
        "gateway exited with {status}, not 0; stderr:\n{}",
        gw.stderr()
    );
}

/// Reads from `s` until the peer closes it (EOF or reset) or `within` passed.
/// Returns what was read and when it was closed (since `t0`), `None` if it was not.
async fn read_until_closed(
    s: &mut TcpStream,
    t0: Instant,
    within: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(t0.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `GET /v1/models` on `s` (HTTP/1.1 keep-alive) and reads the whole
/// answer; returns its head.
async fn keepalive_get(s: &mut TcpStream) -> String {
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .expect("write request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let body = &got[end + 4..];
            let complete = if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                body.len() >= len
            } else {
                head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
            };
            if complete {
                return head;
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("answer within 10 s")
            .expect("read answer");
        assert!(
            n > 0,
            "connection closed mid-answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

fn content_chunks(events: &[SseEvent]) -> usize {
    events
        .iter()
        .filter(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data)
                .ok()
                .and_then(|v| {
                    v.pointer("/choices/0/delta/content")
                        .and_then(|c| c.as_str())
                        .map(|c| !c.is_empty())
                })
                .unwrap_or(false)
        })
        .count()
}

// ------------------------------------------------------------------ 1

/// 1. SIGTERM: not ready at once, new connections served (with `Connection:
///    close`) during the accept delay, refused after it; exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_not_ready_at_once_accepts_during_delay_then_refuses() {
    let mock = MockUpstream::start_default();
    let delay = Duration::from_millis(1500);
    let mut gw = start(&mock, 5, delay.as_millis() as u64).await;
    assert_eq!(readyz(&gw).await, Some(200));

    gw.sigterm();
    let t0 = Instant::now();
    let not_ready_at = loop {
        if readyz(&gw).await == Some(503) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "/readyz not 503 {:?} after SIGTERM; stderr:\n{}",
            t0.elapsed(),
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    // a new connection during the delay: served, and told to close
    let sent_at = t0.elapsed();
    let r = TestClient::new()
        .try_request(
            http::Method::POST,
            &chat_url(&gw),
            &[("content-type", "application/json")],
            chat_body("gpt-4o", "during the delay").to_string(),
        )
        .await;
    let answered_at = t0.elapsed();
    let r = r.unwrap_or_else(|e| {
        panic!(
            "a new connection {sent_at:?} after SIGTERM (accept delay {delay:?}) was not served: {e}\nstderr:\n{}",
            gw.stderr()
        )
    });
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "answers during the accept delay close their connection: {:?}",
        r.headers
    );
    assert!(
        answered_at < delay,
        "the request was meant to be answered within the delay ({answered_at:?})"
    );
    // readyz stays 503 (the admin listener is still up while the data plane drains)
    assert_eq!(readyz(&gw).await, Some(503));

    // after the delay: refused
    let (last_accepted, refused_at) =
        wait_refused(gw.listen_addr(), t0, delay + Duration::from_secs(3)).await;
    let (status, exited_at) = exit_of(&mut gw, t0, Duration::from_secs(8)).await;
    eprintln!(
        "SIGTERM (accept delay {delay:?}): readyz 503 after {not_ready_at:?}; request on a new \
         connection sent {sent_at:?} answered {answered_at:?} (200, Connection: close); last \
         connect accepted {last_accepted:?}, first refused {refused_at:?}; exit {status} after {exited_at:?}"
    );
    assert!(
        not_ready_at < Duration::from_millis(500),
        "/readyz turned 503 only {not_ready_at:?} after SIGTERM"
    );
    assert!(
        last_accepted.is_some_and(|t| t >= delay - Duration::from_millis(200)),
        "connections must be accepted until the delay ends: last accepted {last_accepted:?}, \
         first refused {refused_at:?} (delay {delay:?})"
    );
    assert!(
        refused_at >= delay - Duration::from_millis(100)
            && refused_at < delay + Duration::from_millis(800),
        "first refused connection {refused_at:?} after SIGTERM, expected at the end of the {delay:?} delay"
    );
    assert_exit_0(status, &gw);
    assert!(
        exited_at < delay + Duration::from_millis(1500),
        "nothing in flight: the process should exit right after the delay, not {exited_at:?}"
    );
    // the request of the delay is in the access log (flushed at exit)
    let lines = gw.access_log_lines();
    assert_eq!(lines.len(), 1, "{}", gw.access_log_text());
    assert_eq!(lines[0].response_code, 200);
    assert_eq!(lines[0].response_flags, "");
}

// ------------------------------------------------------------------ 2

/// 2. A connection that never sent anything and an idle keep-alive connection (one
///    request done before the SIGTERM) are closed 1 s after accepting stops (the
///    linger for a request already on its way), both far from
///    `header_read_timeout_ms`; the process exits right after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_connections_closed_when_accepting_stops() {
    let mock = MockUpstream::start_default();
    let delay = Duration::from_millis(800);
    let mut gw = start(&mock, 5, delay.as_millis() as u64).await;

    let mut idle = TcpStream::connect(gw.listen_addr()).await.expect("connect");
    let head = keepalive_get(&mut idle).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let mut silent = TcpStream::connect(gw.listen_addr()).await.expect("connect");
    // both connections are in the gateway's hands before the signal
    tokio::time::sleep(Duration::from_millis(200)).await;

    gw.sigterm();
    let t0 = Instant::now();
    let within = Duration::from_secs(HEADER_READ_TIMEOUT_MS / 1000 + 2);
    let ((idle_got, idle_closed), (silent_got, silent_closed)) = tokio::join!(
        read_until_closed(&mut idle, t0, within),
        read_until_closed(&mut silent, t0, within),
    );
    let (status, exited_at) = exit_of(&mut gw, t0, Duration::from_secs(15)).await;
    eprintln!(
        "SIGTERM (accept delay {delay:?}, header_read_timeout {HEADER_READ_TIMEOUT_MS} ms): idle \
         keep-alive connection closed {idle_closed:?}, silent connection closed {silent_closed:?}, \
         exit {status} after {exited_at:?}"
    );
    // both after the gateway's 1 s linger once accepting stops, for a request their
    // client may already be sending (the idle keep-alive one's last answer went out
    // before the SIGTERM, without `Connection: close`)
    let linger = Duration::from_secs(1);
    for (what, got, closed, at) in [
        ("idle keep-alive", &idle_got, idle_closed, delay + linger),
        ("silent", &silent_got, silent_closed, delay + linger),
    ] {
        let closed = closed.unwrap_or_else(|| {
            panic!(
                "the {what} connection was not closed within {within:?}; stderr:\n{}",
                gw.stderr()
            )
        });
        assert!(
            closed >= at - Duration::from_millis(100) && closed < at + Duration::from_millis(1000),
            "the {what} connection was closed {closed:?} after SIGTERM, expected at {at:?} \
             (accept delay {delay:?}), not at header_read_timeout ({HEADER_READ_TIMEOUT_MS} ms)"
        );
        assert!(
            got.is_empty(),
            "nothing is sent on the {what} connection (no 408): {:?}",
            String::from_utf8_lossy(got)
        );
    }
    assert_exit_0(status, &gw);
    assert!(
        exited_at < delay + linger + Duration::from_millis(1500),
        "the process exits right after the delay and the linger, not {exited_at:?} \
         (header_read_timeout is {HEADER_READ_TIMEOUT_MS} ms)"
    );
}

// ------------------------------------------------------------------ 2b

/// Reads from `s` until `got` ends with `end` (`suffix`) or contains it (or
/// panics after 10 s / on close).
async fn read_until(s: &mut TcpStream, got: &mut Vec<u8>, end: &[u8], suffix: bool) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let found = |got: &[u8]| {
        if suffix {
            got.ends_with(end)
        } else {
            got.windows(end.len()).any(|w| w == end)
        }
    };
    while !found(got) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {end:?} within 10 s: {}", String::from_utf8_lossy(got)))
            .expect("read");
        assert!(
            n > 0,
            "closed before {end:?}: {}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// 2b. A keep-alive HTTP/1 connection busy with a stream when accepting stops: the
///     stream's head went out before SIGTERM, so it could not say `Connection:
///     close`, and the client, as HTTP/1.1 allows, sends its next request on the
///     same connection as soon as the stream is complete. That request (still
///     within the grace) gets an answer, with `Connection: close`, instead of a
///     connection closed under it (a failed request in a rolling restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_request_right_after_a_drained_stream_is_answered() {
    // ~12 events 100 ms apart: ~1.1 s, past the 200 ms delay
    let mock = slow_mock(100);
    let delay = Duration::from_millis(200);
    let mut gw = start(&mock, 5, delay.as_millis() as u64).await;
    let mut conn = TcpStream::connect(gw.listen_addr()).await.expect("connect");
    let request = |body: serde_json::Value| {
        let body = body.to_string();
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    conn.write_all(request(chat_stream_body("gpt-4o", "a stream across the stop")).as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    read_until(&mut conn, &mut got, b"\r\n\r\n", false).await;
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");

    gw.sigterm();
    let t0 = Instant::now();
    // the stream ends (chunked: the last chunk), the connection was never told to close
    read_until(&mut conn, &mut got, b"\r\n0\r\n\r\n", true).await;
    let stream_end = t0.elapsed();
    assert!(
        String::from_utf8_lossy(&got).contains("data: [DONE]"),
        "the stream completes: {}",
        String::from_utf8_lossy(&got)
    );
    // the next request at once, as a keep-alive client does
    let second = conn
        .write_all(request(chat_body("gpt-4o", "right after the stream")).as_bytes())
        .await;
    let (answer, closed) = read_until_closed(&mut conn, t0, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (status, exited_at) = exit_of(&mut gw, t0, Duration::from_secs(10)).await;
    eprintln!(
        "keep-alive stream across the stop (delay {delay:?}): stream complete {stream_end:?} after \
         SIGTERM; next request on the connection written ({second:?}); the gateway answered {} \
         bytes and closed the connection {closed:?} after SIGTERM (upstream requests: {}):\n{answer}\nexit \
         {status} after {exited_at:?}",
        answer.len(),
        mock.hits()
    );
    assert!(
        stream_end > delay + Duration::from_millis(200),
        "the stream was meant to end while draining ({stream_end:?})"
    );
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.starts_with("http/1.1 200") && lower.contains("connection: close"),
        "the request sent on the keep-alive connection right after its stream (within the grace) \
         must be answered (200, Connection: close), not dropped; got {} bytes: {answer:?}",
        answer.len()
    );
    assert_exit_0(status, &gw);
}

// ------------------------------------------------------------------ 3

/// 3. h2c (prior knowledge): a stream in flight at SIGTERM completes; the
///    connection gets GOAWAY once accepting stops: a new request on it is not
///    served (it never reaches the upstream), and the connection closes when the
///    stream is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_stream_finishes_and_connection_gets_goaway() {
    // ~12 events 100 ms apart: the stream runs ~1.2 s
    let mock = slow_mock(100);
    let delay = Duration::from_millis(300);
    let mut gw = start(&mock, 5, delay.as_millis() as u64).await;

    let closed_at = Arc::new(Mutex::new(None));
    let tcp = WatchedTcp {
        inner: TcpStream::connect(gw.listen_addr()).await.expect("connect"),
        closed_at: closed_at.clone(),
    };
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    let uri = chat_url(&gw);
    let request = |body: serde_json::Value| {
        http::Request::post(uri.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request")
    };
    let resp = send
        .send_request(request(chat_stream_body("gpt-4o", "h2 stream at SIGTERM")))
        .await
        .expect("first request on the h2 connection");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let mut body = resp.into_body();
    let first = loop {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    break d;
                }
            }
            other => panic!("the stream ended before its first event: {other:?}"),
        }
    };
    let reader = tokio::spawn(async move {
        let mut text = String::from_utf8_lossy(&first).into_owned();
        let mut error = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        text.push_str(&String::from_utf8_lossy(&d));
                    }
                }
                Err(e) => {
                    error = Some(format!("{e:?}"));
                    break;
                }
            }
        }
        (text, error, Instant::now())
    });

    gw.sigterm();
    let t0 = Instant::now();
    // the drain has started (accepting stopped, GOAWAY sent); the stream still runs
    tokio::time::sleep_until((t0 + delay + Duration::from_millis(300)).into()).await;
    assert!(
        !reader.is_finished(),
        "the stream should still run {:?} after SIGTERM",
        t0.elapsed()
    );
    let second_at = t0.elapsed();
    let second = tokio::time::timeout(Duration::from_secs(3), async {
        send_ready(&mut send).await?;
        send.send_request(request(chat_body("gpt-4o", "after GOAWAY")))
            .await
            .map_err(|e| format!("{e:?}"))
    })
    .await;
    let second = match second {
        Err(_) => "no answer within 3 s".to_string(),
        Ok(Err(e)) => e,
        Ok(Ok(r)) => panic!(
            "a new request on the h2 connection {second_at:?} after SIGTERM (drain started at \
             {delay:?}) was served: {} {:?}",
            r.status(),
            r.headers()
        ),
    };

    let (text, error, stream_end) = reader.await.expect("reader task");
    let connection_closed = || *closed_at.lock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while connection_closed().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let conn_end = connection_closed().unwrap_or_else(|| {
        panic!(
            "the h2 connection was not closed within 5 s of its last stream; stderr:\n{}",
            gw.stderr()
        )
    });
    let (status, exited_at) = exit_of(&mut gw, t0, Duration::from_secs(10)).await;
    eprintln!(
        "h2c: stream done {:?} after SIGTERM (error {error:?}); a new request {second_at:?} after \
         SIGTERM was refused: {second}; the connection was closed {:?} after SIGTERM; \
         exit {status} after {exited_at:?}",
        stream_end - t0,
        conn_end - t0
    );
    assert!(
        error.is_none() && text.contains("data: [DONE]"),
        "the stream in flight at SIGTERM completes: error {error:?}, got:\n{text}"
    );
    assert_eq!(
        text.matches(r#""delta":{"content":"word "}"#).count(),
        DEFAULT_STREAM_CHUNKS,
        "{text}"
    );
    assert!(
        !text.contains("gateway_shutdown"),
        "not cut (well within the grace): {text}"
    );
    assert!(
        conn_end >= stream_end - Duration::from_millis(50),
        "the connection was closed before its stream ended"
    );
    assert!(
        conn_end - stream_end < Duration::from_secs(2),
        "the connection stays open {:?} after its last stream",
        conn_end - stream_end
    );
    assert_eq!(
        mock.hits(),
        1,
        "the request sent after GOAWAY must not reach the upstream"
    );
    assert_exit_0(status, &gw);
    assert!(exited_at < Duration::from_secs(4), "exit {exited_at:?}");
}

/// A TCP stream that notes when it ended: the peer closed it (a read returned EOF
/// or an error) or the client dropped it (h2 closes its side too once a GOAWAY
/// came and its last stream is done, possibly before it reads the peer's EOF).
/// (hyper's h2 client `Connection` future says nothing here: it ends when it stops
/// taking new requests, while the socket stays open for the streams in flight.)
struct WatchedTcp {
    inner: TcpStream,
    closed_at: Arc<Mutex<Option<Instant>>>,
}

impl Drop for WatchedTcp {
    fn drop(&mut self) {
        let mut at = self.closed_at.lock().unwrap();
        at.get_or_insert_with(Instant::now);
    }
}

impl tokio::io::AsyncRead for WatchedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let eof = matches!(&r, Poll::Ready(Ok(())) if buf.filled().len() == before);
        if eof || matches!(&r, Poll::Ready(Err(_))) {
            let mut at = self.closed_at.lock().unwrap();
            at.get_or_insert_with(Instant::now);
        }
        r
    }
}

impl tokio::io::AsyncWrite for WatchedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `SendRequest::ready` as a plain future with the error as text.
async fn send_ready<B>(send: &mut hyper::client::conn::http2::SendRequest<B>) -> Result<(), String>
where
    B: http_body::Body + 'static,
{
    send.ready().await.map_err(|e| format!("{e:?}"))
}

// ------------------------------------------------------------------ 4

/// 4. A slow SSE stream still running when the grace ends: its last event is the
///    `gateway_shutdown` error, it ends there; access log `SD`; exit 0 soon after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_cut_at_end_of_grace() {
    // ~12 events 400 ms apart: ~4.8 s, longer than the 2 s grace
    let mock = slow_mock(400);
    let grace = Duration::from_secs(2);
    let mut gw = start(&mock, grace.as_secs(), 200).await;
    let c = TestClient::new();
    let mut s = c
        .open_sse(
            &chat_url(&gw),
            &chat_stream_body("gpt-4o", "cut me at the grace"),
            &[("x-request-id", "cut-at-grace")],
        )
        .await;
    assert_eq!(s.status, 200);
    let first = s.next_event().await.expect("first event");

    gw.sigterm();
    let t0 = Instant::now();
    let r = s.collect_with(vec![first]).await;
    let ended = t0.elapsed();
    let (status, exited_at) = exit_of(&mut gw, t0, grace + Duration::from_secs(8)).await;
    let last = r.events.last().map(|e| e.data.clone()).unwrap_or_default();
    eprintln!(
        "SSE cut at the grace ({grace:?}): {} events, {} content chunks, ended {ended:?} after \
         SIGTERM (clean end {}, done {}), last event {last}; exit {status} after {exited_at:?}",
        r.events.len(),
        content_chunks(&r.events),
        r.clean_end,
        r.done
    );
    assert_eq!(
        last, CUT_JSON,
        "the last event is the shutdown error; stream:\n{}",
        r.raw
    );
    assert!(
        !r.done,
        "a cut stream has no [DONE] (it is not complete): {}",
        r.raw
    );
    assert!(
        r.clean_end,
        "the cut stream ends after its error event (not a broken transfer): {:?}",
        r.error
    );
    assert!(content_chunks(&r.events) < DEFAULT_STREAM_CHUNKS);
    assert!(
        ended >= grace - Duration::from_millis(250) && ended < grace + Duration::from_millis(1000),
        "cut {ended:?} after SIGTERM, expected at the end of the {grace:?} grace"
    );
    assert_exit_0(status, &gw);
    assert!(
        exited_at < grace + Duration::from_millis(2500),
        "exit {exited_at:?} after SIGTERM (grace {grace:?})"
    );
    let line = gw
        .access_log_lines()
        .into_iter()
        .find(|l| l.request_id == "cut-at-grace")
        .unwrap_or_else(|| panic!("no access-log line:\n{}", gw.access_log_text()));
    assert_eq!(line.response_code, 200, "{line:?}");
    assert_eq!(line.response_flags, "SD", "{line:?}");
    assert_eq!(
        line.ai_log.error.as_deref(),
        Some("gateway_shutdown"),
        "{line:?}"
    );
    assert!(
        line.ai_log.usage_estimated,
        "no usage from the upstream: estimated {line:?}"
    );
}

// ------------------------------------------------------------------ 5

/// 5. A (non-streamed) request whose upstream has not answered when the grace
///    ends: the client does not get a 200 (its connection is closed, at most 2 s
///    after the cut), and the request is logged as ended by the shutdown (503
///    `SD`, `gateway_shutdown`), not as a client that went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_waiting_for_upstream_cut_at_end_of_grace() {
    let mock = MockUpstream::start_default();
    mock.delay_headers(20_000);
    let grace = Duration::from_secs(2);
    let mut gw = start(&mock, grace.as_secs(), 200).await;
    let url = chat_url(&gw);
    let req = tokio::spawn(async move {
        let r = TestClient::new()
            .try_request(
                http::Method::POST,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("x-request-id", "waiting-at-grace"),
                ],
                chat_body("gpt-4o", "the upstream is slow").to_string(),
            )
            .await;
        (r, Instant::now())
    });
    // the request is at the upstream
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the mock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    gw.sigterm();
    let t0 = Instant::now();
    let (r, answered) = req.await.expect("request task");
    let ended = answered - t0;
    let (status, exited_at) = exit_of(&mut gw, t0, grace + Duration::from_secs(8)).await;
    let line = gw
        .access_log_lines()
        .into_iter()
        .find(|l| l.request_id == "waiting-at-grace");
    eprintln!(
        "request waiting for the upstream at the end of the grace ({grace:?}): client got {:?} \
         {ended:?} after SIGTERM; exit {status} after {exited_at:?}; access log: {:?}",
        r.as_ref().map(|r| (r.status, r.text())),
        line.as_ref()
            .map(|l| (l.response_code, &l.response_flags, &l.ai_log.error))
    );
    if let Ok(r) = &r {
        assert_ne!(r.status, 200, "{}", r.text());
    }
    // nothing to send for it: it goes with its connection, closed 2 s after the cut
    assert!(
        ended >= grace - Duration::from_millis(250) && ended < grace + Duration::from_millis(2600),
        "ended {ended:?} after SIGTERM; expected after the {grace:?} grace, and at most 2 s \
         after it (connections get 2 s after the cut)"
    );
    assert_exit_0(status, &gw);
    let line = line.unwrap_or_else(|| panic!("no access-log line:\n{}", gw.access_log_text()));
    assert_eq!(
        (
            line.response_code,
            line.response_flags.as_str(),
            line.ai_log.error.as_deref()
        ),
        (503, "SD", Some("gateway_shutdown")),
        "a request ended by the shutdown is logged as such, not as a client that went away: {line:?}"
    );
}

// ------------------------------------------------------------------ 6

/// 6. A second SIGTERM during the drain cuts the streams at once (the 30 s grace
///    is far away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_cuts_at_once() {
    // ~12 events 400 ms apart: ~4.8 s
    let mock = slow_mock(400);
    let delay = Duration::from_millis(200);
    let mut gw = start(&mock, 30, delay.as_millis() as u64).await;
    let c = TestClient::new();
    let mut s = c
        .open_sse(
            &chat_url(&gw),
            &chat_stream_body("gpt-4o", "cut me at the second signal"),
            &[("x-request-id", "cut-by-second-signal")],
        )
        .await;
    assert_eq!(s.status, 200);
    let mut events = vec![s.next_event().await.expect("first event")];

    gw.sigterm();
    let t0 = Instant::now();
    // the stream goes on after the first signal (through and past the accept delay)
    while t0.elapsed() < delay + Duration::from_millis(500) {
        let ev = s
            .next_event()
            .await
            .unwrap_or_else(|| panic!("the stream ended {:?} after one SIGTERM", t0.elapsed()));
        assert_ne!(ev.data, CUT_JSON, "cut by the first signal");
        events.push(ev);
    }
    let before_second = events.len();
    gw.sigterm();
    let t1 = Instant::now();
    let r = s.collect_with(events).await;
    let ended = t1.elapsed();
    let (status, exited_at) = exit_of(&mut gw, t1, Duration::from_secs(10)).await;
    let last = r.events.last().map(|e| e.data.clone()).unwrap_or_default();
    eprintln!(
        "second SIGTERM {:?} after the first (grace 30 s): {before_second} events before it, the \
         stream ended {ended:?} after it with {last}; exit {status} {exited_at:?} after it",
        t1 - t0
    );
    assert_eq!(last, CUT_JSON, "{}", r.raw);
    assert!(!r.done && r.clean_end, "{r:?}");
    assert!(
        ended < Duration::from_millis(600),
        "the second signal cuts at once, not {ended:?} later"
    );
    assert_exit_0(status, &gw);
    assert!(
        exited_at < Duration::from_millis(2500),
        "exit {exited_at:?} after the second signal"
    );
    let line = gw
        .access_log_lines()
        .into_iter()
        .find(|l| l.request_id == "cut-by-second-signal")
        .unwrap_or_else(|| panic!("no access-log line:\n{}", gw.access_log_text()));
    assert_eq!(line.response_flags, "SD", "{line:?}");
    assert_eq!(line.ai_log.error.as_deref(), Some("gateway_shutdown"));
}

// ------------------------------------------------------------------ 7

/// 7. SIGINT: no accept delay (connections refused at once, with a 3 s delay
///    configured); a stream in flight still completes within the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_skips_accept_delay() {
    // ~12 events 100 ms apart: ~1.2 s
    let mock = slow_mock(100);
    let delay = Duration::from_millis(3000);
    let mut gw = start(&mock, 10, delay.as_millis() as u64).await;
    let c = TestClient::new();
    let mut s = c
        .open_sse(
            &chat_url(&gw),
            &chat_stream_body("gpt-4o", "finish me after SIGINT"),
            &[],
        )
        .await;
    assert_eq!(s.status, 200);
    let first = s.next_event().await.expect("first event");

    gw.sigint();
    let t0 = Instant::now();
    let (_, refused_at) = wait_refused(gw.listen_addr(), t0, Duration::from_secs(2)).await;
    let r = s.collect_with(vec![first]).await;
    let stream_end = t0.elapsed();
    let (status, exited_at) = exit_of(&mut gw, t0, Duration::from_secs(10)).await;
    eprintln!(
        "SIGINT (accept delay {delay:?} configured): connections refused {refused_at:?} after it; \
         stream done {} {stream_end:?} after it; exit {status} after {exited_at:?}",
        r.done
    );
    assert!(
        refused_at < Duration::from_millis(500),
        "SIGINT skips the accept delay: refused only {refused_at:?} after it"
    );
    assert!(r.done && r.clean_end, "the stream completes: {r:?}");
    assert_eq!(content_chunks(&r.events), DEFAULT_STREAM_CHUNKS);
    assert_exit_0(status, &gw);
    assert!(
        exited_at < stream_end + Duration::from_millis(1500),
        "exit {exited_at:?} after SIGINT, the stream ended at {stream_end:?}"
    );
}

// ------------------------------------------------------------------ 8

/// 8. The official `openai` SDK streaming through a gateway whose grace runs out:
///    the SDK raises `APIError` with the `gateway_shutdown` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_raises_on_cut_stream() {
    python();
    let mock = slow_mock(400);
    let grace = Duration::from_secs(2);
    let mut gw = start(&mock, grace.as_secs(), 100).await;
    let base_url = format!("{}/v1", gw.url());
    let mut py = PyScript::spawn("shutdown_stream.py", &["--base-url", &base_url]);
    assert!(
        py.wait_for_stdout("first-chunk", Duration::from_secs(30))
            .await,
        "the script got no first chunk:\nstdout:\n{}\nstderr:\n{}\ngateway stderr:\n{}",
        py.stdout(),
        py.stderr(),
        gw.stderr()
    );
    gw.sigterm();
    let t0 = Instant::now();
    let st = py.wait(Duration::from_secs(30)).await;
    let (out, err) = (py.stdout(), py.stderr());
    let (status, exited_at) = exit_of(&mut gw, t0, grace + Duration::from_secs(8)).await;
    eprintln!("openai SDK through a cut stream: exit {st:?}\n{out}{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        st.is_some_and(|s| s.success()) && last.starts_with("api-error APIError "),
        "the SDK must raise APIError for the cut stream; script exit {st:?}, stdout:\n{out}\nstderr:\n{err}"
    );
    let body: serde_json::Value =
        serde_json::from_str(last.trim_start_matches("api-error APIError ")).expect("error body");
    assert_eq!(body["code"], "gateway_shutdown", "{body}");
    assert_eq!(body["type"], "server_error", "{body}");
    assert_exit_0(status, &gw);
    assert!(exited_at < grace + Duration::from_millis(2500));
}

// ------------------------------------------------------------------ 9

/// Runs `gateway --probe URL`; (exit code, output, how long it took).
async fn probe(url: &str) -> (i32, String, Duration) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let bin = gateway_bin().unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        let out = std::process::Command::new(bin)
            .args(["--probe", &url])
            .env_remove("GATEWAY_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run gateway --probe");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text, t.elapsed())
    })
    .await
    .expect("probe task")
}

/// 9. `gateway --probe URL`, for container health checks without a shell: 0 when
///    the URL answers 2xx within 2 s; 1 for a 503 (a replica shutting down), a
///    refused connection, or a server that never answers. Skipped (with a note)
///    while the binary has no `--probe`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_flag_exit_codes() {
    let help = tokio::task::spawn_blocking(|| {
        let bin = gateway_bin().unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new(bin)
            .arg("--help")
            .output()
            .expect("gateway --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("help task");
    assert!(
        help.contains("--probe"),
        "`gateway --help` lists --probe:\n{help}"
    );
    let mock = MockUpstream::start_default();
    let mut gw = start(&mock, 5, 2000).await;
    let readyz_url = format!("{}/readyz", gw.admin_url());

    let (code, out, took) = probe(&readyz_url).await;
    assert_eq!(code, 0, "probe of a ready gateway: {out}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    gw.sigterm();
    let t0 = Instant::now();
    while readyz(&gw).await != Some(503) {
        assert!(t0.elapsed() < Duration::from_secs(1), "readyz not 503");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (code, out, _) = probe(&readyz_url).await;
    assert_eq!(code, 1, "probe of a replica shutting down (503): {out}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the probe ran within the delay"
    );
    let (status, _) = exit_of(&mut gw, t0, Duration::from_secs(8)).await;
    assert_exit_0(status, &gw);

    let (code, out, took) = probe(&readyz_url).await;
    assert_eq!(code, 1, "probe of a stopped gateway (refused): {out}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // a server that accepts and never answers
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mute_url = format!("http://{}/readyz", mute.local_addr().expect("addr"));
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            held.push(s);
        }
    });
    let (code, out, took) = probe(&mute_url).await;
    holder.abort();
    eprintln!("probe of a mute server: exit {code} after {took:?}: {out}");
    assert_eq!(code, 1, "probe of a server that never answers: {out}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "the probe gives up after 2 s, not {took:?}"
    );
}
