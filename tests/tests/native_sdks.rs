//! The official `openai` and `anthropic` Python SDKs, unchanged, against routes
//! to the Gemini, Vertex AI and Bedrock mocks: one test per SDK and provider,
//! each running the SDK's script of `tests/python/` through a keyed route.
//!
//! * `openai` (`e2e_openai.py --tools`): chat, a stream without and one with
//!   `include_usage`, a tool call and its result sent back (answered with text),
//!   a streamed tool call (with `include_usage`), `models.list` and the error
//!   checks (unrouted model, missing model: the gateway answers those).
//!   `embeddings` is skipped: Vertex AI and Bedrock serve none here (the gateway
//!   answers 400 `unsupported_endpoint`), and Gemini's `batchEmbedContents`
//!   reports no usage to compare with the mock's (the client gets the gateway's
//!   estimate; `gemini_upstream.rs` checks Gemini's embeddings).
//! * `anthropic` (`e2e_anthropic.py --tools`): `create` with a system prompt, the
//!   key as `Authorization: Bearer`, `messages.stream`, `count_tokens` (answered
//!   by the gateway for every provider), an image, the errors (unrouted model,
//!   unknown key), `tool_use` and its `tool_result` answered with text, and a
//!   streamed `tool_use`. Vertex AI serves a `claude-*` model (publisher
//!   `anthropic`, `rawPredict`); Gemini and Bedrock are reached through the chat
//!   translation. `rate_limit` is skipped: it checks the gateway's quota, not
//!   the provider (`anthropic_sdk.rs` runs it).
//!
//! The mock reports cache figures (Gemini: cached content and thoughts;
//! Bedrock: cache reads and writes), so no figure compared is a plain 0 or sum.
//! Each script prints a `USAGE` line per request that reached a model, with the
//! usage object the SDK parsed. After the run the test pairs them, in order,
//! with the generate requests the mock recorded (the same count, the expected
//! requests by name) and requires each figure to equal what the mock answered
//! that request (`answered_usage`: its formulas applied to the recorded body);
//! the tool's result went upstream in the provider's form; every upstream
//! request carried the provider's credentials (`x-goog-api-key`, a Bearer
//! token the mock's token endpoint issued, a SigV4 signature the mock verified)
//! and nothing of the consumer's key; and each request's access-log line names
//! the consumer and the same figures, not estimated.
//!
//! The Python interpreter is `$GATEWAY_TEST_PYTHON`, else `<repo>/.venv/bin/python`
//! (`./scripts/test.sh` creates it with both SDKs).

use gateway_tests::config::{AwsAuth, Config, Consumer, GcpAuth, Provider, Route, Tenant};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{
    AnsweredUsage, GenerateApi, MockUpstream, RecordedRequest, AWS_TEST_ACCESS_KEY_ID,
    AWS_TEST_REGION, GCP_TEST_PROJECT, GEMINI_API_KEY,
};
use gateway_tests::python::{python, reported_usage, PyScript, ReportedUsage};
use serde_json::Value;
use std::time::Duration;

/// Longest one run of a script may take (each sets 30 s per request; a run
/// takes a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// The consumer key the scripts use.
const KEY: &str = "sk-gw-native-sdks-consumer";
/// The provider's id.
const UP: &str = "cloud";
/// The route's model for the `anthropic` SDK.
const CLAUDE_MODEL: &str = "claude-test";

/// The requests that reach a model, by the scripts' `USAGE` names, in the order
/// sent, and whether the answer carries usage (not a stream without
/// `include_usage`).
const OPENAI_REQUESTS: [(&str, bool); 6] = [
    ("chat", true),
    ("stream", false),
    ("stream (include_usage)", true),
    ("tool call", true),
    ("tool result", true),
    ("tool call (streaming)", true),
];
const ANTHROPIC_REQUESTS: [&str; 7] = [
    "create",
    "bearer",
    "stream",
    "image",
    "tool_use",
    "tool_result",
    "tool_use_stream",
];
/// The `openai` script's checks run (all but `embeddings`, see the module doc).
const OPENAI_CHECKS: [&str; 4] = ["chat", "tool", "models", "error"];
/// The `anthropic` script's checks run (all but `rate_limit`, see the module doc).
const ANTHROPIC_CHECKS: &str =
    "create,bearer,stream,count_tokens,image,unrouted,bad_key,tool_use,tool_use_stream";

/// The provider behind the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Gemini,
    Vertex,
    Bedrock,
}

impl Cloud {
    /// The provider at `mock` with its credentials, every model mapped to `model`.
    fn provider(self, mock: &MockUpstream, model: &str) -> Provider {
        match self {
            Cloud::Gemini => Provider::gemini(UP, &mock.gemini_base_url()).token(GEMINI_API_KEY),
            Cloud::Vertex => {
                Provider::vertex(UP, &mock.vertex_base_url(), GCP_TEST_PROJECT, "us-central1")
                    .gcp(GcpAuth::test_account(&mock.token_url()))
            }
            Cloud::Bedrock => Provider::bedrock(UP, &mock.bedrock_base_url(), AWS_TEST_REGION)
                .aws(AwsAuth::test()),
        }
        .map("*", model)
    }

    /// Fails unless upstream request `r` carried this provider's credentials.
    fn assert_credentials(self, mock: &MockUpstream, r: &RecordedRequest) {
        let what = &r.path_and_query;
        let auth = r.header("authorization");
        match self {
            Cloud::Gemini => {
                assert_eq!(r.header("x-goog-api-key"), Some(GEMINI_API_KEY), "{what}");
                assert_eq!(auth, None, "{what}: an Authorization header went to Gemini");
            }
            Cloud::Vertex => {
                let issued = mock.issued_tokens();
                let token = auth.and_then(|a| a.strip_prefix("Bearer "));
                assert!(
                    token.is_some_and(
                        |t| t.starts_with("ya29.mock-") && issued.iter().any(|i| i == t)
                    ),
                    "{what}: Authorization {auth:?} is no token the mock issued ({issued:?})"
                );
                assert_eq!(r.header("x-goog-api-key"), None, "{what}");
            }
            Cloud::Bedrock => {
                let scope = format!("AWS4-HMAC-SHA256 Credential={AWS_TEST_ACCESS_KEY_ID}/");
                assert!(
                    auth.is_some_and(|a| a.starts_with(&scope) && a.contains("Signature=")),
                    "{what}: Authorization {auth:?} is no SigV4 signature of the test key"
                );
                assert!(r.header("x-amz-date").is_some(), "{what}: no x-amz-date");
            }
        }
        assert_eq!(
            r.header("x-api-key"),
            None,
            "{what}: an x-api-key went upstream"
        );
    }

    /// Turns on the mock's cache (and Gemini's thoughts) figures, so that every
    /// answer reports prompt tokens read from (and written to) a cache and
    /// thinking tokens where the API has them: the usage compared is not all
    /// zeros and plain sums. (A Claude model on Vertex AI reports cache figures
    /// only for `cache_control` blocks, which the scripts do not send.)
    fn report_cache_figures(self, mock: &MockUpstream) {
        match self {
            Cloud::Gemini | Cloud::Vertex => {
                mock.gemini_cached(true);
                mock.gemini_thoughts(true);
            }
            Cloud::Bedrock => mock.bedrock_cache_figures(true),
        }
    }

    /// Counters the mock keeps of the provider's credentials, checked after a run.
    fn assert_credential_counters(self, mock: &MockUpstream) {
        match self {
            Cloud::Gemini => {}
            Cloud::Vertex => assert!(mock.token_requests() >= 1, "no token was fetched"),
            Cloud::Bedrock => assert_eq!(mock.sigv4_refusals(), 0, "the mock refused a signature"),
        }
    }
}

/// The client's API: how its usage object names the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sdk {
    OpenAi,
    Anthropic,
}

impl Sdk {
    /// Fails unless the usage the SDK reported in `line` is `want`.
    fn assert_usage(self, line: &ReportedUsage, want: &AnsweredUsage, upstream: &str) {
        let got = |key: &str| {
            line.figure(key)
                .unwrap_or_else(|| panic!("{line:?} has no usage"))
        };
        let figures: Vec<(&str, u64)> = match self {
            Sdk::OpenAi => vec![
                ("prompt_tokens", want.prompt_tokens),
                ("completion_tokens", want.completion_tokens),
                ("total_tokens", want.prompt_tokens + want.completion_tokens),
                (
                    "prompt_tokens_details/cached_tokens",
                    want.cache_read_tokens,
                ),
                (
                    "completion_tokens_details/reasoning_tokens",
                    want.reasoning_tokens,
                ),
            ],
            Sdk::Anthropic => vec![
                ("input_tokens", want.anthropic_input_tokens()),
                ("output_tokens", want.completion_tokens),
                ("cache_read_input_tokens", want.cache_read_tokens),
                ("cache_creation_input_tokens", want.cache_write_tokens),
            ],
        };
        for (key, want) in figures {
            assert_eq!(
                got(key),
                want,
                "`{}`: usage.{key} differs from the mock's answer to {upstream}: {:?}",
                line.what,
                line.usage
            );
        }
    }
}

/// A keyed route on `/v1` for `models` to the provider, and the consumer `dev`
/// of tenant `acme` whose key the scripts use.
fn config(provider: Provider, models: &[&str]) -> String {
    let route = models
        .iter()
        .fold(Route::new("native", "/v1").keyed().upstream(UP), |r, m| {
            r.model(m)
        });
    Config::new()
        .provider(provider)
        .route(route)
        .tenant(Tenant::new("acme").consumer(Consumer::new("dev").key(KEY)))
        .access_log()
        .yaml()
}

/// Runs `script ARGS` and returns its stdout; fails the test (with the script's
/// output, the gateway's stderr and config) unless every check passed.
async fn run_script(gw: &Gateway, script: &str, args: &[&str], what: &str) -> String {
    let mut p = PyScript::spawn(script, args);
    let status = p.wait(SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (p.stdout(), p.stderr());
    if !status.is_some_and(|s| s.success()) {
        panic!(
            "{script} against {what} failed ({status:?})\n\
             --- script stdout ---\n{stdout}\n--- script stderr ---\n{stderr}\n\
             --- gateway stderr ---\n{}\n--- config ---\n{}",
            gw.stderr(),
            gw.config_text()
        );
    }
    println!("{script} against {what}:\n{stdout}");
    stdout
}

/// Whether the last turn of generate request `body` (in `api`'s form) holds the
/// result of the tool called in the turn before it.
fn carries_tool_result(api: GenerateApi, body: &Value) -> bool {
    let turns = match api {
        GenerateApi::Gemini => &body["contents"],
        GenerateApi::Messages | GenerateApi::Converse => &body["messages"],
    };
    let turns = turns.as_array().map(Vec::as_slice).unwrap_or_default();
    let [.., call, result] = turns else {
        return false;
    };
    let parts = |turn: &Value, key: &str| -> Vec<Value> {
        turn[key].as_array().cloned().unwrap_or_default()
    };
    match api {
        GenerateApi::Gemini => {
            let called = parts(call, "parts")
                .iter()
                .any(|p| p["functionCall"]["name"] == "lookup");
            called
                && parts(result, "parts")
                    .iter()
                    .any(|p| p["functionResponse"]["name"] == "lookup")
        }
        GenerateApi::Messages => {
            let ids: Vec<Value> = parts(call, "content")
                .into_iter()
                .filter(|b| b["type"] == "tool_use" && b["name"] == "lookup")
                .map(|b| b["id"].clone())
                .collect();
            parts(result, "content")
                .iter()
                .any(|b| b["type"] == "tool_result" && ids.contains(&b["tool_use_id"]))
        }
        GenerateApi::Converse => {
            let ids: Vec<Value> = parts(call, "content")
                .into_iter()
                .filter(|b| b["toolUse"]["name"] == "lookup")
                .map(|b| b["toolUse"]["toolUseId"].clone())
                .collect();
            parts(result, "content")
                .iter()
                .any(|b| ids.contains(&b["toolResult"]["toolUseId"]))
        }
    }
}

/// What must hold after a script run through `cloud`, whose `USAGE` lines are
/// in `stdout` and must name `expected` requests, in order (with usage or not).
async fn assert_upstream_side(
    gw: &Gateway,
    mock: &MockUpstream,
    cloud: Cloud,
    sdk: Sdk,
    stdout: &str,
    expected: &[(&str, bool)],
) {
    let reqs = mock.requests();
    let upstream: Vec<&RecordedRequest> = reqs.iter().filter(|r| r.path() != "/token").collect();
    assert!(!upstream.is_empty(), "nothing reached the mock");
    for r in &upstream {
        cloud.assert_credentials(mock, r);
        let headers = format!("{:?}", r.headers);
        assert!(
            !headers.contains(KEY),
            "{}: the consumer key went upstream",
            r.path_and_query
        );
        let body = String::from_utf8_lossy(&r.raw_body);
        assert!(
            !body.contains(KEY),
            "{}: the consumer key is in the body",
            r.path_and_query
        );
    }
    cloud.assert_credential_counters(mock);

    // every request that reached a model, paired with what the SDK reported
    let generated: Vec<(&RecordedRequest, GenerateApi)> = upstream
        .iter()
        .filter_map(|r| GenerateApi::of(r).map(|api| (*r, api)))
        .collect();
    let reported = reported_usage(stdout);
    let names: Vec<(&str, bool)> = reported
        .iter()
        .map(|l| (l.what.as_str(), l.usage.is_some()))
        .collect();
    assert_eq!(names, expected, "the requests the script reported");
    assert_eq!(
        generated.len(),
        reported.len(),
        "generate requests upstream {:?} vs requests reported {names:?}",
        generated
            .iter()
            .map(|(r, _)| &r.path_and_query)
            .collect::<Vec<_>>()
    );
    let lines = gw
        .wait_for_log_lines(generated.len(), Duration::from_secs(10))
        .await;
    for ((req, api), line) in generated.iter().zip(&reported) {
        let want = mock.answered_usage(req).expect("a generate request");
        if line.usage.is_some() {
            sdk.assert_usage(line, &want, &req.path_and_query);
        }
        if line.what.contains("result") {
            assert!(
                carries_tool_result(*api, &req.body),
                "`{}`: the tool's result did not go upstream: {}",
                line.what,
                req.body
            );
        }
        // and the access log recorded the same figures for this request
        let id = req.header("x-request-id").expect("x-request-id upstream");
        let log = lines
            .iter()
            .find(|l| l.request_id == id)
            .unwrap_or_else(|| panic!("no access-log line for `{}` ({id})", line.what));
        let ai = &log.ai_log;
        let what = &line.what;
        assert_eq!(log.response_code, 200, "`{what}`");
        assert_eq!(ai.consumer.as_deref(), Some("dev"), "`{what}`");
        assert_eq!(ai.tenant.as_deref(), Some("acme"), "`{what}`");
        assert_eq!(ai.provider.as_deref(), Some(UP), "`{what}`");
        assert!(!ai.usage_estimated, "`{what}`: usage estimated");
        assert_eq!(ai.input_token, want.prompt_tokens, "`{what}`: input_token");
        assert_eq!(
            ai.output_token, want.completion_tokens,
            "`{what}`: output_token"
        );
        assert_eq!(
            ai.cached_tokens, want.cache_read_tokens,
            "`{what}`: cached_tokens"
        );
        assert_eq!(
            ai.cache_creation_tokens, want.cache_write_tokens,
            "`{what}`: cache_creation_tokens"
        );
        assert_eq!(
            ai.reasoning_tokens, want.reasoning_tokens,
            "`{what}`: reasoning_tokens"
        );
    }
}

/// The `openai` SDK through `cloud`, the chat model mapped to `model`.
async fn openai_sdk_through(cloud: Cloud, model: &str) {
    python();
    let mock = MockUpstream::start_default();
    cloud.report_cache_figures(&mock);
    // the script's chat model, listed for models.list
    let provider = cloud.provider(&mock, model).model("gpt-4o-mini");
    let gw = Gateway::start(&config(provider, &["gpt-*"])).await;
    let base_url = format!("{}/v1", gw.url());
    let mut args = vec!["--base-url", &base_url, "--api-key", KEY, "--tools"];
    for only in OPENAI_CHECKS {
        args.extend(["--only", only]);
    }
    let what = format!("{cloud:?} ({model})");
    let stdout = run_script(&gw, "e2e_openai.py", &args, &what).await;
    assert_upstream_side(&gw, &mock, cloud, Sdk::OpenAi, &stdout, &OPENAI_REQUESTS).await;
}

/// The `anthropic` SDK through `cloud`, `claude-test` mapped to `model`.
async fn anthropic_sdk_through(cloud: Cloud, model: &str) {
    python();
    let mock = MockUpstream::start_default();
    cloud.report_cache_figures(&mock);
    let gw = Gateway::start(&config(cloud.provider(&mock, model), &[CLAUDE_MODEL])).await;
    let base_url = gw.url();
    let args = [
        "--base-url",
        &base_url,
        "--api-key",
        KEY,
        "--model",
        CLAUDE_MODEL,
        "--tools",
        "--checks",
        ANTHROPIC_CHECKS,
    ];
    let what = format!("{cloud:?} ({model})");
    let stdout = run_script(&gw, "e2e_anthropic.py", &args, &what).await;
    let expected: Vec<(&str, bool)> = ANTHROPIC_REQUESTS.iter().map(|n| (*n, true)).collect();
    assert_upstream_side(&gw, &mock, cloud, Sdk::Anthropic, &stdout, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_gemini() {
    openai_sdk_through(Cloud::Gemini, "gemini-2.5-flash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_vertex_ai_gemini_model() {
    openai_sdk_through(Cloud::Vertex, "gemini-2.5-flash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_bedrock() {
    openai_sdk_through(Cloud::Bedrock, "anthropic.claude-3-5-sonnet-20240620-v1:0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_gemini() {
    anthropic_sdk_through(Cloud::Gemini, "gemini-2.5-flash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_vertex_ai_claude_model() {
    anthropic_sdk_through(Cloud::Vertex, "claude-sonnet-4@20250514").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_bedrock() {
    anthropic_sdk_through(Cloud::Bedrock, "anthropic.claude-3-5-sonnet-20240620-v1:0").await;
}
