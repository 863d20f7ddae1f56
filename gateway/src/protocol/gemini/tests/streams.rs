//! Gemini streams as OpenAI chunks, event by event.

use super::super::super::testing::{deltas, usage};
use super::super::GeminiToChat;
use super::{chat_events, json, read, run};
use crate::protocol::Read;
use serde_json::Value;
use shared::usage::Usage;

pub(super) const STREAM: &[&str] = &[
    r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hmm","thought":true}]},"index":0}],"usageMetadata":{"promptTokenCount":10,"totalTokenCount":12,"thoughtsTokenCount":2},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
    r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel\"lo"}]},"index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":13,"thoughtsTokenCount":2},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
    r#"{"candidates":[{"content":{"role":"model","parts":[{"text":" there"}]},"index":0}],"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
    r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"lookup","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},{"functionCall":{"name":"now","args":{}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":20,"totalTokenCount":37,"cachedContentTokenCount":4,"thoughtsTokenCount":7},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
];

/// The chunks `stream` makes (`end`: the upstream stream ended), and what was read.
fn to_chat(stream: &[&str], include_usage: bool, end: bool) -> (Vec<Value>, Read) {
    let mut r = read();
    let out = run(&mut GeminiToChat::new(include_usage), stream, &mut r, end);
    (chat_events(&out), r)
}

#[test]
fn stream_as_openai_chunks() {
    let (chunks, r) = to_chat(STREAM, true, true);
    let deltas = deltas(&chunks);
    let rows: &[(&str, usize, &str)] = &[
        (
            "first: the role, the thought",
            0,
            r#"{"role":"assistant","content":"","reasoning_content":"hmm"}"#,
        ),
        ("text", 1, r#"{"content":"Hel\"lo"}"#),
        ("text", 2, r#"{"content":" there"}"#),
    ];
    for (what, i, want) in rows {
        assert_eq!(deltas.get(*i), Some(&json(want)), "{what}: {chunks:?}");
    }
    // the function calls, whole, with the finish reason
    let calls = deltas[3]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{chunks:?}");
    for (k, (name, args)) in [("lookup", r#"{"city":"Paris"}"#), ("now", "{}")]
        .iter()
        .enumerate()
    {
        assert_eq!(calls[k]["index"], k);
        assert_eq!(calls[k]["type"], "function");
        assert!(calls[k]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(calls[k]["function"]["name"], *name);
        assert_eq!(calls[k]["function"]["arguments"], *args);
    }
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
    for c in &chunks[..3] {
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
    }
    for c in &chunks[..5] {
        assert_eq!(
            (&c["id"], &c["object"], &c["model"]),
            (
                &json(r#""chatcmpl-r1""#),
                &json(r#""chat.completion.chunk""#),
                &json(r#""gemini-2.5-flash""#)
            )
        );
    }
    // the usage chunk (the last usageMetadata), then [DONE]
    assert_eq!(chunks[4]["choices"], json("[]"));
    assert_eq!(
        chunks[4]["usage"],
        json(
            r#"{"prompt_tokens":10,"completion_tokens":27,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":7}}"#
        )
    );
    assert_eq!(chunks[5], "[DONE]");
    assert_eq!(chunks.len(), 6);
    assert!(r.done);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.chat_id.as_deref(), Some("chatcmpl-r1"));
    assert_eq!(r.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(
        r.usage,
        Some(Usage {
            reasoning_tokens: 7,
            ..usage(10, 4, 0, 27, 37)
        })
    );
    let args = r#"{"city":"Paris"}"#.len() + "{}".len() + "lookup".len() + "now".len();
    assert_eq!(r.output_bytes, 3 + r#"Hel\"lo"#.len() + 6 + args);
}

#[test]
fn no_usage_chunk_unless_asked() {
    let (chunks, r) = to_chat(STREAM, false, true);
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[4], "[DONE]");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(r.usage.unwrap().total_tokens, 37, "read all the same");
}

#[test]
fn done_waits_for_the_end_of_the_stream() {
    // usage may come after the finish reason: [DONE] only when the stream ends
    let mut stream = STREAM.to_vec();
    stream.push(r#"{"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":21,"totalTokenCount":38}}"#);
    let (chunks, r) = to_chat(&stream, true, false);
    assert!(!chunks.contains(&Value::from("[DONE]")), "{chunks:?}");
    assert!(r.done, "the finish reason was seen");
    let (chunks, _) = to_chat(&stream, true, true);
    assert_eq!(chunks[4]["usage"]["total_tokens"], 38, "the last usage");
    assert_eq!(chunks[5], "[DONE]");
}

#[test]
fn a_cut_stream_is_left_cut() {
    let (chunks, r) = to_chat(&STREAM[..2], true, true);
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert!(!r.done);
    assert_eq!(r.finish_reason, None);
    assert_eq!(r.usage.unwrap().prompt_tokens, 10, "the usage so far");
    assert!(r.output_bytes > 0);
}

#[test]
fn a_blocked_prompt_streams_an_empty_message_finished_by_content_filter() {
    let (chunks, r) = to_chat(
        &[
            r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5},"responseId":"r2"}"#,
        ],
        true,
        true,
    );
    assert_eq!(
        chunks[0]["choices"],
        json(
            r#"[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"content_filter"}]"#
        )
    );
    assert_eq!(chunks[1]["usage"]["prompt_tokens"], 5);
    assert_eq!(chunks[2], "[DONE]");
    assert!(r.done);
    assert_eq!(r.finish_reason.as_deref(), Some("content_filter"));
}

#[test]
fn a_safety_stop_mid_stream_finishes_by_content_filter() {
    let (chunks, r) = to_chat(
        &[
            r#"{"candidates":[{"content":{"parts":[{"text":"Once"}]},"index":0}]}"#,
            r#"{"candidates":[{"finishReason":"SAFETY","index":0}]}"#,
        ],
        false,
        true,
    );
    assert_eq!(chunks[1]["choices"][0]["delta"], json("{}"));
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(chunks[2], "[DONE]");
    assert_eq!(r.finish_reason.as_deref(), Some("content_filter"));
}

#[test]
fn candidates_stream_as_choices() {
    let (chunks, _) = to_chat(
        &[
            r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0},{"content":{"parts":[{"text":"b"}]},"index":1}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"c"}]},"index":1,"finishReason":"STOP"}]}"#,
        ],
        false,
        true,
    );
    let choice = |i: usize| &chunks[i]["choices"][0];
    assert_eq!(
        (&choice(0)["index"], &choice(0)["delta"]["content"]),
        (&json("0"), &json(r#""a""#))
    );
    assert_eq!(choice(1)["index"], 1);
    assert_eq!(
        choice(1)["delta"]["role"],
        "assistant",
        "each choice's first chunk"
    );
    assert_eq!(choice(2)["delta"], json(r#"{"content":"c"}"#));
    assert_eq!(choice(2)["finish_reason"], "stop");
}

#[test]
fn an_error_event_in_openai_shape() {
    let (chunks, r) = to_chat(
        &[
            STREAM[1],
            r#"{"error":{"code":500,"message":"Internal error","status":"INTERNAL"}}"#,
        ],
        true,
        true,
    );
    assert_eq!(
        chunks[1],
        json(r#"{"error":{"message":"Internal error","type":"api_error","code":"internal"}}"#)
    );
    assert_eq!(chunks.len(), 2, "no [DONE] after an error: {chunks:?}");
    assert!(!r.done);
}
