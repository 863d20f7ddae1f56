//! The official `openai` Python SDK against real gateway processes.
//!
//! Runs `tests/python/e2e_openai.py` (chat, streaming with and without
//! `include_usage`, embeddings, models.list, error shape) twice:
//! 1. through an `openai-compatible` provider pointing at the mock upstream,
//! 2. against the built-in `type: mock` provider (no upstream at all), to check
//!    that it speaks the wire format the SDK expects.
//!
//! The Python interpreter is `$GATEWAY_TEST_PYTHON`, else `<repo>/.venv/bin/python`;
//! `./scripts/test.sh` creates that venv with the `openai` package.

use gateway_tests::config::{Config, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::python::{python, PyScript};
use std::process::ExitStatus;
use std::time::Duration;

/// Longest one run of the Python script may take (it sets 30 s per request).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// One route on `/v1` for the script's chat and embedding models, to `provider`.
fn sdk_route(provider: &str) -> Route {
    Route::new("chat", "/v1")
        .model("gpt-*")
        .model("text-embedding-*")
        .upstream(provider)
}

/// Runs the e2e script against `base_url` (with `extra` arguments); returns
/// (exit status, stdout, stderr). The process is killed after [`SCRIPT_TIMEOUT`].
async fn run_script(base_url: &str, extra: &[&str]) -> (Option<ExitStatus>, String, String) {
    let mut args = vec!["--base-url", base_url, "--api-key", "anything"];
    args.extend_from_slice(extra);
    let mut p = PyScript::spawn("e2e_openai.py", &args);
    let status = p.wait(SCRIPT_TIMEOUT).await;
    (status, p.stdout(), p.stderr())
}

/// Runs the script against `gw` and fails the test (with the script's output and
/// the gateway's stderr) unless it exits 0.
async fn assert_script_passes(gw: &Gateway, what: &str) {
    assert_checks_pass(gw, what, &[]).await;
}

/// [`assert_script_passes`] with the script's `extra` arguments (e.g. `--only`).
async fn assert_checks_pass(gw: &Gateway, what: &str, extra: &[&str]) {
    let base_url = format!("{}/v1", gw.url());
    let (status, stdout, stderr) = run_script(&base_url, extra).await;
    let ok = status.is_some_and(|s| s.success());
    if !ok {
        let status = match status {
            Some(s) => s.to_string(),
            None => format!("killed after {SCRIPT_TIMEOUT:?}"),
        };
        panic!(
            "openai SDK e2e against {what} failed ({status})\n\
             --- script stdout ---\n{stdout}\n--- script stderr ---\n{stderr}\n\
             --- gateway stderr ---\n{}\n--- config ---\n{}",
            gw.stderr(),
            gw.config_text()
        );
    }
    println!("openai SDK e2e against {what}:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_openai_compatible_provider() {
    // Resolve the interpreter first: a missing venv fails fast with the fix.
    python();
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(
            Provider::openai("up", &mock.base_url())
                .token("sk-upstream")
                .model("gpt-4o-mini")
                .model("text-embedding-3-small"),
        )
        .route(sdk_route("up"))
        .access_log()
        .yaml();
    let gw = Gateway::start(&config).await;

    assert_script_passes(&gw, "an openai-compatible provider (mock upstream)").await;

    // The answers really came from the upstream, with the provider's token.
    let reqs = mock.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path()).collect();
    assert!(
        paths.contains(&"/v1/chat/completions"),
        "the mock upstream got no chat request: {paths:?}"
    );
    assert!(
        paths.contains(&"/v1/embeddings"),
        "the mock upstream got no embeddings request: {paths:?}"
    );
    for r in reqs.iter().filter(|r| r.method == "POST") {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer sk-upstream"),
            "upstream request {} did not carry the provider token",
            r.path_and_query
        );
        assert_ne!(
            r.body.get("model").and_then(|m| m.as_str()),
            Some("no-such-model"),
            "a request for an unrouted model reached the upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_against_builtin_mock_provider() {
    python();
    let config = Config::new()
        .provider(
            Provider::mock("builtin")
                .model("gpt-4o-mini")
                .model("text-embedding-3-small"),
        )
        .route(sdk_route("builtin"))
        .access_log()
        .yaml();
    let gw = Gateway::start(&config).await;
    assert_script_passes(&gw, "the built-in mock provider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_an_anthropic_provider() {
    python();
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(
            Provider::new("claude", "anthropic")
                .base_url(&mock.base_url())
                .token("sk-ant"),
        )
        .route(Route::new("chat", "/v1").model("gpt-*").upstream("claude"))
        .access_log()
        .yaml();
    let gw = Gateway::start(&config).await;
    // chat, streams with and without include_usage, tool calls both ways, the
    // error shapes (no embeddings or model list: Anthropic has none)
    let only = [
        "--tools", "--only", "chat", "--only", "tool", "--only", "error",
    ];
    assert_checks_pass(&gw, "an anthropic provider (translated)", &only).await;
    let reqs = mock.requests();
    assert!(
        reqs.iter().filter(|r| r.path() == "/v1/messages").count() >= 5,
        "the Anthropic upstream got too few Messages requests"
    );
    // what the client was told is what the mock counted
    let lines = gw.wait_for_log_lines(8, Duration::from_secs(10)).await;
    let chat = lines
        .iter()
        .find(|l| l.response_code == 200 && l.ai_log.response_type == "normal")
        .expect("a chat answer in the access log");
    assert!(
        !chat.ai_log.usage_estimated,
        "usage of a translated answer was estimated"
    );
    assert!(chat.ai_log.input_token > 0 && chat.ai_log.output_token > 0);
}
