//! Health of the Vertex AI and Bedrock providers (issue 22), one gateway on the
//! memory state per test, against the mocks:
//!
//! * active: `checks.active.generate.model` probes with a one-token generation
//!   in the provider's own API and credentials (Vertex: `:generateContent` or,
//!   for a Claude model, `:rawPredict`, with the Bearer token of its service
//!   account, `maxOutputTokens: 1` / `max_tokens: 1`; Bedrock: `/converse`,
//!   SigV4-signed with the session token, `maxTokens: 1`); the provider is
//!   ejected (`source: active`) after `unhealthy.failures` failed probes while
//!   the mock answers 500, its traffic goes to the route's other provider, and
//!   it is back after a good probe;
//! * passive: a Bedrock provider whose answers are 500s is ejected after
//!   `passive.failures` of them (`source: passive`) and the route's traffic goes
//!   straight to the other provider.

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{AwsAuth, Config, Fallback, GcpAuth, Provider, Route, Server};
use gateway_tests::harness::{health_row, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::counter;
use gateway_tests::mock_upstream::{
    MockUpstream, RecordedRequest, AWS_TEST_ACCESS_KEY_ID, AWS_TEST_REGION, AWS_TEST_SESSION_TOKEN,
    GCP_TEST_PROJECT, VERTEX_ANTHROPIC_VERSION,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const GEMINI_MODEL: &str = "gemini-2.5-flash";
const CLAUDE_ON_VERTEX: &str = "claude-sonnet-4@20250514";
const BEDROCK_MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
/// `checks.active.interval_s` of every test.
const INTERVAL: Duration = Duration::from_secs(1);
/// Failed probes that eject (`unhealthy.failures`).
const FAILURES: u32 = 2;

/// `checks.active`: a generation of `model` every [`INTERVAL`], out after
/// [`FAILURES`] 5xx answers, back after one 200.
fn generate_probe(model: &str) -> Value {
    json!({ "active": {
        "generate": { "model": model },
        "interval_s": INTERVAL.as_secs(),
        "timeout_ms": 800,
        "healthy": { "successes": 1, "http_statuses": [200] },
        "unhealthy": { "failures": FAILURES, "http_statuses": [500, 502, 503, 504] },
    }})
}

fn vertex(id: &str, mock: &MockUpstream, model: &str) -> Provider {
    Provider::vertex(id, &mock.vertex_base_url(), GCP_TEST_PROJECT, "us-central1")
        .gcp(GcpAuth::test_account(&mock.token_url()))
        .map("*", model)
}

fn bedrock(id: &str, mock: &MockUpstream) -> Provider {
    Provider::bedrock(id, &mock.bedrock_base_url(), AWS_TEST_REGION)
        .aws(AwsAuth::test().session_token(AWS_TEST_SESSION_TOKEN))
        .map("*", BEDROCK_MODEL)
}

/// An OpenAI-compatible provider `spare` at `mock`.
fn spare(mock: &MockUpstream) -> Provider {
    Provider::openai("spare", &mock.base_url()).token("sk-spare-provider")
}

/// `providers`, and the route `chat` on `/v1` to `primary` first and `spare`
/// after it (priorities), steering around unhealthy instances and falling
/// back on 5xx.
fn config(providers: Vec<Provider>, primary: &str) -> String {
    let route = Route::new("chat", "/v1")
        .upstream_priority(primary, 0)
        .upstream_priority("spare", 1)
        .fallback(Fallback::on(&["unhealthy", "http_5xx"], 1));
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .route(route)
        .access_log();
    for p in providers {
        config = config.provider(p);
    }
    config.yaml()
}

// ------------------------------------------------------------------ observing

/// A probe: the one-word generation (`ping`), whatever the API.
fn is_probe(r: &RecordedRequest) -> bool {
    r.body.to_string().contains("\"ping\"")
}

/// The probes `mock` received.
fn probes(mock: &MockUpstream) -> Vec<RecordedRequest> {
    mock.requests().into_iter().filter(is_probe).collect()
}

/// The generations `mock` received that were not probes.
fn traffic(mock: &MockUpstream) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.path() != "/token" && !is_probe(r))
        .count()
}

/// The first probe `mock` receives (waiting up to two intervals).
async fn first_probe(mock: &MockUpstream) -> RecordedRequest {
    let deadline = Instant::now() + INTERVAL * 2;
    loop {
        if let Some(p) = probes(mock).into_iter().next() {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no probe within {:?}: {:?}",
            INTERVAL * 2,
            mock.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the provider's row until `ok` holds; the row. Panics after `within`.
async fn wait_row(
    c: &TestClient,
    gw: &Gateway,
    provider: &str,
    within: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let row = health_row(c, gw, provider).await;
        if ok(&row) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {row}\nstderr:\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `n` chats; each must be answered 200.
async fn chats_ok(c: &TestClient, gw: &Gateway, n: usize, what: &str) {
    for i in 0..n {
        let r = c
            .post_json(
                &format!("{}/v1/chat/completions", gw.url()),
                &chat_body("gpt-4o", "are you there?"),
            )
            .await;
        assert_eq!(r.status, 200, "{what}: request {i}: {}", r.text());
    }
}

/// With `primary` probed at `up`: traffic goes to it while its probes pass; it
/// is ejected by failing probes (`up` answering 500) and its traffic goes to
/// `spare`; it is back after a good probe, its traffic with it. One ejection,
/// one recovery.
async fn ejected_by_probes_and_back(
    gw: &Gateway,
    up: &MockUpstream,
    spare: &MockUpstream,
    primary: &str,
) {
    let c = TestClient::new();
    chats_ok(&c, gw, 3, "healthy").await;
    assert_eq!((traffic(up), spare.hits()), (3, 0), "all to {primary}");

    up.fail_with(500);
    let t = Instant::now();
    let row = wait_row(
        &c,
        gw,
        primary,
        INTERVAL * (FAILURES + 2),
        "ejected by its probes",
        |r| r["healthy"] == false && r["source"] == "active",
    )
    .await;
    eprintln!(
        "{primary} ejected {:?} after the upstream began to fail",
        t.elapsed()
    );
    assert_eq!(row["active"], true, "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{row}"
    );
    assert!(counter(gw, "gateway_health_probe_failures_total").await >= u64::from(FAILURES));
    chats_ok(&c, gw, 3, "ejected").await;
    assert_eq!(
        (traffic(up), spare.hits()),
        (3, 3),
        "the ejected {primary} got no traffic"
    );

    up.set_normal();
    let t = Instant::now();
    wait_row(
        &c,
        gw,
        primary,
        INTERVAL * 3,
        "back after a good probe",
        |r| r["healthy"] == true && r["ejected_until"].is_null(),
    )
    .await;
    eprintln!(
        "{primary} back {:?} after the upstream recovered",
        t.elapsed()
    );
    chats_ok(&c, gw, 3, "back").await;
    assert_eq!(
        (traffic(up), spare.hits()),
        (6, 3),
        "all to {primary} again"
    );
    assert_eq!(
        (
            counter(gw, "gateway_upstream_ejections_total").await,
            counter(gw, "gateway_upstream_recoveries_total").await
        ),
        (1, 1),
        "(ejections, recoveries)"
    );
}

// ------------------------------------------------------------------ tests

/// Vertex AI: the probe is a one-token `generateContent` (or `rawPredict` for
/// Claude) with the service account's token, shared with the traffic (one
/// token request per provider); failing probes eject, a good one brings back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_is_probed_with_a_generation_ejected_and_back() {
    let up = MockUpstream::start_default();
    let claude = MockUpstream::start_default();
    let spare_mock = MockUpstream::start_default();
    let yaml = config(
        vec![
            vertex("vx", &up, GEMINI_MODEL).checks(generate_probe(GEMINI_MODEL)),
            vertex("vx-claude", &claude, CLAUDE_ON_VERTEX).checks(generate_probe(CLAUDE_ON_VERTEX)),
            spare(&spare_mock),
        ],
        "vx",
    );
    let gw = Gateway::start(&yaml).await;

    let p = first_probe(&up).await;
    assert_eq!(
        p.path(),
        format!(
            "/v1/projects/{GCP_TEST_PROJECT}/locations/us-central1/publishers/google/models/{GEMINI_MODEL}:generateContent"
        )
    );
    let bearer = p.header("authorization").unwrap_or_default();
    assert!(bearer.starts_with("Bearer ya29.mock-"), "{p:?}");
    assert_eq!(
        p.body["generationConfig"]["maxOutputTokens"], 1,
        "{}",
        p.body
    );
    assert_eq!(
        p.body["contents"][0]["parts"][0]["text"], "ping",
        "{}",
        p.body
    );

    let p = first_probe(&claude).await;
    assert_eq!(
        p.path(),
        format!(
            "/v1/projects/{GCP_TEST_PROJECT}/locations/us-central1/publishers/anthropic/models/{CLAUDE_ON_VERTEX}:rawPredict"
        )
    );
    assert!(
        p.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ya29.mock-")),
        "{p:?}"
    );
    assert_eq!(p.body["max_tokens"], 1, "{}", p.body);
    assert_eq!(p.body["anthropic_version"], VERTEX_ANTHROPIC_VERSION);
    assert!(p.body.get("model").is_none(), "{}", p.body);

    ejected_by_probes_and_back(&gw, &up, &spare_mock, "vx").await;
    // the Claude model's probes kept passing meanwhile
    assert!(probes(&claude).len() >= 3, "{:?}", claude.requests());
    let row = health_row(&TestClient::new(), &gw, "vx-claude").await;
    assert_eq!(row["healthy"], true, "{row}");
    assert!(row["last_error"].is_null(), "{row}");
    // the probes and the traffic used the one token of the provider
    assert_eq!(up.token_requests(), 1, "one token for probes and traffic");
    let token = bearer.trim_start_matches("Bearer ");
    assert!(
        up.token_uses(token) >= 6 + 3,
        "{} uses",
        up.token_uses(token)
    );
}

/// Bedrock: the probe is a one-token Converse call signed with SigV4 (the
/// session token included), accepted by the mock's verifier; failing probes
/// eject, a good one brings back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_is_probed_with_a_signed_converse_ejected_and_back() {
    let up = MockUpstream::start_default();
    up.set_aws_session_token(Some(AWS_TEST_SESSION_TOKEN));
    let spare_mock = MockUpstream::start_default();
    let yaml = config(
        vec![
            bedrock("br", &up).checks(generate_probe(BEDROCK_MODEL)),
            spare(&spare_mock),
        ],
        "br",
    );
    let gw = Gateway::start(&yaml).await;

    let p = first_probe(&up).await;
    assert_eq!(
        p.path(),
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let auth = p.header("authorization").unwrap_or_default();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={AWS_TEST_ACCESS_KEY_ID}/"
        )) && auth.contains(&format!("/{AWS_TEST_REGION}/bedrock/aws4_request")),
        "{auth}"
    );
    assert_eq!(
        p.header("x-amz-security-token"),
        Some(AWS_TEST_SESSION_TOKEN)
    );
    assert_eq!(p.body["inferenceConfig"]["maxTokens"], 1, "{}", p.body);
    assert_eq!(p.body["messages"][0]["content"][0]["text"], "ping");
    assert_eq!(up.sigv4_refusals(), 0, "the probe's signature verifies");

    ejected_by_probes_and_back(&gw, &up, &spare_mock, "br").await;
    assert_eq!(up.sigv4_refusals(), 0);
}

/// Passive: a Bedrock provider answering 500 is ejected after
/// `passive.failures` failed requests (each one served by the spare through
/// the fallback), then skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_failing_passively_is_ejected_and_skipped() {
    const PASSIVE_FAILURES: u32 = 3;
    let up = MockUpstream::start_default();
    up.set_aws_session_token(Some(AWS_TEST_SESSION_TOKEN));
    let spare_mock = MockUpstream::start_default();
    let yaml = config(
        vec![
            bedrock("br", &up).passive(PASSIVE_FAILURES, 10, 30),
            spare(&spare_mock),
        ],
        "br",
    );
    let gw = Gateway::start(&yaml).await;
    let c = TestClient::new();
    chats_ok(&c, &gw, 2, "healthy").await;
    assert_eq!((up.hits(), spare_mock.hits()), (2, 0), "all to br");

    up.fail_with(500);
    chats_ok(
        &c,
        &gw,
        PASSIVE_FAILURES as usize,
        "br failing, served by the spare",
    )
    .await;
    let n = u64::from(PASSIVE_FAILURES);
    assert_eq!(
        (up.hits(), spare_mock.hits()),
        (2 + n, n),
        "each tried br first"
    );
    let row = wait_row(
        &c,
        &gw,
        "br",
        Duration::from_secs(1),
        "ejected by its failures",
        |r| r["healthy"] == false && r["source"] == "passive",
    )
    .await;
    assert_eq!(row["passive"], true, "{row}");
    assert!(row["consecutive_failures"].as_u64() >= Some(n), "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{row}"
    );

    chats_ok(&c, &gw, 4, "br ejected").await;
    assert_eq!(
        (up.hits(), spare_mock.hits()),
        (2 + n, n + 4),
        "the ejected br is skipped"
    );
    assert_eq!(counter(&gw, "gateway_upstream_ejections_total").await, 1);
    assert_eq!(up.sigv4_refusals(), 0);
}
