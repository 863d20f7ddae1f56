//! Whole answers and error bodies, both ways, and the pass-through reading.

use super::super::super::testing::usage;
use super::super::{
    chat_answer_to_messages, error_to_chat, error_to_messages, finish_reason,
    messages_answer_to_chat, read_answer, read_event,
};
use super::{json, read};
use serde_json::Value;

const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
  "content":[{"type":"thinking","thinking":"let me see","signature":"sig"},{"type":"text","text":"Paris\n"},
             {"type":"tool_use","id":"toolu_1","name":"lookup","input":{"city":"Paris"}}],
  "stop_reason":"tool_use","stop_sequence":null,
  "usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}"#;

#[test]
fn anthropic_answer_as_openai_chat() {
    let mut r = read();
    let got: Value = serde_json::from_slice(&messages_answer_to_chat(
        ANTHROPIC_ANSWER.as_bytes(),
        &mut r,
    ))
    .unwrap();
    let rows: &[(&str, &str, &str)] = &[
        ("id", "/id", r#""msg_1""#),
        ("object", "/object", r#""chat.completion""#),
        ("model", "/model", r#""claude-x""#),
        ("text", "/choices/0/message/content", r#""Paris\n""#),
        ("role", "/choices/0/message/role", r#""assistant""#),
        (
            "thinking",
            "/choices/0/message/reasoning_content",
            r#""let me see""#,
        ),
        (
            "tool call",
            "/choices/0/message/tool_calls/0",
            r#"{"id":"toolu_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}}"#,
        ),
        (
            "finish_reason",
            "/choices/0/finish_reason",
            r#""tool_calls""#,
        ),
        (
            "prompt_tokens include cache reads and writes",
            "/usage/prompt_tokens",
            "130",
        ),
        (
            "cached_tokens",
            "/usage/prompt_tokens_details/cached_tokens",
            "100",
        ),
        ("completion_tokens", "/usage/completion_tokens", "5"),
        ("total_tokens", "/usage/total_tokens", "135"),
    ];
    for (what, pointer, want) in rows {
        assert_eq!(got.pointer(pointer), Some(&json(want)), "{what}: {got}");
    }
    assert!(got["created"].as_u64().unwrap() > 0);
    assert_eq!(
        (r.chat_id.as_deref(), r.model.as_deref()),
        (Some("msg_1"), Some("claude-x"))
    );
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.usage, Some(usage(130, 100, 20, 5, 135)));
    assert!(r.output_bytes > 0);
}

#[test]
fn openai_answer_as_anthropic_message() {
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Paris","reasoning_content":"hmm",
        "tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}}]},
        "finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":130,"completion_tokens":5,"total_tokens":135,"prompt_tokens_details":{"cached_tokens":100}}}"#;
    let mut r = read();
    let got: Value =
        serde_json::from_slice(&chat_answer_to_messages(body.as_bytes(), &mut r)).unwrap();
    let rows: &[(&str, &str, &str)] = &[
        ("id", "/id", r#""chatcmpl-1""#),
        ("type", "/type", r#""message""#),
        ("model", "/model", r#""gpt-x""#),
        (
            "reasoning as thinking",
            "/content/0",
            r#"{"type":"thinking","thinking":"hmm","signature":""}"#,
        ),
        ("text", "/content/1", r#"{"type":"text","text":"Paris"}"#),
        (
            "tool call as tool_use",
            "/content/2",
            r#"{"type":"tool_use","id":"call_1","name":"lookup","input":{"city":"Paris"}}"#,
        ),
        ("stop_reason", "/stop_reason", r#""tool_use""#),
        (
            "input_tokens exclude cache reads",
            "/usage/input_tokens",
            "30",
        ),
        ("cache reads", "/usage/cache_read_input_tokens", "100"),
        ("output_tokens", "/usage/output_tokens", "5"),
    ];
    for (what, pointer, want) in rows {
        assert_eq!(got.pointer(pointer), Some(&json(want)), "{what}: {got}");
    }
    assert_eq!(r.usage.unwrap().prompt_tokens, 130);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    let typed: Result<shared::wire::anthropic::Message, _> = serde_json::from_value(got.clone());
    assert!(typed.is_ok(), "an Anthropic message: {typed:?}");
}

#[test]
fn finish_reasons_map_both_ways() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
    ] {
        assert_eq!(finish_reason(stop), finish, "{stop}");
    }
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
    ] {
        let body = format!(
            r#"{{"id":"c","choices":[{{"message":{{"content":"x"}},"finish_reason":"{finish}"}}]}}"#
        );
        let got: Value =
            serde_json::from_slice(&chat_answer_to_messages(body.as_bytes(), &mut read())).unwrap();
        assert_eq!(got["stop_reason"], stop, "{finish}");
    }
}

#[test]
fn a_body_of_another_shape_comes_back_unchanged() {
    for body in [
        &b"not json"[..],
        br#"{"type":"error","error":{"type":"x","message":"y"}}"#,
    ] {
        assert_eq!(&messages_answer_to_chat(body, &mut read())[..], body);
        assert_eq!(&chat_answer_to_messages(body, &mut read())[..], body);
    }
}

#[test]
fn error_bodies_in_the_clients_shape() {
    let got: Value = serde_json::from_slice(&error_to_chat(
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ))
    .unwrap();
    assert_eq!(
        got,
        json(r#"{"error":{"message":"Overloaded","type":"overloaded_error","code":null}}"#)
    );
    let got: Value = serde_json::from_slice(&error_to_chat(b"<html>bad gateway</html>")).unwrap();
    assert_eq!(got["error"]["message"], "<html>bad gateway</html>");

    for (body, status, kind, message) in [
        (
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
            429,
            "rate_limit_error",
            "Rate limit reached",
        ),
        (
            r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#,
            401,
            "authentication_error",
            "bad key",
        ),
        (
            r#"{"object":"error","message":"model not found","type":"NotFoundError","code":404}"#,
            404,
            "not_found_error",
            "model not found",
        ),
        (r#"{"error":"boom"}"#, 500, "api_error", "boom"),
        ("upstream down", 503, "overloaded_error", "upstream down"),
    ] {
        let got: Value =
            serde_json::from_slice(&error_to_messages(body.as_bytes(), status)).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"type":"error","error":{"type":kind,"message":message}}),
            "{body}"
        );
    }
    // a long upstream text is cut
    let long = "x".repeat(10_000);
    assert!(error_to_messages(long.as_bytes(), 500).len() < 1000);
}

#[test]
fn passed_through_anthropic_answers_are_read() {
    let mut r = read();
    read_answer(&mut r, ANTHROPIC_ANSWER.as_bytes());
    assert_eq!(r.chat_id.as_deref(), Some("msg_1"));
    assert_eq!(r.usage.unwrap().prompt_tokens, 130);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert!(r.output_bytes >= "Paris".len() + "let me see".len());
}

#[test]
fn passed_through_anthropic_events_are_read() {
    let mut r = read();
    for e in [
        r#"{"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":42}}"#,
    ] {
        read_event(&mut r, e.as_bytes());
    }
    assert_eq!(
        (r.chat_id.as_deref(), r.model.as_deref()),
        (Some("msg_2"), Some("claude-x"))
    );
    assert_eq!(r.output_bytes, 5);
    assert_eq!(r.finish_reason.as_deref(), Some("length"));
    assert_eq!(r.usage, Some(usage(130, 100, 20, 42, 172)));
    assert!(!r.done);
    read_event(&mut r, br#"{"type":"message_stop"}"#);
    assert!(r.done);
}
