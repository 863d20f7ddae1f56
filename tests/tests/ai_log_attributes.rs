//! `routes[].ai_log.attributes` end to end: every value source into the access
//! log's `ai_log`, the streamed answer assembled by `append`, `@reverse` and `#`
//! paths, defaults, the length limit, an Authorization attribute recorded as a
//! fingerprint only, and the built-in question/answer with `log_payloads`.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Attribute, Config, Provider, Route, Telemetry};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::MockUpstream;
use serde_json::{json, Map, Value};
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(5);

/// One route to the mock with an attribute of every value source; `telemetry`
/// is the telemetry part (the access log on).
fn config(base_url: &str, telemetry: Telemetry) -> String {
    let body = "request_body";
    let stream = "response_streaming_body";
    let route = Route::new("chat", "/v1")
        .upstream("up1")
        .attribute(Attribute::log("team", "fixed_value", "blue"))
        .attribute(Attribute::log(
            "question",
            body,
            "messages.@reverse.0.content",
        ))
        .attribute(Attribute::log("turns", body, "messages.#"))
        .attribute(Attribute::log("client", "request_header", "x-client").default_value("none"))
        .attribute(Attribute::log("auth", "request_header", "Authorization"))
        .attribute(Attribute::log("ctype", "response_header", "content-type"))
        .attribute(Attribute::log("answer", stream, "choices.0.delta.content").rule("append"))
        .attribute(Attribute::log(
            "answer",
            "response_body",
            "choices.0.message.content",
        ))
        .attribute(Attribute::log("first_piece", stream, "choices.0.delta.content").rule("first"))
        .attribute(Attribute::span("span_only", "fixed_value", "x"));
    Config::new()
        .provider(Provider::openai("up1", base_url).token("sk-upstream-secret-1"))
        .route(route)
        .telemetry(telemetry.access_log("{{access_log}}"))
        .yaml()
}

/// The route's attributes in the `ai_log` of request `id`'s access-log line.
async fn ai_log(gw: &Gateway, id: &str) -> Map<String, Value> {
    gw.wait_for_log_line(id, LOG_WAIT).await.ai_log.attributes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_reaches_the_log() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock.base_url(), Telemetry::new())).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut body = chat_body("gpt-4o", "first question");
    body["messages"] = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "user", "content": "the last question"}
    ]);

    // JSON answer
    let r = TestClient::new()
        .post_raw(
            &url,
            body.to_string(),
            &[
                ("x-request-id", "attr-json"),
                ("x-client", "cli/1"),
                ("authorization", "Bearer sk-client-secret-value"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let ai = ai_log(&gw, "attr-json").await;
    assert_eq!(ai["team"], "blue");
    assert_eq!(ai["question"], "the last question", "@reverse: {ai:?}");
    assert_eq!(ai["turns"], "3");
    assert_eq!(ai["client"], "cli/1");
    let auth = ai["auth"].as_str().unwrap();
    assert!(auth.starts_with("redacted:sha256:"), "{auth}");
    assert!(!auth.contains("secret"));
    assert_eq!(ai["ctype"], "application/json");
    assert_eq!(ai["answer"], answer.as_str());
    assert!(
        ai.get("first_piece").is_none(),
        "no stream, no value: {ai:?}"
    );
    assert!(ai.get("span_only").is_none(), "not for the log: {ai:?}");
    let text = gw.access_log_text();
    assert!(!text.contains("sk-client-secret-value"));
    assert!(!text.contains("sk-upstream-secret-1"));

    // streamed answer: `append` assembles it, `first` keeps the first piece
    let sse = TestClient::new()
        .post_sse(
            &url,
            &chat_stream_body("gpt-4o", "stream please"),
            &[("x-request-id", "attr-stream")],
        )
        .await;
    let streamed = sse.content();
    assert!(!streamed.is_empty());
    let ai = ai_log(&gw, "attr-stream").await;
    assert_eq!(ai["answer"], streamed.as_str(), "{ai:?}");
    let first = ai["first_piece"].as_str().unwrap();
    assert!(
        !first.is_empty() && streamed.starts_with(first),
        "{first:?} / {streamed:?}"
    );
    assert_eq!(
        ai["client"], "none",
        "the default when the header is missing"
    );
    assert_eq!(ai["ctype"], "text/event-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_cut_at_the_limit() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(
        &mock.base_url(),
        Telemetry::new().value_length_limit(8),
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let sse = TestClient::new()
        .post_sse(
            &url,
            &chat_stream_body("gpt-4o", "a question much longer than eight bytes"),
            &[("x-request-id", "attr-cut")],
        )
        .await;
    assert!(sse.content().len() > 8);
    let ai = ai_log(&gw, "attr-cut").await;
    assert_eq!(ai["question"], "a questi");
    assert_eq!(ai["answer"].as_str().unwrap().len(), 8, "{ai:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_question_and_answer_follow_log_payloads() {
    let mock = MockUpstream::start_default();
    for (on, id) in [(false, "payloads-off"), (true, "payloads-on")] {
        let plain = Config::new()
            .provider(Provider::openai("up1", &mock.base_url()))
            .route(Route::new("chat", "/v1").upstream("up1"))
            .telemetry(
                Telemetry::new()
                    .access_log("{{access_log}}")
                    .log_payloads(on),
            )
            .yaml();
        let gw = Gateway::start(&plain).await;
        let url = format!("{}/v1/chat/completions", gw.url());
        let sse = TestClient::new()
            .post_sse(
                &url,
                &chat_stream_body("gpt-4o", "what is the answer?"),
                &[("x-request-id", id)],
            )
            .await;
        let ai = ai_log(&gw, id).await;
        if on {
            assert_eq!(ai["question"], "what is the answer?", "{ai:?}");
            assert_eq!(ai["answer"], sse.content().as_str(), "{ai:?}");
        } else {
            assert!(
                ai.get("question").is_none() && ai.get("answer").is_none(),
                "{ai:?}"
            );
        }
    }
}

#[test]
fn bad_attributes_fail_the_config_check() {
    // a reserved key, a streaming source without a rule, an empty path step
    let yaml = Config::new()
        .provider(Provider::mock("m"))
        .route(
            Route::new("r", "/")
                .upstream("m")
                .attribute(Attribute::log("status", "fixed_value", "x"))
                .attribute(Attribute::log(
                    "a",
                    "response_streaming_body",
                    "choices.0.delta.content",
                ))
                .attribute(Attribute::log("b", "request_body", "messages..x")),
        )
        .yaml();
    let (code, out) = gateway_tests::harness::run_check_config(&yaml);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("routes[0].ai_log.attributes[0].key"), "{out}");
    assert!(out.contains("routes[0].ai_log.attributes[1].rule"), "{out}");
    assert!(
        out.contains("routes[0].ai_log.attributes[2].value"),
        "{out}"
    );
}
