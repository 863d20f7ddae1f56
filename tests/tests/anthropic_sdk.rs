//! The official `anthropic` Python SDK against real gateway processes: runs
//! `tests/python/e2e_anthropic.py` (messages.create with a system prompt, the
//! key as `x-api-key` and as `Authorization: Bearer`, messages.stream,
//! count_tokens, the typed errors: NotFoundError, AuthenticationError,
//! RateLimitError with `retry-after`).
//!
//! The Python interpreter is `$GATEWAY_TEST_PYTHON`, else `<repo>/.venv/bin/python`;
//! `./scripts/test.sh` creates that venv with the `anthropic` package.

use gateway_tests::config::{Config, Consumer, Provider, Quota, Route, Tenant};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::python::{python, PyScript};
use std::time::Duration;

/// Longest one run of the Python script may take (it sets 30 s per request).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

const KEY: &str = "sk-gw-anthropic-sdk-consumer";

/// Keyed routes for `claude-test` and (one request a minute) `claude-limited`, to
/// `provider`, and the consumer whose key the script uses.
fn keyed_config(provider: Provider, id: &str) -> Config {
    Config::new()
        .provider(provider)
        .route(
            Route::new("limited", "/v1")
                .model("claude-limited")
                .keyed()
                .quota(Quota::new("one-a-minute", "consumer", "requests", 1, "1m"))
                .upstream(id),
        )
        .route(
            Route::new("claude", "/v1")
                .model("claude-test")
                .keyed()
                .upstream(id),
        )
        .tenant(Tenant::new("acme").consumer(Consumer::new("dev").key(KEY)))
        .access_log()
}

/// Runs the script against `gw` (with the tool-use checks when `tools`) and
/// fails the test (with the script's output and the gateway's stderr) unless
/// every check passes.
async fn assert_script_passes(gw: &Gateway, what: &str, tools: bool) {
    let base_url = gw.url();
    let mut args = vec![
        "--base-url",
        &base_url,
        "--api-key",
        KEY,
        "--model",
        "claude-test",
        "--limited-model",
        "claude-limited",
    ];
    if tools {
        args.push("--tools");
    }
    let mut p = PyScript::spawn("e2e_anthropic.py", &args);
    let status = p.wait(SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (p.stdout(), p.stderr());
    if !status.is_some_and(|s| s.success()) {
        panic!(
            "anthropic SDK e2e against {what} failed ({status:?})\n\
             --- script stdout ---\n{stdout}\n--- script stderr ---\n{stderr}\n\
             --- gateway stderr ---\n{}\n--- config ---\n{}",
            gw.stderr(),
            gw.config_text()
        );
    }
    println!("anthropic SDK e2e against {what}:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_against_builtin_mock_provider() {
    python();
    let config = keyed_config(Provider::mock("builtin"), "builtin").yaml();
    let gw = Gateway::start(&config).await;
    assert_script_passes(&gw, "the built-in mock provider", false).await;
    // the key never went anywhere but the gateway, and each answer was recorded
    // (create, bearer, stream, count_tokens, unrouted, bad key, two limited)
    let lines = gw.wait_for_log_lines(8, Duration::from_secs(10)).await;
    assert!(
        lines.iter().any(|l| l.path == "/v1/messages/count_tokens"),
        "no count_tokens line"
    );
    let answered: Vec<_> = lines
        .iter()
        .filter(|l| l.path == "/v1/messages" && l.response_code == 200)
        .collect();
    assert!(answered.len() >= 4, "{} answered messages", answered.len());
    for l in &answered {
        assert_eq!(l.ai_log.consumer.as_deref(), Some("dev"));
        assert_eq!(l.ai_log.tenant.as_deref(), Some("acme"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_an_anthropic_provider() {
    python();
    let mock = MockUpstream::start_default();
    let provider = Provider::new("claude", "anthropic")
        .base_url(&mock.base_url())
        .token("sk-ant-upstream");
    let gw = Gateway::start(&keyed_config(provider, "claude").yaml()).await;
    assert_script_passes(&gw, "an anthropic provider (Anthropic mock upstream)", true).await;
    // the upstream got the provider's key and version, never the consumer's key
    let reqs = mock.requests();
    let messages: Vec<_> = reqs.iter().filter(|r| r.path() == "/v1/messages").collect();
    assert!(messages.len() >= 4, "{} messages upstream", messages.len());
    for r in &messages {
        assert_eq!(r.header("x-api-key"), Some("sk-ant-upstream"));
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(
            r.header("authorization"),
            None,
            "the consumer's Bearer key went upstream"
        );
    }
    assert!(
        reqs.iter().any(|r| r.path() == "/v1/messages/count_tokens"),
        "count_tokens was not passed to the Anthropic upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_an_openai_compatible_provider() {
    python();
    let mock = MockUpstream::start_default();
    let provider = Provider::openai("vllm", &mock.base_url()).token("sk-upstream");
    let gw = Gateway::start(&keyed_config(provider, "vllm").yaml()).await;
    assert_script_passes(&gw, "an openai-compatible provider (translated)", true).await;
    // the image went upstream as an image_url part with a data: URL
    let image = mock.requests().into_iter().find_map(|r| {
        let parts = r.body["messages"].as_array()?.last()?["content"]
            .as_array()?
            .clone();
        parts.into_iter().find(|p| p["type"] == "image_url")
    });
    let url = image.expect("no image_url part upstream")["image_url"]["url"].clone();
    assert!(
        url.as_str()
            .is_some_and(|u| u.starts_with("data:image/png;base64,")),
        "{url}"
    );
    let reqs = mock.requests();
    let chats: Vec<_> = reqs
        .iter()
        .filter(|r| r.path() == "/v1/chat/completions")
        .collect();
    assert!(chats.len() >= 4, "{} chat requests upstream", chats.len());
    assert!(
        !reqs.iter().any(|r| r.path().contains("messages")),
        "a Messages request reached the OpenAI-compatible upstream"
    );
}
