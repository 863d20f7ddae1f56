//! A `type: vertex-ai` provider behind real gateway processes, against the
//! Vertex AI mock and its token endpoint (which checks each JWT assertion
//! against the test service account's public key): Gemini models through
//! `generateContent`, Claude models through `rawPredict` with Anthropic's
//! Messages body; one token request for many first requests; a token close to
//! its expiry refreshed before use; a failing token endpoint answered 503
//! `upstream_auth_failed` and asked again by the next request; Vertex AI's own
//! errors in the client's shape.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, GcpAuth, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{gemini_usage, MockUpstream, GCP_TEST_PROJECT};
use serde_json::{json, Value};
use std::time::Duration;

const CHUNKS: usize = 8;

/// One vertex-ai provider at the mock (location `europe-west4`, the project
/// from the service account), `claude-*` kept, the rest mapped to
/// `gemini-2.5-flash`.
fn config(mock: &MockUpstream, gcp: GcpAuth) -> String {
    Config::new()
        .provider(
            Provider::new("vtx", "vertex-ai")
                .base_url(&mock.vertex_base_url())
                .location("europe-west4")
                .gcp(gcp)
                .map("claude-*", "claude-sonnet-4@20250514")
                .map("*", "gemini-2.5-flash"),
        )
        .route(Route::new("vertex", "/v1").upstream("vtx"))
        .access_log()
        .yaml()
}

fn prefix() -> String {
    format!("/v1/projects/{GCP_TEST_PROJECT}/locations/europe-west4/publishers")
}

async fn chat(gw: &Gateway, model: &str) -> gateway_tests::client::HttpResponse {
    TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body(model, "Say hello"),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_model_is_served_with_a_service_account_token() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock, GcpAuth::test_account(&mock.token_url()))).await;
    let r = chat(&gw, "gpt-4o").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        format!(
            "{}/google/models/gemini-2.5-flash:generateContent",
            prefix()
        )
    );
    assert_eq!(up.header("authorization"), Some("Bearer ya29.mock-1"));
    let u = gemini_usage(&up.body, CHUNKS);
    let v = r.json();
    assert_eq!(v["usage"]["prompt_tokens"], u.prompt_token_count);
    assert_eq!(v["usage"]["completion_tokens"], u.candidates_token_count);
    // streamed
    let r = TestClient::new()
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "Say hello"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content(), "word ".repeat(CHUNKS));
    assert_eq!(
        mock.last_request().unwrap().path_and_query,
        format!(
            "{}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            prefix()
        )
    );
    assert_eq!(mock.token_requests(), 1, "the token is cached");
    let line = &gw.wait_for_log_lines(2, Duration::from_secs(5)).await[1];
    assert_eq!(line.ai_log.output_token, u.candidates_token_count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_model_gets_anthropics_body_on_raw_predict() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock, GcpAuth::test_account(&mock.token_url()))).await;
    let body = json!({"model": "claude-x", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}]});
    let r = TestClient::new()
        .post_json_with(
            &format!("{}/v1/messages", gw.url()),
            &body,
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        format!(
            "{}/anthropic/models/claude-sonnet-4@20250514:rawPredict",
            prefix()
        )
    );
    assert_eq!(up.body.get("model"), None, "{}", up.body);
    assert_eq!(up.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(up.header("anthropic-version"), None);
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4@20250514");
    // an OpenAI client reaches the same model, translated
    let r = chat(&gw, "claude-x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert!(up.path().ends_with(":rawPredict"), "{}", up.path());
    assert_eq!(up.body["anthropic_version"], "vertex-2023-10-16");
    assert!(up.body.get("model").is_none());
    assert_eq!(r.json()["object"], "chat.completion");
    // and a stream goes to streamRawPredict
    let mut body = body;
    body["stream"] = json!(true);
    let r = TestClient::new()
        .post_sse(&format!("{}/v1/messages", gw.url()), &body, &[])
        .await;
    assert_eq!(r.status, 200);
    assert!(mock
        .last_request()
        .unwrap()
        .path()
        .ends_with(":streamRawPredict"));
    let kinds: Vec<Value> = r.json_events().iter().map(|e| e["type"].clone()).collect();
    assert_eq!(kinds.last(), Some(&json!("message_stop")), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_first_requests_cause_one_token_request() {
    let mock = MockUpstream::start_default();
    // the token endpoint answers slowly: every request arrives while it works
    mock.delay_token(500);
    let gw = Gateway::start(&config(&mock, GcpAuth::test_account(&mock.token_url()))).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let url = url.clone();
        all.spawn(async move {
            TestClient::new()
                .post_json(&url, &chat_body("gpt-4o", "hi"))
                .await
        });
    }
    while let Some(r) = all.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(mock.token_requests(), 1);
    assert_eq!(mock.token_uses("ya29.mock-1"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_inside_expire_early_is_refreshed_before_use() {
    let mock = MockUpstream::start_default();
    // tokens live 30 s; the gateway replaces them 60 s before they expire
    mock.set_token_expires_in(30);
    let gcp = GcpAuth::test_account(&mock.token_url()).expire_early_secs(60);
    let gw = Gateway::start(&config(&mock, gcp)).await;
    assert_eq!(chat(&gw, "gpt-4o").await.status, 200);
    assert_eq!(mock.token_requests(), 1);
    assert_eq!(chat(&gw, "gpt-4o").await.status, 200);
    assert_eq!(
        mock.token_requests(),
        2,
        "the second request refreshed first"
    );
    assert_eq!(mock.token_uses("ya29.mock-1"), 1);
    assert_eq!(mock.token_uses("ya29.mock-2"), 1, "and used the new token");
    // (a token of an hour is used until then)
    mock.set_token_expires_in(3600);
    assert_eq!(chat(&gw, "gpt-4o").await.status, 200);
    assert_eq!(chat(&gw, "gpt-4o").await.status, 200);
    assert_eq!(mock.token_requests(), 3);
    assert_eq!(mock.token_uses("ya29.mock-3"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_a_503_and_the_next_request_asks_again() {
    let mock = MockUpstream::start_default();
    mock.fail_token_with(500);
    let gw = Gateway::start(&config(&mock, GcpAuth::test_account(&mock.token_url()))).await;
    let r = chat(&gw, "gpt-4o").await;
    let e = r.assert_openai_error(503, "upstream_auth_failed");
    let message = e["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("token endpoint answered 500"), "{message}");
    assert!(!message.contains("BEGIN"), "{message}");
    assert_eq!(mock.token_requests(), 1);
    assert_eq!(
        mock.requests()
            .iter()
            .filter(|r| r.path().contains("/publishers/"))
            .count(),
        0,
        "nothing went to the model without a token"
    );
    // an Anthropic client gets the same in Anthropic's shape
    let body = json!({"model": "claude-x", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = TestClient::new()
        .post_json(&format!("{}/v1/messages", gw.url()), &body)
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "error", "{}", r.text());
    assert_eq!(mock.token_requests(), 2, "a failure is not cached");
    mock.fail_token_with(0);
    assert_eq!(chat(&gw, "gpt-4o").await.status, 200);
    assert_eq!(mock.token_requests(), 3);
    let lines = gw.wait_for_log_lines(3, Duration::from_secs(5)).await;
    assert_eq!(lines[0].response_code, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_errors_reach_anthropic_clients_in_anthropics_shape() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock, GcpAuth::test_account(&mock.token_url()))).await;
    assert_eq!(chat(&gw, "gpt-4o").await.status, 200);
    // the mock forgets its tokens: Vertex AI answers 401 in Google's shape
    mock.expire_tokens();
    let body = json!({"model": "claude-x", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = TestClient::new()
        .post_json(&format!("{}/v1/messages", gw.url()), &body)
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    // and OpenAI clients in OpenAI's
    let r = chat(&gw, "claude-x").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["type"],
        "authentication_error",
        "{}",
        r.text()
    );
}
