//! Hostile input against a running gateway: request smuggling, 100 MB bodies
//! (declared and chunked), deep JSON, invalid UTF-8, header floods, slowloris on
//! the first and on a later keep-alive request, stalled bodies, path tricks,
//! absolute-form targets and CONNECT, HTTP/2 rapid reset and many idle HTTP/2
//! connections, huge and odd model values.
//!
//! Each scenario asserts the answer it expects, then [`Target::assert_unharmed`]:
//! the same process still runs, a normal chat request is answered 200, RSS stays
//! within 50 MB of its start, and every request the upstream received is a
//! well-formed chat request with a sane model.

use bytes::Bytes;
use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{Config, Provider, Route, Server, Timeouts};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::hostile::{
    chunked, exchange, h2_idle_connections, h2_rapid_reset, request, upload, ByHand, Exchange,
    H2ByHand, H2Conn, RawConn, RawResponse, Tripwire,
};
use gateway_tests::mock_upstream::MockUpstream;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CHAT: &str = "/v1/chat/completions";
/// `server.max_body_bytes` of the test config: room for a 1 MB model name.
const MAX_BODY: u64 = 2 * 1024 * 1024;
/// `server.header_read_timeout_ms`, and the other timeouts where a scenario sets them.
const TIMEOUT: Duration = Duration::from_millis(1000);
const MB: u64 = 1024 * 1024;
/// How much the process may grow over a scenario.
const RSS_SLACK: u64 = 50 * MB;

/// A gateway with one open route to the mock. The provider maps no model, so the
/// upstream sees the client's model exactly as the gateway let it through.
/// `server` is the server part (bodies up to [`MAX_BODY`] and heads within
/// [`TIMEOUT`] are added).
fn config(upstream: &str, server: Server) -> String {
    Config::new()
        .server(
            server
                .admin_token(ADMIN_TOKEN)
                .max_body_bytes(MAX_BODY)
                .header_read_timeout_ms(TIMEOUT.as_millis() as u64),
        )
        .provider(
            Provider::openai("up", upstream)
                .token("sk-upstream-secret")
                .timeouts(Timeouts::all(500, 5000, 5000, 20_000)),
        )
        .route(Route::new("chat", "/v1").upstream("up"))
        .yaml()
}

/// A gateway under attack, the mock upstream behind it, and what it looked like
/// before the attack.
struct Target {
    gw: Gateway,
    mock: MockUpstream,
    pid: u32,
    rss_start: u64,
    /// upstream hits of the warm-up
    hits_start: u64,
}

impl Target {
    async fn start() -> Target {
        Self::start_with(Server::new()).await
    }

    /// Starts the gateway with the server keys of `server`; warms it up with normal
    /// requests before RSS is taken.
    async fn start_with(server: Server) -> Target {
        let mock = MockUpstream::start_default();
        let gw = Gateway::start(&config(&mock.base_url(), server)).await;
        let c = TestClient::new();
        for _ in 0..5 {
            let r = c.post_json(&url(&gw, CHAT), &normal_body()).await;
            assert_eq!(r.status, 200, "warm-up: {}", r.text());
        }
        mock.clear_requests();
        Target {
            hits_start: mock.hits(),
            pid: gw.pid(),
            rss_start: gw.rss_bytes(),
            gw,
            mock,
        }
    }

    fn addr(&self) -> &str {
        self.gw.listen_addr()
    }

    /// Requests the upstream received since the warm-up.
    fn hits(&self) -> u64 {
        self.mock.hits() - self.hits_start
    }

    /// The invariants every scenario ends with: the same process still runs,
    /// answers a normal chat request 200 (from the upstream), RSS within
    /// [`RSS_SLACK`] of its start, and the upstream saw only well-formed chat
    /// requests with a sane model.
    async fn assert_unharmed(&mut self) {
        assert!(
            self.gw.is_running(),
            "the gateway exited; stderr:\n{}",
            self.gw.stderr()
        );
        assert_eq!(self.gw.pid(), self.pid, "the same process");
        let r = TestClient::new()
            .post_json(&url(&self.gw, CHAT), &normal_body())
            .await;
        assert_eq!(r.status, 200, "a normal request afterwards: {}", r.text());
        assert!(
            r.json()["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-mock")),
            "answered by the upstream: {}",
            r.text()
        );
        let rss = self.gw.rss_bytes();
        eprintln!(
            "RSS {} MiB at start, {} MiB now",
            self.rss_start / MB,
            rss / MB
        );
        assert!(
            rss <= self.rss_start + RSS_SLACK,
            "RSS grew from {} to {} bytes",
            self.rss_start,
            rss
        );
        self.assert_upstream_saw_only_sane_requests();
    }

    fn assert_upstream_saw_only_sane_requests(&self) {
        for r in self.mock.requests() {
            let what = format!(
                "upstream request {} {} {:?}",
                r.method,
                r.path_and_query,
                String::from_utf8_lossy(&r.raw_body[..r.raw_body.len().min(300)])
            );
            assert_eq!((r.method.as_str(), r.path()), ("POST", CHAT), "{what}");
            assert!(r.body.is_object(), "not a JSON object: {what}");
            let model = r.body["model"].as_str().unwrap_or_default();
            assert!(sane_model(model), "model {model:?}: {what}");
            assert!(r.body["messages"].is_array(), "no messages: {what}");
            assert!(
                r.non_utf8_headers.is_empty(),
                "header values that are not UTF-8 reached the upstream: {:?}; {what}",
                r.non_utf8_headers
            );
        }
    }
}

fn url(gw: &Gateway, path: &str) -> String {
    format!("{}{path}", gw.url())
}

fn normal_body() -> Value {
    chat_body("gpt-4o", "a normal request")
}

/// What a sane upstream model name is: 1 to 256 bytes, no control characters.
fn sane_model(m: &str) -> bool {
    !m.is_empty() && m.len() <= 256 && !m.chars().any(char::is_control)
}

/// `POST /v1/chat/completions` with `body`; `headers` are raw lines (see
/// [`request`]).
fn post(body: &[u8], headers: &[u8]) -> Vec<u8> {
    request("POST", CHAT.as_bytes(), headers, body)
}

/// [`post`] with `Connection: close`: the exchange ends with its answer (a
/// kept-alive connection would stay open for `idle_timeout_ms`).
fn post_once(body: &[u8], headers: &[u8]) -> Vec<u8> {
    post(body, &[b"Connection: close\r\n", headers].concat())
}

fn chat_bytes(model: &str) -> Vec<u8> {
    chat_body(model, "hi").to_string().into_bytes()
}

/// Asserts one answer with this status and code (`None`: hyper's own, bodiless
/// refusal) and that the gateway closed the connection.
fn assert_refused_and_closed(x: &Exchange, status: u16, code: Option<&str>, what: &str) {
    x.only(what).assert_error(status, code, what);
    assert!(x.ended.is_some(), "{what}: the connection stays open");
}

/// Request smuggling: framing that two parsers could read differently is refused
/// with 400 and the connection closed, so the bytes after it are never read as
/// a request; where the framing is unambiguous in RFC 9112 terms (TE and CL
/// together: TE wins) the one request is served and the connection closed
/// anyway. The upstream never sees the smuggled request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_variants_are_refused_and_the_connection_closed() {
    let mut t = Target::start().await;
    let good = chat_bytes("gpt-4o");
    let smuggled = post(&chat_bytes("smuggled"), b"");
    let then = |mut head: Vec<u8>| {
        head.extend_from_slice(&smuggled);
        head
    };
    let cl = good.len();
    let te = |body: &[u8], headers: &str| then(post(body, headers.as_bytes()));
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "CL.TE: Content-Length and an empty chunked body",
            te(
                b"0\r\n\r\n",
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
            ),
            400,
            Some("invalid_json"),
        ),
        (
            "Transfer-Encoding folded onto the next line (obs-fold)",
            te(
                &good,
                &format!("Transfer-Encoding:\r\n chunked\r\nContent-Length: {cl}\r\n"),
            ),
            400,
            None,
        ),
        (
            "two different Content-Length",
            te(
                &good,
                &format!("Content-Length: {cl}\r\nContent-Length: 5\r\n"),
            ),
            400,
            None,
        ),
        (
            "Content-Length as a list",
            te(&good, &format!("Content-Length: {cl}, {cl}\r\n")),
            400,
            None,
        ),
        (
            "Content-Length with a sign",
            te(&good, &format!("Content-Length: +{cl}\r\n")),
            400,
            None,
        ),
        (
            "Transfer-Encoding: chunked, identity",
            te(
                &chunked(&good, 16),
                "Transfer-Encoding: chunked, identity\r\n",
            ),
            400,
            None,
        ),
        (
            "Transfer-Encoding: identity",
            te(
                &good,
                &format!("Transfer-Encoding: identity\r\nContent-Length: {cl}\r\n"),
            ),
            400,
            None,
        ),
        (
            "Transfer-Encoding twice, chunked not last",
            te(
                &chunked(&good, 16),
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            ),
            400,
            None,
        ),
        (
            "Transfer-Encoding: xchunked",
            te(b"0\r\n\r\n", "Transfer-Encoding: xchunked\r\n"),
            400,
            None,
        ),
        (
            "a space before the colon",
            te(b"0\r\n\r\n", "Transfer-Encoding : chunked\r\n"),
            400,
            None,
        ),
        (
            "a chunk size that overflows 64 bits",
            te(
                b"ffffffffffffffffff1\r\nab\r\n0\r\n\r\n",
                "Transfer-Encoding: chunked\r\n",
            ),
            400,
            Some("body_read_error"),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            then(
                String::from_utf8(post(b"0\r\n\r\n", b"Transfer-Encoding: chunked\r\n"))
                    .unwrap()
                    .replacen("HTTP/1.1", "HTTP/1.0", 1)
                    .into_bytes(),
            ),
            400,
            None,
        ),
    ];
    for (what, bytes, status, code) in cases {
        let before = t.hits();
        let x = exchange(t.addr(), &bytes, Duration::from_secs(5)).await;
        assert_refused_and_closed(&x, status, code, what);
        assert_eq!(t.hits(), before, "{what}: reached the upstream");
    }

    // TE and CL together: TE wins, the connection closes after the answer
    let mut te_cl = post(
        &chunked(&good, 16),
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    );
    te_cl.extend_from_slice(&smuggled);
    let before = t.hits();
    let x = exchange(t.addr(), &te_cl, Duration::from_secs(5)).await;
    let r = x.only("TE.CL");
    assert_eq!(r.status, 200, "TE.CL: the chunked body is the request");
    assert_eq!(r.header("connection"), Some("close"), "TE.CL");
    assert!(x.ended.is_some(), "TE.CL: the connection stays open");
    assert_eq!(t.hits(), before + 1, "TE.CL: one request upstream");

    // a bad request after a good one on a kept-alive connection: the good one is
    // served, the bad one refused, and what follows it never read
    let mut seq = post(&good, b"");
    seq.extend_from_slice(b"GARBAGE\r\n\r\n");
    seq.extend_from_slice(&smuggled);
    let before = t.hits();
    let x = exchange(t.addr(), &seq, Duration::from_secs(5)).await;
    let statuses: Vec<u16> = x.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 400], "good, bad, then nothing");
    assert!(x.ended.is_some(), "closed after the bad request");
    assert_eq!(t.hits(), before + 1, "only the good request upstream");

    assert!(
        t.mock
            .requests()
            .iter()
            .all(|r| r.body["model"] != "smuggled"),
        "a smuggled request reached the upstream"
    );
    t.assert_unharmed().await;
}

/// A declared 100 MB body is refused before any of it is sent (even with
/// `Expect: 100-continue`, no `100 Continue` invites it), and the connection is
/// closed instead of being drained; over HTTP/2 the stream is answered 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_100_mb_body_is_413_before_it_is_sent() {
    let mut t = Target::start().await;
    for headers in [
        "Content-Length: 104857600\r\n",
        "Content-Length: 104857600\r\nExpect: 100-continue\r\n",
    ] {
        let mut c = RawConn::connect(t.addr()).await;
        c.send(&post(b"", headers.as_bytes())).await.unwrap();
        let r = c
            .response(Duration::from_secs(5))
            .await
            .expect("an answer without the body");
        r.assert_error(413, Some("body_too_large"), "declared 100 MB");
        assert!(
            c.ended(Duration::from_secs(3)).await.is_some(),
            "the connection is closed, not drained"
        );
    }
    // over HTTP/2: the HEADERS declare it, one DATA frame of it comes
    let mut h2 = H2Conn::connect(t.addr()).await.unwrap();
    let req = http::Request::post(format!("http://{}{CHAT}", t.addr()))
        .header("content-length", "104857600")
        .body(())
        .unwrap();
    let (status, answer) = h2
        .unfinished_request(req, Bytes::from_static(b"{"))
        .await
        .unwrap();
    let code = serde_json::from_slice::<Value>(&answer).unwrap()["error"]["code"].clone();
    assert_eq!(
        (status, code),
        (413, json!("body_too_large")),
        "h2, declared 100 MB"
    );
    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// 100 MB streamed as chunks (and as a body declared with its real length) is cut
/// once past `max_body_bytes`: 413, the connection closed, the rest never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_100_mb_body_is_cut_past_max_body_bytes() {
    let mut t = Target::start().await;
    let total = 100 * MB;
    let cases = [
        (
            "chunked",
            post(b"", b"Transfer-Encoding: chunked\r\n"),
            true,
        ),
        (
            "declared and sent",
            post(b"", format!("Content-Length: {total}\r\n").as_bytes()),
            false,
        ),
    ];
    for (what, head, is_chunked) in cases {
        let u = upload(t.addr(), &head, total, is_chunked, Duration::from_secs(20)).await;
        eprintln!("{what}: {} bytes written", u.written);
        let r = u.response.expect("an answer");
        r.assert_error(413, Some("body_too_large"), what);
        assert!(!u.completed, "{what}: the gateway read all 100 MB");
        assert!(u.written < total, "{what}: {} bytes written", u.written);
        assert!(u.ended.is_some(), "{what}: the connection stays open");
    }
    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// JSON nested 100,000 deep (arrays or objects) is refused as invalid JSON by
/// the gateway itself: an upstream parser would hit its recursion limit or stack.
/// Reasonable nesting (tool schemas) still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_invalid_json() {
    let mut t = Target::start().await;
    const DEPTH: usize = 100_000;
    let arrays = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"x":{}{}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    let objects = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"hi"}}],"x":{}1{}}}"#,
        r#"{"a":"#.repeat(DEPTH),
        "}".repeat(DEPTH)
    );
    let in_messages = format!(
        r#"{{"model":"gpt-4o","messages":{}{}}}"#,
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    );
    for (what, body) in [
        ("100,000 nested arrays", arrays),
        ("100,000 nested objects", objects),
        ("messages nested 100,000 deep", in_messages),
    ] {
        let x = exchange(
            t.addr(),
            &post_once(body.as_bytes(), b""),
            Duration::from_secs(5),
        )
        .await;
        x.only(what).assert_error(400, Some("invalid_json"), what);
        assert_eq!(t.hits(), 0, "{what}: reached the upstream");
    }
    // a tool schema nested 20 deep is an ordinary request
    let schema = format!(
        "{}{{\"type\":\"string\"}}{}",
        r#"{"type":"object","properties":{"p":"#.repeat(20),
        "}}".repeat(20)
    );
    let mut body = chat_body("gpt-4o", "hi");
    body["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": serde_json::from_str::<Value>(&schema).unwrap()}}]);
    let r = TestClient::new().post_json(&url(&t.gw, CHAT), &body).await;
    assert_eq!(r.status, 200, "nesting 20 deep: {}", r.text());
    t.assert_unharmed().await;
}

/// Bytes that are not UTF-8 anywhere in the JSON body (a value, a key, the
/// model) are invalid JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_the_body_is_invalid_json() {
    let mut t = Target::start().await;
    for (what, body) in [
        (
            "in a message",
            &br#"{"model":"gpt-4o","messages":[{"role":"user","content":"a\xff\xfeb"}]}"#[..],
        ),
        (
            "in a key",
            &br#"{"model":"gpt-4o","\xc3":1,"messages":[]}"#[..],
        ),
        (
            "in the model",
            &br#"{"model":"gpt-\xff","messages":[]}"#[..],
        ),
        (
            "an overlong encoding of '/'",
            &br#"{"model":"gpt-4o","messages":[{"role":"user","content":"\xc0\xaf"}]}"#[..],
        ),
        (
            "a UTF-16 surrogate encoded as UTF-8",
            &br#"{"model":"gpt-4o","messages":[{"role":"user","content":"\xed\xa0\x80"}]}"#[..],
        ),
    ] {
        let x = exchange(t.addr(), &post_once(body, b""), Duration::from_secs(5)).await;
        x.only(what).assert_error(400, Some("invalid_json"), what);
    }
    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// Header values that are not UTF-8 are answered (the request is served) but
/// never reach the upstream as they came, and the client's request id is not
/// echoed back when it is not text. Control characters in a header are refused
/// by the HTTP parser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_headers_never_reaches_the_upstream() {
    let mut t = Target::start().await;
    let body = chat_bytes("gpt-4o");
    for (what, headers) in [
        ("a custom header", &b"X-Custom: a\xff\xfeb\r\n"[..]),
        ("the request id", b"X-Request-Id: \xff\xfe\r\n"),
        ("the host", b"Host: \xff\xfe.example\r\n"),
        (
            "an Authorization header",
            b"Authorization: Bearer \xff\xfe\r\n",
        ),
        ("traceparent", b"traceparent: 00-\xff\xfe-01\r\n"),
        ("X-Forwarded-For", b"X-Forwarded-For: \xff\xfe\r\n"),
        ("the user agent", b"User-Agent: \xc0\xaf\r\n"),
    ] {
        let before = t.hits();
        let x = exchange(t.addr(), &post_once(&body, headers), Duration::from_secs(5)).await;
        let r = x.only(what);
        assert_eq!(r.status, 200, "{what}: {}", r.excerpt());
        let id = r.header("x-request-id").unwrap_or_default();
        assert!(
            !id.is_empty() && !id.contains('\u{fffd}'),
            "{what}: x-request-id {id:?}"
        );
        assert_eq!(t.hits(), before + 1, "{what}");
        let seen = t.mock.last_request().unwrap();
        assert!(
            seen.non_utf8_headers.is_empty(),
            "{what}: reached the upstream as is: {:?}",
            seen.non_utf8_headers
        );
    }
    for (what, headers) in [
        ("a control character", &b"X-Custom: a\x01b\r\n"[..]),
        ("a NUL", b"X-Custom: a\x00b\r\n"),
        ("a name that is not a token", b"X-\xff: a\r\n"),
    ] {
        let before = t.hits();
        let x = exchange(t.addr(), &post(&body, headers), Duration::from_secs(5)).await;
        assert_refused_and_closed(&x, 400, None, what);
        assert_eq!(t.hits(), before, "{what}");
    }
    t.assert_unharmed().await;
}

/// Too many headers, or one huge one, are refused with 431 and the connection
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_are_431() {
    let mut t = Target::start().await;
    let body = chat_bytes("gpt-4o");
    let lines = |n: usize| -> String { (0..n).map(|i| format!("X-Flood-{i}: v\r\n")).collect() };
    for (what, headers) in [
        ("5,000 headers", lines(5000)),
        ("just over 100 headers", lines(100)),
        (
            "one 1 MB header",
            format!("X-Huge: {}\r\n", "a".repeat(1_000_000)),
        ),
    ] {
        let x = exchange(
            t.addr(),
            &post(&body, headers.as_bytes()),
            Duration::from_secs(5),
        )
        .await;
        assert_refused_and_closed(&x, 431, None, what);
    }
    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// Asserts that `c` got a 408 `request_timeout` (`r`, what it read) between
/// `from + TIMEOUT * 0.8` and `from + TIMEOUT + 2 s`.
fn assert_408_in_time(c: &RawConn, r: Option<RawResponse>, from: Instant, what: &str) {
    let r = r.unwrap_or_else(|| match c.state() {
        Some(how) => panic!("{what}: the connection ended ({how:?}) without an answer"),
        None => panic!("{what}: no answer within the wait"),
    });
    r.assert_error(408, Some("request_timeout"), what);
    let took = r.at.duration_since(from);
    assert!(
        took >= TIMEOUT.mul_f32(0.8) && took <= TIMEOUT + Duration::from_secs(2),
        "{what}: 408 after {took:?}, the timeout is {TIMEOUT:?}"
    );
}

/// A head sent a few bytes at a time, never finished within
/// `header_read_timeout_ms`, is answered 408 when that time is up; a connection
/// that sends nothing at all is closed then, without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_first_request_gets_408() {
    let mut t = Target::start().await;
    let mut silent = RawConn::connect(t.addr()).await;
    let silent_at = Instant::now();
    let head = post(b"", format!("X-Slow: {}\r\n", "s".repeat(200)).as_bytes());
    let started = Instant::now();
    let mut c = RawConn::connect(t.addr()).await;
    let r = c
        .trickle(&head, 4, Duration::from_millis(50), Duration::from_secs(5))
        .await;
    assert_408_in_time(&c, r, started, "a head trickled in");
    assert!(c.ended(Duration::from_secs(2)).await.is_some());
    let left =
        (silent_at + TIMEOUT + Duration::from_secs(2)).saturating_duration_since(Instant::now());
    assert!(
        silent.ended(left).await.is_some(),
        "a silent connection stays open"
    );
    assert!(
        silent.response(Duration::ZERO).await.is_none(),
        "{}",
        silent.unread()
    );
    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// The same on a kept-alive connection after a served request: the next head,
/// trickled, gets the same 408 (not a silent close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_a_later_keep_alive_request_gets_408() {
    let mut t = Target::start().await;
    let mut c = RawConn::connect(t.addr()).await;
    c.send(&post(&chat_bytes("gpt-4o"), b"")).await.unwrap();
    let first = c
        .response(Duration::from_secs(5))
        .await
        .expect("first answer");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_ne!(first.header("connection"), Some("close"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let head = post(b"", format!("X-Slow: {}\r\n", "s".repeat(200)).as_bytes());
    let r = c
        .trickle(&head, 4, Duration::from_millis(50), Duration::from_secs(5))
        .await;
    assert_408_in_time(&c, r, first.at, "the second head trickled in");
    assert!(c.ended(Duration::from_secs(2)).await.is_some());
    assert_eq!(t.hits(), 1, "only the first request upstream");
    t.assert_unharmed().await;
}

/// A body that stops coming (HTTP/1 or HTTP/2), or comes a byte at a time, is
/// answered 408 once `body_read_timeout_ms` has passed since the head, and
/// nothing goes upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_trickled_bodies_get_408() {
    let ms = TIMEOUT.as_millis() as u64;
    let mut t = Target::start_with(Server::new().body_read_timeout_ms(ms)).await;
    let body = chat_bytes("gpt-4o");
    let len = format!("Content-Length: {}\r\n", body.len());

    // a declared body of which a tenth arrives
    let mut c = RawConn::connect(t.addr()).await;
    let head = post(b"", len.as_bytes());
    c.send(&head).await.unwrap();
    c.send(&body[..body.len() / 10]).await.unwrap();
    let sent = Instant::now();
    let r = c.response(Duration::from_secs(5)).await;
    assert_408_in_time(&c, r, sent, "stalled body");
    assert!(c.ended(Duration::from_secs(2)).await.is_some());

    // a chunked body whose terminating chunk never comes
    let mut c = RawConn::connect(t.addr()).await;
    let head = post(b"", b"Transfer-Encoding: chunked\r\n");
    c.send(&head).await.unwrap();
    let mut first = chunked(&body, 16);
    first.truncate(20);
    c.send(&first).await.unwrap();
    let sent = Instant::now();
    let r = c.response(Duration::from_secs(5)).await;
    assert_408_in_time(&c, r, sent, "stalled chunks");
    assert!(c.ended(Duration::from_secs(2)).await.is_some());

    // the whole body, a byte every 50 ms: it would take longer than the timeout
    let mut c = RawConn::connect(t.addr()).await;
    c.send(&post(b"", len.as_bytes())).await.unwrap();
    let sent = Instant::now();
    let r = c
        .trickle(&body, 1, Duration::from_millis(50), Duration::from_secs(6))
        .await;
    assert_408_in_time(&c, r, sent, "trickled body");

    // over HTTP/2: a DATA frame with a tenth of the body, then nothing
    let mut h2 = H2Conn::connect(t.addr()).await.unwrap();
    let req = http::Request::post(format!("http://{}{CHAT}", t.addr()))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(())
        .unwrap();
    let sent = Instant::now();
    let (status, answer) = h2
        .unfinished_request(req, Bytes::copy_from_slice(&body[..body.len() / 10]))
        .await
        .unwrap();
    let took = sent.elapsed();
    let code = serde_json::from_slice::<Value>(&answer).unwrap()["error"]["code"].clone();
    assert_eq!(
        (status, code),
        (408, json!("request_timeout")),
        "h2 stalled body"
    );
    assert!(
        took >= TIMEOUT.mul_f32(0.8) && took <= TIMEOUT + Duration::from_secs(2),
        "h2 stalled body: 408 after {took:?}"
    );

    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// Paths that name the chat endpoint only after normalisation are refused: dot
/// segments (also percent-encoded) with 400 `invalid_path`, the rest match no
/// endpoint or no route (404); a head past the 64 KiB read buffer (a 70 KB path) is 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_reach_the_upstream() {
    let mut t = Target::start().await;
    let body = chat_bytes("gpt-4o");
    let long = format!("/v1/{}/chat/completions", "a".repeat(10_000));
    let too_long = format!("/v1/{}/chat/completions", "a".repeat(70_000));
    let cases: Vec<(&str, u16, Option<&str>)> = vec![
        ("/v1/x/../chat/completions", 400, Some("invalid_path")),
        ("/v1/./chat/completions", 400, Some("invalid_path")),
        ("/v1/x/%2e%2e/chat/completions", 400, Some("invalid_path")),
        ("/v1/x/%2E%2e/chat/completions", 400, Some("invalid_path")),
        ("/v1/x/.%2e/chat/completions", 400, Some("invalid_path")),
        ("/x/../v1/chat/completions", 400, Some("invalid_path")),
        ("//v1/chat/completions", 404, Some("no_route")),
        ("/v1//chat/completions", 404, Some("no_route")),
        ("/v1/x/chat/completions", 404, Some("no_route")),
        ("/v1\\chat\\completions", 404, Some("unknown_endpoint")),
        ("/v1/x\\..\\chat/completions", 404, Some("no_route")),
        ("/v1/chat%2fcompletions", 404, Some("unknown_endpoint")),
        ("/v1/chat/completions%00", 404, Some("unknown_endpoint")),
        ("/v1/chat/completions;x=1", 404, Some("unknown_endpoint")),
        // multi-byte characters where a `%2e` could start
        ("/v1/a€/chat/completions", 404, Some("no_route")),
        ("/v1/.€/chat/completions", 404, Some("no_route")),
        ("*", 404, Some("unknown_endpoint")),
        (&long, 404, Some("no_route")),
        (&too_long, 431, None),
    ];
    for (path, status, code) in cases {
        let what = &path[..path.len().min(60)];
        let x = exchange(
            t.addr(),
            &request("POST", path.as_bytes(), b"Connection: close\r\n", &body),
            Duration::from_secs(5),
        )
        .await;
        let r = x.only(what);
        r.assert_error(status, code, what);
        assert!(r.body.len() < 2048, "{what}: the answer is bounded");
    }
    assert_eq!(t.hits(), 0);
    t.assert_unharmed().await;
}

/// A proxy-style absolute-form target naming another host is served by the
/// configured upstream (its path only is used), and CONNECT opens no tunnel:
/// it is answered 404 and the bytes after it are read as the next request.
/// Nothing connects to the host the client named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_and_connect_go_nowhere_but_the_configured_upstream() {
    let mut t = Target::start().await;
    let evil = Tripwire::start().await;
    let body = chat_bytes("gpt-4o");
    for target in [
        format!("http://{}{CHAT}", evil.addr()),
        format!("https://{}{CHAT}", evil.addr()),
        format!("http://evil.example{CHAT}"),
    ] {
        let before = t.hits();
        let x = exchange(
            t.addr(),
            &request("POST", target.as_bytes(), b"Connection: close\r\n", &body),
            Duration::from_secs(5),
        )
        .await;
        let r = x.only(&target);
        assert_eq!(r.status, 200, "{target}: {}", r.excerpt());
        assert_eq!(t.hits(), before + 1, "{target}");
        let seen = t.mock.last_request().unwrap();
        assert_eq!(seen.path(), CHAT, "{target}");
        assert_eq!(
            seen.header("host"),
            Some(t.mock.addr().to_string().as_str()),
            "{target}: the upstream's own host"
        );
    }

    let mut connect =
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", evil.addr()).into_bytes();
    connect.extend_from_slice(
        b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
    );
    let before = t.hits();
    let x = exchange(t.addr(), &connect, Duration::from_secs(5)).await;
    let statuses: Vec<u16> = x.responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [404, 200],
        "CONNECT refused, then the next request"
    );
    x.responses[0].assert_error(404, Some("unknown_endpoint"), "CONNECT");
    assert_eq!(x.responses[1].text(), r#"{"data":[],"object":"list"}"#);
    assert_eq!(t.hits(), before);

    // the same over HTTP/2: :authority names the other host, CONNECT has no path
    let mut h2 = H2Conn::connect(t.addr()).await.unwrap();
    let before = t.hits();
    let to_evil = http::Request::post(format!("http://{}{CHAT}", evil.addr()))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (status, answer) = h2.request(to_evil, body.clone().into()).await.unwrap();
    assert_eq!(status, 200, "h2 :authority {}: {answer:?}", evil.addr());
    assert_eq!(t.hits(), before + 1);
    let connect = http::Request::connect(evil.addr()).body(()).unwrap();
    let (status, answer) = h2.request(connect, Bytes::new()).await.unwrap();
    let code = serde_json::from_slice::<Value>(&answer).unwrap()["error"]["code"].clone();
    assert_eq!(
        (status, code),
        (404, json!("unknown_endpoint")),
        "h2 CONNECT"
    );
    assert_eq!(t.hits(), before + 1);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        evil.connections(),
        0,
        "the gateway connected to the client's host"
    );
    t.assert_unharmed().await;
}

/// Thousands of HTTP/2 streams opened and reset at once (rapid reset) do not
/// stop the gateway from serving others while it lasts; the server may end a
/// flooding connection (GOAWAY, close), so the flood goes on over new ones
/// until 5,000 streams were reset. Reset streams never reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_leaves_the_gateway_serving_others() {
    let mut t = Target::start().await;
    const STREAMS: usize = 5000;
    let addr = t.addr().to_string();
    let flood = tokio::spawn(async move {
        let (mut reset, mut conns, mut stops) = (0, 0, Vec::new());
        while reset < STREAMS {
            let r = h2_rapid_reset(&addr, CHAT, STREAMS - reset).await;
            reset += r.reset;
            conns += 1;
            stops.extend(r.stopped_by);
            assert!(r.reset > 0, "a new connection takes no stream: {stops:?}");
        }
        (reset, conns, stops)
    });
    let chat = url(&t.gw, CHAT);
    let mut served = 0u64;
    let client = TestClient::h2c();
    while !flood.is_finished() || served < 5 {
        let r = client.post_json(&chat, &normal_body()).await;
        assert_eq!(r.status, 200, "during the flood: {}", r.text());
        served += 1;
    }
    let (reset, conns, stops) = flood.await.unwrap();
    eprintln!(
        "rapid reset: {reset} streams reset over {conns} connections, ended by {:?}; \
         {served} normal requests served meanwhile",
        stops.first()
    );
    assert_eq!(
        t.hits(),
        served,
        "only the normal requests reached the upstream"
    );
    t.assert_unharmed().await;
}

/// Five hundred HTTP/2 connections that open no stream are closed once
/// `idle_timeout_ms` has passed (not before), and the gateway serves others
/// meanwhile. So are connections made by hand that ignore GOAWAY and answer
/// nothing, or answer pings, or stop in the middle of a header block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_after_the_idle_timeout() {
    let ms = TIMEOUT.as_millis() as u64;
    let mut t = Target::start_with(Server::new().idle_timeout_ms(ms)).await;
    const CONNS: usize = 500;
    let by_hand_at = Instant::now();
    let mut by_hand = Vec::new();
    for how in [
        ByHand::Silent,
        ByHand::AnswersPings,
        ByHand::UnfinishedHeaders,
    ] {
        by_hand.push((how, H2ByHand::open(t.addr(), how).await));
    }
    let mut conns = h2_idle_connections(t.addr(), CONNS, 50).await;
    let r = TestClient::new()
        .post_json(&url(&t.gw, CHAT), &normal_body())
        .await;
    assert_eq!(r.status, 200, "with {CONNS} idle connections open");
    for (i, c) in conns.iter_mut().enumerate() {
        let left =
            (c.opened + TIMEOUT + Duration::from_secs(3)).saturating_duration_since(Instant::now());
        let ended = c.ended(left).await;
        assert!(ended.is_some(), "idle connection {i} is still open");
        let lived = c.lifetime().unwrap();
        assert!(
            lived >= TIMEOUT.mul_f32(0.8),
            "idle connection {i} closed after {lived:?} ({ended:?})"
        );
    }
    for (how, c) in &mut by_hand {
        let left = (by_hand_at + TIMEOUT + Duration::from_secs(3))
            .saturating_duration_since(Instant::now());
        let Some(ended) = c.ended(left).await else {
            panic!(
                "HTTP/2 by hand, {how:?}: still open after {:?}",
                by_hand_at.elapsed()
            );
        };
        let lived = ended.duration_since(by_hand_at);
        assert!(
            lived >= TIMEOUT.mul_f32(0.8),
            "HTTP/2 by hand, {how:?}: closed after {lived:?}"
        );
    }
    t.assert_unharmed().await;
}

/// Model values that are not a sane model name are refused before anything goes
/// upstream: huge (1 MB) or over 256 bytes, empty or absent, not a string,
/// control characters. Unicode names are fine and reach the upstream unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_odd_model_values_are_refused() {
    let mut t = Target::start().await;
    let with_model = |m: &str| {
        format!(r#"{{"model":{m},"messages":[{{"role":"user","content":"hi"}}]}}"#).into_bytes()
    };
    let huge = format!("\"{}\"", "m".repeat(1_000_000));
    let over = format!("\"{}\"", "m".repeat(257));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("1 MB", with_model(&huge), "invalid_model"),
        ("257 bytes", with_model(&over), "invalid_model"),
        ("empty", with_model(r#""""#), "missing_model"),
        ("absent", br#"{"messages":[]}"#.to_vec(), "missing_model"),
        ("null", with_model("null"), "invalid_model"),
        ("a number", with_model("5"), "invalid_model"),
        (
            "an object",
            with_model(r#"{"name":"gpt-4o"}"#),
            "invalid_model",
        ),
        ("an array", with_model(r#"["gpt-4o"]"#), "invalid_model"),
        ("a boolean", with_model("true"), "invalid_model"),
        (
            "a lone surrogate",
            with_model(r#""gpt-\ud800""#),
            "invalid_model",
        ),
        ("a NUL", with_model(r#""gpt-4o\u0000""#), "invalid_model"),
        (
            "CR LF",
            with_model(r#""gpt-4o\r\nX-Injected: 1""#),
            "invalid_model",
        ),
        (
            "an ANSI escape",
            with_model(r#""\u001b[31mgpt-4o""#),
            "invalid_model",
        ),
        ("DEL", with_model(r#""gpt-4o\u007f""#), "invalid_model"),
        (
            "a C1 control",
            with_model(r#""gpt-4o\u0085""#),
            "invalid_model",
        ),
    ];
    for (what, body, code) in cases {
        let x = exchange(t.addr(), &post_once(&body, b""), Duration::from_secs(5)).await;
        let r = x.only(what);
        r.assert_error(400, Some(code), what);
        assert!(r.body.len() < 1024, "{what}: the name is not echoed");
        assert_eq!(t.hits(), 0, "{what}: reached the upstream");
    }
    for model in ["gpt-4o-ünï😀", "模型", &"m".repeat(256)] {
        let r = TestClient::new()
            .post_json(&url(&t.gw, CHAT), &chat_body(model, "hi"))
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(t.mock.last_request().unwrap().body["model"], model);
    }
    t.assert_unharmed().await;
}
