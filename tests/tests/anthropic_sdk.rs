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

/// Runs the script against `gw` and fails the test (with the script's output and
/// the gateway's stderr) unless every check passes.
async fn assert_script_passes(gw: &Gateway, what: &str) {
    let base_url = gw.url();
    let mut p = PyScript::spawn(
        "e2e_anthropic.py",
        &[
            "--base-url",
            &base_url,
            "--api-key",
            KEY,
            "--model",
            "claude-test",
            "--limited-model",
            "claude-limited",
        ],
    );
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
    assert_script_passes(&gw, "the built-in mock provider").await;
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
