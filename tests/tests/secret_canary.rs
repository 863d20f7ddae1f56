//! The secret canary (issue 22): a gateway logging at debug level, with its
//! access log (payloads on), OTLP traces, logs and metrics to a real collector
//! and `/metrics`, serves Vertex AI (a service account from a file and inline,
//! Gemini and Claude models) and Bedrock (static keys with a session token, and
//! `AWS_*` from the environment) through every path that succeeds and every way
//! that fails: a token endpoint answering 500 (503 `upstream_auth_failed`), a
//! wrong AWS secret (the mock's 403 `InvalidSignatureException`), bad requests,
//! upstream 500s, streams cut or ended by an exception, upstream error bodies
//! that echo the credentials (as AWS's signature errors quote the canonical
//! request with its `x-amz-security-token`). Then every output is searched —
//! the access log, all the collector received, the `/metrics` text, the
//! process's stderr and stdout, every status, header and body a client or the
//! admin API got — for the service account's private key (each line of its
//! base64), the AWS secret keys, the session tokens, the access tokens the mock
//! issued, the JWT assertions it received and the SigV4 signatures. None may
//! appear.

use gateway_tests::client::{chat_body, chat_stream_body, HttpResponse, SseResponse, TestClient};
use gateway_tests::collector::Collector;
use gateway_tests::config::{AwsAuth, Config, GcpAuth, Provider, Route, Server, Telemetry};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::{
    gcp_test_private_key_pem, gcp_test_service_account_file, messages_body, MockUpstream,
    AWS_TEST_ACCESS_KEY_ID, AWS_TEST_REGION, AWS_TEST_SECRET_ACCESS_KEY, AWS_TEST_SESSION_TOKEN,
    GCP_TEST_PROJECT,
};
use http::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The session token given to the gateway in `AWS_SESSION_TOKEN`.
const ENV_SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjENVCANARYSESSIONFROMENV//env";
/// A secret key the mock does not know (its signatures are refused).
const WRONG_SECRET: &str = "wrong/Canary+Secret9876543210zyxwvutsrqpo";
const GEMINI_MODEL: &str = "gemini-2.5-flash";
const CLAUDE_ON_VERTEX: &str = "claude-sonnet-4@20250514";
const BEDROCK_MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
/// How long the collector gets to receive what the gateway flushes.
const WAIT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ the setup

/// The mock upstreams: `cloud` serves the good Vertex and Bedrock providers
/// (session token required), `env` the Bedrock provider with `AWS_*`
/// credentials (the env session token required), `broken` a token endpoint
/// that answers 500, `faulty` the providers whose upstream fails on demand.
struct Mocks {
    cloud: MockUpstream,
    env: MockUpstream,
    broken: MockUpstream,
    faulty: MockUpstream,
}

impl Mocks {
    fn start() -> Mocks {
        let m = Mocks {
            cloud: MockUpstream::start_default(),
            env: MockUpstream::start_default(),
            broken: MockUpstream::start_default(),
            faulty: MockUpstream::start_default(),
        };
        m.cloud.set_aws_session_token(Some(AWS_TEST_SESSION_TOKEN));
        m.faulty.set_aws_session_token(Some(AWS_TEST_SESSION_TOKEN));
        m.env.set_aws_session_token(Some(ENV_SESSION_TOKEN));
        m.broken.fail_token_with(500);
        m
    }

    fn all(&self) -> [&MockUpstream; 4] {
        [&self.cloud, &self.env, &self.broken, &self.faulty]
    }
}

/// Vertex AI `id` at `mock` serving `model`, the test service account as `gcp`.
fn vertex<'a>(id: &'a str, mock: &MockUpstream, gcp: GcpAuth, model: &str) -> (&'a str, Provider) {
    let p = Provider::vertex(id, &mock.vertex_base_url(), GCP_TEST_PROJECT, "us-central1")
        .gcp(gcp)
        .map("*", model);
    (id, p)
}

/// Bedrock `id` at `mock` serving [`BEDROCK_MODEL`] (credentials from the
/// environment unless `aws` is given).
fn bedrock<'a>(id: &'a str, mock: &MockUpstream, aws: Option<AwsAuth>) -> (&'a str, Provider) {
    let p =
        Provider::bedrock(id, &mock.bedrock_base_url(), AWS_TEST_REGION).map("*", BEDROCK_MODEL);
    match aws {
        Some(a) => (id, p.aws(a)),
        None => (id, p),
    }
}

/// The test service account given inline (`service_account_json`).
fn inline_account(token_url: &str) -> GcpAuth {
    let file = gcp_test_service_account_file();
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    GcpAuth::default()
        .service_account_json(&text)
        .token_url(token_url)
}

/// One provider per client model, named as the model (the route of that model
/// has it as its only upstream), payloads in
/// the access log, traces, logs and metrics to `col`.
fn config(m: &Mocks, col: &Collector) -> String {
    let session = || AwsAuth::test().session_token(AWS_TEST_SESSION_TOKEN);
    let providers = [
        vertex(
            "vx-file",
            &m.cloud,
            GcpAuth::test_account(&m.cloud.token_url()),
            GEMINI_MODEL,
        ),
        vertex(
            "vx-inline",
            &m.cloud,
            inline_account(&m.cloud.token_url()),
            GEMINI_MODEL,
        ),
        vertex(
            "vx-claude",
            &m.cloud,
            inline_account(&m.cloud.token_url()),
            CLAUDE_ON_VERTEX,
        ),
        bedrock("br-static", &m.cloud, Some(session())),
        bedrock("br-env", &m.env, None),
        bedrock(
            "br-wrong",
            &m.cloud,
            Some(
                AwsAuth::new(AWS_TEST_ACCESS_KEY_ID, WRONG_SECRET)
                    .session_token(AWS_TEST_SESSION_TOKEN),
            ),
        ),
        vertex(
            "vx-broken",
            &m.broken,
            GcpAuth::test_account(&m.broken.token_url()),
            GEMINI_MODEL,
        ),
        vertex(
            "vx-faulty",
            &m.faulty,
            GcpAuth::test_account(&m.faulty.token_url()),
            GEMINI_MODEL,
        ),
        bedrock("br-faulty", &m.faulty, Some(session())),
    ];
    let otlp = json!({
        "endpoint": col.grpc_endpoint(),
        "protocol": "grpc",
        "traces": true,
        "logs": true,
        "metrics": true,
        "sampling_ratio": 1.0,
    });
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .telemetry(
            Telemetry::new()
                .access_log("{{access_log}}")
                .otlp(otlp)
                .log_payloads(true),
        );
    for (id, p) in providers {
        config = config
            .provider(p)
            .route(Route::new(id, "/v1").model(id).upstream(id));
    }
    config.yaml()
}

// ------------------------------------------------------------------ what was seen

/// Every output of the run, by name.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn head(status: u16, headers: &http::HeaderMap) -> String {
        let mut s = format!("{status}\n");
        for (k, v) in headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        s
    }

    fn response(&mut self, what: &str, r: &HttpResponse) {
        let text = Self::head(r.status, &r.headers) + &r.text();
        self.add(format!("the answer to {what}"), text);
    }

    fn sse(&mut self, what: &str, r: &SseResponse) {
        let text = Self::head(r.status, &r.headers) + &r.raw;
        self.add(format!("the stream of {what}"), text);
    }
}

/// A secret and the strings that would betray it: itself and its runs of 16
/// or more letters and digits (a secret quoted with escapes or encoded in a
/// URL still shows those).
struct Secret {
    what: String,
    needles: Vec<String>,
}

impl Secret {
    fn new(what: impl Into<String>, value: &str) -> Secret {
        let mut needles = vec![value.to_string()];
        needles.extend(
            value
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|run| run.len() >= 16 && *run != value)
                .map(str::to_string),
        );
        Secret {
            what: what.into(),
            needles,
        }
    }
}

/// Every secret of the run: the key's base64 lines, the AWS secret keys and
/// session tokens, what the mocks issued and received (access tokens, JWT
/// assertions, SigV4 signatures).
fn secrets(m: &Mocks) -> Vec<Secret> {
    let pem = gcp_test_private_key_pem();
    let mut out: Vec<Secret> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .enumerate()
        .map(|(i, l)| Secret::new(format!("line {} of the private key", i + 1), l))
        .collect();
    assert!(out.len() >= 20, "the fixture's key has {} lines", out.len());
    out.push(Secret::new(
        "the AWS secret key",
        AWS_TEST_SECRET_ACCESS_KEY,
    ));
    out.push(Secret::new("the wrong AWS secret key", WRONG_SECRET));
    out.push(Secret::new("the session token", AWS_TEST_SESSION_TOKEN));
    out.push(Secret::new("the env session token", ENV_SESSION_TOKEN));
    out.push(Secret::new("an access token", "ya29."));
    for mock in m.all() {
        for token in mock.issued_tokens() {
            out.push(Secret::new(format!("access token {token}"), &token));
        }
        for req in mock.requests() {
            if req.path() == "/token" {
                let assertion = form_urlencoded::parse(&req.raw_body)
                    .find(|(k, _)| k == "assertion")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_else(|| panic!("a token request without assertion: {req:?}"));
                let signature = assertion.rsplit('.').next().unwrap_or_default().to_string();
                out.push(Secret::new("a JWT assertion", &assertion));
                out.push(Secret::new("a JWT assertion's signature", &signature));
            } else if let Some(sig) = req
                .header("authorization")
                .and_then(|a| a.split("Signature=").nth(1))
            {
                out.push(Secret::new("a SigV4 signature", sig));
            }
        }
    }
    // a token issued by two mocks is one secret
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.needles[0].clone()));
    out
}

/// Where a secret was found: the secret, the output, the text around it (the
/// secret masked).
fn leaks(outputs: &Outputs, secrets: &[Secret]) -> Vec<String> {
    let mut found = Vec::new();
    for (what, text) in &outputs.0 {
        for s in secrets {
            for needle in &s.needles {
                if let Some(i) = text.find(needle.as_str()) {
                    let mut from = i.saturating_sub(120);
                    while !text.is_char_boundary(from) {
                        from -= 1;
                    }
                    let mut to = (i + needle.len() + 60).min(text.len());
                    while !text.is_char_boundary(to) {
                        to += 1;
                    }
                    let context = text[from..to].replace(needle.as_str(), "<SECRET>");
                    found.push(format!("{} in {what}: ...{context}...", s.what));
                    break;
                }
            }
        }
    }
    found
}

// ------------------------------------------------------------------ traffic

struct Run<'a> {
    gw: &'a Gateway,
    c: TestClient,
    out: Outputs,
    /// data-plane requests sent (each one is an access-log line)
    sent: usize,
}

impl Run<'_> {
    async fn post(&mut self, what: &str, path: &str, body: &Value) -> HttpResponse {
        let r = self
            .c
            .post_json(&format!("{}{path}", self.gw.url()), body)
            .await;
        self.out.response(what, &r);
        self.sent += 1;
        r
    }

    async fn chat(&mut self, model: &str) -> HttpResponse {
        let what = format!("a chat to {model}");
        self.post(
            &what,
            "/v1/chat/completions",
            &chat_body(model, "canary chat"),
        )
        .await
    }

    async fn messages(&mut self, model: &str) -> HttpResponse {
        let what = format!("a Messages request to {model}");
        self.post(
            &what,
            "/v1/messages",
            &messages_body(model, "canary messages"),
        )
        .await
    }

    async fn stream(&mut self, path: &str, model: &str) -> SseResponse {
        let mut body = if path.ends_with("messages") {
            messages_body(model, "canary stream")
        } else {
            let mut b = chat_stream_body(model, "canary stream");
            b["stream_options"] = json!({"include_usage": true});
            b
        };
        body["stream"] = json!(true);
        let r = self
            .c
            .post_sse(&format!("{}{path}", self.gw.url()), &body, &[])
            .await;
        self.out.sse(&format!("a stream of {path} to {model}"), &r);
        self.sent += 1;
        r
    }

    /// Chat and Messages, JSON and streamed, all answered.
    async fn all_good(&mut self, model: &str) {
        let r = self.chat(model).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let r = self.messages(model).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        for path in ["/v1/chat/completions", "/v1/messages"] {
            let s = self.stream(path, model).await;
            assert_eq!(s.status, 200, "{model} {path}: {}", s.raw);
            assert!(
                s.clean_end && s.error.is_none(),
                "{model} {path}: {}",
                s.raw
            );
        }
    }
}

/// An AWS signature error as the service words it, quoting the canonical
/// request it expected, session token included.
fn aws_signature_error_echoing(token: &str) -> String {
    let message = format!(
        "The request signature we calculated does not match the signature you provided. \
         The Canonical String for this request should have been\n'POST\n/model/x/converse\n\n\
         host:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20250101T000000Z\n\
         x-amz-security-token:{token}\n\nhost;x-amz-date;x-amz-security-token\n'"
    );
    json!({ "message": message }).to_string()
}

/// A Google error that quotes the Authorization header it refused.
fn google_error_echoing(token: &str) -> String {
    json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
        "message": format!("Request had invalid authentication credentials: Bearer {token}")}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output() {
    let col = Collector::start().await;
    let m = Mocks::start();
    let mut gw = Gateway::builder(&config(&m, &col))
        .env("RUST_LOG", "debug")
        .env("AWS_ACCESS_KEY_ID", AWS_TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_TEST_SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", ENV_SESSION_TOKEN)
        .start()
        .await;
    let mut run = Run {
        gw: &gw,
        c: TestClient::new(),
        out: Outputs::default(),
        sent: 0,
    };

    // what succeeds: both ways of giving the service account, Gemini and
    // Claude on Vertex, Bedrock with static keys and from the environment
    for model in ["vx-file", "vx-inline", "vx-claude", "br-static", "br-env"] {
        run.all_good(model).await;
    }

    // the token endpoint fails: 503 upstream_auth_failed, each request asks again
    for _ in 0..2 {
        let r = run.chat("vx-broken").await;
        r.assert_openai_error(503, "upstream_auth_failed");
    }
    let r = run.messages("vx-broken").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let s = run.stream("/v1/chat/completions", "vx-broken").await;
    assert_eq!(s.status, 503, "{}", s.raw);
    assert_eq!(
        m.broken.token_requests(),
        4,
        "each request asked for a token"
    );

    // a wrong secret: the mock's InvalidSignatureException, translated
    let refused = m.cloud.sigv4_refusals();
    let r = run.chat("br-wrong").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("signature"), "{}", r.text());
    let r = run.messages("br-wrong").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let s = run.stream("/v1/chat/completions", "br-wrong").await;
    assert_eq!(s.status, 403, "{}", s.raw);
    assert_eq!(m.cloud.sigv4_refusals(), refused + 3);

    // bad requests: not JSON; a message without content
    let bad = run
        .c
        .post_raw(
            &format!("{}/v1/chat/completions", gw.url()),
            "{\"model\": \"br-static\", ",
            &[],
        )
        .await;
    run.out.response("a body that is not JSON", &bad);
    run.sent += 1;
    assert_eq!(bad.status, 400, "{}", bad.text());
    for model in ["br-static", "vx-file"] {
        let mut body = chat_body(model, "x");
        body["messages"] = json!([{"role": "user", "content": []}]);
        let r = run
            .post(
                "a chat with an empty message",
                "/v1/chat/completions",
                &body,
            )
            .await;
        assert_eq!(r.status / 100, 4, "{model}: {}", r.text());
    }

    // upstream failures: 400 and 500 with bodies, and error bodies that quote
    // the credentials (redacted before the client or a log sees them)
    m.faulty
        .fail_with_body(400, r#"{"message": "Malformed input request: canary"}"#);
    for model in ["vx-faulty", "br-faulty"] {
        let r = run.chat(model).await;
        assert_eq!(r.status, 400, "{model}: {}", r.text());
    }
    m.faulty
        .fail_with_body(500, r#"{"message": "internal failure at the canary"}"#);
    for model in ["vx-faulty", "br-faulty"] {
        let r = run.chat(model).await;
        assert_eq!(r.status, 500, "{model}: {}", r.text());
        let s = run.stream("/v1/messages", model).await;
        assert_eq!(s.status, 500, "{model}: {}", s.raw);
    }
    m.faulty
        .fail_with_body(403, &aws_signature_error_echoing(AWS_TEST_SESSION_TOKEN));
    let r = run.chat("br-faulty").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("[redacted]"), "{}", r.text());
    let faulty_token = m.faulty.issued_tokens().pop().expect("vx-faulty's token");
    m.faulty
        .fail_with_body(401, &google_error_echoing(&faulty_token));
    let r = run.chat("vx-faulty").await;
    assert_eq!(r.status, 401, "{}", r.text());
    m.faulty.set_normal();

    // streams that end badly: a Bedrock exception event, a Vertex stream cut
    m.cloud.bedrock_exception_after(3);
    let s = run.stream("/v1/chat/completions", "br-static").await;
    assert_eq!(s.status, 200, "{}", s.raw);
    m.cloud.set_normal();
    m.cloud.cut_stream_after(2);
    let s = run.stream("/v1/messages", "vx-file").await;
    assert_eq!(s.status, 200, "{}", s.raw);
    m.cloud.set_normal();

    // what the admin API shows
    let health = admin(&run.c, &gw, Method::GET, "/admin/health", None).await;
    assert_eq!(health.status, 200, "{}", health.text());
    run.out.response("GET /admin/health", &health);
    let reload = admin(&run.c, &gw, Method::POST, "/admin/config/reload", None).await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    run.out.response("POST /admin/config/reload", &reload);
    let metrics = Scrape::of(&gw).await;
    let (mut out, sent) = (std::mem::take(&mut run.out), run.sent);
    drop(run);

    // the access log complete, then SIGTERM: what is queued goes to the collector
    let lines = gw.wait_for_log_lines(sent, WAIT).await;
    assert_eq!(lines.len(), sent, "one access-log line per request");
    gw.sigterm();
    let deadline = Instant::now() + WAIT;
    while gw.is_running() {
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = col.wait_logs(WAIT, |l| l.len() >= sent).await;
    assert!(
        logs.len() >= sent,
        "{} log records for {sent} requests",
        logs.len()
    );

    // the canary is alive: debug logging, telemetry of every provider, the
    // credentials in use where they belong
    let stderr = gw.stderr();
    assert!(
        stderr.lines().filter(|l| l.contains("DEBUG")).count() > 10,
        "the gateway logs at debug level:\n{stderr}"
    );
    let spans = col.spans();
    for system in ["gcp.vertex_ai", "aws.bedrock"] {
        assert!(
            spans
                .iter()
                .any(|s| s.attr("gen_ai.provider.name") == Some(system)),
            "no span of {system}"
        );
    }
    assert!(
        col.output().contains("gen_ai.client.token.usage"),
        "OTLP metrics"
    );
    for (mock, token) in [
        (&m.cloud, AWS_TEST_SESSION_TOKEN),
        (&m.env, ENV_SESSION_TOKEN),
    ] {
        let signed: Vec<_> = mock
            .requests()
            .into_iter()
            .filter(|r| r.path().starts_with("/model/"))
            .collect();
        assert!(!signed.is_empty());
        for r in signed {
            assert_eq!(r.header("x-amz-security-token"), Some(token), "{r:?}");
        }
    }
    assert!(m.cloud.token_requests() >= 3, "a token per Vertex provider");

    out.add("the access log", gw.access_log_text());
    out.add("the collector's input", col.output());
    out.add("/metrics", metrics.text());
    out.add("stderr", stderr);
    out.add("stdout", gw.stdout());
    let secrets = secrets(&m);
    let bytes: usize = out.0.iter().map(|(_, t)| t.len()).sum();
    let needles: usize = secrets.iter().map(|s| s.needles.len()).sum();
    eprintln!(
        "searching {} outputs ({bytes} bytes) for {} secrets ({needles} strings)",
        out.0.len(),
        secrets.len()
    );
    let found = leaks(&out, &secrets);
    assert!(
        found.is_empty(),
        "{} secrets found:\n{}",
        found.len(),
        found.join("\n")
    );
}
