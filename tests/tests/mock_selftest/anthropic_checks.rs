//! The mock's Anthropic side, continued: errors (the switches, `retry-after`), the
//! api key and version checks, request validation, `count_tokens`, models, and
//! the mock binary answering `/v1/messages`.

use crate::anthropic::{assert_anthropic_error, cached_request, create, messages_url};
use gateway_tests::client::TestClient;
use gateway_tests::mock_upstream::{
    anthropic_error_type, messages_body, MockUpstream, ANTHROPIC_HEADERS, MOCK_ERROR_BODY,
    RETRY_AFTER_SECS,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_with_answers_anthropic_errors_on_anthropic_paths_only() {
    let mock = MockUpstream::start_default();
    let body = messages_body("m", "x");
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "api_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(anthropic_error_type(status), kind);
        mock.fail_with(status);
        let r = create(&mock, &body).await;
        assert_anthropic_error(&r, status, kind);
        let retry = (status == 429).then(|| RETRY_AFTER_SECS.to_string());
        assert_eq!(r.header("retry-after").map(str::to_string), retry);
    }
    // the OpenAI side keeps its body
    let r = TestClient::new()
        .post_json(
            &format!("{}/chat/completions", mock.base_url()),
            &json!({"model": "m", "messages": []}),
        )
        .await;
    assert_eq!((r.status, r.text()), (529, MOCK_ERROR_BODY.to_string()));
    // a body given by the test is sent as it is
    let given = r#"{"type":"error","error":{"type":"overloaded_error","message":"given"}}"#;
    mock.fail_with_body(529, given);
    assert_eq!(create(&mock, &body).await.text(), given);
    mock.set_normal();
    assert_eq!(create(&mock, &body).await.status, 200);
    // a rejected x-api-key
    mock.reject_token("sk-ant-mock", 403);
    assert_anthropic_error(&create(&mock, &body).await, 403, "permission_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_body_checked_like_the_api() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let url = messages_url(&mock);
    let body = messages_body("m", "x");
    let r = c.post_json_with(&url, &body, &[ANTHROPIC_HEADERS[1]]).await;
    let v = assert_anthropic_error(&r, 401, "authentication_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-api-key"));
    let r = c.post_json_with(&url, &body, &[ANTHROPIC_HEADERS[0]]).await;
    let v = assert_anthropic_error(&r, 400, "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    // a Bearer token is an api key too (the anthropic SDK 2.x sends one), and a
    // rejected key is rejected in either header; an empty key is no key
    let bearer = [("authorization", "Bearer sk-bearer"), ANTHROPIC_HEADERS[1]];
    let r = c.post_json_with(&url, &body, &bearer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-bearer")
    );
    mock.reject_token("sk-bearer", 401);
    let r = c.post_json_with(&url, &body, &bearer).await;
    assert_anthropic_error(&r, 401, "authentication_error");
    let r = c
        .post_json_with(&url, &body, &[("x-api-key", ""), ANTHROPIC_HEADERS[1]])
        .await;
    assert_anthropic_error(&r, 401, "authentication_error");
    for (field, bad) in [
        (
            "max_tokens",
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "max_tokens",
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "model",
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        ),
        ("messages", json!({"model": "m", "max_tokens": 5})),
        (
            "messages",
            json!({"model": "m", "max_tokens": 5, "messages": []}),
        ),
    ] {
        let r = create(&mock, &bad).await;
        let v = assert_anthropic_error(&r, 400, "invalid_request_error");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{v}"
        );
    }
    let r = c
        .post_raw(&url, &b"{not json"[..], &ANTHROPIC_HEADERS)
        .await;
    assert_anthropic_error(&r, 400, "invalid_request_error");
    let r = c
        .post_json_with(&format!("{url}/batches"), &body, &ANTHROPIC_HEADERS)
        .await;
    assert_anthropic_error(&r, 404, "not_found_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_and_models() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    let mut body = cached_request();
    body.as_object_mut().unwrap().remove("max_tokens");
    let url = format!("{}/count_tokens", messages_url(&mock));
    let r = c.post_json_with(&url, &body, &ANTHROPIC_HEADERS).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"input_tokens": 35}));
    let r = c.post_json_with(&url, &body, &[ANTHROPIC_HEADERS[0]]).await;
    assert_anthropic_error(&r, 400, "invalid_request_error");

    let models = format!("{}/models", mock.base_url());
    let v = c.get_with(&models, &ANTHROPIC_HEADERS).await.json();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["data"][1]["id"], "mock-large");
    assert_eq!(v["has_more"], false);
    let v = c.get(&models).await.json();
    assert_eq!(v["object"], "list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_binary_answers_messages() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--stream-chunks", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("LISTENING ").unwrap().to_string();
    let r = TestClient::new()
        .post_json_with(
            &format!("http://{addr}/v1/messages"),
            &messages_body("m", "hi"),
            &ANTHROPIC_HEADERS,
        )
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "word word ");
}
