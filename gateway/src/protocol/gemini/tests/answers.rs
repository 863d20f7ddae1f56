//! Whole generateContent answers and error bodies as OpenAI's.

use super::super::super::testing::usage;
use super::super::{answer_to_chat, error_to_chat, finish_reason};
use super::{json, read};
use crate::protocol::Read;
use serde_json::Value;
use shared::usage::Usage;

const ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[
    {"text":"let me see","thought":true},{"text":"Paris\n"},{"text":"is \"big\""}]},
    "finishReason":"STOP","index":0,"safetyRatings":[]}],
  "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":7,"totalTokenCount":152,
    "cachedContentTokenCount":60,"toolUsePromptTokenCount":5,"thoughtsTokenCount":40},
  "modelVersion":"gemini-2.5-flash-001","responseId":"resp-1"}"#;

fn to_chat(body: &str, r: &mut Read) -> Value {
    serde_json::from_slice(&answer_to_chat(body.as_bytes(), r)).unwrap()
}

#[test]
fn answer_as_openai_chat_completion() {
    let mut r = read();
    let got = to_chat(ANSWER, &mut r);
    let rows: &[(&str, &str, &str)] = &[
        ("id from responseId", "/id", r#""chatcmpl-resp-1""#),
        ("object", "/object", r#""chat.completion""#),
        (
            "model from modelVersion",
            "/model",
            r#""gemini-2.5-flash-001""#,
        ),
        ("role", "/choices/0/message/role", r#""assistant""#),
        (
            "texts joined",
            "/choices/0/message/content",
            r#""Paris\nis \"big\"""#,
        ),
        (
            "thoughts as reasoning_content",
            "/choices/0/message/reasoning_content",
            r#""let me see""#,
        ),
        ("no tool calls", "/choices/0/message/tool_calls", "null"),
        ("finish_reason", "/choices/0/finish_reason", r#""stop""#),
        (
            "prompt_tokens: the prompt and the tool-use prompt",
            "/usage/prompt_tokens",
            "105",
        ),
        (
            "cached_tokens",
            "/usage/prompt_tokens_details/cached_tokens",
            "60",
        ),
        (
            "completion_tokens: the candidates and the thoughts",
            "/usage/completion_tokens",
            "47",
        ),
        (
            "reasoning_tokens",
            "/usage/completion_tokens_details/reasoning_tokens",
            "40",
        ),
        (
            "total_tokens as Gemini counts it",
            "/usage/total_tokens",
            "152",
        ),
    ];
    for (what, pointer, want) in rows {
        let found = got.pointer(pointer).unwrap_or(&Value::Null);
        assert_eq!(found, &json(want), "{what}: {got}");
    }
    assert!(got["created"].as_u64().unwrap() > 0);
    assert_eq!(r.chat_id.as_deref(), Some("chatcmpl-resp-1"));
    assert_eq!(r.model.as_deref(), Some("gemini-2.5-flash-001"));
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        r.usage,
        Some(Usage {
            reasoning_tokens: 40,
            estimated: false,
            ..usage(105, 60, 0, 47, 152)
        })
    );
    assert_eq!(
        r.output_bytes,
        "let me see".len() + "Paris\\n".len() + "is \\\"big\\\"".len()
    );
}

#[test]
fn function_calls_as_tool_calls() {
    let mut r = read();
    let got = to_chat(
        r#"{"candidates":[{"content":{"role":"model","parts":[
            {"functionCall":{"name":"lookup","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},
            {"functionCall":{"name":"now"}}]},"finishReason":"STOP"}],
          "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5}}"#,
        &mut r,
    );
    let m = &got["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null, "{got}");
    let calls = m["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0]["function"],
        json(r#"{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}"#)
    );
    assert_eq!(
        calls[1]["function"],
        json(r#"{"name":"now","arguments":"{}"}"#)
    );
    for c in calls {
        assert_eq!(c["type"], "function");
        assert!(c["id"].as_str().unwrap().starts_with("call_"), "{c}");
    }
    assert_ne!(calls[0]["id"], calls[1]["id"], "ids tell the calls apart");
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        got["usage"]["total_tokens"], 15,
        "the sum when Gemini gives none"
    );
}

#[test]
fn finish_reasons_in_openai_words() {
    let rows: &[(&str, bool, &str)] = &[
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", false, "content_filter"),
        ("IMAGE_SAFETY", false, "content_filter"),
        ("LANGUAGE", false, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("OTHER", false, "stop"),
    ];
    for (gemini, called, openai) in rows {
        assert_eq!(finish_reason(gemini, *called), *openai, "{gemini} {called}");
    }
}

#[test]
fn a_safety_stopped_candidate_finishes_by_content_filter() {
    let mut r = read();
    let got = to_chat(
        r#"{"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]}]}"#,
        &mut r,
    );
    assert_eq!(got["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(got["choices"][0]["message"]["content"], "");
    assert_eq!(r.finish_reason.as_deref(), Some("content_filter"));
}

#[test]
fn a_blocked_prompt_is_an_empty_message_finished_by_content_filter() {
    let mut r = read();
    r.model = Some("gemini-x".into());
    let got = to_chat(
        r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},
           "usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}}"#,
        &mut r,
    );
    assert_eq!(
        got["choices"],
        json(
            r#"[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"content_filter","logprobs":null}]"#
        )
    );
    assert_eq!(got["model"], "gemini-x", "the model the lead noted");
    assert!(got["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(r.finish_reason.as_deref(), Some("content_filter"));
    assert_eq!(r.usage.unwrap().prompt_tokens, 8);
}

#[test]
fn an_answer_without_candidates_is_an_empty_message() {
    let mut r = read();
    let got = to_chat(
        r#"{"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"responseId":"r3"}"#,
        &mut r,
    );
    assert_eq!(got["choices"][0]["message"]["content"], "");
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    assert_eq!(got["id"], "chatcmpl-r3");
}

#[test]
fn ids_and_model_when_gemini_names_none() {
    let body = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}]}"#;
    let mut r = read();
    let got = to_chat(body, &mut r);
    assert_eq!(got["model"], "unknown");
    let id = got["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() > 12, "{id}");
    assert_eq!(r.chat_id.as_deref(), Some(id));
    let mut again = read();
    assert_ne!(
        to_chat(body, &mut again)["id"],
        got["id"],
        "made ids differ"
    );
    assert_eq!(got.get("usage"), None, "no usage when Gemini gives none");
}

#[test]
fn candidates_are_choices() {
    let mut r = read();
    let got = to_chat(
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP","index":0},
                          {"content":{"parts":[{"text":"b"}]},"finishReason":"MAX_TOKENS","index":1}]}"#,
        &mut r,
    );
    assert_eq!(got["choices"][1]["index"], 1);
    assert_eq!(got["choices"][1]["message"]["content"], "b");
    assert_eq!(got["choices"][1]["finish_reason"], "length");
    assert_eq!(
        r.finish_reason.as_deref(),
        Some("stop"),
        "the first choice's"
    );
}

#[test]
fn a_body_of_another_shape_comes_back_as_it_is() {
    for body in [r#"{"unexpected":true}"#, "not json"] {
        let mut r = read();
        assert_eq!(
            &answer_to_chat(body.as_bytes(), &mut r)[..],
            body.as_bytes()
        );
        assert_eq!(r.chat_id, None);
    }
}

#[test]
fn errors_in_openai_shape() {
    let rows: &[(&str, u16, &str)] = &[
        (
            r#"{"error":{"code":400,"message":"Invalid value at 'contents'","status":"INVALID_ARGUMENT"}}"#,
            400,
            r#"{"error":{"message":"Invalid value at 'contents'","type":"invalid_request_error","code":"invalid_argument"}}"#,
        ),
        (
            r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
            429,
            r#"{"error":{"message":"Quota exceeded","type":"rate_limit_error","code":"resource_exhausted"}}"#,
        ),
        (
            r#"[{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}]"#,
            403,
            r#"{"error":{"message":"Permission denied","type":"permission_error","code":"permission_denied"}}"#,
        ),
        (
            r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
            503,
            r#"{"error":{"message":"overloaded","type":"api_error","code":"unavailable"}}"#,
        ),
        (
            "<html>Bad Gateway</html>",
            502,
            r#"{"error":{"message":"<html>Bad Gateway</html>","type":"api_error","code":null}}"#,
        ),
    ];
    for (body, status, want) in rows {
        let got: Value = serde_json::from_slice(&error_to_chat(body.as_bytes(), *status)).unwrap();
        assert_eq!(got, json(want), "{body}");
    }
}

#[test]
fn a_long_error_text_is_quoted_bounded() {
    let body = "é".repeat(5000);
    let got: Value = serde_json::from_slice(&error_to_chat(body.as_bytes(), 500)).unwrap();
    let message = got["error"]["message"].as_str().unwrap();
    assert!(
        message.len() <= 512 && message.len() > 500,
        "{}",
        message.len()
    );
}
