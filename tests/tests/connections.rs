//! What a client can hold of the gateway's resources, and for how long: request
//! bodies (read only after the key is checked, within one budget for all),
//! connections (a limit, idle ones closed, a later stalled head answered 408),
//! and answers whose client stops reading (cut by their deadline or the write
//! timeout, settled and logged, the upstream let go).

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{Config, Consumer, Provider, Route, Server, Tenant, Timeouts};
use gateway_tests::harness::Gateway;
use gateway_tests::hostile::{request, status_line, H2Conn, RawConn};
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::{MockOptions, MockUpstream};
use std::time::{Duration, Instant};

/// A route that needs a key (consumer `acme/app` has the one in [`AUTH`]) to
/// `mock`, request heads within 500 ms; `server` and `timeouts` add the
/// server's and the provider's keys of the test.
async fn start(mock: &MockUpstream, server: Server, timeouts: Timeouts) -> Gateway {
    let config = Config::new()
        .server(server.header_read_timeout_ms(500))
        .provider(Provider::openai("up", &mock.base_url()).timeouts(timeouts))
        .route(Route::new("chat", "/v1").keyed().upstream("up"))
        .tenant(Tenant::new("acme").consumer(Consumer::new("app").key("sk-conn-test-0123456789")))
        .access_log();
    Gateway::start(&config.yaml()).await
}

/// Provider timeouts: first byte, idle and total (ms).
fn timeouts(first_byte_ms: u64, idle_ms: u64, total_ms: u64) -> Timeouts {
    Timeouts {
        first_byte_ms: Some(first_byte_ms),
        idle_ms: Some(idle_ms),
        total_ms: Some(total_ms),
        ..Timeouts::default()
    }
}

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const AUTH: &str = "Authorization: Bearer sk-conn-test-0123456789";
/// [`AUTH`]'s value.
const BEARER: &str = "Bearer sk-conn-test-0123456789";

/// A JSON POST to the chat endpoint with `headers` (`Name: value`), announcing
/// `length` bytes when given (else the body's own length).
fn post(headers: &[&str], body: &str, length: Option<usize>) -> Vec<u8> {
    let mut head = String::from("Content-Type: application/json\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if let Some(n) = length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    request(
        "POST",
        b"/v1/chat/completions",
        head.as_bytes(),
        body.as_bytes(),
    )
}

/// 2a. A client without a key cannot make the gateway wait for (and buffer) a
///     body: when every route its request can take needs a key, the key is
///     checked as soon as the head is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_no_body_read() {
    let mock = MockUpstream::start_default();
    let gw = start(
        &mock,
        Server::new().max_body_bytes(16_777_216),
        Timeouts::default(),
    )
    .await;
    for auth in [None, Some("Authorization: Bearer sk-wrong-key")] {
        let mut c = RawConn::connect(gw.listen_addr()).await;
        let headers: Vec<&str> = auth.into_iter().collect();
        // ten megabytes announced, none sent
        let _ = c.send(&post(&headers, "", Some(10 << 20))).await;
        let t = Instant::now();
        assert!(
            c.status(Duration::from_secs(3)).await.is_some(),
            "no answer while the body is awaited: {}",
            c.unread()
        );
        assert_eq!(status_line(c.received()), Some(401), "{}", c.unread());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    assert_eq!(mock.hits(), 0);
}

/// 2b. Bodies being received share one budget: past it a request is refused
///     at once with 503 `overloaded` and `Retry-After`, and the budget is back
///     once the requests holding it are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_bodies_share_one_budget() {
    let mock = MockUpstream::start_default();
    let server = Server::new()
        .max_body_bytes(1_048_576)
        .max_buffered_body_bytes(1_500_000);
    let gw = start(&mock, server, Timeouts::default()).await;
    let padded = |n: usize| {
        let pad = "x".repeat(n - BODY.len() - 12);
        format!(r#"{{"pad":"{pad}",{}"#, &BODY[1..])
    };
    let big = padded(1_000_000);
    // one upload in progress holds a million bytes
    let mut slow = RawConn::connect(gw.listen_addr()).await;
    let req = post(&[AUTH], &big, None);
    let _ = slow.send(&req[..req.len() - 1000]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    let refused = c
        .post_raw(&url, padded(600_000), &[("authorization", BEARER)])
        .await;
    refused.assert_openai_error(503, "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));

    // the first one finishes: the budget is free again
    let _ = slow.send(&req[req.len() - 1000..]).await;
    assert!(slow.status(Duration::from_secs(5)).await.is_some());
    assert_eq!(status_line(slow.received()), Some(200), "{}", slow.unread());
    let again = c
        .post_raw(&url, padded(600_000), &[("authorization", BEARER)])
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
}

/// The `SETTINGS_MAX_CONCURRENT_STREAMS` a server announces to an HTTP/2
/// client (prior knowledge), if any.
async fn h2_max_streams(addr: &str) -> Option<u32> {
    let mut c = RawConn::connect(addr).await;
    let _ = c
        .send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await;
    c.read_until(Duration::from_secs(2), |g| {
        g.len() >= 9 && g.len() >= 9 + usize::from(u16::from_be_bytes([g[1], g[2]]))
    })
    .await;
    let g = c.received();
    // the server's first frame is its SETTINGS: 6-byte entries after the header
    assert_eq!(g.get(3), Some(&4), "a SETTINGS frame first: {g:?}");
    let len = usize::from(u16::from_be_bytes([g[1], g[2]]));
    g[9..9 + len].chunks(6).find_map(|e| {
        (u16::from_be_bytes([e[0], e[1]]) == 3)
            .then(|| u32::from_be_bytes([e[2], e[3], e[4], e[5]]))
    })
}

/// 2c. An HTTP/2 connection may have a modest number of streams open at once
///     (100 by default, `http2_max_concurrent_streams`), not 1024.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_per_connection_are_bounded() {
    let mock = MockUpstream::start_default();
    let gw = start(&mock, Server::new(), Timeouts::default()).await;
    assert_eq!(h2_max_streams(gw.listen_addr()).await, Some(100));
    let gw = start(
        &mock,
        Server::new().http2_max_concurrent_streams(7),
        Timeouts::default(),
    )
    .await;
    assert_eq!(h2_max_streams(gw.listen_addr()).await, Some(7));
}

/// 3a. At most `max_connections` connections are served at once; one more
///     waits in the listen backlog and is served when another closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait() {
    let mock = MockUpstream::start_default();
    let gw = start(
        &mock,
        Server::new().max_connections(2).idle_timeout_ms(30_000),
        Timeouts::default(),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = RawConn::connect(gw.listen_addr()).await;
        let _ = c.send(&post(&[AUTH], BODY, None)).await;
        assert_eq!(c.status(Duration::from_secs(3)).await, Some(200));
        held.push(c); // kept alive
    }
    let mut third = RawConn::connect(gw.listen_addr()).await;
    let _ = third
        .send(&post(&[AUTH, "Connection: close"], BODY, None))
        .await;
    assert!(
        !third
            .read_until(Duration::from_millis(700), |g| !g.is_empty())
            .await,
        "a third connection is not served while two are open"
    );
    drop(held.pop());
    assert!(
        third.status(Duration::from_secs(3)).await.is_some(),
        "served once a slot is free"
    );
    assert_eq!(
        status_line(third.received()),
        Some(200),
        "{}",
        third.unread()
    );
}

/// 3b. An idle keep-alive connection is closed after `idle_timeout_ms`; an
///     HTTP/2 connection with no stream gets GOAWAY (then closes once the
///     client has answered its PING).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let mock = MockUpstream::start_default();
    let gw = start(
        &mock,
        Server::new().idle_timeout_ms(600),
        Timeouts::default(),
    )
    .await;
    let mut h1 = RawConn::connect(gw.listen_addr()).await;
    let _ = h1.send(&post(&[AUTH], BODY, None)).await;
    assert_eq!(h1.status(Duration::from_secs(3)).await, Some(200));
    let t = Instant::now();
    assert!(
        h1.ended(Duration::from_secs(3)).await.is_some(),
        "idle HTTP/1 stays open"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    let mut h2 = RawConn::connect(gw.listen_addr()).await;
    let _ = h2
        .send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await;
    let t = Instant::now();
    assert!(
        h2.read_until(Duration::from_secs(3), |g| frame_types(g).contains(&7))
            .await,
        "no GOAWAY on an idle HTTP/2 connection: {:?}",
        frame_types(h2.received())
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

/// The types of the complete HTTP/2 frames in `g` (after the server's
/// preface-less start: servers send frames only).
fn frame_types(g: &[u8]) -> Vec<u8> {
    let mut at = 0;
    let mut types = Vec::new();
    while at + 9 <= g.len() {
        let len =
            (usize::from(g[at]) << 16) | usize::from(u16::from_be_bytes([g[at + 1], g[at + 2]]));
        types.push(g[at + 3]);
        at += 9 + len;
    }
    types
}

/// 3c. A later request on a kept-alive connection whose head stalls gets the
///     same 408 as a first one; a body that does not arrive in time gets 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_and_bodies_get_408() {
    let mock = MockUpstream::start_default();
    let gw = start(
        &mock,
        Server::new().body_read_timeout_ms(700),
        Timeouts::default(),
    )
    .await;
    let mut c = RawConn::connect(gw.listen_addr()).await;
    let _ = c.send(&post(&[AUTH], BODY, None)).await;
    // (the first answer, whole)
    assert_eq!(
        c.response(Duration::from_secs(3)).await.map(|r| r.status),
        Some(200)
    );
    let _ = c
        .send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Le")
        .await;
    let t = Instant::now();
    assert!(
        c.status(Duration::from_secs(3)).await.is_some(),
        "the stalled head got no answer: closed={}",
        c.state().is_some()
    );
    assert_eq!(status_line(c.received()), Some(408), "{}", c.unread());
    assert!(c.unread().contains("request_timeout"), "{}", c.unread());
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(c.ended(Duration::from_secs(2)).await.is_some());

    let mut c = RawConn::connect(gw.listen_addr()).await;
    let req = post(&[AUTH], BODY, None);
    let _ = c.send(&req[..req.len() - 10]).await;
    assert!(c.status(Duration::from_secs(3)).await.is_some());
    assert_eq!(status_line(c.received()), Some(408), "{}", c.unread());
    assert_eq!(mock.hits(), 1, "only the complete request went upstream");
}

/// A mock upstream whose streams are long: `chunks` events of 8 KB (the mock
/// builds the list up front), one every `every_ms`: more than the sockets'
/// buffers hold (about 2 MB on loopback) within a second.
fn long_streams(chunks: usize, every_ms: u64) -> MockUpstream {
    MockUpstream::start(MockOptions {
        stream_chunks: chunks,
        chunk_delay_ms: every_ms,
        chunk_pad: 8 * 1024,
        ..MockOptions::default()
    })
}

/// Opens `n` streamed chat requests that read nothing after the status line
/// (with small receive buffers: the gateway's writes to them stall soon).
async fn stalled_readers(gw: &Gateway, n: usize) -> Vec<RawConn> {
    let body =
        r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a long story"}]}"#;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = RawConn::connect_small(gw.listen_addr(), 4096).await;
        let _ = c.send(&post(&[AUTH], body, None)).await;
        conns.push(c);
    }
    for c in &mut conns {
        assert!(
            c.status(Duration::from_secs(10)).await.is_some(),
            "{}",
            c.unread()
        );
        assert_eq!(status_line(c.received()), Some(200), "{}", c.unread());
    }
    conns
}

/// 16a. A hundred clients open a long stream and stop reading: `total_ms` ends
///      every one whatever the clients do; the upstream requests are let go,
///      each is settled and logged, the memory they held is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_are_cut_by_the_deadline() {
    // 20 s of events, 1.6 MB/s each
    let mock = long_streams(4_000, 5);
    let gw = start(
        &mock,
        Server::new().client_write_timeout_ms(600_000),
        timeouts(3000, 2000, 4000),
    )
    .await;
    let rss_start = gw.rss_bytes();
    let t = Instant::now();
    let conns = stalled_readers(&gw, 100).await;
    let in_flight = ("gateway_upstream_in_flight", [("provider", "up")]);
    eprintln!(
        "100 stalled: in flight {:?}, RSS {} -> {} KiB",
        Scrape::of(&gw).await.value(in_flight.0, &in_flight.1),
        rss_start / 1024,
        gw.rss_bytes() / 1024
    );
    let lines = gw.wait_for_log_lines(100, Duration::from_secs(15)).await;
    eprintln!("all 100 recorded after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    for l in &lines {
        assert_eq!(l.response_code, 200);
        assert_eq!(l.response_flags, "UT", "{l:?}");
        assert_eq!(l.ai_log.error.as_deref(), Some("upstream_total_timeout"));
        assert!(
            l.ai_log.usage_estimated && l.ai_log.output_token > 0,
            "{l:?}"
        );
    }
    assert_eq!(Scrape::of(&gw).await.get(in_flight.0, &in_flight.1), 0.0);
    // their connections are closed (what was queued for them is dropped)
    for mut c in conns {
        assert!(c.ended(Duration::from_secs(2)).await.is_some());
    }
    // the memory they held is free: the allocator gives it back to the OS as
    // the process keeps serving (a freed page is purged a second later, by the
    // thread that owns it, next time that thread works)
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    for round in 0..3 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        for _ in 0..50 {
            let r = c.post_raw(&url, BODY, &[("authorization", BEARER)]).await;
            assert_eq!(r.status, 200);
        }
    }
    let rss_end = gw.rss_bytes();
    eprintln!(
        "RSS {} KiB at the start, {} KiB at the end",
        rss_start / 1024,
        rss_end / 1024
    );
    assert!(
        rss_end < rss_start + 20 * 1024 * 1024,
        "RSS {rss_start} -> {rss_end}"
    );
}

/// 16b. A client that accepts no bytes for `client_write_timeout_ms` is cut
///      before the deadline, over HTTP/1 and HTTP/2 alike: settled, logged `DC`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_cut() {
    // as fast as they go
    let mock = long_streams(100_000, 0);
    let gw = start(
        &mock,
        Server::new().client_write_timeout_ms(1000),
        timeouts(5000, 5000, 60_000),
    )
    .await;
    let t = Instant::now();
    let _h1 = stalled_readers(&gw, 3).await;
    // HTTP/2: the stream is opened and its body never read
    let h2 = TestClient::h2c();
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut body = chat_body("gpt-4o", "a long story");
    body["stream"] = true.into();
    let _open = h2.open_sse(&url, &body, &[("authorization", BEARER)]).await;
    let lines = gw.wait_for_log_lines(4, Duration::from_secs(8)).await;
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    for l in &lines {
        assert_eq!(l.response_flags, "DC", "{l:?}");
        assert_eq!(l.ai_log.error.as_deref(), Some("client_disconnected"));
    }
    assert_eq!(lines.iter().filter(|l| l.protocol == "HTTP/2.0").count(), 1);
    assert_eq!(
        Scrape::of(&gw)
            .await
            .get("gateway_upstream_in_flight", &[("provider", "up")]),
        0.0
    );
}

/// 16c. HTTP/2: an answer cut because its client stopped reading no longer
///      counts as in flight, although the server's HTTP/2 layer still holds its
///      stream: the connection goes idle and is closed like any idle one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_left_with_a_cut_answer_is_closed_when_idle() {
    let mock = long_streams(100_000, 0);
    let gw = start(
        &mock,
        Server::new()
            .client_write_timeout_ms(1000)
            .idle_timeout_ms(1000),
        timeouts(5000, 5000, 60_000),
    )
    .await;
    let mut conn = H2Conn::connect(gw.listen_addr()).await.unwrap();
    let req = http::Request::post(format!("http://{}/v1/chat/completions", gw.listen_addr()))
        .header("authorization", BEARER)
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let mut send = conn.send.clone().ready().await.unwrap();
    let body =
        r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a long story"}]}"#;
    let (resp, mut stream) = send.send_request(req, false).unwrap();
    stream.send_data(bytes::Bytes::from(body), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    // the answer is never read: its window fills and stays full
    let _unread = resp.into_body();
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert_eq!(line.response_flags, "DC", "{line:?}");
    let t = Instant::now();
    assert!(
        conn.ended(Duration::from_secs(5)).await.is_some(),
        "the connection is still open 5 s after its only answer was cut"
    );
    eprintln!("closed {:?} after the answer was cut", t.elapsed());
}
