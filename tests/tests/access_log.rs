//! The JSON access log: one `AccessLogLine` per request with the `ai_log` fields
//! filled from the upstream's usage, timings, ids, route and provider; and no
//! secret ever written to it.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::single_provider;
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{chat_usage, embeddings_usage, MockOptions, MockUpstream};
use serde_json::json;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_line_has_ai_log_fields() {
    let mock = MockUpstream::start_default();
    mock.delay_headers(200);
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let body = chat_body("gpt-4o", "Log this request, with some words in it.");
    let body_text = body.to_string();
    let r = TestClient::new()
        .post_raw(
            &format!("{}/v1/chat/completions", gw.url()),
            body_text.clone(),
            &[
                ("x-request-id", "log-chat-1"),
                ("user-agent", "gw-tests/1.0"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let chat_id = r.json()["id"].as_str().unwrap().to_string();
    let expected = chat_usage(&body, 8);

    let line = gw.wait_for_log_line("log-chat-1", LOG_WAIT).await;
    assert_eq!(line.method, "POST");
    assert_eq!(line.path, "/v1/chat/completions");
    assert_eq!(line.response_code, 200);
    assert!(line.duration >= 200, "{line:?}");
    assert!(
        line.bytes_received >= body_text.len() as u64,
        "bytes_received {} < body {}",
        line.bytes_received,
        body_text.len()
    );
    assert!(line.bytes_sent >= r.body.len() as u64, "{line:?}");
    assert_eq!(line.user_agent.as_deref(), Some("gw-tests/1.0"));
    assert!(!line.start_time.is_empty());

    let ai = &line.ai_log;
    assert_eq!(ai.model.as_deref(), Some("mock-large"), "{line:?}");
    assert_eq!(ai.request_model.as_deref(), Some("gpt-4o"));
    assert_eq!(ai.input_token, expected.prompt_tokens);
    assert_eq!(ai.output_token, expected.completion_tokens, "{line:?}");
    assert_eq!(ai.total_token, expected.total_tokens);
    assert_eq!(ai.cached_tokens, expected.cached_tokens);
    assert_eq!(ai.reasoning_tokens, expected.reasoning_tokens);
    assert!(!ai.usage_estimated);
    assert_eq!(ai.response_type, "normal");
    assert_eq!(ai.request_type, "ai_chat");
    assert_eq!(ai.chat_id.as_deref(), Some(chat_id.as_str()));
    assert_eq!(ai.provider.as_deref(), Some("up1"));
    assert_eq!(ai.route.as_deref(), Some("chat"));
    assert_eq!(ai.attempts.len(), 1);
    assert_eq!(ai.status, 200);
    let first = ai
        .llm_first_token_duration
        .expect("llm_first_token_duration");
    assert!(
        first >= 200,
        "upstream waited 200 ms before answering: {line:?}"
    );
    assert!(ai.llm_service_duration >= first, "{line:?}");
    assert!(ai.llm_service_duration >= 200, "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_error_lines() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::new();
    let emb =
        json!({"model": "text-embedding-3-small", "input": ["alpha beta", "gamma delta epsilon"]});
    let r = c
        .post_json_with(
            &format!("{}/v1/embeddings", gw.url()),
            &emb,
            &[("x-request-id", "log-emb-1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let line = gw.wait_for_log_line("log-emb-1", LOG_WAIT).await;
    let expected = embeddings_usage(&emb);
    assert_eq!(line.ai_log.request_type, "ai_embeddings");
    assert_eq!(line.ai_log.input_token, expected.prompt_tokens, "{line:?}");
    assert_eq!(line.ai_log.total_token, expected.total_tokens, "{line:?}");
    assert_eq!(line.ai_log.output_token, 0);
    assert_eq!(line.ai_log.model.as_deref(), Some("mock-small"));

    let r = c
        .post_raw(
            &format!("{}/v1/chat/completions", gw.url()),
            "{oops",
            &[("x-request-id", "log-err-1")],
        )
        .await;
    assert_eq!(r.status, 400);
    let line = gw.wait_for_log_line("log-err-1", LOG_WAIT).await;
    assert_eq!(line.response_code, 400);
    assert_eq!(line.ai_log.status, 400);

    mock.fail_with(500);
    let r = c
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "x"),
            &[("x-request-id", "log-err-2")],
        )
        .await;
    assert_eq!(r.status, 500);
    let line = gw.wait_for_log_line("log-err-2", LOG_WAIT).await;
    assert_eq!(line.response_code, 500);
    assert_eq!(line.ai_log.status, 500);
    assert!(!line.ai_log.attempts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_request_with_matching_request_id() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = c
            .post_json(
                &format!("{}/v1/chat/completions", gw.url()),
                &chat_body("gpt-4o", &format!("n{i}")),
            )
            .await;
        assert_eq!(r.status, 200);
        ids.push(r.header("x-request-id").unwrap().to_string());
    }
    let lines = gw.wait_for_log_lines(5, LOG_WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines_after = gw.access_log_lines();
    assert_eq!(lines_after.len(), 5, "exactly one line per request");
    let mut logged: Vec<String> = lines.iter().map(|l| l.request_id.clone()).collect();
    logged.sort();
    ids.sort();
    assert_eq!(logged, ids, "request_id in the log = x-request-id returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    const CLIENT_KEY: &str = "sk-client-SECRET-7f3a9e1d";
    const UPSTREAM_TOKEN: &str = "sk-upstream-SECRET-c41d2b8a";
    let mock = MockUpstream::start_default();
    let config = single_provider(&mock.base_url())
        .with_provider("up1", |p| p.tokens(&[UPSTREAM_TOKEN]))
        .yaml();
    let gw = Gateway::start(&config).await;
    let c = TestClient::new();
    let chat = format!("{}/v1/chat/completions", gw.url());
    let bearer = format!("Bearer {CLIENT_KEY}");
    let keys: [(&str, &str); 3] = [
        ("authorization", bearer.as_str()),
        ("x-api-key", CLIENT_KEY),
        ("api-key", CLIENT_KEY),
    ];
    // ok, streamed, malformed, no route, query-string key, upstream error
    let r = c
        .post_json_with(&chat, &chat_body("gpt-4o", "a"), &keys)
        .await;
    assert_eq!(r.status, 200);
    let s = c
        .post_sse(&chat, &chat_stream_body("gpt-4o", "b"), &keys)
        .await;
    assert!(s.done);
    let r = c.post_raw(&chat, "{bad", &keys).await;
    assert_eq!(r.status, 400);
    let r = c
        .post_json_with(
            &format!("{}/nowhere", gw.url()),
            &chat_body("gpt-4o", "c"),
            &keys,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .post_json_with(
            &format!("{chat}?key={CLIENT_KEY}"),
            &chat_body("gpt-4o", "d"),
            &keys,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 404 || r.status == 400,
        "{}",
        r.status
    );
    mock.fail_with(500);
    let r = c
        .post_json_with(&chat, &chat_body("gpt-4o", "e"), &keys)
        .await;
    assert_eq!(r.status, 500);

    assert!(mock
        .requests()
        .iter()
        .all(|q| q.header("authorization") == Some(&format!("Bearer {UPSTREAM_TOKEN}"))));

    gw.wait_for_log_lines(6, LOG_WAIT).await;
    let log = gw.access_log_text();
    for secret in [CLIENT_KEY, UPSTREAM_TOKEN, "SECRET"] {
        assert!(
            !log.contains(secret),
            "the access log contains {secret}:\n{log}"
        );
        assert!(!gw.stderr().contains(secret), "stderr contains {secret}");
        assert!(!gw.stdout().contains(secret), "stdout contains {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_stream_is_still_logged() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 20,
        chunk_delay_ms: 100,
        ..Default::default()
    });
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::new();
    let mut stream = c
        .open_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "I will hang up early"),
            &[("x-request-id", "log-dc-1")],
        )
        .await;
    assert_eq!(stream.status, 200);
    for _ in 0..3 {
        stream.next_event().await.expect("event");
    }
    drop(stream);
    drop(c);
    // the upstream would need ~2 s more; the line must come well before that
    let line = gw
        .wait_for_log_line("log-dc-1", Duration::from_millis(1500))
        .await;
    assert!(
        line.response_flags.contains("DC"),
        "downstream disconnect flag: {line:?}"
    );
    assert_eq!(line.ai_log.response_type, "stream");
    assert!(line.ai_log.output_token > 0, "{line:?}");
    assert!(line.ai_log.usage_estimated, "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_before_the_answer_is_still_logged() {
    let mock = MockUpstream::start_default();
    mock.delay_headers(1500); // first_byte_ms is 2000: the gateway is still waiting
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let request = async {
        TestClient::new()
            .post_raw(
                &url,
                chat_body("gpt-4o", "I will not wait").to_string(),
                &[("x-request-id", "log-gone-early")],
            )
            .await
    };
    // The client gives up after 300 ms, long before the upstream answers.
    assert!(tokio::time::timeout(Duration::from_millis(300), request)
        .await
        .is_err());
    let line = gw.wait_for_log_line("log-gone-early", LOG_WAIT).await;
    assert_eq!(line.response_code, 499, "{line:?}");
    assert!(line.response_flags.contains("DC"), "{line:?}");
    assert_eq!(line.ai_log.route.as_deref(), Some("chat"), "{line:?}");
    assert_eq!(line.ai_log.request_model.as_deref(), Some("gpt-4o"));
    assert_eq!(line.ai_log.attempts.len(), 1);
}
