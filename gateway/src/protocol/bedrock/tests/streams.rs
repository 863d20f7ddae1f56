//! ConverseStream events as OpenAI chunks, event by event.

use super::super::super::testing::deltas;
use super::super::super::Read;
use super::super::ConverseToChat;
use super::{chat_events, json, read, run};
use serde_json::Value;

/// A stream as the framing hands it over: text, then a tool call, the stop,
/// and the usage (Bedrock pads payloads with `p`).
pub(super) const STREAM: &[&str] = &[
    r#"{"messageStart":{"p":"abcdefgh","role":"assistant"}}"#,
    r#"{"contentBlockDelta":{"contentBlockIndex":0,"delta":{"text":"Hel\"lo"},"p":"abcd"}}"#,
    r#"{"contentBlockStop":{"contentBlockIndex":0}}"#,
    r#"{"contentBlockStart":{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"lookup"}}}}"#,
    r#"{"contentBlockDelta":{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}}"#,
    r#"{"contentBlockDelta":{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}}}"#,
    r#"{"contentBlockStop":{"contentBlockIndex":1}}"#,
    r#"{"messageStop":{"stopReason":"tool_use"}}"#,
    r#"{"metadata":{"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":135,"cacheReadInputTokens":100,"cacheWriteInputTokens":20},"metrics":{"latencyMs":100}}}"#,
];

/// The client's events for `stream` (ended when `end`), and what was read.
fn to_chat(stream: &[&str], include_usage: bool, end: bool) -> (Vec<Value>, Read) {
    let mut r = read();
    let out = run(&mut ConverseToChat::new(include_usage), stream, &mut r, end);
    (chat_events(&out), r)
}

#[test]
fn text_and_tool_use_as_chunk_deltas() {
    let (chunks, _) = to_chat(STREAM, false, true);
    let want = [
        r#"{"role":"assistant","content":""}"#,
        r#"{"content":"Hel\"lo"}"#,
        r#"{"tool_calls":[{"index":0,"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":""}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#,
        "{}",
    ];
    assert_eq!(deltas(&chunks), want.map(json), "{chunks:?}");
}

#[test]
fn the_stop_reason_is_the_last_chunk_finish_reason() {
    let (chunks, r) = to_chat(STREAM, false, true);
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json(r#""tool_calls""#)]);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert!(r.done);
}

#[test]
fn every_chunk_carries_one_id_and_the_model() {
    let (chunks, r) = to_chat(STREAM, true, true);
    let id = r.chat_id.clone().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in chunks.iter().filter(|c| c.is_object()) {
        assert_eq!(c["id"], id.as_str(), "{c}");
        assert_eq!(c["model"], "anthropic.claude-x", "{c}");
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
}

#[test]
fn with_include_usage_the_metadata_usage_is_a_chunk_before_done() {
    let (chunks, r) = to_chat(STREAM, true, true);
    let n = chunks.len();
    assert_eq!(chunks[n - 1], "[DONE]");
    assert_eq!(chunks[n - 2]["choices"], json("[]"));
    assert_eq!(
        chunks[n - 2]["usage"],
        json(
            r#"{"prompt_tokens":130,"completion_tokens":5,"total_tokens":135,"prompt_tokens_details":{"cached_tokens":100}}"#
        )
    );
    let u = r.usage.unwrap();
    assert_eq!((u.cached_tokens, u.cache_creation_tokens), (100, 20));
}

#[test]
fn without_include_usage_the_usage_is_read_but_not_sent() {
    let (chunks, r) = to_chat(STREAM, false, true);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    assert_eq!(r.usage.unwrap().total_tokens, 135);
}

#[test]
fn done_follows_the_metadata_without_waiting_for_the_end() {
    let (chunks, _) = to_chat(STREAM, true, false);
    assert_eq!(chunks.last().unwrap(), "[DONE]");
}

#[test]
fn the_generated_text_is_counted() {
    let (_, r) = to_chat(STREAM, false, true);
    let want = r#"Hel\"lo"#.len() + r#"{\"city\":"#.len() + r#"\"Paris\"}"#.len();
    assert_eq!(r.output_bytes, want);
}

#[test]
fn reasoning_deltas_as_reasoning_content() {
    let (chunks, _) = to_chat(
        &[
            r#"{"messageStart":{"role":"assistant"}}"#,
            r#"{"contentBlockDelta":{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hmm"}}}}"#,
            r#"{"contentBlockDelta":{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig"}}}}"#,
        ],
        false,
        false,
    );
    assert_eq!(
        deltas(&chunks),
        [
            json(r#"{"role":"assistant","content":""}"#),
            json(r#"{"reasoning_content":"hmm"}"#)
        ]
    );
}

#[test]
fn without_metadata_the_end_still_sends_done() {
    let (chunks, r) = to_chat(&STREAM[..8], true, true);
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage to send"
    );
    assert!(r.usage.is_none() && r.done);
}

#[test]
fn a_cut_stream_is_left_cut() {
    let (chunks, r) = to_chat(&STREAM[..5], true, true);
    assert!(chunks.iter().all(|c| c != "[DONE]"), "{chunks:?}");
    assert!(!r.done && r.finish_reason.is_none());
}

#[test]
fn an_exception_is_an_error_event_that_ends_the_stream() {
    let (chunks, r) = to_chat(
        &[
            STREAM[0],
            STREAM[1],
            r#"{"throttlingException":{"message":"Too many tokens, please wait."}}"#,
            STREAM[7],
            STREAM[8],
        ],
        true,
        true,
    );
    assert_eq!(chunks.len(), 3, "nothing after the error: {chunks:?}");
    assert_eq!(
        chunks[2],
        json(
            r#"{"error":{"message":"Too many tokens, please wait.","type":"rate_limit_error","code":"throttlingException"}}"#
        )
    );
    assert!(!r.done);
}

#[test]
fn a_model_stream_error_names_the_model_message() {
    let (chunks, _) = to_chat(
        &[
            r#"{"modelStreamErrorException":{"message":"model failed","originalStatusCode":500,"originalMessage":"boom"}}"#,
        ],
        false,
        true,
    );
    assert_eq!(chunks[0]["error"]["message"], "model failed (boom)");
    assert_eq!(chunks[0]["error"]["type"], "server_error");
}

#[test]
fn an_internal_server_exception_is_a_server_error() {
    let (chunks, _) = to_chat(
        &[r#"{"internalServerException":{"message":"oops"}}"#],
        false,
        true,
    );
    assert_eq!(chunks[0]["error"]["type"], "server_error");
    assert_eq!(chunks[0]["error"]["code"], "internalServerException");
}

#[test]
fn the_framings_error_is_an_error_event_with_its_code() {
    let (chunks, _) = to_chat(
        &[r#"{"error":{"code":"InternalFailure","message":"broken"}}"#],
        false,
        true,
    );
    assert_eq!(
        chunks,
        [json(
            r#"{"error":{"message":"broken","type":"server_error","code":"InternalFailure"}}"#
        )]
    );
}

#[test]
fn unknown_events_are_skipped() {
    let (chunks, _) = to_chat(&[r#"{"somethingNew":{"x":1}}"#, "not json"], false, false);
    assert!(chunks.is_empty(), "{chunks:?}");
}
