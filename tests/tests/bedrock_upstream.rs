//! A `type: bedrock` provider behind real gateway processes, against the
//! Bedrock mock (which recomputes every SigV4 signature and refuses a wrong
//! one, and frames its streams in AWS eventstream with CRCs): OpenAI chat and
//! Anthropic Messages clients, JSON and streams (also split into 1-7 byte
//! writes), a tool call round trip, cache figures, a stream exception, model
//! ids and inference profile ARNs in the path, session tokens and credentials
//! from the environment, usage equal to the mock's figures.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{AwsAuth, Config, Provider, Route};
use gateway_tests::harness::{admin, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{
    converse_usage, MockUpstream, AWS_TEST_ACCESS_KEY_ID, AWS_TEST_SECRET_ACCESS_KEY,
    AWS_TEST_SESSION_TOKEN,
};
use serde_json::{json, Value};
use std::time::Duration;

const CHUNKS: usize = 8;
const CLAUDE: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// One bedrock provider at the mock with `aws`, everything mapped to [`CLAUDE`].
fn config_with(mock: &MockUpstream, aws: Option<AwsAuth>) -> String {
    let mut p = Provider::bedrock("br", &mock.bedrock_base_url(), "us-east-1").map("*", CLAUDE);
    if let Some(aws) = aws {
        p = p.aws(aws);
    }
    Config::new()
        .provider(p)
        .route(Route::new("bedrock", "/v1").upstream("br"))
        .access_log()
        .yaml()
}

fn config(mock: &MockUpstream) -> String {
    config_with(mock, Some(AwsAuth::test()))
}

fn url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_reaches_converse_signed() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let mut body = chat_body("gpt-4o", "Say hello");
    body["max_tokens"] = json!(40);
    let r = TestClient::new().post_json(&url(&gw), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let auth = up.header("authorization").unwrap_or_default();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={AWS_TEST_ACCESS_KEY_ID}/"
        )) && auth.contains("/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert_eq!(up.body["inferenceConfig"]["maxTokens"], 40);
    assert_eq!(mock.sigv4_refusals(), 0);
    assert_eq!(mock.bedrock_models(), [CLAUDE]);
    let u = converse_usage(&up.body, CHUNKS);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], CLAUDE);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "word ".repeat(CHUNKS)
    );
    assert_eq!(v["usage"]["prompt_tokens"], u.prompt_total());
    assert_eq!(v["usage"]["completion_tokens"], u.output_tokens);
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert_eq!(line.ai_log.input_token, u.prompt_total());
    assert_eq!(line.ai_log.output_token, u.output_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventstream_in_tiny_writes_reaches_the_client_as_sse() {
    let mock = MockUpstream::start_default();
    mock.bedrock_tiny_writes(true);
    let gw = Gateway::start(&config(&mock)).await;
    let mut body = chat_stream_body("gpt-4o", "Stream please");
    body["stream_options"] = json!({"include_usage": true});
    let r = TestClient::new().post_sse(&url(&gw), &body, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let up = mock.last_request().unwrap();
    assert!(up.path().ends_with("/converse-stream"), "{}", up.path());
    assert_eq!(r.content(), "word ".repeat(CHUNKS));
    assert!(r.done && r.clean_end, "{}", r.raw);
    let u = converse_usage(&up.body, CHUNKS);
    let usage = r.usage_chunks();
    assert_eq!(usage.len(), 1, "{}", r.raw);
    assert_eq!(usage[0]["usage"]["prompt_tokens"], u.prompt_total());
    assert_eq!(usage[0]["usage"]["completion_tokens"], u.output_tokens);
    let finish: Vec<Value> = r
        .json_events()
        .iter()
        .filter_map(|e| e["choices"][0].get("finish_reason").cloned())
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [json!("stop")]);
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert_eq!(line.ai_log.output_token, u.output_tokens);
    assert!(!line.ai_log.usage_estimated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_reach_converse_through_chat() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let body = json!({"model": "claude-x", "max_tokens": 64, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello there"}]});
    let r = TestClient::new()
        .post_json(&format!("{}/v1/messages", gw.url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(up.body["system"][0]["text"], "Be brief.");
    let u = converse_usage(&up.body, CHUNKS);
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["usage"]["input_tokens"], u.prompt_total());
    assert_eq!(v["usage"]["output_tokens"], u.output_tokens);
    let mut body = body;
    body["stream"] = json!(true);
    let r = TestClient::new()
        .post_sse(&format!("{}/v1/messages", gw.url()), &body, &[])
        .await;
    assert_eq!(r.status, 200);
    let events = r.json_events();
    let text: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "word ".repeat(CHUNKS));
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["output_tokens"], u.output_tokens);
    assert_eq!(events.last().unwrap()["type"], "message_stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_round_trip_through_tool_use() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let mut body = chat_body("gpt-4o", "Find it");
    body["tools"] = tools.clone();
    let r = TestClient::new().post_json(&url(&gw), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "lookup"
    );
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = v["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "lookup");
    let mut follow = chat_body("gpt-4o", "Find it");
    follow["tools"] = tools;
    follow["messages"] = json!([
        {"role": "user", "content": "Find it"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "found it"}
    ]);
    let r = TestClient::new().post_json(&url(&gw), &follow).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    let msgs = &up.body["messages"];
    assert_eq!(
        msgs[1]["content"][0]["toolUse"]["toolUseId"], call["id"],
        "{msgs}"
    );
    assert_eq!(
        msgs[2]["content"][0]["toolResult"]["toolUseId"], call["id"],
        "{msgs}"
    );
    let text = r.json()["choices"][0]["message"]["content"].clone();
    assert!(
        text.as_str()
            .is_some_and(|t| t.starts_with(&format!("{} returned.", call["id"].as_str().unwrap()))),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signature_is_refused_by_the_mock() {
    let mock = MockUpstream::start_default();
    // the secret the gateway signs with is not the one the mock checks with
    let wrong = AwsAuth::new(
        AWS_TEST_ACCESS_KEY_ID,
        "not/the+secret0123456789abcdefghijklmno",
    );
    let gw = Gateway::start(&config_with(&mock, Some(wrong))).await;
    let r = TestClient::new()
        .post_json(&url(&gw), &chat_body("gpt-4o", "hi"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("signature")),
        "{v}"
    );
    assert_eq!(mock.sigv4_refusals(), 1);
    // the right secret passes on the same mock
    let gw = Gateway::start(&config(&mock)).await;
    let r = TestClient::new()
        .post_json(&url(&gw), &chat_body("gpt-4o", "hi"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.sigv4_refusals(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_is_sent_and_signed() {
    let mock = MockUpstream::start_default();
    mock.set_aws_session_token(Some(AWS_TEST_SESSION_TOKEN));
    let with = AwsAuth::test().session_token(AWS_TEST_SESSION_TOKEN);
    let gw = Gateway::start(&config_with(&mock, Some(with))).await;
    let r = TestClient::new()
        .post_json(&url(&gw), &chat_body("gpt-4o", "hi"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.header("x-amz-security-token"),
        Some(AWS_TEST_SESSION_TOKEN)
    );
    assert!(up
        .header("authorization")
        .is_some_and(|a| a.contains("x-amz-security-token")));
    // without it, the mock refuses
    let gw = Gateway::start(&config(&mock)).await;
    let r = TestClient::new()
        .post_json(&url(&gw), &chat_body("gpt-4o", "hi"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_region_come_from_the_environment() {
    let mock = MockUpstream::start_default();
    let yaml = Config::new()
        .provider(Provider::new("br", "bedrock").base_url(&mock.bedrock_base_url()))
        .route(Route::new("bedrock", "/v1").upstream("br"))
        .yaml();
    let gw = Gateway::builder(&yaml)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", AWS_TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_TEST_SECRET_ACCESS_KEY)
        .start()
        .await;
    let r = TestClient::new()
        .post_json(&url(&gw), &chat_body("meta.llama3-70b-instruct-v1:0", "hi"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.bedrock_models(), ["meta.llama3-70b-instruct-v1:0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inference_profile_arn_is_one_path_segment() {
    let mock = MockUpstream::start_default();
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0";
    let yaml = Config::new()
        .provider(
            Provider::bedrock("br", &mock.bedrock_base_url(), "us-east-1")
                .aws(AwsAuth::test())
                .map("*", arn),
        )
        .route(Route::new("bedrock", "/v1").upstream("br"))
        .yaml();
    let gw = Gateway::start(&yaml).await;
    let r = TestClient::new()
        .post_json(&url(&gw), &chat_body("gpt-4o", "hi"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.bedrock_models(), [arn]);
    assert_eq!(
        mock.sigv4_refusals(),
        0,
        "the encoded path was signed as AWS reads it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reads_and_writes_count_in_the_prompt() {
    let mock = MockUpstream::start_default();
    mock.bedrock_cache_figures(true);
    let gw = Gateway::start(&config(&mock)).await;
    let body = chat_body(
        "gpt-4o",
        "A long enough prompt to have a cached half, surely",
    );
    let r = TestClient::new().post_json(&url(&gw), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    let (read, write) = (line.ai_log.cached_tokens, line.ai_log.cache_creation_tokens);
    assert!(read > 0 && write > 0, "{:?}", line.ai_log);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], read);
    assert_eq!(v["usage"]["prompt_tokens"], line.ai_log.input_token);
    assert!(line.ai_log.input_token > read + write);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_exception_ends_the_stream_with_an_error_event() {
    let mock = MockUpstream::start_default();
    mock.bedrock_exception_after(3);
    let gw = Gateway::start(&config(&mock)).await;
    let r = TestClient::new()
        .post_sse(&url(&gw), &chat_stream_body("gpt-4o", "hi"), &[])
        .await;
    assert_eq!(r.status, 200);
    let events = r.json_events();
    let last = events.last().cloned().unwrap_or_default();
    assert!(last.get("error").is_some(), "{}", r.raw);
    assert!(!r.done, "no [DONE] after an error: {}", r.raw);
    assert!(
        r.content().starts_with("word "),
        "what came before the exception reached the client: {}",
        r.raw
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_is_estimated_from_what_passed() {
    let mock = MockUpstream::start_default();
    // messageStart and three text deltas, then the connection breaks
    mock.cut_stream_after(4);
    let gw = Gateway::start(&config(&mock)).await;
    let r = TestClient::new()
        .post_sse(&url(&gw), &chat_stream_body("gpt-4o", "hi"), &[])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content(), "word ".repeat(3), "{}", r.raw);
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert!(line.ai_log.usage_estimated, "{:?}", line.ai_log);
    assert_eq!(
        line.ai_log.output_token,
        "word word word ".len().div_ceil(4) as u64
    );
    assert!(line.ai_log.input_token > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_quota_is_settled_with_bedrocks_figures() {
    use gateway_tests::config::{Quota, Server};
    let mock = MockUpstream::start_default();
    let yaml = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::bedrock("br", &mock.bedrock_base_url(), "us-east-1")
                .aws(AwsAuth::test())
                .map("*", CLAUDE),
        )
        .route(
            Route::new("bedrock", "/v1")
                .upstream("br")
                .quota(Quota::new(
                    "route-tokens",
                    "route",
                    "total_tokens",
                    1000,
                    "1m",
                )),
        )
        .yaml();
    let gw = Gateway::start(&yaml).await;
    let mut body = chat_body("gpt-4o", "Say hello");
    body["max_tokens"] = json!(100);
    let r = TestClient::new().post_json(&url(&gw), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = converse_usage(&mock.last_request().unwrap().body, CHUNKS);
    // settlement reaches the store off the request path
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = admin(
            &TestClient::new(),
            &gw,
            http::Method::GET,
            "/admin/usage",
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let list = r.json();
        let used = list
            .as_array()
            .and_then(|l| l.iter().find(|e| e["quota"] == "route-tokens"))
            .map(|e| e["used"].clone());
        if used == Some(json!(u.total_tokens)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the quota never held the real usage {}: {list}",
            u.total_tokens
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
